package cache_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/upstream"
)

// Issue 16: a request whose body is malformed fails while the upstream leg
// reads it. That is the client's fault: it gets a 4xx (or its connection
// closed), the upstream's health and counters do not change, and no
// goroutine or connection is left behind.

// recorder is an upstream that records every request it receives and
// whether its body could be read completely.
type recorder struct {
	*httptest.Server
	mu       sync.Mutex
	seen     []string // "METHOD path body-ok|body-err"
	hits     atomic.Int64
	bodyErrs atomic.Int64
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	rec := &recorder{}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.hits.Add(1)
		_, err := io.Copy(io.Discard, r.Body)
		state := "body-ok"
		if err != nil {
			rec.bodyErrs.Add(1)
			state = "body-err"
		}
		rec.mu.Lock()
		rec.seen = append(rec.seen, r.Method+" "+r.URL.Path+" "+state)
		rec.mu.Unlock()
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "ok")
	}))
	t.Cleanup(rec.Close)
	return rec
}

func (rec *recorder) requests() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]string(nil), rec.seen...)
}

// rawExchange sends raw on a new TCP connection to addr and returns the
// first response's status (0 if none) and whether the server then closed
// the connection within hangGuard.
func rawExchange(t *testing.T, addr, raw string) (status int, closed bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(hangGuard))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatalf("write: %v", err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err == nil {
		status = resp.StatusCode
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// Whatever follows (a smuggled request's response) must not come:
	// the connection ends.
	_, err = br.ReadByte()
	var ne net.Error
	closed = err != nil && !(errors.As(err, &ne) && ne.Timeout())
	return status, closed
}

const hangGuard = 10 * time.Second

// malformedBodies are requests whose body fails while being read. Each
// must be answered with a 4xx, or the connection closed, never a 5xx.
var malformedBodies = []struct {
	name string
	raw  string
}{
	{
		// A chunk size beyond 64 bits.
		name: "chunk_size_overflow",
		raw: "POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"fffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
	},
	{
		// Transfer-Encoding and Content-Length (RFC 9112 §6.1), with a
		// chunked body that does not end where its chunk size says.
		name: "te_and_cl",
		raw: "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"3\r\nabcXX\r\n0\r\n\r\n",
	},
	{
		// A chunked body whose last chunk is followed by a request in
		// place of the trailer section.
		name: "smuggled_after_chunked",
		raw: "POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"0\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n",
	},
	{
		// A body shorter than its Content-Length, then the client
		// half-closes.
		name: "short_body",
		raw:  "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc",
	},
}

func TestIssue16MalformedBodyIsClientFault(t *testing.T) {
	for _, tc := range malformedBodies {
		t.Run(tc.name, func(t *testing.T) {
			up := newRecorder(t)
			logs := &levelCounter{}
			tr := &upstream.Transport{Upstreams: []string{up.URL}, MinIdle: 1, Logger: slog.New(logs)}
			t.Cleanup(func() { tr.Close() })
			c := &cache.Cache{Transport: tr, Logger: slog.New(logs)}
			front := httptest.NewUnstartedServer(c)
			var open atomic.Int64 // client connections the front server holds
			front.Config.ConnState = func(_ net.Conn, st http.ConnState) {
				switch st {
				case http.StateNew:
					open.Add(1)
				case http.StateClosed, http.StateHijacked:
					open.Add(-1)
				}
			}
			front.Start()
			t.Cleanup(front.Close)
			// One good request first: the upstream is known and healthy.
			resp, err := http.Get(front.URL + "/warm")
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			http.DefaultClient.CloseIdleConnections()
			waitFor(t, "the warm-up connection to close", func() bool { return open.Load() == 0 })
			before := tr.Stats().Upstreams[0]
			goroutines := runtime.NumGoroutine()
			errorsBefore := c.Stats().Errors

			addr := front.Listener.Addr().String()
			var status int
			var closed bool
			if tc.name == "short_body" {
				status, closed = shortBody(t, addr, tc.raw)
			} else {
				status, closed = rawExchange(t, addr, tc.raw)
			}
			if status != 0 && (status < 400 || status > 499) {
				t.Errorf("status %d for a malformed body, want a 4xx or a close", status)
			}
			if !closed {
				t.Errorf("connection kept open after a malformed body")
			}
			waitFor(t, "the server to close the client's connection", func() bool { return open.Load() == 0 })
			after := tr.Stats().Upstreams[0]
			if !after.Healthy || after.Failures != before.Failures || after.Retries != before.Retries || after.DialFailures != before.DialFailures {
				t.Errorf("upstream blamed for a client's body: before %+v after %+v", before, after)
			}
			waitFor(t, "the upstream connections to settle", func() bool {
				s := tr.Stats().Upstreams[0]
				return s.InFlight == 0 && s.Open <= before.Open
			})
			if n := c.Stats().Errors - errorsBefore; n != 0 {
				t.Errorf("cache counted %d errors for a client's body", n)
			}
			if n := logs.atLeast(slog.LevelInfo); n != 0 {
				t.Errorf("%d log records at Info or above for a client's body: %v", n, logs.messages())
			}
			for _, s := range up.requests() {
				if strings.Contains(s, "smuggled") {
					t.Errorf("upstream received the smuggled request: %q", s)
				}
			}
			waitGoroutines(t, goroutines)
		})
	}
}

// levelCounter is a slog.Handler counting records by level.
type levelCounter struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *levelCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *levelCounter) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.recs = append(h.recs, r)
	h.mu.Unlock()
	return nil
}
func (h *levelCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *levelCounter) WithGroup(string) slog.Handler      { return h }

