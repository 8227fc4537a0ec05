package diskstore_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"testing"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/cache/diskstore"
)

// sendfileWriter is an http.ResponseWriter that takes a body the way
// net/http's does before sendfile(2): through ReadFrom with an
// *io.LimitedReader over an *os.File. It sends nothing, so that the
// benchmark measures the cache and the store (lookup, open, validation,
// headers), not the copy of the body.
type sendfileWriter struct {
	h        http.Header
	status   int
	sendfile bool
}

func (w *sendfileWriter) Header() http.Header         { return w.h }
func (w *sendfileWriter) WriteHeader(code int)        { w.status = code }
func (w *sendfileWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *sendfileWriter) Flush()                      {}

func (w *sendfileWriter) ReadFrom(r io.Reader) (int64, error) {
	if lr, ok := r.(*io.LimitedReader); ok {
		if _, ok := lr.R.(*os.File); ok {
			w.sendfile = true
			n := lr.N
			lr.N = 0
			return n, nil
		}
	}
	return io.Copy(io.Discard, r)
}

func benchmarkDiskHit(b *testing.B, size int) {
	body := bytes.Repeat([]byte("x"), size)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Type", "video/mp2t")
		w.Header().Set("Content-Length", strconv.Itoa(size))
		w.Write(body)
	}))
	defer origin.Close()
	u, _ := url.Parse(origin.URL)
	s, err := diskstore.Open(b.TempDir(), diskstore.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	c := &cache.Cache{Upstream: u, Store: s}
	req := httptest.NewRequest("GET", "http://example.onion/seg/1.ts", nil)
	c.ServeHTTP(&sendfileWriter{h: http.Header{}}, req) // fill
	if err := c.Shutdown(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w := &sendfileWriter{h: make(http.Header, 8)}
			c.ServeHTTP(w, req)
			if w.status != http.StatusOK {
				b.Fatalf("status %d", w.status)
			}
			if !w.sendfile {
				b.Fatal("body not offered for sendfile")
			}
		}
	})
	b.StopTimer()
	if st := c.Stats(); st.Misses != 1 || st.Errors != 0 {
		b.Fatalf("stats %+v: the benchmark did not measure hits", st)
	}
}

// BenchmarkDiskHit measures a cache hit served by the disk store up to
// the point where net/http takes over the body for sendfile(2) (bodies up
// to VerifyMaxBody are also read and verified whole on every open).
func BenchmarkDiskHit(b *testing.B) {
	for _, size := range []int{10 << 10, 2 << 20} {
		b.Run(fmt.Sprintf("%dKB", size>>10), func(b *testing.B) { benchmarkDiskHit(b, size) })
	}
}
