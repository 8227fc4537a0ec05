package upstream

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// failingBody yields good bytes, then err.
type failingBody struct {
	good string
	err  error
}

func (b *failingBody) Read(p []byte) (int, error) {
	if b.good == "" {
		return 0, b.err
	}
	n := copy(p, b.good)
	b.good = b.good[n:]
	return n, nil
}

func (b *failingBody) Close() error { return nil }

// Issue 16: a request whose body fails while being sent is the client's
// fault. The error wraps ErrRequestBody and the body's own error; the
// upstream stays healthy, nothing is retried.
func TestIssue16RequestBodyErrorIsClientFault(t *testing.T) {
	malformed := errors.New("malformed chunked encoding")
	tests := []struct {
		name   string
		body   func() io.ReadCloser
		length int64
		check  func(t *testing.T, err error)
	}{
		{name: "chunked_body_breaks", length: -1,
			body: func() io.ReadCloser { return &failingBody{good: "abc", err: malformed} },
			check: func(t *testing.T, err error) {
				if !errors.Is(err, malformed) {
					t.Errorf("error %v does not wrap the body's error", err)
				}
			}},
		{name: "short_body", length: 100,
			body: func() io.ReadCloser { return &failingBody{good: "abc", err: io.ErrUnexpectedEOF} }},
		{name: "body_over_limit", length: -1,
			body: func() io.ReadCloser {
				return http.MaxBytesReader(nil, io.NopCloser(strings.NewReader(strings.Repeat("x", 100))), 10)
			},
			check: func(t *testing.T, err error) {
				var mbe *http.MaxBytesError
				if !errors.As(err, &mbe) {
					t.Errorf("error %v does not wrap *http.MaxBytesError", err)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newServer(t, func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) })
			b := newServer(t, ok)
			tr := newTransport(t, &Transport{Upstreams: []string{a.URL, b.URL}, MinIdle: 1})
			warm(t, tr)
			req, _ := http.NewRequestWithContext(t.Context(), "PUT", "http://x/upload", nil)
			req.Body = tc.body()
			req.ContentLength = tc.length
			req.Header.Set("Idempotency-Key", "k") // retryable but for its body
			req.GetBody = func() (io.ReadCloser, error) { return tc.body(), nil }
			resp, err := tr.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("RoundTrip with a failing body succeeded: %d", resp.StatusCode)
			}
			if !errors.Is(err, ErrRequestBody) {
				t.Fatalf("error %v does not wrap ErrRequestBody", err)
			}
			if !strings.HasPrefix(err.Error(), "upstream: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if tc.check != nil {
				tc.check(t, err)
			}
			for i, st := range tr.Stats().Upstreams {
				if !st.Healthy || st.Failures != 0 || st.Retries != 0 || st.InFlight != 0 {
					t.Errorf("upstream %d blamed for the client's body: %+v", i, st)
				}
			}
			if n := b.hits.Load(); n != 0 {
				t.Errorf("request retried on the other upstream (%d hits)", n)
			}
			// The upstream is used at once for the next request.
			if _, body := mustGet(t, tr, "http://x/"); body != "" && body != "ok" {
				t.Fatalf("next request: %q", body)
			}
		})
	}
}

// rawUpstream serves HTTP/1.1 by hand, so that a test decides per request
// whether to answer or to close the connection, and when.
type rawUpstream struct {
	ln      net.Listener
	handle  func(n int, path string) (delay time.Duration, answer bool) // n counts requests, from 1
	count   atomic.Int64
	accepts atomic.Int64
}

func newRawUpstream(t *testing.T, handle func(n int, path string) (time.Duration, bool)) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{ln: ln, handle: handle}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.accepts.Add(1)
			go u.serve(c)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return u
}

func (u *rawUpstream) URL() string { return "http://" + u.ln.Addr().String() }

func (u *rawUpstream) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		n := int(u.count.Add(1))
		delay, answer := u.handle(n, req.URL.Path)
		time.Sleep(delay)
		if !answer {
			return // closes the connection without a response byte
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	}
}

// Issue 16: an upstream that aborts a request before sending headers, after
// working on it, is not sent the request again as if the pooled connection
// had been dead: two client requests cost two upstream requests, not 3–4.
func TestIssue16AbortBeforeHeadersNotResent(t *testing.T) {
	up := newRawUpstream(t, func(n int, path string) (time.Duration, bool) {
		if path == "/poison" {
			return 30 * time.Millisecond, false // works, then aborts
		}
		return 0, true
	})
	tr := newTransport(t, &Transport{Upstreams: []string{up.URL()}, MinIdle: 3})
	warm(t, tr)
	mustGet(t, tr, "http://x/fast") // the upstream's response time is known
	before := up.count.Load()
	for i := range 2 {
		if _, _, err := get(t, tr, "http://x/poison"); err == nil {
			t.Fatalf("request %d to an aborting upstream succeeded", i)
		}
	}
	if n := up.count.Load() - before; n != 2 {
		t.Fatalf("2 client requests cost %d upstream requests, want 2", n)
	}
	if st := tr.Stats().Upstreams[0]; st.Healthy || st.Failures == 0 {
		t.Errorf("an aborting upstream is not marked down: %+v", st)
	}
}

