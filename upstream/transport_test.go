package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hangGuard bounds waits that would otherwise hang a broken test. It is
// never used to assert on durations.
const hangGuard = 20 * time.Second

type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// server is an httptest server that counts accepted connections and hits.
type server struct {
	*httptest.Server
	accepted chan struct{} // one send per new connection (buffered)
	accepts  atomic.Int64
	closed   atomic.Int64
	hits     atomic.Int64
}

func newServer(t *testing.T, h http.HandlerFunc) *server {
	t.Helper()
	s := &server{accepted: make(chan struct{}, 1000)}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		h(w, r)
	}))
	s.Config.ConnState = func(c net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			s.accepts.Add(1)
			s.accepted <- struct{}{}
		case http.StateClosed, http.StateHijacked:
			s.closed.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func ok(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }

func waitAccepts(t *testing.T, s *server, n int) {
	t.Helper()
	for range n {
		select {
		case <-s.accepted:
		case <-time.After(hangGuard):
			t.Fatalf("server accepted %d connections, want %d", s.accepts.Load(), n)
		}
	}
}

func newTransport(t *testing.T, tr *Transport) *Transport {
	t.Helper()
	if tr.Logger == nil {
		tr.Logger = testLogger(t)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func get(t testing.TB, tr http.RoundTripper, target string) (*http.Response, string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), err
}

func mustGet(t *testing.T, tr http.RoundTripper, target string) (*http.Response, string) {
	t.Helper()
	resp, body, err := get(t, tr, target)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	return resp, body
}

func warm(t *testing.T, tr *Transport) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	if err := tr.Warm(ctx); err != nil {
		t.Fatalf("Warm: %v", err)
	}
}

// waitStats polls the transport's stats until cond holds (the pool reacts
// to events in background goroutines); it fails after hangGuard.
func waitStats(t *testing.T, tr *Transport, what string, cond func(s Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for {
		s := tr.Stats()
		if len(s.Upstreams) > 0 && cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; stats %+v", what, s)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestWarmPool(t *testing.T) {
	srv := newServer(t, ok)
	tr := newTransport(t, &Transport{Upstreams: []string{srv.URL}, MinIdle: 3})

	warm(t, tr)
	waitAccepts(t, srv, 3) // the server has 3 connections before any request
	st := tr.Stats().Upstreams[0]
	if st.Idle != 3 || st.Dials != 3 || st.Requests != 0 || srv.hits.Load() != 0 {
		t.Fatalf("after Warm: %+v, hits %d; want 3 idle, 3 dials, no request", st, srv.hits.Load())
	}

	// The first request uses a warm connection; nothing is dialled on its path.
	if _, body := mustGet(t, tr, "http://ignored.example/a"); body != "ok" {
		t.Fatalf("body %q", body)
	}
	st = tr.Stats().Upstreams[0]
	if st.ColdDials != 0 || st.New != 1 || st.Reused != 0 {
		t.Fatalf("first request: %+v; want a warm connection (no cold dial)", st)
	}
	// The taken connection comes back after the request (and the warmer
	// may have replaced it meanwhile): at least 3 idle.
	waitStats(t, tr, "refill", func(s Stats) bool { return s.Upstreams[0].Idle >= 3 && s.Upstreams[0].InFlight == 0 })

	// Later requests use idle connections, the most recently returned
	// first: none dials, and (once the warmer has topped the pool up to 4,
	// after at most one more dial) a connection is reused.
	for i := range 4 {
		mustGet(t, tr, fmt.Sprintf("http://ignored.example/b%d", i))
	}
	if st := tr.Stats().Upstreams[0]; st.Reused == 0 || st.ColdDials != 0 || st.Requests != 5 {
		t.Fatalf("later requests: %+v; want existing connections reused, no dial on the request path", st)
	}

	// The far side closes every connection: the pool notices, redials, and
	// a request right after still succeeds.
	all := tr.Stats()
	before := all.Upstreams[0].Dials
	idleBefore := all.Upstreams[0].Idle
	srv.CloseClientConnections()
	// Wait until the idle watchers have seen every close: a request that
	// takes a connection whose close is still in flight fails (issue 16:
	// a request that fails after reaching the upstream is not resent, and
	// a close racing the request looks the same).
	waitStats(t, tr, "closes noticed", func(s Stats) bool { return s.Upstreams[0].PeerClosed >= uint64(idleBefore) })
	if _, body := mustGet(t, tr, "http://ignored.example/c"); body != "ok" {
		t.Fatalf("body %q", body)
	}
	all = waitStats(t, tr, "pool replaced after peer close", func(s Stats) bool {
		u := s.Upstreams[0]
		return u.PeerClosed > 0 && u.Idle >= 3 && u.Dials >= before+3
	})
	if u := all.Upstreams[0]; !u.Healthy || u.Failures != 0 {
		t.Fatalf("a peer close counted as failure: %+v", u)
	}
	waitAccepts(t, srv, 1)
}

func TestWarmPoolRetriesStaleConnection(t *testing.T) {
	// A connection closed by the far side right under a request: GET is
	// replayed on a new connection without the caller noticing.
	srv := newServer(t, ok)
	tr := newTransport(t, &Transport{Upstreams: []string{srv.URL}, MinIdle: 1})
	warm(t, tr)
	tr.mu.Lock()
	p := tr.ups[0].pools[""]
	c := p.idle[0]
	tr.mu.Unlock()
	// Stop the watcher from noticing first: take the connection as a
	// request would, close it under it, and hand it back as idle.
	tr.mu.Lock()
	p.idle = p.idle[:0]
	c.taking = true
	tr.mu.Unlock()
	if !p.revive(c) {
		t.Fatal("fresh connection not alive")
	}
	c.uses = 1
	c.nc.(*net.TCPConn).CloseWrite() // the server sees EOF and closes
	resp, err := func() (*http.Response, error) {
		// Send on the half-closed connection through attempt's stale path.
		tr.mu.Lock()
		p.idle = append(p.idle, c)
		c.taking = false
		c.watch = make(chan error, 1)
		c.watch <- context.DeadlineExceeded // pretend the watcher timed out
		tr.mu.Unlock()
		req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://x/", nil)
		return tr.RoundTrip(req)
	}()
	if err != nil {
		t.Fatalf("GET on stale connection: %v", err)
	}
	resp.Body.Close()
	if n := tr.ups[0].stale.Load(); n != 1 {
		t.Fatalf("stale retries = %d, want 1", n)
	}
}

func TestPoolDisabled(t *testing.T) {
	srv := newServer(t, ok)
	tr := newTransport(t, &Transport{Upstreams: []string{srv.URL}, MinIdle: -1})
	if err := tr.Warm(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := tr.Stats().Upstreams[0]; st.Dials != 0 || st.Idle != 0 {
		t.Fatalf("MinIdle<0 dialled ahead: %+v", st)
	}
	mustGet(t, tr, "http://x/")
	mustGet(t, tr, "http://x/")
	st := tr.Stats().Upstreams[0]
	if st.ColdDials != 1 || st.Dials != 1 || st.Reused != 1 || st.Idle != 1 {
		t.Fatalf("stats %+v; want one cold dial, then reuse", st)
	}
}

func TestKeepAlive(t *testing.T) {
	pings := make(chan struct{}, 100)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead && r.URL.Path == "/ka" {
			pings <- struct{}{}
		}
	})
	tr := newTransport(t, &Transport{Upstreams: []string{srv.URL}, MinIdle: 1, KeepAliveInterval: 10 * time.Millisecond, KeepAlivePath: "/ka"})
	warm(t, tr)
	for range 3 {
		select {
		case <-pings:
		case <-time.After(hangGuard):
			t.Fatal("no keep-alive request")
		}
	}
	st := tr.Stats().Upstreams[0]
	if st.Dials != 1 || st.KeepAlives < 3 || st.Requests != 0 {
		t.Fatalf("stats %+v; want 3+ keep-alives on the one connection", st)
	}
	if srv.accepts.Load() != 1 {
		t.Fatalf("server accepted %d connections, want 1", srv.accepts.Load())
	}

	// Default keep-alive is "OPTIONS *", answered by net/http itself.
	srv2 := newServer(t, ok)
	tr2 := newTransport(t, &Transport{Upstreams: []string{srv2.URL}, MinIdle: 1, KeepAliveInterval: 10 * time.Millisecond})
	warm(t, tr2)
	waitStats(t, tr2, "OPTIONS * keep-alives", func(s Stats) bool { return s.Upstreams[0].KeepAlives >= 3 })
	if st := tr2.Stats().Upstreams[0]; st.Dials != 1 || srv2.accepts.Load() != 1 || srv2.hits.Load() != 0 {
		t.Fatalf("keep-alive redialled or reached the handler: %+v, accepts %d, hits %d", st, srv2.accepts.Load(), srv2.hits.Load())
	}
}

func TestIdleTimeoutKeepsMinIdle(t *testing.T) {
	srv := newServer(t, ok)
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	tr := newTransport(t, &Transport{Upstreams: []string{srv.URL}, MinIdle: 1, IdleTimeout: time.Second, Now: clock})
	warm(t, tr)
	// Two concurrent requests hold two connections, which then idle.
	var wg sync.WaitGroup
	release := make(chan struct{})
	arrived := make(chan struct{}, 2)
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
	})
	for range 2 {
		wg.Go(func() { get(t, tr, "http://x/") })
	}
	<-arrived
	<-arrived
	close(release)
	wg.Wait()
	waitStats(t, tr, "surplus idle", func(s Stats) bool { return s.Upstreams[0].Idle >= 2 })
	mu.Lock()
	now = now.Add(time.Hour)
	mu.Unlock()
	tr.ups[0].pools[""].wake()
	waitStats(t, tr, "surplus closed", func(s Stats) bool { return s.Upstreams[0].Idle == 1 && s.Upstreams[0].Open == 1 })
}

