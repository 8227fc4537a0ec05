package cache

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/onioncdn/onioncdn/cache/heldwrite"
)

// discardWriter is a minimal http.ResponseWriter that drops the body,
// so that the benchmark measures the cache, not a connection.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) Flush()                      {}

func benchmarkHit(b *testing.B, size int) {
	body := bytes.Repeat([]byte("x"), size)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Type", "video/mp2t")
		w.Header().Set("Content-Length", strconv.Itoa(size))
		w.Write(body)
	}))
	defer origin.Close()
	u, _ := url.Parse(origin.URL)
	c := &Cache{Upstream: u, Store: &MemoryStore{MaxBytes: 64 << 20}}
	req := httptest.NewRequest("GET", "http://example.onion/seg/1.ts", nil)
	c.ServeHTTP(&discardWriter{h: http.Header{}}, req) // fill
	if err := c.Shutdown(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w := &discardWriter{h: make(http.Header, 8)}
			c.ServeHTTP(w, req)
			if w.status != http.StatusOK {
				b.Fatalf("status %d", w.status)
			}
		}
	})
	b.StopTimer()
	if st := c.Stats(); st.Misses != 1 {
		b.Fatalf("stats %+v: the benchmark did not measure hits", st)
	}
}

// BenchmarkHit measures the cache-hit path (lookup, freshness, headers,
// copying the body out of a MemoryStore) without a network connection.
func BenchmarkHit(b *testing.B) {
	for _, size := range []int{10 << 10, 2 << 20} {
		b.Run(fmt.Sprintf("%dKB", size>>10), func(b *testing.B) { benchmarkHit(b, size) })
	}
}

// BenchmarkKey measures cache key derivation.
func BenchmarkKey(b *testing.B) {
	req := httptest.NewRequest("GET", "http://Example.onion/live/720p/seg_00042.ts?_HLS_msn=42&_HLS_part=3", nil)
	c := &Cache{}
	b.ReportAllocs()
	for b.Loop() {
		if k := c.baseKey(req, false); len(k) == 0 {
			b.Fatal("empty key")
		}
	}
}

// BenchmarkHitHTTP compares a cache hit with plain net/http serving the
// same response from memory, both over a loopback connection with
// keep-alive (the client's cost is the same in both): the difference is
// what the cache adds per hit on top of net/http.
func BenchmarkHitHTTP(b *testing.B) {
	for _, size := range []int{10 << 10, 2 << 20} {
		body := bytes.Repeat([]byte("x"), size)
		plain := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("Cache-Control", "max-age=3600")
			h.Set("Content-Type", "video/mp2t")
			h.Set("Content-Length", strconv.Itoa(size))
			w.Write(body)
		})
		b.Run(fmt.Sprintf("nethttp/%dKB", size>>10), func(b *testing.B) { benchmarkHTTP(b, plain, size) })
		b.Run(fmt.Sprintf("cache/%dKB", size>>10), func(b *testing.B) {
			origin := httptest.NewServer(plain)
			defer origin.Close()
			u, _ := url.Parse(origin.URL)
			benchmarkHTTP(b, &Cache{Upstream: u, Store: &MemoryStore{MaxBytes: 64 << 20}}, size)
		})
		// With package heldwrite, so that a small hit leaves in one write.
		b.Run(fmt.Sprintf("cache-heldwrite/%dKB", size>>10), func(b *testing.B) {
			origin := httptest.NewServer(plain)
			defer origin.Close()
			u, _ := url.Parse(origin.URL)
			benchmarkHTTP(b, &Cache{Upstream: u, Store: &MemoryStore{MaxBytes: 64 << 20}}, size)
		})
	}
}

func benchmarkHTTP(b *testing.B, h http.Handler, size int) {
	srv := httptest.NewUnstartedServer(h)
	if strings.HasPrefix(b.Name(), "BenchmarkHitHTTP/cache-heldwrite/") {
		srv.Config.Handler = heldwrite.Wrap(h)
		srv.Listener = heldwrite.Listener(srv.Listener)
		srv.Config.ConnContext = heldwrite.ConnContext
	}
	srv.Start()
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReaderSize(conn, 64<<10)
	req := []byte("GET /seg/1.ts HTTP/1.1\r\nHost: example.onion\r\n\r\n")
	get := func() {
		if _, err := conn.Write(req); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != int64(size) || resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d, %d bytes, err %v", resp.StatusCode, n, err)
		}
	}
	get() // fill
	if c, ok := h.(*Cache); ok {
		if err := c.Shutdown(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		get()
	}
}
