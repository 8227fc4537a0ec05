package cache

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingListener counts the writes and ReadFrom calls (sendfile) of the
// connections it accepts, which keep their ReadFrom.
type countingListener struct {
	net.Listener
	writes, readFroms atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{TCPConn: c.(*net.TCPConn), l: l}, nil
}

type countingConn struct {
	*net.TCPConn
	l *countingListener
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.l.writes.Add(1) // before the write: the client cannot see it first
	return c.TCPConn.Write(p)
}

func (c *countingConn) ReadFrom(r io.Reader) (int64, error) {
	c.l.readFroms.Add(1)
	return c.TCPConn.ReadFrom(r)
}

// staticOrigin serves body with a Content-Length, cacheable for an hour,
// and returns its URL.
func staticOrigin(t *testing.T, body []byte) *url.URL {
	t.Helper()
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	}))
	t.Cleanup(origin.Close)
	u, _ := url.Parse(origin.URL)
	return u
}

// TestNewListenerOneWrite: on a connection from NewListener with
// ConnContext, a stored response up to MaxHeldResponse leaves in a single
// write, header and body, whether the body is in memory or in a file (no
// sendfile then); a larger one goes out as before (sendfile from a file).
// Without ConnContext nothing is held back. Every body arrives complete.
func TestNewListenerOneWrite(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		size        int
		file        bool
		connContext bool
		wantWrites  int64 // for the hit; -1: not checked
		wantSendf   int64
	}{
		{"memory_10KB", 10 << 10, false, true, 1, 0},
		{"memory_5KB", 5 << 10, false, true, 1, 0}, // header+body cross net/http's 4 KiB buffer
		{"memory_64KB", 64 << 10, false, true, 1, 0},
		{"file_10KB", 10 << 10, true, true, 1, 0},
		{"file_300KB", 300 << 10, true, true, -1, 1},
		{"memory_300KB", 300 << 10, false, true, -1, 0},
		{"memory_10KB_without_conn_context", 10 << 10, false, false, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := bytes.Repeat([]byte("0123456789abcdef"), tt.size/16)
			u := staticOrigin(t, body)
			var store Store = &MemoryStore{}
			if tt.file {
				store = fileStore{&MemoryStore{}, t.TempDir()}
			}
			c := &Cache{Upstream: u, Store: store}
			srv := httptest.NewUnstartedServer(c)
			cl := &countingListener{Listener: srv.Listener}
			srv.Listener = NewListener(cl)
			if tt.connContext {
				srv.Config.ConnContext = ConnContext
			}
			srv.Start()
			t.Cleanup(srv.Close)
			client := srv.Client()
			var before, beforeSendf int64
			for i := range 2 { // a miss, then a hit
				before, beforeSendf = cl.writes.Load(), cl.readFroms.Load()
				resp, err := client.Get(srv.URL + "/obj")
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || !bytes.Equal(got, body) {
					t.Fatalf("request %d: %d bytes, err %v; want the %d-byte body", i, len(got), err, len(body))
				}
				// The fill is stored before the next request: a hit, not a
				// request joining the fill.
				if err := c.Shutdown(t.Context()); err != nil {
					t.Fatal(err)
				}
			}
			if n := cl.writes.Load() - before; tt.wantWrites >= 0 && n != tt.wantWrites {
				t.Errorf("hit took %d writes, want %d", n, tt.wantWrites)
			}
			if n := cl.readFroms.Load() - beforeSendf; n != tt.wantSendf {
				t.Errorf("hit took %d ReadFrom (sendfile) calls, want %d", n, tt.wantSendf)
			}
		})
	}
}

// TestNewListenerUnflushableWriter: behind a ResponseWriter wrapper that
// cannot flush (no Flush, no Unwrap), held hits still arrive complete.
func TestNewListenerUnflushableWriter(t *testing.T) {
	t.Parallel()
	for _, size := range []int{3 << 10, 10 << 10, 60 << 10} {
		body := bytes.Repeat([]byte("y"), size)
		c := &Cache{Upstream: staticOrigin(t, body), CacheStatus: true}
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c.ServeHTTP(struct{ http.ResponseWriter }{w}, r)
		}))
		srv.Listener = NewListener(srv.Listener)
		srv.Config.ConnContext = ConnContext
		srv.Start()
		t.Cleanup(srv.Close)
		for i := range 2 {
			resp, err := srv.Client().Get(srv.URL + "/obj")
			if err != nil {
				t.Fatalf("%d bytes, request %d: %v", size, i, err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("%d bytes, request %d: got %d bytes, err %v", size, i, len(got), err)
			}
			if cs := resp.Header.Get("Cache-Status"); i == 1 && !strings.HasPrefix(cs, "onioncdn; hit") {
				t.Errorf("%d bytes: second request %q, want a hit", size, cs)
			}
			c.Shutdown(t.Context()) // the fill is stored before the next request
		}
	}
}