func TestFailover(t *testing.T) {
	t.Run("one_down", func(t *testing.T) {
		down := newServer(t, ok)
		downURL := down.URL
		down.Close()
		good := newServer(t, ok)
		tr := newTransport(t, &Transport{Upstreams: []string{downURL, good.URL}, MinIdle: -1})
		for i := range 3 {
			if _, body := mustGet(t, tr, "http://x/"); body != "ok" {
				t.Fatalf("request %d: body %q", i, body)
			}
		}
		st := tr.Stats()
		d, g := st.Upstreams[0], st.Upstreams[1]
		if d.Healthy || d.DialFailures != 1 || d.Retries != 1 || d.Failures != 1 {
			t.Fatalf("down upstream %+v; want one failed dial, then avoided", d)
		}
		if !g.Healthy || g.Requests != 3 || good.hits.Load() != 3 {
			t.Fatalf("good upstream %+v", g)
		}
	})
	t.Run("one_down_warm", func(t *testing.T) {
		down := newServer(t, ok)
		downURL := down.URL
		down.Close()
		good := newServer(t, ok)
		tr := newTransport(t, &Transport{Upstreams: []string{downURL, good.URL}})
		ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
		defer cancel()
		if err := tr.Warm(ctx); err == nil || !strings.Contains(err.Error(), "upstream: warm") {
			t.Fatalf("Warm with a dead upstream = %v, want its dial error", err)
		}
		for range 3 {
			mustGet(t, tr, "http://x/")
		}
		if st := tr.Stats().Upstreams[1]; st.Requests != 3 || st.ColdDials != 0 {
			t.Fatalf("good upstream %+v; want all requests on warm connections", st)
		}
	})
	t.Run("one_5xx", func(t *testing.T) {
		var postBody atomic.Value
		bad := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			postBody.Store(string(b))
			http.Error(w, "boom", http.StatusBadGateway)
		})
		good := newServer(t, ok)
		now := time.Unix(1000, 0)
		var mu sync.Mutex
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		tr := newTransport(t, &Transport{Upstreams: []string{bad.URL, good.URL}, MinIdle: -1, Now: clock})
		resp, body := mustGet(t, tr, "http://x/")
		if resp.StatusCode != 200 || body != "ok" || bad.hits.Load() != 1 || good.hits.Load() != 1 {
			t.Fatalf("GET: %d %q, hits bad %d good %d; want one retry on the good upstream", resp.StatusCode, body, bad.hits.Load(), good.hits.Load())
		}
		// After the down time, a POST goes to the bad upstream again (round
		// robin) and its 5xx is returned as is: no retry.
		mu.Lock()
		now = now.Add(time.Hour)
		mu.Unlock()
		req, _ := http.NewRequestWithContext(t.Context(), "POST", "http://x/", strings.NewReader("payload"))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(b), "boom") || bad.hits.Load() != 2 || good.hits.Load() != 1 {
			t.Fatalf("POST: %d %q, hits bad %d good %d; want the 502 unretried", resp.StatusCode, b, bad.hits.Load(), good.hits.Load())
		}
		if postBody.Load() != "payload" {
			t.Fatalf("upstream got body %q", postBody.Load())
		}
		st := tr.Stats()
		if st.Upstreams[0].Retries != 1 || st.Upstreams[0].Failures != 2 || st.Upstreams[0].Healthy {
			t.Fatalf("bad upstream %+v", st.Upstreams[0])
		}
	})
	t.Run("all_5xx", func(t *testing.T) {
		h := func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }
		a, b := newServer(t, h), newServer(t, h)
		tr := newTransport(t, &Transport{Upstreams: []string{a.URL, b.URL}, MinIdle: -1})
		resp, _ := mustGet(t, tr, "http://x/")
		if resp.StatusCode != 503 || a.hits.Load()+b.hits.Load() != 2 {
			t.Fatalf("status %d, hits %d+%d; want one retry then the 503", resp.StatusCode, a.hits.Load(), b.hits.Load())
		}
		// Both down now: the next GET is sent once, and its 503 returned.
		resp, _ = mustGet(t, tr, "http://x/")
		if resp.StatusCode != 503 || a.hits.Load()+b.hits.Load() != 3 {
			t.Fatalf("status %d, hits %d+%d", resp.StatusCode, a.hits.Load(), b.hits.Load())
		}
	})
	t.Run("idempotency_key", func(t *testing.T) {
		bad := newServer(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
		good := newServer(t, func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			w.Write(b)
		})
		tr := newTransport(t, &Transport{Upstreams: []string{bad.URL, good.URL}, MinIdle: -1})
		req, _ := http.NewRequestWithContext(t.Context(), "POST", "http://x/", strings.NewReader("again"))
		req.Header.Set("Idempotency-Key", "k1")
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "again" {
			t.Fatalf("POST with Idempotency-Key: %d %q; want retried with its body", resp.StatusCode, b)
		}
	})
}

