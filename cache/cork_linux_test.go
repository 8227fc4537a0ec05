package cache

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
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

// TestCorkFileHits: with ConnContext, a hit whose body comes from a file
// is corked while it is sent and uncorked before the handler returns; hits
// from memory, and servers without ConnContext, are never corked. Every
// body arrives complete.
func TestCorkFileHits(t *testing.T) {
	t.Parallel()
	const size = 300 << 10
	body := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Length", strconv.Itoa(size))
		w.Write(body)
	}))
	t.Cleanup(origin.Close)
	u, _ := url.Parse(origin.URL)

	tests := []struct {
		name        string
		file        bool // the store serves bodies from files
		connContext bool
		wantCorks   int64
	}{
		{"file_with_conn_context", true, true, 1},
		{"file_without_conn_context", true, false, 0},
		{"memory_with_conn_context", false, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var store Store = &MemoryStore{}
			if tt.file {
				store = fileStore{&MemoryStore{}, t.TempDir()}
			}
			var corks atomic.Int64
			c := &Cache{Upstream: u, Store: store, testHookCork: func() { corks.Add(1) }}
			var mu sync.Mutex
			var conns []*net.TCPConn
			srv := httptest.NewUnstartedServer(c)
			srv.Config.ConnContext = func(ctx context.Context, nc net.Conn) context.Context {
				mu.Lock()
				conns = append(conns, nc.(*net.TCPConn))
				mu.Unlock()
				if tt.connContext {
					return ConnContext(ctx, nc)
				}
				return ctx
			}
			srv.Start()
			t.Cleanup(srv.Close)
			client := srv.Client()
			for i, want := range []int64{0, tt.wantCorks} { // a miss, then a hit
				resp, err := client.Get(srv.URL + "/seg.ts")
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || !bytes.Equal(got, body) {
					t.Fatalf("request %d: %d bytes, err %v; want the %d-byte body", i, len(got), err, size)
				}
				if err := c.Shutdown(t.Context()); err != nil { // stored: the next request is a hit
					t.Fatal(err)
				}
				if n := corks.Load(); n != want {
					t.Errorf("request %d: corked %d times, want %d", i, n, want)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if len(conns) != 1 {
				t.Fatalf("%d server connections, want 1 (keep-alive)", len(conns))
			}
			if v := tcpCork(t, conns[0]); v != 0 {
				t.Errorf("TCP_CORK = %d after the response, want 0", v)
			}
		})
	}
}

// TestTCPConnFrom: the connection is found through NetConn wrappers.
func TestTCPConnFrom(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	tc := nc.(*net.TCPConn)
	ctx := context.Background()
	tests := []struct {
		name string
		ctx  context.Context
		want *net.TCPConn
	}{
		{"none", ctx, nil},
		{"tcp", ConnContext(ctx, tc), tc},
		{"wrapped", ConnContext(ctx, netConnWrapper{netConnWrapper{tc}}), tc},
		{"proxyproto_style", ConnContext(ctx, rawWrapper{netConnWrapper{tc}}), tc},
		{"too_deep", ConnContext(ctx, netConnWrapper{netConnWrapper{netConnWrapper{netConnWrapper{tc}}}}), nil},
		{"not_tcp", ConnContext(ctx, unixLike{tc}), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tcpConnFrom(tt.ctx); got != tt.want {
				t.Errorf("tcpConnFrom = %v, want %v", got, tt.want)
			}
		})
	}
}

type netConnWrapper struct{ net.Conn }

func (w netConnWrapper) NetConn() net.Conn { return w.Conn }

type rawWrapper struct{ net.Conn }

func (w rawWrapper) Raw() net.Conn { return w.Conn }

type unixLike struct{ net.Conn }
