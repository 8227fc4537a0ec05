package heldwrite

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
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingListener counts the writes and ReadFrom calls (sendfile) of the
// TCP connections it accepts, which keep their ReadFrom.
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

// bodyHandler serves body with a Content-Length, from memory or, as a
// cache serves a stored object, from a file through an *io.LimitedReader
// (which net/http hands to sendfile).
func bodyHandler(t *testing.T, body []byte, file bool) http.Handler {
	t.Helper()
	path := filepath.Join(t.TempDir(), "body")
	if err := os.WriteFile(path, body, 0o600); err != nil {
		t.Fatal(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		if !file {
			w.Write(body)
			return
		}
		f, err := os.Open(path)
		if err != nil {
			panic(err)
		}
		defer f.Close()
		io.Copy(w, &io.LimitedReader{R: f, N: int64(len(body))})
	})
}

// serve starts h on a counting listener, with or without this package.
func serve(t *testing.T, h http.Handler, held bool) (*httptest.Server, *countingListener) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	cl := &countingListener{Listener: srv.Listener}
	srv.Listener = cl
	if held {
		srv.Config.Handler = Wrap(h)
		srv.Listener = Listener(cl)
		srv.Config.ConnContext = ConnContext
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, cl
}

// TestOneWrite: a response up to MaxHeld leaves in a single write, header
// and body, whether the body is in memory or in a file (no sendfile then);
// a larger one from a file still goes out with sendfile. Without the
// package net/http makes two writes for 10 KB. Every body arrives
// complete.
func TestOneWrite(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		size       int
		file, held bool
		wantWrites int64 // -1: not checked
		wantSendf  int64
	}{
		{"memory_10KB", 10 << 10, false, true, 1, 0},
		{"memory_5KB", 5 << 10, false, true, 1, 0}, // header+body cross net/http's 4 KiB buffer
		{"memory_64KB", 64 << 10, false, true, 1, 0},
		{"file_10KB", 10 << 10, true, true, 1, 0},
		{"file_300KB", 300 << 10, true, true, -1, 1},
		{"memory_300KB", 300 << 10, false, true, -1, 0},
		{"memory_10KB_without_heldwrite", 10 << 10, false, false, 2, 0},
		{"file_10KB_without_heldwrite", 10 << 10, true, false, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := bytes.Repeat([]byte("0123456789abcdef"), tt.size/16)
			srv, cl := serve(t, bodyHandler(t, body, tt.file), tt.held)
			client := srv.Client()
			for i := range 2 { // the first request opens the connection
				w, s := cl.writes.Load(), cl.readFroms.Load()
				resp, err := client.Get(srv.URL + "/obj")
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || !bytes.Equal(got, body) {
					t.Fatalf("request %d: %d bytes, err %v; want the %d-byte body", i, len(got), err, len(body))
				}
				if i == 0 {
					continue
				}
				if n := cl.writes.Load() - w; tt.wantWrites >= 0 && n != tt.wantWrites {
					t.Errorf("took %d writes, want %d", n, tt.wantWrites)
				}
				if n := cl.readFroms.Load() - s; n != tt.wantSendf {
					t.Errorf("took %d ReadFrom (sendfile) calls, want %d", n, tt.wantSendf)
				}
			}
		})
	}
}

// TestNetHTTPAssumptions checks what this package relies on in net/http
// (see the package doc). If it fails after a Go upgrade, the package must
// be revised or removed: it would otherwise hold or send bytes at the
// wrong time.
func TestNetHTTPAssumptions(t *testing.T) {
	t.Parallel()
	body := bytes.Repeat([]byte("z"), 10<<10)
	path := filepath.Join(t.TempDir(), "body")
	os.WriteFile(path, body, 0o600)
	var afterFlush, atReturn, atNext, readFromArg atomic.Value
	var cl *countingListener
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		switch r.URL.Path {
		case "/next":
			// The next request on the same keep-alive connection starts
			// once net/http has finished the previous one.
			atNext.Store(cl.writes.Load())
			w.Write(body)
		case "/flush":
			// 1. A write and a flush reach the connection from this
			// goroutine before Flush returns.
			before := cl.writes.Load()
			w.Write(body[:100])
			if err := http.NewResponseController(w).Flush(); err != nil {
				t.Errorf("net/http's writer cannot flush: %v", err)
			}
			afterFlush.Store(cl.writes.Load() - before)
			w.Write(body[100:])
			http.NewResponseController(w).Flush()
			atReturn.Store(cl.writes.Load())
		case "/file":
			// 2. ReadFrom hands the rest of an *io.LimitedReader to the
			// connection's ReadFrom after copying the first 512 bytes.
			f, _ := os.Open(path)
			defer f.Close()
			lr := &io.LimitedReader{R: f, N: int64(len(body))}
			rf, ok := w.(io.ReaderFrom)
			if !ok {
				t.Error("net/http's ResponseWriter has no ReadFrom")
				return
			}
			rf.ReadFrom(lr)
			readFromArg.Store(lr.N)
		}
	})
	srv := httptest.NewUnstartedServer(h)
	cl = &countingListener{Listener: srv.Listener}
	srv.Listener = cl
	srv.Start()
	t.Cleanup(srv.Close)
	get := func(path string) {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !bytes.Equal(b, body) {
			t.Fatalf("%s: body of %d bytes", path, len(b))
		}
	}
	get("/flush")
	if n, _ := afterFlush.Load().(int64); n < 1 {
		t.Errorf("assumption broken: a flush in the handler made %d writes before it returned", n)
	}
	// 3. Once the handler flushed a Content-Length response completely,
	// net/http writes nothing more for it after the handler returns.
	get("/next") // same connection (keep-alive)
	if n, _ := atReturn.Load().(int64); atNext.Load().(int64) != n {
		t.Errorf("assumption broken: net/http wrote %d more times after the handler returned", atNext.Load().(int64)-n)
	}
	r0 := cl.readFroms.Load()
	get("/file")
	if cl.readFroms.Load()-r0 != 1 {
		t.Errorf("assumption broken: ResponseWriter.ReadFrom did not reach the connection's ReadFrom (sendfile)")
	}
	if n, _ := readFromArg.Load().(int64); n != 0 {
		t.Errorf("ReadFrom left %d bytes", n)
	}
}