func TestLeastOutstanding(t *testing.T) {
	release := make(chan struct{})
	var held atomic.Int64
	a := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			held.Add(1)
			<-release
		}
	})
	b := newServer(t, ok)
	tr := newTransport(t, &Transport{Upstreams: []string{a.URL, b.URL}, MinIdle: -1})
	done := make(chan error, 1)
	go func() { _, _, err := get(t, tr, "http://x/hold"); done <- err }()
	waitStats(t, tr, "request in flight on a", func(s Stats) bool { return s.Upstreams[0].InFlight == 1 })
	for range 4 {
		mustGet(t, tr, "http://x/")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if a.hits.Load() != 1 || b.hits.Load() != 4 {
		t.Fatalf("hits a=%d b=%d; want every request on the idle upstream", a.hits.Load(), b.hits.Load())
	}
}

func TestNoSilentRetry(t *testing.T) {
	hijack := func(w http.ResponseWriter, write string) {
		c, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		buf.WriteString(write)
		buf.Flush()
		c.Close()
	}
	tests := []struct {
		name       string
		method     string
		handler    http.HandlerFunc
		wantOther  int64 // hits on the second upstream
		wantErr    bool  // RoundTrip error
		wantBodyOK bool
	}{
		{
			name:   "get_headers_then_dies",
			method: "GET",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "100")
				w.WriteHeader(200)
				io.WriteString(w, "partial")
				http.NewResponseController(w).Flush()
				panic(http.ErrAbortHandler)
			},
			wantOther: 0,
		},
		{
			name:      "get_partial_status_line",
			method:    "GET",
			handler:   func(w http.ResponseWriter, r *http.Request) { hijack(w, "HTTP/1.1 200 O") },
			wantOther: 0,
			wantErr:   true,
		},
		{
			name:       "get_closed_before_response",
			method:     "GET",
			handler:    func(w http.ResponseWriter, r *http.Request) { hijack(w, "") },
			wantOther:  1,
			wantBodyOK: true,
		},
		{
			name:      "post_closed_before_response",
			method:    "POST",
			handler:   func(w http.ResponseWriter, r *http.Request) { hijack(w, "") },
			wantOther: 0,
			wantErr:   true,
		},
		{
			name:   "post_headers_then_dies",
			method: "POST",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "100")
				w.WriteHeader(200)
				http.NewResponseController(w).Flush()
				panic(http.ErrAbortHandler)
			},
			wantOther: 0,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			first := newServer(t, tc.handler)
			other := newServer(t, ok)
			tr := newTransport(t, &Transport{Upstreams: []string{first.URL, other.URL}, MinIdle: -1})
			var body io.Reader
			if tc.method == "POST" {
				body = strings.NewReader("data")
			}
			req, _ := http.NewRequestWithContext(t.Context(), tc.method, "http://x/", body)
			resp, err := tr.RoundTrip(req)
			if (err != nil) != tc.wantErr {
				t.Fatalf("RoundTrip error = %v, want error %v", err, tc.wantErr)
			}
			if err == nil {
				b, rerr := io.ReadAll(resp.Body)
				resp.Body.Close()
				if tc.wantBodyOK != (rerr == nil && string(b) == "ok") {
					t.Fatalf("body %q, read error %v", b, rerr)
				}
				if rerr != nil && !strings.HasPrefix(rerr.Error(), "upstream: ") {
					t.Fatalf("body error %q lacks the package prefix", rerr)
				}
			} else if !strings.HasPrefix(err.Error(), "upstream: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
			if first.hits.Load() != 1 || other.hits.Load() != tc.wantOther {
				t.Fatalf("hits first=%d other=%d, want 1 and %d", first.hits.Load(), other.hits.Load(), tc.wantOther)
			}
		})
	}
}

