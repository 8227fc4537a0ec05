package diskstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/cache/diskstore"
	"github.com/onioncdn/onioncdn/cache/storetest"
)

// testLogger writes the store's logs to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, nil))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) { w.t.Helper(); w.t.Log(string(p)); return len(p), nil }

func open(t testing.TB, dir string, opts diskstore.Options) *diskstore.Store {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	s, err := diskstore.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) cache.Store {
		return open(t, t.TempDir(), diskstore.Options{NoSync: true})
	})
}

func TestConformanceSynced(t *testing.T) {
	if testing.Short() {
		t.Skip("fsync on every commit is slow")
	}
	storetest.Run(t, func(t *testing.T) cache.Store {
		return open(t, t.TempDir(), diskstore.Options{VerifyMaxBody: -1})
	})
}

func pattern(id, n int) []byte {
	b := make([]byte, n)
	x := uint64(id)*0x9E3779B97F4A7C15 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

func metaFor(id, n int) []byte { return fmt.Appendf(nil, "id=%d n=%d", id, n) }

func put(t testing.TB, s cache.Store, key string, meta, body []byte) {
	t.Helper()
	w, err := s.Create(context.Background(), key, meta)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func wantNotFound(t testing.TB, s cache.Store, key string) {
	t.Helper()
	o, err := s.Open(context.Background(), key)
	if err == nil {
		o.Close()
		t.Fatalf("Open(%q) succeeded, want ErrNotFound", key)
	}
	if !errors.Is(err, cache.ErrNotFound) {
		t.Fatalf("Open(%q) = %v, want ErrNotFound", key, err)
	}
}

func wantObject(t testing.TB, s cache.Store, key string, id, n int) {
	t.Helper()
	if err := checkObject(s, key, id, n); err != nil {
		t.Fatalf("%q: %v", key, err)
	}
}

// entrySize is the file size of an object with meta metaFor(id, n).
func entrySize(id, n int) int64 { return int64(32 + len(metaFor(id, n)) + n) }

// files lists the entry files under dir/objects with their sizes.
func files(t testing.TB, dir string) map[string]int64 {
	t.Helper()
	m := map[string]int64{}
	err := filepath.WalkDir(filepath.Join(dir, "objects"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		m[p] = info.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func entryPath(dir, key string) string {
	sum := sha256.Sum256([]byte(key))
	h := hex.EncodeToString(sum[:])
	return filepath.Join(dir, "objects", h[:2], h)
}

// TestEvictionBound stores far more than MaxBytes from several goroutines
// while a sampler checks, at every step, that committed and pending bytes
// stay within MaxBytes and that the files on disk agree with the index.
func TestEvictionBound(t *testing.T) {
	const max = 1 << 20
	dir := t.TempDir()
	s := open(t, dir, diskstore.Options{MaxBytes: max, NoSync: true})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var violations atomic.Int64
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if st := s.Stats(); st.Bytes+st.PendingBytes > max || st.Bytes < 0 || st.PendingBytes < 0 {
				violations.Add(1)
				t.Errorf("bound violated: %+v", st)
			}
			runtime.Gosched()
		}
	})
	var writers sync.WaitGroup
	for g := range 4 {
		writers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 3))
			for i := range 100 {
				id := g*1000 + i
				n := 1 + rng.IntN(64<<10)
				w, err := s.Create(t.Context(), fmt.Sprint("k", id), metaFor(id, n))
				if err != nil {
					t.Error(err)
					return
				}
				b := pattern(id, n)
				for off := 0; off < n; off += 4096 {
					if _, err := w.Write(b[off:min(off+4096, n)]); err != nil {
						t.Error(err)
					}
				}
				if err := w.Commit(t.Context()); err != nil {
					t.Error(err)
				}
				w.Close()
			}
		})
	}
	writers.Wait()
	close(stop)
	wg.Wait()
	st := s.Stats()
	if st.PendingBytes != 0 {
		t.Errorf("PendingBytes = %d after all writers closed", st.PendingBytes)
	}
	if st.Evictions == 0 {
		t.Error("no evictions: the test did not exceed MaxBytes")
	}
	var onDisk int64
	fs := files(t, dir)
	for _, n := range fs {
		onDisk += n
	}
	if onDisk != st.Bytes || int64(len(fs)) != st.Objects || onDisk > max {
		t.Errorf("on disk: %d files, %d bytes; Stats %+v; MaxBytes %d", len(fs), onDisk, st, max)
	}
	if tmp := leftoverTemp(t, s, dir); len(tmp) != 0 {
		t.Errorf("temp files left: %q", tmp)
	}
}

