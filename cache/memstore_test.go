package cache_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/cache/storetest"
)

func TestMemoryStoreConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) cache.Store { return new(cache.MemoryStore) })
}

func TestMemoryStoreConformanceNearBound(t *testing.T) {
	// The suite needs 32 MiB; a store just above that still passes.
	storetest.Run(t, func(t *testing.T) cache.Store { return &cache.MemoryStore{MaxBytes: 33 << 20} })
}

func memPut(t testing.TB, s cache.Store, key string, n int) error {
	t.Helper()
	w, err := s.Create(context.Background(), key, []byte("m"))
	if err != nil {
		return err
	}
	defer w.Close()
	b := []byte(strings.Repeat(key[:1], n))
	for off := 0; off < n; off += 1000 {
		if _, err := w.Write(b[off:min(off+1000, n)]); err != nil {
			return err
		}
	}
	return w.Commit(context.Background())
}

// TestMemoryStoreEvictionBound writes far more than MaxBytes from several
// goroutines while a sampler checks that committed plus pending bytes never
// exceed MaxBytes.
func TestMemoryStoreEvictionBound(t *testing.T) {
	const max = 200_000
	s := &cache.MemoryStore{MaxBytes: max}
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if st := s.Stats(); st.Bytes+st.PendingBytes > max || st.PendingBytes < 0 {
				t.Errorf("bound violated: %+v", st)
				return
			}
			runtime.Gosched()
		}
	})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				if err := memPut(t, s, fmt.Sprintf("%c%d", 'a'+g, i), 1+(i*7919)%20_000); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	sampler.Wait()
	st := s.Stats()
	if st.PendingBytes != 0 || st.Evictions == 0 || st.Bytes > max || st.Objects == 0 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestMemoryStoreLRUOrder(t *testing.T) {
	// Each object counts len(key) + len(meta) + body = 1 + 1 + 998.
	s := &cache.MemoryStore{MaxBytes: 3000}
	for _, k := range []string{"a", "b", "c"} {
		if err := memPut(t, s, k, 998); err != nil {
			t.Fatal(err)
		}
	}
	o, err := s.Open(t.Context(), "a")
	if err != nil {
		t.Fatal(err)
	}
	o.Close()
	if err := memPut(t, s, "d", 998); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(t.Context(), "b"); !errors.Is(err, cache.ErrNotFound) {
		t.Fatalf("least recently used b: Open = %v, want ErrNotFound", err)
	}
	for _, k := range []string{"a", "c", "d"} {
		o, err := s.Open(t.Context(), k)
		if err != nil {
			t.Fatalf("Open(%s): %v", k, err)
		}
		o.Close()
	}
	if st := s.Stats(); st.Objects != 3 || st.Bytes != 3000 || st.Evictions != 1 {
		t.Errorf("Stats = %+v", st)
	}
	// UpdateMeta growing an object evicts others, never the object.
	if err := s.UpdateMeta(t.Context(), "c", []byte("m"), make([]byte, 1500)); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Bytes != 2499 || st.Objects != 1 { // a and d evicted: 1000 + 1499 > 3000 - 2000
		t.Errorf("after UpdateMeta: %+v", st)
	}
	if o, err := s.Open(t.Context(), "c"); err != nil || len(o.Meta()) != 1500 {
		t.Fatalf("c after UpdateMeta: %v", err)
	} else {
		o.Close()
	}
	if err := s.UpdateMeta(t.Context(), "c", make([]byte, 1500), make([]byte, 3000)); err == nil {
		t.Error("UpdateMeta beyond MaxBytes succeeded")
	} else if errors.Is(err, cache.ErrNotFound) {
		t.Errorf("UpdateMeta beyond MaxBytes = %v, want a size error, not ErrNotFound", err)
	}
}

func TestMemoryStoreTooLarge(t *testing.T) {
	s := &cache.MemoryStore{MaxBytes: 10_000}
	if err := memPut(t, s, "small", 100); err != nil {
		t.Fatal(err)
	}
	if err := memPut(t, s, "big", 20_000); err == nil {
		t.Fatal("an object larger than MaxBytes was stored")
	}
	if _, err := s.Open(t.Context(), "big"); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("Open(big) = %v", err)
	}
	if st := s.Stats(); st.PendingBytes != 0 {
		t.Errorf("PendingBytes = %d after the failed writer closed", st.PendingBytes)
	}
	if _, err := s.Create(t.Context(), "k", make([]byte, 20_000)); err == nil {
		t.Error("Create with meta larger than MaxBytes succeeded")
	}
}

func TestMemoryStoreDefaultBound(t *testing.T) {
	var s cache.MemoryStore
	for i := range 80 {
		if err := memPut(t, &s, fmt.Sprint("k", i), 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Stats(); st.Bytes > cache.DefaultMemoryMaxBytes || st.Evictions == 0 {
		t.Errorf("Stats = %+v, want within %d", st, cache.DefaultMemoryMaxBytes)
	}
}

func TestMemoryStoreNegativeMaxBytes(t *testing.T) {
	s := &cache.MemoryStore{MaxBytes: -1}
	if _, err := s.Create(t.Context(), "k", nil); err == nil {
		t.Error("Create with negative MaxBytes succeeded")
	}
}

// An evicted object stays readable by those who opened it.
func TestMemoryStoreEvictedWhileOpen(t *testing.T) {
	s := &cache.MemoryStore{MaxBytes: 2000}
	if err := memPut(t, s, "a", 1500); err != nil {
		t.Fatal(err)
	}
	o, err := s.Open(t.Context(), "a")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if err := memPut(t, s, "b", 1500); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(t.Context(), "a"); !errors.Is(err, cache.ErrNotFound) {
		t.Fatalf("a not evicted: %v", err)
	}
	r, _ := o.Reader(0, o.Size())
	b, err := io.ReadAll(r)
	if err != nil || string(b) != strings.Repeat("a", 1500) {
		t.Fatalf("evicted object read %d bytes, %v", len(b), err)
	}
}

func BenchmarkMemoryStoreOpenRead(b *testing.B) {
	for _, size := range []int{10 << 10, 2 << 20} {
		b.Run(fmt.Sprint(size>>10, "KB"), func(b *testing.B) {
			s := &cache.MemoryStore{MaxBytes: 64 << 20}
			if err := memPut(b, s, "k", size); err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				o, err := s.Open(ctx, "k")
				if err != nil {
					b.Fatal(err)
				}
				r, _ := o.Reader(0, o.Size())
				if n, err := io.Copy(io.Discard, r); n != int64(size) || err != nil {
					b.Fatal(n, err)
				}
				o.Close()
			}
		})
	}
}
