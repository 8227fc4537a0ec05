package diskstore_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/cache/diskstore"
)

// BenchmarkStoreFill measures what a cold miss costs the store: Create,
// one Write of the body, a ReadAt of it (the client reading the fill),
// Commit and Close, each object under a new key.
func BenchmarkStoreFill(b *testing.B) {
	for _, size := range []int{10 << 10, 256 << 10} {
		b.Run(fmt.Sprintf("%dKB", size>>10), func(b *testing.B) {
			s, err := diskstore.Open(b.TempDir(), diskstore.Options{NoSync: true, MaxBytes: 16 << 30})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			body := bytes.Repeat([]byte("x"), size)
			meta := bytes.Repeat([]byte("m"), 300)
			rd := make([]byte, size)
			ctx := context.Background()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				w, err := s.Create(ctx, "GET /small/"+strconv.Itoa(i), meta)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := w.Write(body); err != nil {
					b.Fatal(err)
				}
				if _, err := w.ReadAt(rd, 0); err != nil {
					b.Fatal(err)
				}
				if err := w.Commit(ctx); err != nil {
					b.Fatal(err)
				}
				w.Close()
			}
		})
	}
}

// BenchmarkColdMiss measures a whole cold miss through a Cache, from the
// request to the last body byte, against an in-process origin over
// loopback: on the memory store (the floor) and on the disk store. The
// "paced" runs leave a millisecond between misses, outside the timer, as
// a client at a moderate rate does, so that they measure a miss's latency
// rather than the throughput of back-to-back fills (where work done in the
// background, such as pre-creating files, is paid for in the loop).
func BenchmarkColdMiss(b *testing.B) {
	for _, paced := range []bool{false, true} {
		name := "back-to-back"
		if paced {
			name = "paced"
		}
		b.Run(name, func(b *testing.B) { benchmarkColdMiss(b, paced) })
	}
}

func benchmarkColdMiss(b *testing.B, paced bool) {
	body := bytes.Repeat([]byte("x"), 10<<10)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	}))
	defer origin.Close()
	u, _ := url.Parse(origin.URL)
	for _, store := range []string{"memory", "disk"} {
		b.Run(store, func(b *testing.B) {
			var s cache.Store = &cache.MemoryStore{MaxBytes: 4 << 30}
			if store == "disk" {
				ds, err := diskstore.Open(b.TempDir(), diskstore.Options{NoSync: true, MaxBytes: 16 << 30})
				if err != nil {
					b.Fatal(err)
				}
				defer ds.Close()
				diskstore.WaitSpares(ds)
				s = ds
			}
			c := &cache.Cache{Upstream: u, Store: s}
			var n atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if paced {
					b.StopTimer()
					time.Sleep(time.Millisecond)
					b.StartTimer()
				}
				req := httptest.NewRequest("GET", "http://example.onion/small/"+strconv.FormatInt(n.Add(1), 10), nil)
				w := &sendfileWriter{h: make(http.Header, 8)}
				c.ServeHTTP(w, req)
				if w.status != http.StatusOK {
					b.Fatalf("status %d", w.status)
				}
			}
			b.StopTimer()
			c.Shutdown(context.Background())
			if st := c.Stats(); st.Misses != uint64(b.N) || st.Errors != 0 {
				b.Fatalf("stats %+v", st)
			}
		})
	}
}