func TestHeaderHygiene(t *testing.T) {
	type seen struct {
		header http.Header
		host   string
		uri    string
	}
	got := make(chan seen, 1)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Header.Clone(), r.Host, r.RequestURI}
		h := w.Header()
		h.Set("Connection", "X-Hop")
		h.Set("X-Hop", "1")
		h.Set("Server", "secret-server/1.0")
		h.Set("X-Powered-By", "php")
		h.Set("Content-Encoding", "gzip")
		h.Set("X-Kept", "yes")
		w.Write([]byte{0x1f, 0x8b, 1, 2, 3})
	})
	srvURL, _ := url.Parse(srv.URL)

	identifying := []string{"X-Forwarded-For", "Forwarded", "Via", "X-Real-Ip", "X-Tor-Circuit-Id", "X-Forwarded-Host", "X-Forwarded-Proto"}
	hop := []string{"Connection", "Keep-Alive", "Te", "Upgrade", "Proxy-Authorization", "Proxy-Connection", "X-Secret", "X-Other"}
	newReq := func() *http.Request {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://site.example/a%2Fb/c?q=1&r=2", nil)
		h := req.Header
		for _, k := range identifying {
			h.Set(k, "10.1.2.3")
		}
		h.Set("Connection", "X-Secret, x-other")
		h.Set("X-Secret", "s")
		h.Set("X-Other", "o")
		h.Set("Keep-Alive", "timeout=5")
		h.Set("Te", "trailers")
		h.Set("Upgrade", "websocket")
		h.Set("Proxy-Authorization", "Basic eA==")
		h.Set("Proxy-Connection", "keep-alive")
		h.Set("Accept", "text/plain")
		return req
	}
	tests := []struct {
		name     string
		ua       string // Transport.UserAgent
		preserve bool   // Transport.PreserveHost
		keepSrv  bool   // Transport.KeepServerHeaders
		prefix   string // appended to the upstream URL
		setUA    []string
		wantUA   []string // nil: header absent
		wantHost string
		wantURI  string
	}{
		{name: "defaults", wantUA: nil, wantHost: srvURL.Host, wantURI: "/a%2Fb/c?q=1&r=2"},
		{name: "configured_user_agent", ua: "onioncdn", keepSrv: true, wantUA: []string{"onioncdn"}, wantHost: srvURL.Host, wantURI: "/a%2Fb/c?q=1&r=2"},
		{name: "caller_user_agent", ua: "onioncdn", setUA: []string{"Mozilla/5.0"}, wantUA: []string{"Mozilla/5.0"}, wantHost: srvURL.Host, wantURI: "/a%2Fb/c?q=1&r=2"},
		{name: "caller_empty_user_agent", ua: "onioncdn", setUA: []string{""}, wantUA: nil, wantHost: srvURL.Host, wantURI: "/a%2Fb/c?q=1&r=2"},
		{name: "preserve_host_and_prefix", preserve: true, prefix: "/base%20dir/", wantHost: "site.example", wantURI: "/base%20dir/a%2Fb/c?q=1&r=2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := &Transport{
				Upstreams:         []string{srv.URL + tc.prefix},
				MinIdle:           -1,
				UserAgent:         tc.ua,
				PreserveHost:      tc.preserve,
				KeepServerHeaders: tc.keepSrv,
			}
			newTransport(t, tr)
			req := newReq()
			if tc.setUA != nil {
				req.Header["User-Agent"] = tc.setUA
			}
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			s := <-got
			for _, k := range append(identifying, hop...) {
				if v, ok := s.header[k]; ok {
					t.Errorf("upstream saw %s: %q", k, v)
				}
			}
			if s.header.Get("Accept") != "text/plain" {
				t.Errorf("end-to-end header Accept lost: %v", s.header)
			}
			if _, ok := s.header["Accept-Encoding"]; ok {
				t.Errorf("transport added Accept-Encoding")
			}
			if ua, ok := s.header["User-Agent"]; !reflect.DeepEqual(ua, tc.wantUA) || ok != (tc.wantUA != nil) {
				t.Errorf("User-Agent = %q (present %v), want %q", ua, ok, tc.wantUA)
			}
			if s.host != tc.wantHost || s.uri != tc.wantURI {
				t.Errorf("upstream saw Host %q URI %q, want %q %q", s.host, s.uri, tc.wantHost, tc.wantURI)
			}
			// Response: hop-by-hop removed, body bytes unchanged (no decompression).
			if _, ok := resp.Header["X-Hop"]; ok {
				t.Errorf("Connection-listed response header passed through")
			}
			if resp.Header.Get("X-Kept") != "yes" || resp.Header.Get("Content-Encoding") != "gzip" || !bytes.Equal(b, []byte{0x1f, 0x8b, 1, 2, 3}) {
				t.Errorf("response changed: %v %x", resp.Header, b)
			}
			_, hasServer := resp.Header["Server"]
			_, hasPowered := resp.Header["X-Powered-By"]
			if hasServer != tc.keepSrv || hasPowered != tc.keepSrv {
				t.Errorf("Server present %v, X-Powered-By present %v; KeepServerHeaders %v", hasServer, hasPowered, tc.keepSrv)
			}
			if resp.Request != req {
				t.Errorf("resp.Request is not the caller's request")
			}
		})
	}
}