func (h *levelCounter) atLeast(l slog.Level) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.recs {
		if r.Level >= l {
			n++
		}
	}
	return n
}

func (h *levelCounter) messages() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var m []string
	for _, r := range h.recs {
		m = append(m, r.Level.String()+" "+r.Message)
	}
	return m
}

// waitFor polls cond until it holds, failing after hangGuard.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// shortBody sends raw, half-closes the connection and reads the answer.
func shortBody(t *testing.T, addr, raw string) (status int, closed bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(hangGuard))
	io.WriteString(c, raw)
	c.(*net.TCPConn).CloseWrite()
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err == nil {
		status = resp.StatusCode
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	_, err = br.ReadByte()
	return status, err != nil
}

// waitGoroutines waits until the goroutine count is back to at most n
// (plus a small slack for runtime helpers), failing after hangGuard.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for {
		now := runtime.NumGoroutine()
		if now <= n+2 {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines, %d before:\n%s", now, n, buf)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Issue 16: a midtier that fetches from its origin and then aborts before
// sending headers costs one origin request per client request: the edge
// does not resend the request as if its pooled connection had been dead
// (2 client requests used to cost 3–4 origin requests).
func TestIssue16MidtierAbortNotAmplified(t *testing.T) {
	var originHits atomic.Int64
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		originHits.Add(1)
		time.Sleep(20 * time.Millisecond) // an origin fetch takes time
		io.WriteString(w, "content")
	}))
	t.Cleanup(origin.Close)
	midtier := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fast" {
			io.WriteString(w, "fast")
			return
		}
		resp, err := http.Get(origin.URL + r.URL.Path)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		panic(http.ErrAbortHandler) // before any header was sent
	}))
	t.Cleanup(midtier.Close)
	tr := &upstream.Transport{Upstreams: []string{midtier.URL}, MinIdle: 3}
	t.Cleanup(func() { tr.Close() })
	edge := httptest.NewServer(&cache.Cache{Transport: tr})
	t.Cleanup(edge.Close)

	get := func(path string) int {
		resp, err := http.Get(edge.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("/fast"); code != 200 {
		t.Fatalf("/fast: %d", code)
	}
	for _, p := range []string{"/a", "/b"} {
		if code := get(p); code != http.StatusBadGateway {
			t.Fatalf("%s: %d, want 502", p, code)
		}
	}
	if n := originHits.Load(); n != 2 {
		t.Fatalf("2 client requests cost %d origin requests, want 2", n)
	}
}

// Issue 16: a client's trace and correlation headers (and its own
// Cache-Status) never reach the origin, on any path through the cache,
// unless the operator lists them in ForwardHeaders.
func TestIssue16TraceHeadersNotForwarded(t *testing.T) {
	trace := map[string]string{
		"Traceparent":           "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"Tracestate":            "congo=t61rcWkgMzE",
		"Baggage":               "session=1",
		"X-Request-Id":          "r-1",
		"X-Correlation-Id":      "c-1",
		"X-B3-Traceid":          "80f198ee56343ba864fe8b2a57d3eff7",
		"X-B3-Sampled":          "1",
		"B3":                    "1-2-1",
		"Uber-Trace-Id":         "1:2:0:1",
		"X-Amzn-Trace-Id":       "Root=1-5759e988",
		"X-Cloud-Trace-Context": "105445aa7843bc8bf206b120001000/1;o=1",
		"Sentry-Trace":          "771a43a4192642f0b136d5159a501700-b7ad6b7169203331-1",
		"Cache-Status":          "evil; hit; stored",
	}
	paths := []struct {
		name, method string
		hdr          []string
	}{
		{"fill", "GET", nil},
		{"no_store", "GET", []string{"Cache-Control", "no-store"}},
		{"authorization", "GET", []string{"Authorization", "Bearer t"}},
		{"post", "POST", nil},
	}
	for _, tc := range []struct {
		name    string
		forward []string
		want    []string
	}{
		{name: "default"},
		{name: "allow_list", forward: []string{"Traceparent", "x-b3-*"}, want: []string{"Traceparent", "X-B3-Traceid", "X-B3-Sampled"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var seen []http.Header
			origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				seen = append(seen, r.Header.Clone())
				mu.Unlock()
				w.Header().Set("Cache-Control", "max-age=60")
				io.WriteString(w, "ok")
			}))
			t.Cleanup(origin.Close)
			tr := &upstream.Transport{Upstreams: []string{origin.URL}, MinIdle: -1, ForwardHeaders: tc.forward}
			t.Cleanup(func() { tr.Close() })
			front := httptest.NewServer(&cache.Cache{Transport: tr, ForwardHeaders: tc.forward})
			t.Cleanup(front.Close)
			for i, p := range paths {
				req, _ := http.NewRequest(p.method, front.URL+"/obj"+string(rune('a'+i)), nil)
				for k, v := range trace {
					req.Header.Set(k, v)
				}
				for j := 0; j+1 < len(p.hdr); j += 2 {
					req.Header.Set(p.hdr[j], p.hdr[j+1])
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("%s: status %d", p.name, resp.StatusCode)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if len(seen) != len(paths) {
				t.Fatalf("origin saw %d requests, want %d", len(seen), len(paths))
			}
			want := map[string]bool{}
			for _, k := range tc.want {
				want[k] = true
			}
			for i, h := range seen {
				for k, v := range trace {
					if got := h.Get(k); want[k] != (got == v) {
						t.Errorf("request %d (%s): origin saw %s = %q (forwarded: %v)", i, paths[i].name, k, got, want[k])
					}
				}
			}
		})
	}
}

