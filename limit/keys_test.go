package limit_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/limit"
	"github.com/onioncdn/onioncdn/onion"
)

func TestRequestRate(t *testing.T) {
	clk := newClock()
	next := &counting{}
	lim := &limit.Limiter{Key: headerKey, RequestsPerSecond: 2, Burst: 5, Now: clk.Now}
	srv := front(t, lim, next)
	for i := range 5 {
		if resp, _ := get(t, srv.URL, "X-Client", "a"); resp.StatusCode != 200 {
			t.Fatalf("request %d of the burst: %d", i, resp.StatusCode)
		}
	}
	resp, body := get(t, srv.URL, "X-Client", "a")
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "1" || !strings.Contains(body, "Too Many Requests") {
		t.Fatalf("over the burst: %d Retry-After %q %q", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	// Another client is not affected.
	if resp, _ := get(t, srv.URL, "X-Client", "b"); resp.StatusCode != 200 {
		t.Fatalf("other client: %d", resp.StatusCode)
	}
	// A request without a key is not limited per client.
	for range 10 {
		if resp, _ := get(t, srv.URL); resp.StatusCode != 200 {
			t.Fatalf("keyless: %d", resp.StatusCode)
		}
	}
	clk.Advance(time.Second) // two tokens
	for i := range 2 {
		if resp, _ := get(t, srv.URL, "X-Client", "a"); resp.StatusCode != 200 {
			t.Fatalf("after refill, request %d: %d", i, resp.StatusCode)
		}
	}
	if resp, _ := get(t, srv.URL, "X-Client", "a"); resp.StatusCode != 429 {
		t.Fatalf("after the refill is spent: %d", resp.StatusCode)
	}
	st := lim.Stats()
	if st.Rejected[limit.RejectRate] != 2 || st.Keys != 2 || next.n.Load() != 5+1+10+2 {
		t.Fatalf("stats %+v, next saw %d", st, next.n.Load())
	}
}

func TestConcurrency(t *testing.T) {
	release := make(chan struct{})
	var started sync.WaitGroup
	next := &counting{h: func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			started.Done()
			<-release
		}
	}}
	lim := &limit.Limiter{Key: headerKey, MaxConcurrent: 2}
	srv := front(t, lim, next)
	var wg sync.WaitGroup
	started.Add(2)
	for range 2 {
		wg.Go(func() {
			if resp, _ := get(t, srv.URL+"/hold", "X-Client", "a"); resp.StatusCode != 200 {
				t.Errorf("held request: %d", resp.StatusCode)
			}
		})
	}
	started.Wait()
	if resp, _ := get(t, srv.URL, "X-Client", "a"); resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("third concurrent request: %d", resp.StatusCode)
	}
	if resp, _ := get(t, srv.URL, "X-Client", "b"); resp.StatusCode != 200 {
		t.Errorf("other client: %d", resp.StatusCode)
	}
	close(release)
	wg.Wait()
	if resp, _ := get(t, srv.URL, "X-Client", "a"); resp.StatusCode != 200 {
		t.Errorf("after the held requests: %d", resp.StatusCode)
	}
	if n := lim.Stats().Rejected[limit.RejectConcurrency]; n != 1 {
		t.Errorf("Rejected[concurrency] = %d", n)
	}
	if n := lim.Stats().InFlight; n != 0 {
		t.Errorf("InFlight = %d after all requests", n)
	}
}