// TestLRUOrder checks that the least recently opened object is evicted
// first, and that opening counts as use.
func TestLRUOrder(t *testing.T) {
	const n = 10_000
	size := entrySize(0, n)
	s := open(t, t.TempDir(), diskstore.Options{MaxBytes: 3 * size, NoSync: true})
	for i, k := range []string{"a", "b", "c"} {
		put(t, s, k, metaFor(i, n), pattern(i, n))
	}
	o, err := s.Open(t.Context(), "a") // a is now the most recent; b the least
	if err != nil {
		t.Fatal(err)
	}
	o.Close()
	put(t, s, "d", metaFor(3, n), pattern(3, n))
	wantNotFound(t, s, "b")
	wantObject(t, s, "c", 2, n) // c is now the most recent, a the least
	wantObject(t, s, "d", 3, n)
	put(t, s, "e", metaFor(4, n), pattern(4, n))
	wantNotFound(t, s, "a")
	wantObject(t, s, "c", 2, n)
	wantObject(t, s, "d", 3, n)
	wantObject(t, s, "e", 4, n)
	if st := s.Stats(); st.Evictions != 2 || st.Objects != 3 || st.Bytes != 3*size {
		t.Errorf("Stats = %+v", st)
	}
}

// TestTooLarge: an object that cannot fit even in an empty store fails at
// Write with an error, and nothing of it stays.
func TestTooLarge(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, diskstore.Options{MaxBytes: 100_000})
	put(t, s, "small", metaFor(1, 1000), pattern(1, 1000))
	w, err := s.Create(t.Context(), "big", metaFor(2, 200_000))
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.Write(pattern(2, 200_000))
	if err == nil || !strings.HasPrefix(err.Error(), "diskstore: ") {
		t.Fatalf("Write beyond MaxBytes = %v, want a diskstore error", err)
	}
	if err := w.Commit(t.Context()); err == nil {
		t.Fatal("Commit after a failed Write succeeded")
	}
	w.Close()
	wantNotFound(t, s, "big")
	if st := s.Stats(); st.PendingBytes != 0 || st.Bytes > 100_000 {
		t.Errorf("Stats = %+v", st)
	}
	if tmp := leftoverTemp(t, s, dir); len(tmp) != 0 {
		t.Errorf("temp files left: %q", tmp)
	}
}