// trackBody records Close calls.
type trackBody struct {
	io.Reader
	closed atomic.Int32
}

func (b *trackBody) Close() error { b.closed.Add(1); return nil }

func snapshot(r *http.Request) *http.Request {
	c := *r
	u := *r.URL
	c.URL = &u
	c.Header = r.Header.Clone()
	return &c
}

func TestRequestNotMutated(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(500) // forces a retry on the other upstream, too
	})
	srv2 := newServer(t, ok)
	tr := newTransport(t, &Transport{Upstreams: []string{srv.URL, srv2.URL}, MinIdle: 1, UserAgent: "ua"})
	req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://site.example/p?q=1", nil)
	req.Header.Set("Connection", "X-Secret")
	req.Header.Set("X-Secret", "1")
	req.Header.Set("X-Forwarded-For", "1.2.3.4")
	req.Header.Set("Expect", "100-continue")
	req.Host = "other.example"
	want := snapshot(req)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		})
	}
	wg.Wait()
	if got := snapshot(req); !reflect.DeepEqual(got.Header, want.Header) || *got.URL != *want.URL || got.Host != want.Host || got.Method != want.Method || got.Close != want.Close || got.ContentLength != want.ContentLength {
		t.Fatalf("request mutated:\n got %+v\nwant %+v", got, want)
	}

	// Bodies are closed on every path: success, retry, error, closed transport.
	for _, tc := range []struct {
		name string
		tr   *Transport
	}{
		{"success_after_retry", tr},
		{"invalid_config", &Transport{Upstreams: []string{"ftp://x"}}},
		{"closed", func() *Transport { c := &Transport{Upstreams: []string{srv.URL}}; c.Close(); return c }()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := &trackBody{Reader: strings.NewReader("abc")}
			req, _ := http.NewRequestWithContext(t.Context(), "PUT", "http://x/", body)
			req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("abc")), nil }
			resp, err := tc.tr.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
			}
			if body.closed.Load() == 0 {
				t.Fatalf("request body not closed (err %v)", err)
			}
		})
	}
}