func TestBytesPerSecond(t *testing.T) {
	clk := newClock()
	next := &counting{h: func(w http.ResponseWriter, r *http.Request) {
		w.Write(make([]byte, 3000))
	}}
	lim := &limit.Limiter{Key: headerKey, BytesPerSecond: 1000, BytesBurst: 2000, Now: clk.Now}
	srv := front(t, lim, next)
	if resp, body := get(t, srv.URL, "X-Client", "a"); resp.StatusCode != 200 || len(body) != 3000 {
		t.Fatalf("first: %d, %d bytes (a response in progress is never cut)", resp.StatusCode, len(body))
	}
	resp, _ := get(t, srv.URL, "X-Client", "a")
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("owing 1000 bytes at 1000/s: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	clk.Advance(1100 * time.Millisecond)
	if resp, _ := get(t, srv.URL, "X-Client", "a"); resp.StatusCode != 200 {
		t.Fatalf("after repaying: %d", resp.StatusCode)
	}
	if n := lim.Stats().Rejected[limit.RejectBytes]; n != 1 {
		t.Errorf("Rejected[bytes] = %d", n)
	}
}

// A client refused over and over has its connections closed, and OnAbuse
// hears of it once.
func TestAbusiveClientConnectionsClosed(t *testing.T) {
	clk := newClock()
	var abused atomic.Int64
	var abusedKey atomic.Value
	lim := &limit.Limiter{Key: headerKey, RequestsPerSecond: 1, Burst: 1, Strikes: 3, Now: clk.Now,
		OnAbuse: func(key string) { abused.Add(1); abusedKey.Store(key) }}
	srv := front(t, lim, &counting{})
	addr := srv.Listener.Addr().String()
	req := "GET / HTTP/1.1\r\nHost: t\r\nX-Client: flood\r\n\r\n"
	if res := raw(t, addr, req, false); res.status != 200 || res.closed {
		t.Fatalf("first: %+v", res)
	}
	for i := range 3 {
		if res := raw(t, addr, req, false); res.status != 429 || res.closed {
			t.Fatalf("refusal %d: %d closed=%v, want 429 on a kept connection", i, res.status, res.closed)
		}
	}
	for i := range 3 {
		if res := raw(t, addr, req, false); res.status != 429 || !res.closed {
			t.Fatalf("abusive refusal %d: %d closed=%v, want 429 and a close", i, res.status, res.closed)
		}
	}
	if abused.Load() != 1 || abusedKey.Load() != "flood" {
		t.Fatalf("OnAbuse called %d times (key %v), want once", abused.Load(), abusedKey.Load())
	}
	st := lim.Stats()
	if st.Abusive != 1 || st.Closed != 3 {
		t.Fatalf("stats %+v", st)
	}
	// Strikes decay: after a quiet while the client is served again.
	clk.Advance(time.Minute)
	if res := raw(t, addr, req, false); res.status != 200 {
		t.Fatalf("after a quiet minute: %d", res.status)
	}
}

// However many clients come, at most MaxKeys are tracked.
func TestKeysBounded(t *testing.T) {
	lim := &limit.Limiter{MaxKeys: 64, Key: headerKey}
	h := lim.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for i := range 10000 {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("X-Client", strconv.Itoa(i))
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	st := lim.Stats()
	if st.Keys > 64 || st.Keys < 32 || st.Evicted != uint64(10000-st.Keys) {
		t.Fatalf("keys %d evicted %d; want at most 64", st.Keys, st.Evicted)
	}
}

func TestDefaultKey(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "127.0.0.1:5000"
	if k, ok := limit.DefaultKey(r); ok {
		t.Errorf("loopback client keyed %q", k)
	}
	r.RemoteAddr = "[::1]:5000"
	if k, ok := limit.DefaultKey(r); ok {
		t.Errorf("loopback client keyed %q", k)
	}
	r.RemoteAddr = "192.0.2.7:5000"
	k1, ok := limit.DefaultKey(r)
	r.RemoteAddr = "192.0.2.7:6000"
	k2, _ := limit.DefaultKey(r)
	if !ok || k1 != k2 {
		t.Errorf("address key %q %q, want one key per address", k1, k2)
	}
	r.RemoteAddr = "127.0.0.1:5000"
	r = r.WithContext(onion.WithCircuitID(r.Context(), 0xdeadbeef))
	k3, ok := limit.DefaultKey(r)
	if !ok || k3 == k1 || k3 == "" {
		t.Errorf("circuit key %q, %v", k3, ok)
	}
	r2 := r.WithContext(onion.WithCircuitID(context.Background(), 7))
	if k4, _ := limit.DefaultKey(r2); k4 == k3 {
		t.Errorf("two circuits share key %q", k4)
	}
}

// circuitListener stands for tor's circuit-id export: each connection
// starts with a line "CIRCUIT <id>\n", which it consumes.
type circuitListener struct{ net.Listener }

type circuitConn struct {
	net.Conn
	r  *bufio.Reader
	id uint32
}

func (c *circuitConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (l circuitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		c.SetReadDeadline(time.Now().Add(hangGuard))
		br := bufio.NewReader(c)
		line, err := br.ReadString('\n')
		c.SetReadDeadline(time.Time{})
		id, perr := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(line, "CIRCUIT ")), 10, 32)
		if err != nil || perr != nil {
			c.Close()
			continue
		}
		return &circuitConn{Conn: c, r: br, id: uint32(id)}, nil
	}
}

// circuitServer serves h like an onion listener with circuit-id export.
func circuitServer(t *testing.T, lim *limit.Limiter, h http.Handler) *httptest.Server {
	t.Helper()
	if lim.Logger == nil {
		lim.Logger = testLogger(t)
	}
	srv := httptest.NewUnstartedServer(lim.Handler(h))
	srv.Listener = circuitListener{srv.Listener}
	srv.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if cc, ok := c.(*circuitConn); ok {
			return onion.WithCircuitID(ctx, cc.id)
		}
		return ctx
	}
	lim.ConfigureServer(srv.Config)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// circuitClient dials srv as a client on circuit id.
func circuitClient(srv *httptest.Server, id uint32) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			_, err = io.WriteString(c, "CIRCUIT "+strconv.FormatUint(uint64(id), 10)+"\n")
		}
		return c, err
	}}}
}

// Circuit ids from the connection (as onion.ConnContext sets them) key
// the per-client limits with the default Key.
func TestCircuitsOverTCP(t *testing.T) {
	clk := newClock()
	lim := &limit.Limiter{RequestsPerSecond: 1, Burst: 3, Now: clk.Now}
	srv := circuitServer(t, lim, &counting{})
	flood, calm := circuitClient(srv, 1), circuitClient(srv, 2)
	codes := func(c *http.Client, n int) (ok, limited int) {
		for range n {
			resp, err := c.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			switch resp.StatusCode {
			case 200:
				ok++
			case 429:
				limited++
			}
		}
		return ok, limited
	}
	if ok, limited := codes(flood, 10); ok != 3 || limited != 7 {
		t.Errorf("flooding circuit: %d ok, %d limited; want 3 and 7", ok, limited)
	}
	if ok, limited := codes(calm, 3); ok != 3 || limited != 0 {
		t.Errorf("other circuit: %d ok, %d limited; want 3 and 0", ok, limited)
	}
	if st := lim.Stats(); st.Keys != 2 {
		t.Errorf("%d circuits tracked, want 2", st.Keys)
	}
}
