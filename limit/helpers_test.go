package limit_test

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/limit"
)

// hangGuard bounds waits that would otherwise hang a broken test; it is
// never used to assert on durations.
const hangGuard = 10 * time.Second

type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// clock is a settable time source for Limiter.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_700_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// counting is a next handler that counts the requests reaching it and
// records their bodies.
type counting struct {
	n      atomic.Int64
	mu     sync.Mutex
	bodies []string
	h      http.HandlerFunc // optional, after counting
}

func (c *counting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.n.Add(1)
	b, err := io.ReadAll(r.Body)
	if err != nil {
		b = []byte("<body error: " + err.Error() + ">")
	}
	c.mu.Lock()
	c.bodies = append(c.bodies, string(b))
	c.mu.Unlock()
	if c.h != nil {
		c.h(w, r)
		return
	}
	io.WriteString(w, "ok")
}

// front serves lim.Handler(next) on a loopback TCP server configured by
// lim.ConfigureServer.
func front(t *testing.T, lim *limit.Limiter, next http.Handler) *httptest.Server {
	srv, _ := frontCounting(t, lim, next)
	return srv
}

// frontCounting is front that also counts the client connections the
// server holds open.
func frontCounting(t *testing.T, lim *limit.Limiter, next http.Handler) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	if lim.Logger == nil {
		lim.Logger = testLogger(t)
	}
	srv := httptest.NewUnstartedServer(lim.Handler(next))
	lim.ConfigureServer(srv.Config)
	open := new(atomic.Int64)
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, open
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

// rawResult is what a raw exchange saw.
type rawResult struct {
	status int
	header http.Header
	body   string
	closed bool // the server closed the connection after the response
}

// raw sends req on a new connection to addr, optionally half-closing it
// after, and reads one response and whether the connection then ends.
func raw(t *testing.T, addr, req string, halfClose bool) rawResult {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(hangGuard))
	if _, err := io.WriteString(c, req); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Logf("write: %v", err) // the server may answer and close early
	}
	if halfClose {
		c.(*net.TCPConn).CloseWrite()
	}
	br := bufio.NewReader(c)
	var res rawResult
	resp, err := http.ReadResponse(br, nil)
	if err == nil {
		res.status = resp.StatusCode
		res.header = resp.Header
		b, _ := io.ReadAll(resp.Body)
		res.body = string(b)
		resp.Body.Close()
		if !resp.Close {
			return res // keep-alive announced: not closed
		}
	}
	_, err = br.ReadByte()
	var ne net.Error
	res.closed = err != nil && !(errors.As(err, &ne) && ne.Timeout())
	return res
}

// get sends a GET with the given headers through the default client.
func get(t *testing.T, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// waitGoroutines waits until no more than n goroutines (plus a small slack
// for runtime helpers) are left, failing after hangGuard.
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

// headerKey keys requests by their X-Client header, for tests.
func headerKey(r *http.Request) (string, bool) {
	k := r.Header.Get("X-Client")
	return k, k != ""
}

func runtimeGoroutines() int { return runtime.NumGoroutine() }