func TestIsolationTags(t *testing.T) {
	srv := newServer(t, ok)
	host := strings.TrimPrefix(srv.URL, "http://")
	// Each subtest records its own dials: a previous subtest's transport
	// may still finish a dial after its Close.
	type recorder struct {
		mu    sync.Mutex
		dials []struct{ addr, tag string }
	}
	newRecorder := func() (*recorder, func(ctx context.Context, network, addr, tag string) (net.Conn, error)) {
		rec := &recorder{}
		return rec, func(ctx context.Context, network, addr, tag string) (net.Conn, error) {
			rec.mu.Lock()
			rec.dials = append(rec.dials, struct{ addr, tag string }{addr, tag})
			rec.mu.Unlock()
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
	}
	tags := func(rec *recorder) map[string]bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		m := map[string]bool{}
		for _, d := range rec.dials {
			if d.addr != host {
				t.Errorf("dialled %q, want %q", d.addr, host)
			}
			m[d.tag] = true
		}
		return m
	}

	t.Run("per_slot", func(t *testing.T) {
		rec, dialIsolated := newRecorder()
		tr := newTransport(t, &Transport{Upstreams: []string{srv.URL}, MinIdle: 3, DialIsolated: dialIsolated})
		warm(t, tr)
		want := map[string]bool{host + "/0": true, host + "/1": true, host + "/2": true}
		if got := tags(rec); !reflect.DeepEqual(got, want) {
			t.Fatalf("tags %v, want %v", got, want)
		}
	})
	t.Run("per_site", func(t *testing.T) {
		rec, dialIsolated := newRecorder()
		tr := newTransport(t, &Transport{
			Upstreams:    []string{srv.URL},
			MinIdle:      2,
			DialIsolated: dialIsolated,
			Site:         func(r *http.Request) string { return r.Host },
			Sites:        []string{"a.example"},
		})
		warm(t, tr)
		// A request for a second site gets connections of its own.
		mustGet(t, tr, "http://b.example/")
		warm(t, tr)
		// Site a was warmed alone: slots 0 and 1. Site b's request dialled
		// while its warmer filled the pool, so b may have used more slots;
		// every b tag carries b's name and no tag is shared.
		got := tags(rec)
		var a, b []string
		for tag := range got {
			switch {
			case strings.HasSuffix(tag, "/a.example"):
				a = append(a, tag)
			case strings.HasSuffix(tag, "/b.example"):
				b = append(b, tag)
			default:
				t.Errorf("tag %q names no site", tag)
			}
		}
		if len(a) != 2 || !got[host+"/0/a.example"] || !got[host+"/1/a.example"] {
			t.Errorf("site a tags %v, want slots 0 and 1", a)
		}
		if len(b) < 2 {
			t.Errorf("site b tags %v, want at least 2", b)
		}
		for _, tag := range b {
			var slot int
			var rest string
			if _, err := fmt.Sscanf(strings.TrimPrefix(tag, host+"/"), "%d/%s", &slot, &rest); err != nil || rest != "b.example" || slot > 4 {
				t.Errorf("site b tag %q, want %s/<slot>/b.example", tag, host)
			}
		}
		st := tr.Stats().Upstreams[0]
		if st.Idle < 4 {
			t.Fatalf("stats %+v; want both sites' pools warm", st)
		}
	})
	t.Run("collision", func(t *testing.T) {
		_, dialIsolated := newRecorder()
		tr := newTransport(t, &Transport{
			Upstreams:    []string{srv.URL},
			MinIdle:      -1,
			DialIsolated: dialIsolated,
			Site:         func(r *http.Request) string { return r.Host },
			Isolation:    func(upstreamHost, site string, slot int) string { return "same" },
		})
		mustGet(t, tr, "http://a.example/")
		_, _, err := get(t, tr, "http://b.example/")
		if err == nil || !strings.Contains(err.Error(), "collides") {
			t.Fatalf("colliding isolation tags: err %v", err)
		}
	})
	t.Run("max_sites", func(t *testing.T) {
		tr := newTransport(t, &Transport{
			Upstreams: []string{srv.URL},
			MinIdle:   -1,
			MaxSites:  1,
			Site:      func(r *http.Request) string { return r.Host },
		})
		mustGet(t, tr, "http://a.example/")
		if _, _, err := get(t, tr, "http://b.example/"); err == nil || !strings.Contains(err.Error(), "more than 1 sites") {
			t.Fatalf("second site with MaxSites 1: err %v", err)
		}
	})
}

