package cache_test

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/cache/storetest"
)

func TestTieredStoreConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) cache.Store {
		return &cache.TieredStore{
			Slow:      &cache.MemoryStore{MaxBytes: 64 << 20},
			Fast:      &cache.MemoryStore{MaxBytes: 8 << 20},
			MaxObject: 4 << 10, // both paths exercised by the suite's sizes
		}
	})
}

func put(t *testing.T, s cache.Store, key, meta, body string) {
	t.Helper()
	w, err := s.Create(t.Context(), key, []byte(meta))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := io.WriteString(w, body); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, s cache.Store, key string) (meta, body string, err error) {
	t.Helper()
	o, err := s.Open(t.Context(), key)
	if err != nil {
		return "", "", err
	}
	defer o.Close()
	r, err := o.Reader(0, o.Size())
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	return string(o.Meta()), string(b), err
}

// TestTieredStoreCopies: a small object read once is served from Fast; a
// change through the TieredStore removes the copy.
func TestTieredStoreCopies(t *testing.T) {
	t.Parallel()
	slow, fast := &cache.MemoryStore{}, &cache.MemoryStore{}
	s := &cache.TieredStore{Slow: slow, Fast: fast, MaxObject: 10}
	put(t, s, "small", "m1", "abc")
	put(t, s, "large", "m1", "0123456789ab")
	if _, err := fast.Open(t.Context(), "small"); !errors.Is(err, cache.ErrNotFound) {
		t.Fatalf("copied to Fast before any read: %v", err)
	}
	for _, k := range []string{"small", "large"} {
		if _, _, err := get(t, s, k); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := fast.Open(t.Context(), "large"); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("large object copied to Fast: %v", err)
	}
	if _, b, err := get(t, fast, "small"); err != nil || b != "abc" {
		t.Fatalf("small object not in Fast: %q %v", b, err)
	}
	if err := s.UpdateMeta(t.Context(), "small", []byte("m1"), []byte("m2")); err != nil {
		t.Fatal(err)
	}
	if _, err := fast.Open(t.Context(), "small"); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("fast copy kept after UpdateMeta: %v", err)
	}
	if m, b, err := get(t, s, "small"); err != nil || m != "m2" || b != "abc" {
		t.Errorf("after UpdateMeta: %q %q %v", m, b, err)
	}
	// A stale prev is refused by Slow even while Fast holds a copy (made
	// by the get above).
	if err := s.UpdateMeta(t.Context(), "small", []byte("m1"), []byte("stale")); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("UpdateMeta with a stale prev = %v, want ErrNotFound", err)
	}
	if m, b, err := get(t, s, "small"); err != nil || m != "m2" || b != "abc" {
		t.Errorf("after a refused UpdateMeta: %q %q %v", m, b, err)
	}
	put(t, s, "small", "m3", "xyz")
	if m, b, err := get(t, s, "small"); err != nil || m != "m3" || b != "xyz" {
		t.Errorf("after replace: %q %q %v", m, b, err)
	}
	if err := s.Delete(t.Context(), "small"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := get(t, s, "small"); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("after Delete: %v", err)
	}
	if _, err := (&cache.TieredStore{}).Open(context.Background(), "k"); err == nil {
		t.Error("TieredStore without Slow store opened something")
	}
}