// flushUnwrapWriter can flush and unwraps to net/http's ResponseWriter,
// but has no ReadFrom (like route's metering wrapper): a body copied
// through it arrives in chunks.
type flushUnwrapWriter struct{ http.ResponseWriter }

func (w *flushUnwrapWriter) Flush()                      { http.NewResponseController(w.ResponseWriter).Flush() }
func (w *flushUnwrapWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// TestNewListenerFailedBodyBehindWrapper: a held response that fails while
// part of its body is still in net/http's buffer sends nothing at all:
// not the held part, and not the buffered tail that net/http flushes when
// it closes the connection (a client could parse a stored body that looks
// like a response as one).
func TestNewListenerFailedBodyBehindWrapper(t *testing.T) {
	t.Parallel()
	forged := "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-Injected: yes\r\n\r\nEVIL"
	body := []byte(forged + strings.Repeat("x", 6000-len(forged))) // truncated to 3000 on hits
	c := &Cache{Upstream: staticOrigin(t, body), Store: truncStore{fileStore{&MemoryStore{}, t.TempDir()}}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.ServeHTTP(&flushUnwrapWriter{w}, r)
	}))
	srv.Listener = NewListener(srv.Listener)
	srv.Config.ConnContext = ConnContext
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	resp, err := srv.Client().Get(srv.URL + "/obj")
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	c.Shutdown(t.Context()) // stored

	nc, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	io.WriteString(nc, "GET /obj HTTP/1.1\r\nHost: "+srv.Listener.Addr().String()+"\r\n\r\n")
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	raw, _ := io.ReadAll(nc)
	if len(raw) != 0 {
		t.Errorf("client received %d bytes (%.60q…), want none", len(raw), raw)
	}
}

// slowStore delays, by delay nanoseconds, the first read of every body it
// serves.
type slowStore struct {
	*MemoryStore
	delay *atomic.Int64
}

func (s slowStore) Open(ctx context.Context, key string) (Object, error) {
	o, err := s.MemoryStore.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	return slowObject{o, time.Duration(s.delay.Load())}, nil
}

type slowObject struct {
	Object
	delay time.Duration
}

func (o slowObject) Reader(off, n int64) (io.Reader, error) {
	rd, err := o.Object.Reader(off, n)
	return &slowReader{rd, o.delay}, err
}

// slowReader sleeps before its first Read.
type slowReader struct {
	r     io.Reader
	delay time.Duration
}

func (r *slowReader) Read(p []byte) (int, error) {
	time.Sleep(r.delay)
	r.delay = 0
	return r.r.Read(p)
}

// TestNewListenerTimeoutHandler: behind http.TimeoutHandler (whose writer
// cannot flush, and whose 503 is written from another goroutine), a hit
// that times out still gets its 503 on a connection from NewListener, and
// the connection keeps working.
func TestNewListenerTimeoutHandler(t *testing.T) {
	t.Parallel()
	body := bytes.Repeat([]byte("z"), 10<<10)
	var delay atomic.Int64
	c := &Cache{Upstream: staticOrigin(t, body), Store: slowStore{&MemoryStore{}, &delay}}
	srv := httptest.NewUnstartedServer(http.TimeoutHandler(c, 200*time.Millisecond, "timed out"))
	srv.Listener = NewListener(srv.Listener)
	srv.Config.ConnContext = ConnContext
	srv.Start()
	t.Cleanup(srv.Close)
	client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	get := func(what string, wantCode int, want string) {
		t.Helper()
		resp, err := client.Get(srv.URL + "/obj")
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != wantCode || string(b) != want {
			t.Errorf("%s: %d, %d bytes (%.20q…); want %d, %d bytes", what, resp.StatusCode, len(b), b, wantCode, len(want))
		}
	}
	get("miss", 200, string(body))
	c.Shutdown(t.Context())
	get("hit", 200, string(body))
	delay.Store(int64(time.Second))
	get("slow hit", http.StatusServiceUnavailable, "timed out")
	delay.Store(0)
	time.Sleep(time.Second) // the abandoned handler finishes
	get("hit after the timeout", 200, string(body))
}

// TestNewListenerLeavesTLS: connections that already speak TLS are not
// wrapped (net/http must see the *tls.Conn).
func TestNewListenerLeavesTLS(t *testing.T) {
	t.Parallel()
	ts := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(ts.Close)
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := NewListener(tls.NewListener(raw, ts.TLS))
	defer ln.Close()
	got := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		got <- c
	}()
	nc, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := <-got
	if c == nil {
		t.Fatal("Accept failed")
	}
	defer c.Close()
	if _, ok := c.(*tls.Conn); !ok {
		t.Errorf("accepted %T, want *tls.Conn", c)
	}
}