func TestTimeouts(t *testing.T) {
	t.Run("response_header", func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { <-release })
		tr := newTransport(t, &Transport{Upstreams: []string{srv.URL}, MinIdle: -1, ResponseHeaderTimeout: 50 * time.Millisecond})
		_, _, err := get(t, tr, "http://x/")
		if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), "upstream: response header timeout") {
			t.Fatalf("err %v", err)
		}
		if st := tr.Stats().Upstreams[0]; st.Failures != 1 || st.Healthy {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("dial", func(t *testing.T) {
		tr := newTransport(t, &Transport{
			Upstreams:   []string{"http://blackhole.onion"},
			MinIdle:     -1,
			DialTimeout: 50 * time.Millisecond,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				<-ctx.Done()
				return nil, ctx.Err()
			},
		})
		_, _, err := get(t, tr, "http://x/")
		if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), "upstream: dial timeout") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("dialer_ignores_context", func(t *testing.T) {
		block := make(chan struct{})
		defer close(block)
		tr := newTransport(t, &Transport{
			Upstreams:   []string{"http://blackhole.onion"},
			MinIdle:     -1,
			DialTimeout: 50 * time.Millisecond,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				<-block
				return nil, errors.New("late")
			},
		})
		_, _, err := get(t, tr, "http://x/")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("caller_cancel", func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { <-release })
		other := newServer(t, ok)
		tr := newTransport(t, &Transport{Upstreams: []string{srv.URL, other.URL}, MinIdle: -1})
		ctx, cancel := context.WithCancel(t.Context())
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://x/", nil)
		go func() {
			waitStats(t, tr, "in flight", func(s Stats) bool { return s.Upstreams[0].InFlight == 1 })
			cancel()
		}()
		_, err := tr.RoundTrip(req)
		if !errors.Is(err, context.Canceled) || other.hits.Load() != 0 {
			t.Fatalf("err %v, other hits %d; want context.Canceled and no retry", err, other.hits.Load())
		}
		if st := tr.Stats().Upstreams[0]; !st.Healthy || st.InFlight != 0 {
			t.Fatalf("a cancelled request counted against the upstream: %+v", st)
		}
	})
}

func TestProbe(t *testing.T) {
	sick := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			w.WriteHeader(503)
			return
		}
		io.WriteString(w, "sick")
	})
	well := newServer(t, ok)
	tr := newTransport(t, &Transport{Upstreams: []string{sick.URL, well.URL}, MinIdle: 1, ProbePath: "/health", ProbeInterval: time.Hour, DownTime: time.Hour})
	warm(t, tr)
	waitStats(t, tr, "probes", func(s Stats) bool {
		return s.Upstreams[0].Probes == 1 && s.Upstreams[1].Probes == 1 && !s.Upstreams[0].Healthy && s.Upstreams[1].Healthy
	})
	for range 3 {
		if _, body := mustGet(t, tr, "http://x/"); body != "ok" {
			t.Fatalf("request went to the upstream that failed its probe")
		}
	}
}

func TestInvalidConfig(t *testing.T) {
	tests := []struct {
		name      string
		upstreams []string
		want      string
	}{
		{"none", nil, "no upstreams"},
		{"bad_scheme", []string{"ftp://x"}, "scheme"},
		{"no_host", []string{"http://"}, "missing host"},
		{"query", []string{"http://h/?q=1"}, "query"},
		{"user_info", []string{"http://u:secret@h/"}, "user info"},
		{"bad_port", []string{"http://h:99999/"}, "invalid port"},
		{"unparsable", []string{"http://[::1"}, "invalid upstream URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := &Transport{Upstreams: tc.upstreams}
			defer tr.Close()
			_, _, err := get(t, tr, "http://x/")
			if err == nil || !strings.HasPrefix(err.Error(), "upstream: ") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("error leaks user info: %v", err)
			}
			if err := tr.Warm(t.Context()); err == nil {
				t.Fatal("Warm accepted an invalid config")
			}
		})
	}
}

func TestClose(t *testing.T) {
	srv := newServer(t, ok)
	tr := &Transport{Upstreams: []string{srv.URL}, MinIdle: 2, Logger: testLogger(t)}
	warm(t, tr)
	waitAccepts(t, srv, 2)
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close = %v", err)
	}
	deadline := time.Now().Add(hangGuard)
	for srv.closed.Load() != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("server saw %d of 2 connections closed", srv.closed.Load())
		}
		time.Sleep(2 * time.Millisecond)
	}
	if _, _, err := get(t, tr, "http://x/"); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("RoundTrip after Close = %v", err)
	}
	if st := tr.Stats().Upstreams[0]; st.Idle != 0 || st.Open != 0 {
		t.Fatalf("after Close: %+v", st)
	}
}