// TestStreaming: a handler that flushes before its body is complete (a
// response streaming from upstream) gets its bytes to the client at once.
func TestStreaming(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "01234")
		http.NewResponseController(w).Flush()
		<-release
		io.WriteString(w, "56789")
	})
	srv, _ := serve(t, h, true)
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, 5)
	got := make(chan error, 1)
	go func() { _, err := io.ReadFull(resp.Body, first); got <- err }()
	select {
	case err := <-got:
		if err != nil || string(first) != "01234" {
			t.Fatalf("first bytes %q, %v", first, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("flushed bytes held back")
	}
	close(release)
	rest, _ := io.ReadAll(resp.Body)
	if string(rest) != "56789" {
		t.Fatalf("rest %q", rest)
	}
}

// TestFailedResponseSendsNothing: a held response whose handler fails (it
// panics, or writes less than its Content-Length) sends nothing, not even
// the header, and its connection is closed: no client can take a part for
// a whole. A stored body that looks like a response is never parsed as one.
func TestFailedResponseSendsNothing(t *testing.T) {
	t.Parallel()
	forged := "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nX-Injected: yes\r\n\r\nEVIL"
	for _, mode := range []string{"panic", "short"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "6000")
				io.WriteString(w, forged+strings.Repeat("x", 3000-len(forged)))
				if mode == "panic" {
					panic(http.ErrAbortHandler)
				}
			})
			srv, _ := serve(t, h, true)
			nc, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			io.WriteString(nc, "GET /obj HTTP/1.1\r\nHost: x\r\n\r\n")
			nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			raw, err := io.ReadAll(bufio.NewReader(nc))
			if len(raw) != 0 {
				t.Errorf("client received %d bytes (%.60q…), want none; err %v", len(raw), raw, err)
			}
		})
	}
}

// TestBufferingWriterPassesThrough: under a ResponseWriter that buffers and
// writes from another goroutine (http.TimeoutHandler's), nothing is held:
// a response that times out still gets its 503 promptly.
func TestBufferingWriterPassesThrough(t *testing.T) {
	t.Parallel()
	var delay atomic.Int64
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Duration(delay.Load()))
		w.Header().Set("Content-Length", "5")
		io.WriteString(w, "hello")
	})
	// Wrap inside TimeoutHandler: the wrong order, which must stay harmless.
	srv := httptest.NewUnstartedServer(http.TimeoutHandler(Wrap(inner), 200*time.Millisecond, "timed out"))
	srv.Listener = Listener(srv.Listener)
	srv.Config.ConnContext = ConnContext
	srv.Start()
	t.Cleanup(srv.Close)
	client := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	get := func(wantCode int, want string) {
		t.Helper()
		start := time.Now()
		resp, err := client.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != wantCode || string(b) != want {
			t.Errorf("%d %q; want %d %q", resp.StatusCode, b, wantCode, want)
		}
		if d := time.Since(start); d > 900*time.Millisecond {
			t.Errorf("answer took %v: held back", d)
		}
	}
	get(200, "hello")
	delay.Store(int64(time.Second))
	get(http.StatusServiceUnavailable, "timed out")
	delay.Store(0)
	time.Sleep(time.Second) // the abandoned handler finishes
	get(200, "hello")
}

// TestLeavesTLS: connections that already speak TLS are not wrapped
// (net/http must see the *tls.Conn).
func TestLeavesTLS(t *testing.T) {
	t.Parallel()
	ts := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(ts.Close)
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := Listener(tls.NewListener(raw, ts.TLS))
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

// TestConnOverflow: bytes held beyond MaxHeld go out together with the
// held ones, in order, and writes after that are not held.
func TestConnOverflow(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl := Listener(ln)
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
	hc := sc.(*conn)
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
	write('a', MaxHeld-10)
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

// TestConnFrom: the connection is found through NetConn wrappers (a TLS
// connection over it, say).
func TestConnFrom(t *testing.T) {
	t.Parallel()
	hc := &conn{}
	ctx := context.Background()
	if _, ok := connFrom[*conn](ctx); ok {
		t.Error("found a connection in an empty context")
	}
	if got, _ := connFrom[*conn](ConnContext(ctx, hc)); got != hc {
		t.Errorf("connFrom(conn) = %v, want it", got)
	}
	if got, _ := connFrom[*conn](ConnContext(ctx, tlsLike{hc})); got != hc {
		t.Errorf("connFrom(wrapped) = %v, want it", got)
	}
}

// tlsLike exposes the connection under it with NetConn, as *tls.Conn does.
type tlsLike struct{ net.Conn }

func (w tlsLike) NetConn() net.Conn { return w.Conn }
