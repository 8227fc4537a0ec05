package diskstore_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onioncdn/onioncdn/cache/diskstore"
)

// TestEarlierLayoutMoved: entry files of the earlier two-level layout
// (objects/ab/cd/<hash>) are moved into place by Open and served, and the
// emptied directories are removed.
func TestEarlierLayoutMoved(t *testing.T) {
	dir := t.TempDir()
	s, err := diskstore.Open(dir, diskstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"a", "b", "c"}
	for i, k := range keys {
		put(t, s, k, metaFor(i, 1000), pattern(i, 1000))
	}
	s.Close()
	var old []string
	for _, k := range keys {
		p := entryPath(dir, k)
		h := filepath.Base(p)
		q := filepath.Join(dir, "objects", h[0:2], h[2:4], h)
		if err := os.MkdirAll(filepath.Dir(q), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(p, q); err != nil {
			t.Fatal(err)
		}
		old = append(old, filepath.Dir(q))
	}
	s = open(t, dir, diskstore.Options{NoSync: true})
	for i, k := range keys {
		wantObject(t, s, k, i, 1000)
		if _, err := os.Stat(entryPath(dir, k)); err != nil {
			t.Errorf("%s not moved into place: %v", k, err)
		}
	}
	for _, d := range old {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("old directory %s left: %v", d, err)
		}
	}
	if st := s.Stats(); st.CorruptDiscarded != 0 || st.Objects != 3 {
		t.Fatalf("stats %+v", st)
	}
}

// TestSmallWritesInMemory: a small entry touches no file until Commit
// (which then writes it whole into place); a large one moves to a
// temporary file once it grows past the memory bound, and reads follow
// it across the move.
func TestSmallWritesInMemory(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, diskstore.Options{NoSync: true})
	ctx := context.Background()
	w, err := s.Create(ctx, "small", metaFor(1, 10_000))
	if err != nil {
		t.Fatal(err)
	}
	body := pattern(1, 10_000)
	if _, err := w.Write(body); err != nil {
		t.Fatal(err)
	}
	if tmp := nonEmptyTemp(t, dir); len(tmp) != 0 {
		t.Fatalf("a small entry being written is in files %q", tmp)
	}
	got := make([]byte, len(body))
	if n, err := w.ReadAt(got, 0); n != len(body) || err != nil || string(got) != string(body) {
		t.Fatalf("ReadAt before Commit: %d, %v", n, err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	w.Close()
	wantObject(t, s, "small", 1, 10_000)

	big := pattern(2, 300_000)
	w, err = s.Create(ctx, "big", metaFor(2, len(big)))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for off := 0; off < len(big); off += 20_000 {
		if _, err := w.Write(big[off : off+20_000]); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, off+20_000)
		if n, err := w.ReadAt(got, 0); n != len(got) || err != nil || string(got) != string(big[:off+20_000]) {
			t.Fatalf("ReadAt after %d bytes: %d, %v", off+20_000, n, err)
		}
	}
	if tmp := nonEmptyTemp(t, dir); len(tmp) != 1 {
		t.Fatalf("a large entry being written: temporary files %q, want one", tmp)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	wantObject(t, s, "big", 2, len(big))
	n := 0
	filepath.WalkDir(filepath.Join(dir, "objects"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasPrefix(d.Name(), ".") {
			n++
		}
		return nil
	})
	if n != 2 {
		t.Fatalf("%d entry files, want 2", n)
	}
}