// naiveRanges is an upstream serving a 10 KB object with http.ServeContent,
// which honours any number of ranges; it records the Range fields it got.
func naiveRanges(t *testing.T, cacheControl string) (*httptest.Server, *[]string, *sync.Mutex) {
	body := strings.Repeat("0123456789abcdef", 640)
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("Range"))
		mu.Unlock()
		w.Header().Set("Cache-Control", cacheControl)
		w.Header().Set("ETag", `"v1"`)
		http.ServeContent(w, r, "obj.bin", time.Unix(1_700_000_000, 0), strings.NewReader(body))
	}))
	t.Cleanup(srv.Close)
	return srv, &got, &mu
}

// oneByteRanges returns n one-byte range-specs, step bytes apart.
func oneByteRanges(n, step int) string {
	var b strings.Builder
	b.WriteString("bytes=")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		p := strconv.Itoa(i * step)
		b.WriteString(p + "-" + p)
	}
	return b.String()
}

// Issue 16: 1,000 one-byte ranges on a request that bypasses the cache got
// 144,846 bytes for a 10 KB object: Range was forwarded as is. On every
// path, the answer is at most the object plus a few part headers.
func TestIssue16RangeAmplificationPaths(t *testing.T) {
	const size = 10240
	const overhead = 16 * 200
	for _, tc := range []struct {
		name  string
		cc    string   // the upstream's Cache-Control
		hdr   []string // request headers besides Range
		first bool     // fetch the object once before (a stored hit)
	}{
		{name: "no_store_request", cc: "max-age=60", hdr: []string{"Cache-Control", "no-store"}},
		{name: "authorization", cc: "max-age=60", hdr: []string{"Authorization", "Bearer t"}},
		{name: "uncacheable_response", cc: "no-store"},
		{name: "stored_hit", cc: "max-age=60", first: true},
		{name: "miss", cc: "max-age=60"},
	} {
		for _, rng := range []string{oneByteRanges(1000, 1), oneByteRanges(1000, 2), oneByteRanges(40, 2), oneByteRanges(16, 2)} {
			t.Run(tc.name, func(t *testing.T) {
				up, got, mu := naiveRanges(t, tc.cc)
				tr := &upstream.Transport{Upstreams: []string{up.URL}, MinIdle: -1}
				t.Cleanup(func() { tr.Close() })
				front := httptest.NewServer(&cache.Cache{Transport: tr})
				t.Cleanup(front.Close)
				if tc.first {
					resp, err := http.Get(front.URL + "/obj")
					if err != nil {
						t.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				req, _ := http.NewRequest("GET", front.URL+"/obj", nil)
				req.Header.Set("Range", rng)
				for j := 0; j+1 < len(tc.hdr); j += 2 {
					req.Header.Set(tc.hdr[j], tc.hdr[j+1])
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != 200 && resp.StatusCode != 206 {
					t.Fatalf("status %d", resp.StatusCode)
				}
				if n > size+overhead {
					t.Fatalf("%d bytes for a %d-byte object (status %d)", n, size, resp.StatusCode)
				}
				mu.Lock()
				defer mu.Unlock()
				for _, r := range *got {
					if strings.Count(r, ",") >= 16 {
						t.Errorf("upstream got a Range of %d ranges", strings.Count(r, ",")+1)
					}
				}
			})
		}
	}
}