// truncStore serves file bodies cut to half their length after Open, as
// if the file had been damaged under the cache.
type truncStore struct{ fileStore }

func (s truncStore) Open(ctx context.Context, key string) (Object, error) {
	o, err := s.fileStore.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	fo := o.(*fileObject)
	if err := fo.f.Truncate(fo.Size() / 2); err != nil {
		o.Close()
		return nil, err
	}
	return o, nil
}

// TestNewListenerFailedBodySendsNothing: when a held response's body cannot
// be read in full, nothing of it goes out (not even the header): the
// connection is closed, so no client can take a short body for a whole one.
func TestNewListenerFailedBodySendsNothing(t *testing.T) {
	t.Parallel()
	body := bytes.Repeat([]byte("x"), 10<<10)
	u := staticOrigin(t, body)
	c := &Cache{Upstream: u, Store: truncStore{fileStore{&MemoryStore{}, t.TempDir()}}}
	srv := httptest.NewUnstartedServer(c)
	srv.Listener = NewListener(srv.Listener)
	srv.Config.ConnContext = ConnContext
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the aborted response is logged
	srv.Start()
	t.Cleanup(srv.Close)

	// The miss is served from the fill, complete.
	resp, err := srv.Client().Get(srv.URL + "/obj")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("miss: %d bytes, err %v", len(got), err)
	}
	if err := c.Shutdown(t.Context()); err != nil { // stored: the next request is a hit
		t.Fatal(err)
	}

	// The hit reads a truncated file: the client must see no response.
	nc, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := io.WriteString(nc, "GET /obj HTTP/1.1\r\nHost: "+srv.Listener.Addr().String()+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	raw, err := io.ReadAll(bufio.NewReader(nc))
	if len(raw) != 0 {
		t.Errorf("client received %d bytes (%.40q…), want none; err %v", len(raw), raw, err)
	}
}

// TestHeldConnOverflow: bytes held beyond MaxHeldResponse go out together
// with the held ones, in order, and writes after that are not held.
func TestHeldConnOverflow(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl := NewListener(ln)
	defer hl.Close()
	done := make(chan []byte)
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			done <- nil
			return
		}
		b, _ := io.ReadAll(c)
		c.Close()
		done <- b
	}()
	sc, err := hl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	hc := sc.(*heldConn)
	if hc.NetConn() == nil {
		t.Fatal("NetConn is nil")
	}
	var want []byte
	write := func(b byte, n int) {
		p := bytes.Repeat([]byte{b}, n)
		k, err := hc.Write(p)
		if k != n || err != nil {
			t.Fatalf("Write(%d bytes) = %d, %v", n, k, err)
		}
		want = append(want, p...)
	}
	hc.hold()
	write('a', MaxHeldResponse-10)
	if hc.held == nil {
		t.Fatal("not holding after a write that fits")
	}
	write('b', 100) // overflows: both go out
	if hc.held != nil {
		t.Fatal("still holding after an overflow")
	}
	write('c', 10)
	if err := hc.release(); err != nil { // nothing held: no-op
		t.Fatal(err)
	}
	hc.hold()
	write('d', 10)
	hc.discard() // dropped: never sent
	want = want[:len(want)-10]
	hc.Close()
	if got := <-done; !bytes.Equal(got, want) {
		t.Errorf("client got %d bytes, want %d in order", len(got), len(want))
	}
}

// TestHeldConnFrom: the connection is found through NetConn wrappers (a
// TLS connection over it, say).
func TestHeldConnFrom(t *testing.T) {
	t.Parallel()
	hc := &heldConn{}
	ctx := context.Background()
	if got := heldConnFrom(ctx); got != nil {
		t.Errorf("heldConnFrom(no conn) = %v", got)
	}
	if got := heldConnFrom(ConnContext(ctx, hc)); got != hc {
		t.Errorf("heldConnFrom(conn) = %v, want it", got)
	}
	if got := heldConnFrom(ConnContext(ctx, tlsLike{hc})); got != hc {
		t.Errorf("heldConnFrom(wrapped) = %v, want it", got)
	}
	if got := tcpConnFrom(ConnContext(ctx, hc)); got != nil {
		t.Errorf("tcpConnFrom(held conn without TCP) = %v, want nil", got)
	}
}

// tlsLike exposes the connection under it with NetConn, as *tls.Conn does.
type tlsLike struct{ net.Conn }

func (w tlsLike) NetConn() net.Conn { return w.Conn }