func TestConcurrentLoad(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, r.URL.Path) })
	tr := newTransport(t, &Transport{Upstreams: []string{srv.URL}, MinIdle: 2})
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			for j := range 10 {
				p := fmt.Sprintf("/%d/%d", i, j)
				_, body, err := get(t, tr, "http://x"+p)
				if err != nil || body != p {
					t.Errorf("GET %s: %q %v", p, body, err)
				}
			}
		})
	}
	wg.Wait()
	st := tr.Stats().Upstreams[0]
	if st.Requests != 320 || st.InFlight != 0 || st.Reused == 0 || st.Failures != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// BenchmarkRoundTrip measures the request path over loopback on a warm,
// reused connection: pool hand-off, header cleaning, write and parse.
func BenchmarkRoundTrip(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(make([]byte, 1024))
	}))
	defer srv.Close()
	tr := &Transport{Upstreams: []string{srv.URL}}
	defer tr.Close()
	if err := tr.Warm(b.Context()); err != nil {
		b.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(b.Context(), "GET", "http://edge/obj?x=1", nil)
	req.Header.Set("Accept", "*/*")
	b.ReportAllocs()
	b.SetBytes(1024)
	for b.Loop() {
		resp, err := tr.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

func TestEarlyBodyClose(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("x"), 1<<20))
	})
	tr := newTransport(t, &Transport{Upstreams: []string{srv.URL}, MinIdle: -1})
	req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://x/", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := resp.Body.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, err := resp.Body.Read(make([]byte, 10)); err == nil || !strings.HasPrefix(err.Error(), "upstream: ") {
		t.Fatalf("Read after Close = %v", err)
	}
	// The half-read connection cannot be reused: it is closed, and the
	// upstream is not blamed for the caller's early close.
	st := tr.Stats().Upstreams[0]
	if st.Open != 0 || st.Idle != 0 || st.InFlight != 0 || st.Failures != 0 || !st.Healthy {
		t.Fatalf("after early close: %+v", st)
	}
	mustGet(t, tr, "http://x/")
	if st := tr.Stats().Upstreams[0]; st.Dials != 2 || st.Reused != 0 {
		t.Fatalf("after second request: %+v", st)
	}
}

func TestMinimalRequest(t *testing.T) {
	// A hand-built request without Header, Method or Body must work.
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, r.Method, " ", r.RequestURI) })
	tr := newTransport(t, &Transport{Upstreams: []string{srv.URL}, MinIdle: -1})
	resp, err := tr.RoundTrip(&http.Request{URL: &url.URL{Path: "/p", RawQuery: "a=b"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "GET /p?a=b" {
		t.Fatalf("upstream saw %q", b)
	}
	if _, err := tr.RoundTrip(&http.Request{}); err == nil {
		t.Fatal("request without URL accepted")
	}
}

// A request that kills its upstream's connection before any response byte
// is not resent once per pooled connection. Before any response was seen
// the failure cannot be told from an abort after work: it is sent once.
// Afterwards, a failure quicker than the upstream's fastest response is
// taken for a dead pooled connection and resent once, on a new connection:
// at most twice in all (issue 16).
func TestRequestKillingUpstreamNotAmplified(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ok" {
			return
		}
		c, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			c.Close()
		}
	})
	tr := newTransport(t, &Transport{Upstreams: []string{srv.URL}, MinIdle: 8})
	warm(t, tr)
	if _, _, err := get(t, tr, "http://ignored.example/poison"); err == nil {
		t.Fatal("request to an upstream that drops every connection succeeded")
	}
	if n := srv.hits.Load(); n != 1 {
		t.Errorf("upstream received the request %d times, want 1", n)
	}
	mustGet(t, tr, "http://x/ok")
	before := srv.hits.Load()
	if _, _, err := get(t, tr, "http://ignored.example/poison"); err == nil {
		t.Fatal("request to an upstream that drops every connection succeeded")
	}
	if n := srv.hits.Load() - before; n < 1 || n > 2 {
		t.Errorf("upstream received the request %d times, want 1 or 2", n)
	}
}

// Issue 14: RoundTrip reports taking its connection to an
// httptrace.ClientTrace, so that a cache can tell a request that waited
// for a dial from one that found a warm connection.
func TestClientTraceConnections(t *testing.T) {
	srv := newServer(t, ok)
	tr := newTransport(t, &Transport{Upstreams: []string{srv.URL}, MinIdle: -1})
	type event struct {
		get          bool
		idle, reused bool
	}
	var events []event
	trace := &httptrace.ClientTrace{
		GetConn: func(string) { events = append(events, event{get: true}) },
		GotConn: func(i httptrace.GotConnInfo) {
			events = append(events, event{idle: i.WasIdle, reused: i.Reused})
		},
	}
	for range 2 {
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), http.MethodGet, "http://x/", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		waitStats(t, tr, "connection back in the pool", func(s Stats) bool { return s.Upstreams[0].Idle == 1 })
	}
	want := []event{{get: true}, {}, {get: true}, {idle: true, reused: true}}
	if !reflect.DeepEqual(events, want) {
		t.Errorf("trace events %+v, want %+v (a dial, then the same connection from the pool)", events, want)
	}
}
