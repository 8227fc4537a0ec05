package cache

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
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
		if k := c.baseKey(req); len(k) == 0 {
			b.Fatal("empty key")
		}
	}
}