// TestRestart closes a store and reopens its directory: every object is
// served again, sizes are restored, and so is the LRU order (checked by
// what the reopened store evicts first).
func TestRestart(t *testing.T) {
	const n = 5000
	size := entrySize(0, n)
	dir := t.TempDir()
	s := open(t, dir, diskstore.Options{MaxBytes: 10 * size})
	for i := range 5 {
		put(t, s, fmt.Sprint("k", i), metaFor(i, n), pattern(i, n))
	}
	// Use order, least recent first: k2 k4 k0 k1 k3.
	for _, i := range []int{2, 4, 0, 1, 3} {
		wantObject(t, s, fmt.Sprint("k", i), i, n)
	}
	before := s.Stats()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close = %v, want net.ErrClosed", err)
	}
	if _, err := s.Open(t.Context(), "k1"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Open after Close = %v, want net.ErrClosed", err)
	}

	// Reopen with room for 3 objects: the 2 least recently used go.
	s = open(t, dir, diskstore.Options{MaxBytes: 3 * size})
	st := s.Stats()
	if st.Objects != 3 || st.Bytes != 3*size || st.Evictions != 2 || before.Objects != 5 {
		t.Fatalf("after reopen: %+v (before %+v)", st, before)
	}
	wantNotFound(t, s, "k2")
	wantNotFound(t, s, "k4")
	for _, i := range []int{0, 1, 3} {
		wantObject(t, s, fmt.Sprint("k", i), i, n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Without the snapshot (as after a crash), the order falls back to
	// modification times.
	if err := os.Remove(filepath.Join(dir, "lru")); err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-time.Hour)
	for j, i := range []int{3, 0, 1} { // k3 oldest
		p := entryPath(dir, fmt.Sprint("k", i))
		if err := os.Chtimes(p, base, base.Add(time.Duration(j)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	s = open(t, dir, diskstore.Options{MaxBytes: 2 * size})
	wantNotFound(t, s, "k3")
	wantObject(t, s, "k0", 0, n)
	wantObject(t, s, "k1", 1, n)
}

func TestDirectoryLocked(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, diskstore.Options{})
	if s2, err := diskstore.Open(dir, diskstore.Options{}); err == nil {
		s2.Close()
		t.Fatal("a second Store opened the same directory")
	}
	s.Close()
	s2 := open(t, dir, diskstore.Options{})
	s2.Close()
}

func TestOpenErrors(t *testing.T) {
	if _, err := diskstore.Open(t.TempDir(), diskstore.Options{MaxBytes: -1}); err == nil {
		t.Error("negative MaxBytes accepted")
	}
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o600)
	if _, err := diskstore.Open(f, diskstore.Options{}); err == nil || !strings.HasPrefix(err.Error(), "diskstore: ") {
		t.Errorf("Open on a regular file = %v", err)
	}
}

// TestCorruptEntries damages entry files in every way that matters and
// checks that each is discarded (file removed, ErrNotFound), never served:
// on the next Open of the directory, and, where cheap, on the running store.
func TestCorruptEntries(t *testing.T) {
	const small, large = 1000, 300_000
	for _, tc := range []struct {
		name string
		n    int
		// damage changes the file at p, whose body starts at off.
		damage func(t *testing.T, p string, off int64)
		// live: also detected by Open on the running store.
		live bool
	}{
		{"flip_small_body_byte", small, flipAt(+500), true},
		{"flip_large_body_byte", large, flipAt(+200_000), false},
		{"flip_last_body_byte", large, flipAt(+large - 1), false},
		{"flip_meta_byte", small, flipAt(-3), true},
		{"flip_header_length", small, flipAt(-int64(len(metaFor(0, small))) - 32 + 9), true},
		{"garbage_header", small, func(t *testing.T, p string, _ int64) { writeAt(t, p, 0, []byte("garbage garbage garbage garbage!")) }, true},
		{"zero_header", small, func(t *testing.T, p string, _ int64) { writeAt(t, p, 0, make([]byte, 32)) }, true},
		{"truncated_body", large, truncateBy(1), true},
		{"truncated_header", small, func(t *testing.T, p string, _ int64) { os.Truncate(p, 10) }, true},
		{"empty_file", small, func(t *testing.T, p string, _ int64) { os.Truncate(p, 0) }, true},
		{"extended", small, func(t *testing.T, p string, _ int64) {
			f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			f.Write([]byte("x"))
			f.Close()
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			off := int64(32 + len(metaFor(0, tc.n)))
			key := "key-" + tc.name

			// Detected when the directory is reopened.
			dir := t.TempDir()
			s := open(t, dir, diskstore.Options{})
			put(t, s, key, metaFor(0, tc.n), pattern(0, tc.n))
			put(t, s, "intact", metaFor(1, 100), pattern(1, 100))
			s.Close()
			p := entryPath(dir, key)
			tc.damage(t, p, off)
			s = open(t, dir, diskstore.Options{})
			wantNotFound(t, s, key)
			if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("corrupt file not removed on reopen: %v", err)
			}
			wantObject(t, s, "intact", 1, 100)
			if st := s.Stats(); st.CorruptDiscarded != 1 || st.Objects != 1 {
				t.Errorf("Stats after reopen = %+v", st)
			}
			s.Close()

			// Detected by Open on a running store.
			if !tc.live {
				return
			}
			dir = t.TempDir()
			s = open(t, dir, diskstore.Options{})
			put(t, s, key, metaFor(0, tc.n), pattern(0, tc.n))
			tc.damage(t, entryPath(dir, key), off)
			wantNotFound(t, s, key)
			if _, err := os.Stat(entryPath(dir, key)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("corrupt file not removed by Open: %v", err)
			}
			if st := s.Stats(); st.CorruptDiscarded != 1 || st.Objects != 0 || st.Bytes != 0 {
				t.Errorf("Stats after live discard = %+v", st)
			}
			// The key can be stored again.
			put(t, s, key, metaFor(2, 10), pattern(2, 10))
			wantObject(t, s, key, 2, 10)
		})
	}
}