// A pooled connection the upstream closed before the request reached it
// (the failure comes sooner than the upstream ever answered) is replaced
// once, transparently.
func TestDeadPooledConnectionRetriedOnce(t *testing.T) {
	var closeNext atomic.Bool
	up := newRawUpstream(t, func(n int, path string) (time.Duration, bool) {
		if closeNext.CompareAndSwap(true, false) {
			return 0, false // as if closed by an idle timeout just before
		}
		return 20 * time.Millisecond, true
	})
	tr := newTransport(t, &Transport{Upstreams: []string{up.URL()}, MinIdle: 2})
	warm(t, tr)
	mustGet(t, tr, "http://x/") // fastest response ≥ 20 ms
	closeNext.Store(true)
	resp, body := mustGet(t, tr, "http://x/")
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	st := tr.Stats().Upstreams[0]
	if n := tr.ups[0].stale.Load(); n != 1 {
		t.Errorf("stale retries = %d, want 1", n)
	}
	if !st.Healthy || st.Failures != 0 {
		t.Errorf("a dead pooled connection counted as failure: %+v", st)
	}
}

// Issue 16: trace and correlation headers never reach the upstream unless
// listed in ForwardHeaders.
func TestIssue16TraceHeadersStripped(t *testing.T) {
	trace := map[string]string{
		"Traceparent":      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"Tracestate":       "congo=t61rcWkgMzE",
		"Baggage":          "userId=alice",
		"X-Request-Id":     "r-1",
		"X-Correlation-Id": "c-1",
		"X-B3-Traceid":     "80f198ee56343ba864fe8b2a57d3eff7",
		"X-B3-Spanid":      "e457b5a2e4d86bd1",
		"B3":               "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1",
		"Uber-Trace-Id":    "1:2:0:1",
		"X-Amzn-Trace-Id":  "Root=1-5759e988-bd862e3fe1be46a994272793",
		"Sentry-Trace":     "771a43a4192642f0b136d5159a501700-b7ad6b7169203331-1",
		"Cache-Status":     "client; hit",
	}
	for _, tc := range []struct {
		name    string
		forward []string
		want    []string // trace headers the upstream must see
	}{
		{name: "default"},
		{name: "allow_list", forward: []string{"traceparent", "X-B3-*"}, want: []string{"Traceparent", "X-B3-Traceid", "X-B3-Spanid"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan http.Header, 1)
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { got <- r.Header.Clone() })
			tr := newTransport(t, &Transport{Upstreams: []string{srv.URL}, MinIdle: -1, ForwardHeaders: tc.forward})
			req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://x/", nil)
			for k, v := range trace {
				req.Header.Set(k, v)
			}
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			h := <-got
			want := map[string]bool{}
			for _, k := range tc.want {
				want[k] = true
				if h.Get(k) != trace[k] {
					t.Errorf("%s = %q upstream, want %q", k, h.Get(k), trace[k])
				}
			}
			for k := range trace {
				if !want[k] && h.Get(k) != "" {
					t.Errorf("%s reached the upstream: %q", k, h.Get(k))
				}
			}
			if len(req.Header) != len(trace) {
				t.Errorf("caller's request modified: %v", req.Header)
			}
		})
	}
}

// Issue 16: the Transport forwards no Range field that makes its upstream
// send many times an object's size (see rfc9111.ForwardRange).
func TestIssue16RangeLimited(t *testing.T) {
	const size = 10240
	body := strings.Repeat("x", size)
	var got atomic.Value
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Header.Get("Range"))
		http.ServeContent(w, r, "f", time.Time{}, strings.NewReader(body))
	})
	tr := newTransport(t, &Transport{Upstreams: []string{srv.URL}, MinIdle: -1})
	spec := func(n, step int) string {
		s := make([]string, n)
		for i := range s {
			p := strconv.Itoa(i * step)
			s[i] = p + "-" + p
		}
		return "bytes=" + strings.Join(s, ",")
	}
	for _, tc := range []struct {
		method, rng, want string
	}{
		{"GET", spec(1000, 2), ""},
		{"GET", spec(1000, 1), ""},
		{"GET", spec(50, 1), "bytes=0-49"},
		{"GET", spec(3, 2), "bytes=0-0,2-2,4-4"},
		{"GET", "bytes=0-99,-100", ""},
		{"HEAD", "bytes=5-9", "bytes=5-9"},
		{"POST", "bytes=5-9", ""},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), tc.method, "http://x/", nil)
		req.Header.Set("Range", tc.rng)
		req.Header.Set("If-Range", `"x"`)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if got.Load() != tc.want {
			t.Errorf("%s Range %.40q…: upstream got %q, want %q", tc.method, tc.rng, got.Load(), tc.want)
		}
		if n > size+16*200 {
			t.Errorf("%s Range %.40q…: %d bytes for %d", tc.method, tc.rng, n, size)
		}
		if req.Header.Get("Range") != tc.rng {
			t.Errorf("caller's request modified")
		}
	}
}
