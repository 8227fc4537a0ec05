package heldwrite

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// tcpCork returns the TCP_CORK option of c.
func tcpCork(t *testing.T, c *net.TCPConn) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		v, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_CORK)
	}); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	return v
}

// TestCork: a response larger than MaxHeld is sent with the socket corked
// and uncorked before Wrap returns; one that flushes before its body is
// complete (streaming) is uncorked at that flush; a small held response
// is never corked.
func TestCork(t *testing.T) {
	t.Parallel()
	body := bytes.Repeat([]byte("c"), 300<<10)
	var during, afterFlush, after atomic.Int64
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tc, _ := connFrom[*net.TCPConn](r.Context())
		n := len(body)
		if r.URL.Path == "/small" {
			n = 100
		}
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.WriteHeader(200)
		during.Store(int64(tcpCork(t, tc)))
		if r.URL.Path == "/stream" {
			w.Write(body[:10])
			http.NewResponseController(w).Flush()
			afterFlush.Store(int64(tcpCork(t, tc)))
			w.Write(body[10:])
			return
		}
		w.Write(body[:n])
	})
	srv := httptest.NewUnstartedServer(nil)
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		Wrap(inner).ServeHTTP(w, r)
		tc, _ := connFrom[*net.TCPConn](r.Context())
		after.Store(int64(tcpCork(t, tc)))
	})
	srv.Listener = Listener(srv.Listener)
	srv.Config.ConnContext = ConnContext
	srv.Start()
	t.Cleanup(srv.Close)
	get := func(path string, n int) {
		t.Helper()
		during.Store(-1)
		afterFlush.Store(-1)
		after.Store(-1)
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if len(b) != n {
			t.Fatalf("%s: %d bytes", path, len(b))
		}
		// The handler records "after" once Wrap returned, which may be
		// just after the client has the whole response.
		for deadline := time.Now().Add(5 * time.Second); after.Load() == -1 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
	}
	get("/large", len(body))
	if during.Load() != 1 || after.Load() != 0 {
		t.Errorf("large: cork %d while sending, %d after; want 1, 0", during.Load(), after.Load())
	}
	get("/stream", len(body))
	if during.Load() != 1 || afterFlush.Load() != 0 || after.Load() != 0 {
		t.Errorf("stream: cork %d, %d after the flush, %d after; want 1, 0, 0", during.Load(), afterFlush.Load(), after.Load())
	}
	get("/small", 100)
	if during.Load() != 0 || after.Load() != 0 {
		t.Errorf("small: cork %d while sending, %d after; want 0, 0", during.Load(), after.Load())
	}
}
