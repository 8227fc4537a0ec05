package httpcachestore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gregjones/httpcache"
	httpcachetest "github.com/gregjones/httpcache/test"
	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/cache/diskstore"
)

// stores returns the stores every test runs on: a MemoryStore and a disk
// store in a temporary directory.
func stores() map[string]func(t *testing.T) cache.Store {
	return map[string]func(t *testing.T) cache.Store{
		"memory": func(t *testing.T) cache.Store { return &cache.MemoryStore{} },
		"disk":   func(t *testing.T) cache.Store { return openDisk(t, t.TempDir(), 1<<20) },
	}
}

func openDisk(t *testing.T, dir string, max int64) *diskstore.Store {
	t.Helper()
	s, err := diskstore.Open(dir, diskstore.Options{MaxBytes: max, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestConformance runs httpcache's own test of a Cache implementation.
func TestConformance(t *testing.T) {
	for name, open := range stores() {
		t.Run(name, func(t *testing.T) {
			httpcachetest.Cache(t, &Cache{Store: open(t)})
		})
	}
	t.Run("zero_value", func(t *testing.T) { httpcachetest.Cache(t, &Cache{}) })
}

// TestTransport runs httpcache's Transport on the adapter: a fresh
// response is served from the store, a stale one is revalidated with its
// ETag and served from the store after a 304.
func TestTransport(t *testing.T) {
	for name, open := range stores() {
		t.Run(name, func(t *testing.T) {
			var n, conditional atomic.Int64
			origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n.Add(1)
				if strings.HasPrefix(r.URL.Path, "/stale") {
					w.Header().Set("Cache-Control", "max-age=0")
					w.Header().Set("ETag", `"v1"`)
					if r.Header.Get("If-None-Match") == `"v1"` {
						conditional.Add(1)
						w.WriteHeader(http.StatusNotModified)
						return
					}
				} else {
					w.Header().Set("Cache-Control", "max-age=3600")
				}
				fmt.Fprintf(w, "body of %s", r.URL.Path)
			}))
			t.Cleanup(origin.Close)
			c := &Cache{Store: open(t)}
			client := httpcache.NewTransport(c).Client()
			get := func(path string) (string, string) {
				t.Helper()
				resp, err := client.Get(origin.URL + path)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				return string(b), resp.Header.Get(httpcache.XFromCache)
			}
			if body, from := get("/fresh"); body != "body of /fresh" || from != "" {
				t.Fatalf("first GET: %q, X-From-Cache %q", body, from)
			}
			if body, from := get("/fresh"); body != "body of /fresh" || from != "1" {
				t.Errorf("second GET: %q, X-From-Cache %q; want it from the store", body, from)
			}
			if n.Load() != 1 {
				t.Errorf("origin saw %d requests, want 1", n.Load())
			}
			get("/stale")
			if body, from := get("/stale"); body != "body of /stale" || from != "1" || conditional.Load() != 1 {
				t.Errorf("revalidated GET: %q, X-From-Cache %q, %d conditional requests", body, from, conditional.Load())
			}
			if st := c.Stats(); st.Hits < 2 || st.Sets < 2 || st.Errors != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

// TestBounded: a response larger than the disk store's bound is not
// stored (httpcache's diskcache would store it), the error is counted,
// and a response stored before under the key is removed rather than
// served in place of the newer one.
func TestBounded(t *testing.T) {
	c := &Cache{Store: openDisk(t, t.TempDir(), 64<<10)}
	c.Set("k", []byte("small"))
	if b, ok := c.Get("k"); !ok || string(b) != "small" {
		t.Fatalf("Get = %q, %v", b, ok)
	}
	c.Set("k", bytes.Repeat([]byte("x"), 128<<10))
	if b, ok := c.Get("k"); ok {
		t.Errorf("Get after a refused Set = %d bytes, want a miss", len(b))
	}
	if st := c.Stats(); st.Errors != 1 || st.Sets != 1 {
		t.Errorf("stats %+v, want 1 error and 1 set", st)
	}
}

// TestSurvivesRestart: what one process stored on disk, the next serves.
func TestSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	s, err := diskstore.Open(dir, diskstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	(&Cache{Store: s}).Set("http://example.com/a", []byte("HTTP/1.1 200 OK\r\n\r\nhello"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	c := &Cache{Store: openDisk(t, dir, 0)}
	if b, ok := c.Get("http://example.com/a"); !ok || string(b) != "HTTP/1.1 200 OK\r\n\r\nhello" {
		t.Errorf("after reopening: %q, %v", b, ok)
	}
}

// TestForeignEntriesIgnored: an object under the same store key that this
// package did not write (other metadata) is a miss, and keys are
// prefixed, so a cache.Cache can share the store.
func TestForeignEntriesIgnored(t *testing.T) {
	ctx := context.Background()
	s := &cache.MemoryStore{}
	for _, key := range []string{keyPrefix + "k", "k"} {
		w, err := s.Create(ctx, key, []byte("other"))
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, "not an httpcache entry")
		if err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
	c := &Cache{Store: s}
	if b, ok := c.Get("k"); ok {
		t.Errorf("Get = %q; want a miss", b)
	}
	c.Set("k", []byte("mine"))
	if o, err := s.Open(ctx, "k"); err != nil || !bytes.Equal(o.Meta(), []byte("other")) {
		t.Errorf("the entry under the unprefixed key was touched: %v", err)
	} else {
		o.Close()
	}
}

// TestConcurrent uses one Cache from many goroutines (run with -race).
func TestConcurrent(t *testing.T) {
	for name, open := range stores() {
		t.Run(name, func(t *testing.T) {
			c := &Cache{Store: open(t)}
			var wg sync.WaitGroup
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 50; i++ {
						key := fmt.Sprintf("k%d", i%5)
						val := []byte(fmt.Sprintf("%s-%d", key, g))
						c.Set(key, val)
						if b, ok := c.Get(key); ok && !bytes.HasPrefix(b, []byte(key+"-")) {
							t.Errorf("Get(%s) = %q", key, b)
						}
						if i%7 == 0 {
							c.Delete(key)
						}
					}
				}()
			}
			wg.Wait()
			if st := c.Stats(); st.Errors != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}