func writeAt(t *testing.T, p string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// flipAt returns a damage function inverting the byte at body offset d
// (negative: before the body).
func flipAt(d int64) func(t *testing.T, p string, off int64) {
	return func(t *testing.T, p string, off int64) {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		writeAt(t, p, off+d, []byte{^b[off+d]})
	}
}

func truncateBy(k int64) func(t *testing.T, p string, off int64) {
	return func(t *testing.T, p string, _ int64) {
		t.Helper()
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, info.Size()-k); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStrayFiles: temp files and files that are not entries are removed by
// Open; entries are left alone.
func TestStrayFiles(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, diskstore.Options{})
	put(t, s, "k", metaFor(1, 100), pattern(1, 100))
	s.Close()
	strays := []string{
		filepath.Join(dir, "tmp", "w-123456"),
		filepath.Join(dir, "objects", "notes.txt"),
		filepath.Join(dir, "objects", "ab", "cd", strings.Repeat("ef", 32)), // wrong directory for its hash
		filepath.Join(dir, "objects", "ab", "cd", "abcd"),
	}
	for _, p := range strays {
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte("stray"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s = open(t, dir, diskstore.Options{})
	for _, p := range strays {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s not removed: %v", p, err)
		}
	}
	wantObject(t, s, "k", 1, 100)
}

// TestKeysNeverOnDisk: keys (URLs with query strings) appear neither in file
// names nor in file contents nor in logs; files sit at
// objects/xx/<sha256 hex>.
func TestKeysNeverOnDisk(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	s := open(t, dir, diskstore.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	keys := []string{crashKey, "../../../../tmp/escape", "/abs/path"}
	for i, k := range keys {
		put(t, s, k, metaFor(i, 100), pattern(i, 100))
	}
	// Damage one entry so that something is logged.
	writeAt(t, entryPath(dir, keys[0]), 0, []byte("junk"))
	wantNotFound(t, s, keys[0])
	s.Close()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if strings.Contains(p, k) || bytes.Contains(b, []byte(k)) {
				t.Errorf("key %q found in %s", k, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files(t, dir)) != 2 {
		t.Errorf("files: %v", files(t, dir))
	}
	for _, k := range keys[1:] {
		if _, err := os.Stat(entryPath(dir, k)); err != nil {
			t.Errorf("entry of %q not at its hashed path: %v", k, err)
		}
	}
	for _, secret := range []string{"secret", "example.onion", "escape"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("logs contain %q:\n%s", secret, logs.String())
		}
	}
	sum := sha256.Sum256([]byte(keys[0]))
	if !strings.Contains(logs.String(), hex.EncodeToString(sum[:])) {
		t.Errorf("logs do not name the discarded entry by hash:\n%s", logs.String())
	}
}

// TestReaderIsFile: Reader returns an *io.LimitedReader over an *os.File,
// the shape net/http sends with sendfile(2).
func TestReaderIsFile(t *testing.T) {
	s := open(t, t.TempDir(), diskstore.Options{})
	put(t, s, "k", metaFor(1, 1000), pattern(1, 1000))
	o, err := s.Open(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	r, err := o.Reader(100, 500)
	if err != nil {
		t.Fatal(err)
	}
	lr, ok := r.(*io.LimitedReader)
	if !ok {
		t.Fatalf("Reader is %T, want *io.LimitedReader", r)
	}
	if _, ok := lr.R.(*os.File); !ok || lr.N != 500 {
		t.Fatalf("LimitedReader over %T, N %d", lr.R, lr.N)
	}
	b, _ := io.ReadAll(r)
	if !bytes.Equal(b, pattern(1, 1000)[100:600]) {
		t.Fatal("Reader contents differ")
	}
}

// TestCommitFailure: when the entry cannot be moved into place (here its
// directory path is blocked by a file), Commit returns a wrapped error,
// nothing becomes visible, the temp file is removed and the error counted.
func TestCommitFailure(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, diskstore.Options{})
	key := "blocked"
	p := entryPath(dir, key)
	if err := os.Remove(filepath.Dir(p)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Dir(p), []byte("in the way"), 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := s.Create(t.Context(), key, metaFor(1, 100))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(pattern(1, 100))
	err = w.Commit(t.Context())
	if err == nil || !strings.HasPrefix(err.Error(), "diskstore: commit: ") {
		t.Fatalf("Commit = %v, want a diskstore: commit error", err)
	}
	w.Close()
	wantNotFound(t, s, key)
	if tmp := leftoverTemp(t, s, dir); len(tmp) != 0 {
		t.Errorf("temp files left: %q", tmp)
	}
	if st := s.Stats(); st.WriteErrors != 1 || st.PendingBytes != 0 || st.Objects != 0 {
		t.Errorf("Stats = %+v", st)
	}
}

// TestCommitAfterClose: a Writer that outlives its Store cannot commit.
func TestCommitAfterClose(t *testing.T) {
	s := open(t, t.TempDir(), diskstore.Options{})
	w, err := s.Create(t.Context(), "k", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	s.Close()
	if err := w.Commit(t.Context()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Commit after Store.Close = %v, want net.ErrClosed", err)
	}
}

func BenchmarkOpenRead(b *testing.B) {
	for _, size := range []int{10 << 10, 2 << 20} {
		b.Run(fmt.Sprint(size>>10, "KB"), func(b *testing.B) {
			s := open(b, b.TempDir(), diskstore.Options{})
			put(b, s, "k", metaFor(1, size), pattern(1, size))
			ctx := context.Background()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				o, err := s.Open(ctx, "k")
				if err != nil {
					b.Fatal(err)
				}
				r, err := o.Reader(0, o.Size())
				if err != nil {
					b.Fatal(err)
				}
				if n, err := io.Copy(io.Discard, r); n != int64(size) || err != nil {
					b.Fatal(n, err)
				}
				o.Close()
			}
		})
	}
}

func BenchmarkCreateCommit(b *testing.B) {
	for _, tc := range []struct {
		name string
		opts diskstore.Options
	}{
		{"10KB_nosync", diskstore.Options{NoSync: true}},
		{"10KB_sync", diskstore.Options{}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			const size = 10 << 10
			s := open(b, b.TempDir(), tc.opts)
			body := pattern(1, size)
			meta := metaFor(1, size)
			ctx := context.Background()
			b.SetBytes(size)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				w, err := s.Create(ctx, fmt.Sprint("k", i%100), meta)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := w.Write(body); err != nil {
					b.Fatal(err)
				}
				if err := w.Commit(ctx); err != nil {
					b.Fatal(err)
				}
				w.Close()
				i++
			}
		})
	}
}

// FuzzKeys: any key (URLs, path traversal, NUL bytes, invalid UTF-8) is
// stored under DIR/objects at its hashed path and read back; keys never
// collide with each other.
func FuzzKeys(f *testing.F) {
	for _, k := range []string{
		"",                         // empty key
		"../../../../etc/passwd",   // path traversal
		"/abs/path",                // absolute path
		"a\x00b",                   // NUL byte
		"\xff\xfe",                 // invalid UTF-8
		"GET https://x.onion/?a=b", // URL with a query
	} {
		f.Add(k)
	}
	dir := f.TempDir()
	s := open(f, dir, diskstore.Options{NoSync: true})
	f.Fuzz(func(t *testing.T, key string) {
		body := []byte(key + "|body")
		put(t, s, key, []byte(key), body)
		o, err := s.Open(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		r, _ := o.Reader(0, o.Size())
		b, _ := io.ReadAll(r)
		if string(o.Meta()) != key || !bytes.Equal(b, body) {
			t.Fatalf("key %q read back meta %q body %q", key, o.Meta(), b)
		}
		if _, err := os.Stat(entryPath(dir, key)); err != nil {
			t.Fatalf("entry of %q not at its hashed path: %v", key, err)
		}
		if err := s.Delete(t.Context(), key); err != nil {
			t.Fatal(err)
		}
	})
}
