package diskstore_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/cache/diskstore"
)

func putTagged(t *testing.T, s *diskstore.Store, key string, n int, tags ...string) {
	t.Helper()
	w, err := s.CreateTagged(context.Background(), key, metaFor(n, n), tags)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write(pattern(n, n)); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func deleteTag(t *testing.T, s *diskstore.Store, tag string, want int) {
	t.Helper()
	n, err := s.DeleteTag(context.Background(), tag)
	if err != nil || n != want {
		t.Fatalf("DeleteTag(%q) = %d, %v; want %d", tag, n, err, want)
	}
}

// TestTagsSurviveRestart: the tag index is rebuilt from the entry files
// at Open, after a clean Close and after a crash (no LRU snapshot), and an
// UpdateMeta keeps an object's tags on disk.
func TestTagsSurviveRestart(t *testing.T) {
	for _, crash := range []bool{false, true} {
		t.Run(fmt.Sprintf("crash=%v", crash), func(t *testing.T) {
			dir := t.TempDir()
			s, err := diskstore.Open(dir, diskstore.Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			putTagged(t, s, "a", 100, "red", "shared")
			putTagged(t, s, "b", 200, "blue", "shared")
			putTagged(t, s, "c", 300)
			if err := s.UpdateMeta(context.Background(), "b", metaFor(200, 200), []byte("updated")); err != nil {
				t.Fatal(err)
			}
			s.Close()
			if crash {
				os.Remove(filepath.Join(dir, "lru"))
			}
			s = open(t, dir, diskstore.Options{NoSync: true})
			if st := s.Stats(); st.Objects != 3 {
				t.Fatalf("%d objects after reopening, want 3", st.Objects)
			}
			o, err := s.Open(context.Background(), "b")
			if err != nil {
				t.Fatal(err)
			}
			if string(o.Meta()) != "updated" || fmt.Sprint(o.(cache.TaggedObject).Tags()) != "[blue shared]" {
				t.Fatalf("b after reopening: meta %q, tags %q", o.Meta(), o.(cache.TaggedObject).Tags())
			}
			o.Close()
			deleteTag(t, s, "shared", 2)
			deleteTag(t, s, "red", 0)
			if _, err := s.Open(context.Background(), "c"); err != nil {
				t.Fatalf("untagged object: %v", err)
			}
		})
	}
}

// TestTagsEviction: evicted objects leave the tag index; DeleteTag counts
// every indexed entry it removes, so an orphan would show up in its count.
func TestTagsEviction(t *testing.T) {
	s := open(t, t.TempDir(), diskstore.Options{NoSync: true, MaxBytes: 20 << 10})
	for i := range 40 {
		putTagged(t, s, fmt.Sprintf("k%d", i), 1000, "all", fmt.Sprintf("own%d", i))
	}
	st := s.Stats()
	if st.Evictions == 0 {
		t.Fatal("no evictions: the test needs some")
	}
	n, err := s.DeleteTag(context.Background(), "all")
	if err != nil || int64(n) != st.Objects {
		t.Fatalf("DeleteTag(all) = %d, %v; want %d (objects stored)", n, err, st.Objects)
	}
	for i := range 40 {
		deleteTag(t, s, fmt.Sprintf("own%d", i), 0)
	}
	if st := s.Stats(); st.Objects != 0 || st.Bytes != 0 {
		t.Fatalf("after removing every object: %+v", st)
	}
}

// TestTagsCorruptRegion: an entry whose tag list is damaged (with a
// matching checksum: written so, not rotted) is discarded at Open, never
// indexed nor served.
func TestTagsCorruptRegion(t *testing.T) {
	dir := t.TempDir()
	s, err := diskstore.Open(dir, diskstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	putTagged(t, s, "k", 10, "t")
	s.Close()
	var file string
	filepath.WalkDir(filepath.Join(dir, "objects"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			file = p
		}
		return nil
	})
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	// Tag list size (first byte of the meta region) beyond the region,
	// and the checksums recomputed so that only the tag parser objects.
	b[32] = 0x7f
	diskstore.FixChecksums(b)
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, diskstore.Options{NoSync: true})
	if st := s.Stats(); st.Objects != 0 || st.CorruptDiscarded != 1 {
		t.Fatalf("stats %+v: want the entry discarded", st)
	}
	if _, err := s.Open(context.Background(), "k"); !errors.Is(err, cache.ErrNotFound) {
		t.Fatalf("Open = %v", err)
	}
	deleteTag(t, s, "t", 0)
}

// TestCachePurgeOnDisk: a Cache on a diskstore purges by tag through the
// store's index (at once, no scan), and a Cache restarted on the same
// directory with the same PurgeFile keeps a soft purge in force.
func TestCachePurgeOnDisk(t *testing.T) {
	var version atomic.Int64
	version.Store(1)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("ETag", fmt.Sprintf(`"%d"`, version.Load()))
		w.Header().Set("Surrogate-Key", "all "+strings.Split(r.URL.Path, "/")[1])
		if r.Header.Get("If-None-Match") == fmt.Sprintf(`"%d"`, version.Load()) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprintf(w, "v%d %s", version.Load(), r.URL.Path)
	}))
	defer origin.Close()
	u, _ := url.Parse(origin.URL)
	dir, file := t.TempDir(), filepath.Join(t.TempDir(), "purges")
	newCache := func(s cache.Store) *cache.Cache {
		return &cache.Cache{Upstream: u, Store: s, PurgeFile: file, CacheStatus: true, Name: "c"}
	}
	get := func(c *cache.Cache, path string) string {
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if err := c.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		return rec.Body.String() + " | " + rec.Header().Get("Cache-Status")
	}
	s1, err := diskstore.Open(dir, diskstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	c1 := newCache(s1)
	for _, p := range []string{"/news/1", "/news/2", "/video/a", "/video/b"} {
		get(c1, p)
	}
	version.Store(2)
	res, err := c1.Purge(t.Context(), cache.Purge{Kind: cache.PurgeTag, Value: "news"})
	if err != nil || res.Removed != 2 {
		t.Fatalf("tag purge: %+v, %v; want 2 removed", res, err)
	}
	if _, err := c1.Purge(t.Context(), cache.Purge{Kind: cache.PurgeTag, Value: "video", Soft: true}); err != nil {
		t.Fatal(err)
	}
	if st := s1.Stats(); st.Objects != 2 {
		t.Fatalf("%d objects on disk after the hard tag purge, want 2", st.Objects)
	}
	s1.Close()
	time.Sleep(time.Millisecond)

	s2 := open(t, dir, diskstore.Options{NoSync: true})
	c2 := newCache(s2)
	if got := get(c2, "/video/a"); !strings.HasPrefix(got, "v2 /video/a | c; fwd=stale; fwd-status=200;") {
		t.Fatalf("soft-purged object after a restart: %q", got)
	}
	if got := get(c2, "/news/1"); !strings.HasPrefix(got, "v2 /news/1 | c; fwd=uri-miss; fwd-status=200;") {
		t.Fatalf("hard-purged object after a restart: %q", got)
	}
	if got := get(c2, "/video/a"); !strings.HasPrefix(got, "v2 /video/a | c; hit") {
		t.Fatalf("refetched object: %q", got)
	}
}
