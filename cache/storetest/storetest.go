package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/onioncdn/onioncdn/cache"
)

// Run runs the conformance suite against the stores made by newStore, which
// is called once per subtest and must return an empty store that can hold
// at least 32 MiB (objects plus writes in progress) without evicting. The
// constructor should register any cleanup with t.Cleanup.
//
// Beyond the letter of the [cache.Store] contract, Run requires what every
// store in this module does:
//   - context errors are wrapped: errors.Is(err, context.Canceled) holds
//     when a call is made with a cancelled context, and the call has no
//     effect;
//   - a ReadAt that returns fewer bytes than asked returns a non-nil error
//     (io.EOF at the end of the bytes available), as io.ReaderAt requires;
//   - a second Close of an Object or a Writer returns an error wrapping
//     net.ErrClosed; ReadAt after Close returns an error;
//   - Write after Commit or Abort, and Commit after Abort or a second
//     Commit, return errors; Abort after Commit is a no-op;
//   - the store copies the meta slices and written buffers it is given.
//
// A store that implements [cache.TagStore] also runs the tag index tests:
// DeleteTag removes exactly the committed objects carrying a tag, objects
// leave the index when replaced (by a tagged or untagged object), deleted
// or updated, uncommitted and aborted writers are never indexed, opened
// objects implement [cache.TaggedObject] and stay readable after
// DeleteTag, tags are copied and read back intact (hostile ones included),
// and concurrent creates, deletes and DeleteTags leave the index in
// agreement with the stored objects. Eviction is the store's own to test:
// an evicted object must leave the index too.
func Run(t *testing.T, newStore func(t *testing.T) cache.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s cache.Store)
	}{
		{"open_missing", testOpenMissing},
		{"round_trip", testRoundTrip},
		{"reader_edges", testReaderEdges},
		{"read_at_edges", testReadAtEdges},
		{"invisible_before_commit", testInvisibleBeforeCommit},
		{"abort_keeps_previous", testAbortKeepsPrevious},
		{"close_without_commit_keeps_previous", testCloseWithoutCommit},
		{"writer_states", testWriterStates},
		{"replace", testReplace},
		{"update_meta", testUpdateMeta},
		{"update_meta_stale_prev", testUpdateMetaStalePrev},
		{"delete", testDelete},
		{"object_survives_delete", testObjectSurvivesDelete},
		{"object_survives_replace", testObjectSurvivesReplace},
		{"object_concurrent_read_at", testObjectConcurrentReadAt},
		{"writer_read_while_writing", testReadWhileWriting},
		{"last_commit_wins", testLastCommitWins},
		{"concurrent_creates_same_key", testConcurrentCreates},
		{"context_cancelled", testContextCancelled},
		{"large_body", testLargeBody},
		{"empty_body", testEmptyBody},
		{"copies_inputs", testCopiesInputs},
		{"hostile_keys", testHostileKeys},
		{"many_objects", testManyObjects},
		{"stress", testStress},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newStore(t))
		})
	}
	// Stores with a tag index (cache.TagStore) also run the tag tests.
	if _, ok := newStore(t).(cache.TagStore); ok {
		for _, tt := range tagTests {
			t.Run(tt.name, func(t *testing.T) {
				tt.fn(t, newStore(t).(cache.TagStore))
			})
		}
	}
}

// pattern returns n deterministic bytes that differ for every id and make
// misplaced offsets visible.
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

// metaFor encodes id and body length into a meta blob; u is an update
// counter changed by UpdateMeta.
func metaFor(id, n, u int) []byte { return fmt.Appendf(nil, "id=%d n=%d u=%d", id, n, u) }

func parseMeta(m []byte) (id, n, u int, err error) {
	if _, err := fmt.Sscanf(string(m), "id=%d n=%d u=%d", &id, &n, &u); err != nil {
		return 0, 0, 0, fmt.Errorf("meta %q: %w", m, err)
	}
	return id, n, u, nil
}

// put stores body under key in chunks of at most chunk bytes.
func put(t testing.TB, s cache.Store, key string, meta, body []byte, chunk int) {
	t.Helper()
	if err := putErr(s, key, meta, body, chunk); err != nil {
		t.Fatal(err)
	}
}

// putErr is put for goroutines other than the test's.
func putErr(s cache.Store, key string, meta, body []byte, chunk int) error {
	w, err := s.Create(context.Background(), key, meta)
	if err != nil {
		return fmt.Errorf("Create(%q): %w", key, err)
	}
	defer w.Close()
	if err := writeAllErr(w, body, chunk); err != nil {
		return err
	}
	if err := w.Commit(context.Background()); err != nil {
		return fmt.Errorf("Commit(%q): %w", key, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("Close after Commit(%q): %w", key, err)
	}
	return nil
}

func writeAll(t testing.TB, w io.Writer, body []byte, chunk int) {
	t.Helper()
	if err := writeAllErr(w, body, chunk); err != nil {
		t.Fatal(err)
	}
}

func writeAllErr(w io.Writer, body []byte, chunk int) error {
	if chunk <= 0 {
		chunk = len(body) + 1
	}
	for len(body) > 0 {
		n := min(chunk, len(body))
		m, err := w.Write(body[:n])
		if err != nil || m != n {
			return fmt.Errorf("Write: %d, %v; want %d, nil", m, err, n)
		}
		body = body[n:]
	}
	return nil
}

// get opens key and reads meta and body through Reader(0, Size), checking
// that ReadAt agrees.
func get(t testing.TB, s cache.Store, key string) (meta, body []byte) {
	t.Helper()
	o, err := s.Open(context.Background(), key)
	if err != nil {
		t.Fatalf("Open(%q): %v", key, err)
	}
	defer o.Close()
	return bytes.Clone(o.Meta()), readObject(t, o)
}

func readObject(t testing.TB, o cache.Object) []byte {
	t.Helper()
	r, err := o.Reader(0, o.Size())
	if err != nil {
		t.Fatalf("Reader(0, %d): %v", o.Size(), err)
	}
	body, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	if int64(len(body)) != o.Size() {
		t.Fatalf("Reader gave %d bytes, Size is %d", len(body), o.Size())
	}
	p := make([]byte, len(body))
	n, err := o.ReadAt(p, 0)
	if n != len(p) || (err != nil && err != io.EOF) {
		t.Fatalf("ReadAt(0) = %d, %v; want %d", n, err, len(p))
	}
	if !bytes.Equal(p, body) {
		t.Fatal("ReadAt and Reader disagree")
	}
	return body
}

func wantObject(t testing.TB, s cache.Store, key string, meta, body []byte) {
	t.Helper()
	m, b := get(t, s, key)
	if !bytes.Equal(m, meta) {
		t.Fatalf("meta of %q = %q, want %q", key, m, meta)
	}
	if !bytes.Equal(b, body) {
		t.Fatalf("body of %q: got %d bytes, want %d (or contents differ)", key, len(b), len(body))
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

func testOpenMissing(t *testing.T, s cache.Store) {
	ctx := t.Context()
	wantNotFound(t, s, "missing")
	for _, prev := range [][]byte{nil, []byte("m")} {
		if err := s.UpdateMeta(ctx, "missing", prev, []byte("m")); !errors.Is(err, cache.ErrNotFound) {
			t.Errorf("UpdateMeta(missing, prev %q) = %v, want ErrNotFound", prev, err)
		}
	}
	if err := s.Delete(ctx, "missing"); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("Delete(missing) = %v, want ErrNotFound", err)
	}
	// UpdateMeta on a missing key must not create it.
	wantNotFound(t, s, "missing")
}

func testRoundTrip(t *testing.T, s cache.Store) {
	for _, tc := range []struct {
		name  string
		size  int
		chunk int
	}{
		{"one_byte", 1, 0},
		{"small_one_write", 1000, 0},
		{"small_byte_writes", 300, 1},
		{"odd_chunks", 100_003, 4093},
		{"exact_chunks", 65536 * 3, 65536},
	} {
		t.Run(tc.name, func(t *testing.T) {
			meta := metaFor(1, tc.size, 0)
			body := pattern(tc.size, tc.size)
			put(t, s, tc.name, meta, body, tc.chunk)
			o, err := s.Open(t.Context(), tc.name)
			if err != nil {
				t.Fatal(err)
			}
			defer o.Close()
			if o.Size() != int64(tc.size) {
				t.Fatalf("Size = %d, want %d", o.Size(), tc.size)
			}
			if !bytes.Equal(o.Meta(), meta) {
				t.Fatalf("Meta = %q, want %q", o.Meta(), meta)
			}
			if got := readObject(t, o); !bytes.Equal(got, body) {
				t.Fatal("body differs")
			}
			// Read it a second time through a new Reader: Readers are
			// not one-shot.
			if got := readObject(t, o); !bytes.Equal(got, body) {
				t.Fatal("body differs on second read")
			}
		})
	}
}

func testReaderEdges(t *testing.T, s cache.Store) {
	const size = 10_000
	body := pattern(7, size)
	put(t, s, "k", metaFor(7, size, 0), body, 999)
	o, err := s.Open(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	for _, tc := range []struct {
		name   string
		off, n int64
		ok     bool
	}{
		{"whole", 0, size, true},
		{"empty_at_start", 0, 0, true},
		{"empty_at_end", size, 0, true},
		{"last_byte", size - 1, 1, true},
		{"first_byte", 0, 1, true},
		{"middle", 1234, 5678, true},
		{"tail", 4321, size - 4321, true},
		{"negative_offset", -1, 1, false},
		{"negative_length", 0, -1, false},
		{"past_end", 0, size + 1, false},
		{"offset_past_end", size + 1, 0, false},
		{"tail_past_end", size - 10, 11, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := o.Reader(tc.off, tc.n)
			if !tc.ok {
				if err == nil {
					t.Fatalf("Reader(%d, %d) succeeded, want an error", tc.off, tc.n)
				}
				return
			}
			if err != nil {
				t.Fatalf("Reader(%d, %d): %v", tc.off, tc.n, err)
			}
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if want := body[tc.off : tc.off+tc.n]; !bytes.Equal(got, want) {
				t.Fatalf("Reader(%d, %d) gave %d bytes, want %d (or contents differ)", tc.off, tc.n, len(got), len(want))
			}
		})
	}
	// Readers used one after another (as for a multipart range response).
	var all []byte
	for off := int64(0); off < size; off += 1000 {
		r, err := o.Reader(off, 1000)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	if !bytes.Equal(all, body) {
		t.Fatal("sequential Readers do not reassemble the body")
	}
}

func testReadAtEdges(t *testing.T, s cache.Store) {
	const size = 5000
	body := pattern(8, size)
	put(t, s, "k", metaFor(8, size, 0), body, 0)
	o, err := s.Open(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	for _, tc := range []struct {
		name   string
		off    int64
		len    int
		wantN  int
		wantEO bool // n < len: an error (io.EOF) is required
	}{
		{"whole", 0, size, size, false},
		{"past_end", 0, size + 10, size, true},
		{"at_end", size, 10, 0, true},
		{"beyond_end", size + 100, 10, 0, true},
		{"across_end", size - 3, 10, 3, true},
		{"middle", 100, 200, 200, false},
		{"zero_length", 17, 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := make([]byte, tc.len)
			n, err := o.ReadAt(p, tc.off)
			if n != tc.wantN {
				t.Fatalf("ReadAt(len %d, off %d) n = %d, want %d (err %v)", tc.len, tc.off, n, tc.wantN, err)
			}
			if tc.wantEO && err == nil {
				t.Fatalf("ReadAt(len %d, off %d) returned %d bytes and no error", tc.len, tc.off, n)
			}
			if !tc.wantEO && err != nil && err != io.EOF {
				t.Fatalf("ReadAt: %v", err)
			}
			if n > 0 && !bytes.Equal(p[:n], body[tc.off:tc.off+int64(n)]) {
				t.Fatal("ReadAt contents differ")
			}
		})
	}
	if _, err := o.ReadAt(make([]byte, 1), -1); err == nil {
		t.Error("ReadAt at a negative offset succeeded")
	}
}

func testInvisibleBeforeCommit(t *testing.T, s cache.Store) {
	ctx := t.Context()
	w, err := s.Create(ctx, "k", metaFor(1, 100, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	wantNotFound(t, s, "k")
	writeAll(t, w, pattern(1, 100), 10)
	wantNotFound(t, s, "k")
	if err := s.UpdateMeta(ctx, "k", metaFor(1, 100, 0), []byte("x")); !errors.Is(err, cache.ErrNotFound) {
		t.Fatalf("UpdateMeta before Commit = %v, want ErrNotFound", err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// Visible after Commit, before Close.
	wantObject(t, s, "k", metaFor(1, 100, 0), pattern(1, 100))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	wantObject(t, s, "k", metaFor(1, 100, 0), pattern(1, 100))
}

func testAbortKeepsPrevious(t *testing.T, s cache.Store) {
	ctx := t.Context()
	put(t, s, "k", metaFor(1, 500, 0), pattern(1, 500), 0)
	w, err := s.Create(ctx, "k", metaFor(2, 900, 0))
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, w, pattern(2, 900), 100)
	if err := w.Abort(); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	wantObject(t, s, "k", metaFor(1, 500, 0), pattern(1, 500))
	if err := w.Commit(ctx); err == nil {
		t.Fatal("Commit after Abort succeeded")
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("Write after Abort succeeded")
	}
	w.Close()
	wantObject(t, s, "k", metaFor(1, 500, 0), pattern(1, 500))

	// Abort of a new key leaves nothing.
	w, err = s.Create(ctx, "new", metaFor(3, 10, 0))
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, w, pattern(3, 10), 0)
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	wantNotFound(t, s, "new")
}

func testCloseWithoutCommit(t *testing.T, s cache.Store) {
	ctx := t.Context()
	put(t, s, "k", metaFor(1, 500, 0), pattern(1, 500), 0)
	w, err := s.Create(ctx, "k", metaFor(2, 900, 0))
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, w, pattern(2, 900), 100)
	if err := w.Close(); err != nil {
		t.Fatalf("Close without Commit: %v", err)
	}
	wantObject(t, s, "k", metaFor(1, 500, 0), pattern(1, 500))
	if err := w.Commit(ctx); err == nil {
		t.Fatal("Commit after Close succeeded")
	}
	wantObject(t, s, "k", metaFor(1, 500, 0), pattern(1, 500))
}

func testWriterStates(t *testing.T, s cache.Store) {
	ctx := t.Context()
	w, err := s.Create(ctx, "k", metaFor(1, 10, 0))
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, w, pattern(1, 10), 0)
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("more")); err == nil {
		t.Error("Write after Commit succeeded")
	}
	if err := w.Commit(ctx); err == nil {
		t.Error("second Commit succeeded")
	}
	if err := w.Abort(); err != nil {
		t.Errorf("Abort after Commit = %v, want nil (no-op)", err)
	}
	wantObject(t, s, "k", metaFor(1, 10, 0), pattern(1, 10))
	// ReadAt stays valid after Commit until Close.
	p := make([]byte, 10)
	if n, err := w.ReadAt(p, 0); n != 10 || (err != nil && err != io.EOF) || !bytes.Equal(p, pattern(1, 10)) {
		t.Errorf("Writer.ReadAt after Commit = %d, %v", n, err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Writer.Close = %v, want net.ErrClosed", err)
	}
	if _, err := w.ReadAt(p, 0); err == nil {
		t.Error("Writer.ReadAt after Close succeeded")
	}
	wantObject(t, s, "k", metaFor(1, 10, 0), pattern(1, 10))

	o, err := s.Open(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Object.Close = %v, want net.ErrClosed", err)
	}
	if _, err := o.ReadAt(p, 0); err == nil {
		t.Error("Object.ReadAt after Close succeeded")
	}
}

func testReplace(t *testing.T, s cache.Store) {
	put(t, s, "k", metaFor(1, 3000, 0), pattern(1, 3000), 0)
	put(t, s, "k", metaFor(2, 20, 0), pattern(2, 20), 0)
	wantObject(t, s, "k", metaFor(2, 20, 0), pattern(2, 20))
	put(t, s, "k", metaFor(3, 70_000, 0), pattern(3, 70_000), 5000)
	wantObject(t, s, "k", metaFor(3, 70_000, 0), pattern(3, 70_000))
}

func testUpdateMeta(t *testing.T, s cache.Store) {
	ctx := t.Context()
	body := pattern(1, 40_000)
	put(t, s, "k", metaFor(1, len(body), 0), body, 4096)
	put(t, s, "other", metaFor(2, 10, 0), pattern(2, 10), 0)
	before, err := s.Open(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()
	prev := metaFor(1, len(body), 0)
	for _, m := range [][]byte{
		metaFor(1, len(body), 1),
		bytes.Repeat([]byte("longer meta "), 500),
		{},
		metaFor(1, len(body), 2),
		metaFor(1, len(body), 3),
	} {
		// Each update passes the meta of the object as the caller
		// last opened it.
		o, err := s.Open(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(o.Meta(), prev) {
			t.Fatalf("meta before update = %q, want %q", o.Meta(), prev)
		}
		err = s.UpdateMeta(ctx, "k", o.Meta(), m)
		o.Close()
		if err != nil {
			t.Fatalf("UpdateMeta(prev %.20q, meta %.20q): %v", prev, m, err)
		}
		wantObject(t, s, "k", m, body)
		prev = m
	}
	// An object opened before the update keeps its meta and body.
	if !bytes.Equal(before.Meta(), metaFor(1, len(body), 0)) {
		t.Errorf("meta of an Object opened before UpdateMeta changed to %q", before.Meta())
	}
	if got := readObject(t, before); !bytes.Equal(got, body) {
		t.Error("body of an Object opened before UpdateMeta changed")
	}
	wantObject(t, s, "other", metaFor(2, 10, 0), pattern(2, 10))
}

// testUpdateMetaStalePrev: UpdateMeta is a compare-and-swap on the meta.
// With the meta of an object the caller opened before it was replaced,
// updated or deleted, it returns ErrNotFound and changes nothing (this is
// what keeps a 304's merged header off a body that a concurrent fill
// stored meanwhile).
func testUpdateMetaStalePrev(t *testing.T, s cache.Store) {
	ctx := t.Context()
	const n = 30_000
	check := func(err error, what string) {
		t.Helper()
		if !errors.Is(err, cache.ErrNotFound) {
			t.Fatalf("UpdateMeta %s = %v, want an error wrapping ErrNotFound", what, err)
		}
	}

	// Replaced by a new Commit: the replacement has the same body length
	// and a meta of the same length, so only the meta bytes differ.
	put(t, s, "k", metaFor(1, n, 0), pattern(1, n), 4096)
	seen, err := s.Open(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	defer seen.Close()
	put(t, s, "k", metaFor(2, n, 0), pattern(2, n), 4096)
	check(s.UpdateMeta(ctx, "k", seen.Meta(), metaFor(1, n, 1)), "after a replacing Commit")
	wantObject(t, s, "k", metaFor(2, n, 0), pattern(2, n))

	// Replaced by a Commit with a body of another length.
	put(t, s, "k", metaFor(3, 100, 0), pattern(3, 100), 0)
	check(s.UpdateMeta(ctx, "k", metaFor(2, n, 0), metaFor(2, n, 1)), "after a second replacing Commit")
	wantObject(t, s, "k", metaFor(3, 100, 0), pattern(3, 100))

	// Meta changed by another UpdateMeta: only the first of two updates
	// from the same prev succeeds.
	if err := s.UpdateMeta(ctx, "k", metaFor(3, 100, 0), metaFor(3, 100, 1)); err != nil {
		t.Fatalf("UpdateMeta with the current meta: %v", err)
	}
	check(s.UpdateMeta(ctx, "k", metaFor(3, 100, 0), metaFor(3, 100, 2)), "with the meta from before another update")
	wantObject(t, s, "k", metaFor(3, 100, 1), pattern(3, 100))
	check(s.UpdateMeta(ctx, "k", nil, metaFor(3, 100, 3)), "with a nil prev")
	wantObject(t, s, "k", metaFor(3, 100, 1), pattern(3, 100))

	// The object the caller opened is unaffected by all of this.
	if !bytes.Equal(seen.Meta(), metaFor(1, n, 0)) {
		t.Errorf("meta of the Object opened before the replacement changed to %q", seen.Meta())
	}
	if got := readObject(t, seen); !bytes.Equal(got, pattern(1, n)) {
		t.Error("body of the Object opened before the replacement changed")
	}

	// Deleted: the update must not recreate the key.
	put(t, s, "d", metaFor(4, 500, 0), pattern(4, 500), 0)
	if err := s.Delete(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	check(s.UpdateMeta(ctx, "d", metaFor(4, 500, 0), metaFor(4, 500, 1)), "after Delete")
	wantNotFound(t, s, "d")
	wantObject(t, s, "k", metaFor(3, 100, 1), pattern(3, 100))
}

func testDelete(t *testing.T, s cache.Store) {
	ctx := t.Context()
	put(t, s, "a", metaFor(1, 10, 0), pattern(1, 10), 0)
	put(t, s, "b", metaFor(2, 10, 0), pattern(2, 10), 0)
	if err := s.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	wantNotFound(t, s, "a")
	if err := s.Delete(ctx, "a"); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("second Delete = %v, want ErrNotFound", err)
	}
	wantObject(t, s, "b", metaFor(2, 10, 0), pattern(2, 10))
	// A deleted key can be stored again.
	put(t, s, "a", metaFor(3, 10, 0), pattern(3, 10), 0)
	wantObject(t, s, "a", metaFor(3, 10, 0), pattern(3, 10))
}

func testObjectSurvivesDelete(t *testing.T, s cache.Store) {
	ctx := t.Context()
	body := pattern(1, 200_000)
	put(t, s, "k", metaFor(1, len(body), 0), body, 0)
	o, err := s.Open(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if err := s.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	wantNotFound(t, s, "k")
	if got := readObject(t, o); !bytes.Equal(got, body) {
		t.Fatal("deleted object's body changed while open")
	}
	if !bytes.Equal(o.Meta(), metaFor(1, len(body), 0)) {
		t.Fatal("deleted object's meta changed while open")
	}
}

func testObjectSurvivesReplace(t *testing.T, s cache.Store) {
	ctx := t.Context()
	body := pattern(1, 100_000)
	put(t, s, "k", metaFor(1, len(body), 0), body, 0)
	o, err := s.Open(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	// Start a Reader before the replacement and finish it after.
	r, err := o.Reader(0, o.Size())
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 1000)
	if _, err := io.ReadFull(r, head); err != nil {
		t.Fatal(err)
	}
	put(t, s, "k", metaFor(2, 50, 0), pattern(2, 50), 0)
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if got := append(head, rest...); !bytes.Equal(got, body) {
		t.Fatal("body of a replaced object changed while being read")
	}
	if got := readObject(t, o); !bytes.Equal(got, body) {
		t.Fatal("replaced object's body changed while open")
	}
	if !bytes.Equal(o.Meta(), metaFor(1, len(body), 0)) {
		t.Fatal("replaced object's meta changed while open")
	}
	wantObject(t, s, "k", metaFor(2, 50, 0), pattern(2, 50))
}

func testObjectConcurrentReadAt(t *testing.T, s cache.Store) {
	body := pattern(5, 300_000)
	put(t, s, "k", metaFor(5, len(body), 0), body, 0)
	o, err := s.Open(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			p := make([]byte, 8192)
			for range 200 {
				off := rng.Int64N(int64(len(body)))
				n, err := o.ReadAt(p, off)
				want := body[off:min(off+int64(len(p)), int64(len(body)))]
				if n != len(want) || !bytes.Equal(p[:n], want) {
					errs <- fmt.Errorf("ReadAt(off %d) = %d, %v; want %d bytes", off, n, err, len(want))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// testReadWhileWriting follows a writer with ReadAt from two goroutines:
// one told of every completed Write (and so able to demand the bytes), one
// free-running, polling whatever is there.
func testReadWhileWriting(t *testing.T, s cache.Store) {
	ctx := t.Context()
	const total = 1<<20 + 4321
	body := pattern(9, total)
	w, err := s.Create(ctx, "k", metaFor(9, total, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	progress := make(chan int, 1024)
	writerDone := make(chan struct{})
	errs := make(chan error, 2)
	var wg sync.WaitGroup

	// Follower told of progress: everything up to the announced length
	// must be readable, exactly.
	wg.Go(func() {
		got := 0
		p := make([]byte, 64<<10)
		for written := range progress {
			for got < written {
				want := min(written-got, len(p))
				n, err := w.ReadAt(p[:want], int64(got))
				if n != want {
					errs <- fmt.Errorf("announced follower: ReadAt(off %d, len %d) = %d, %v (written %d)", got, want, n, err, written)
					return
				}
				if !bytes.Equal(p[:n], body[got:got+n]) {
					errs <- fmt.Errorf("announced follower: wrong bytes at %d", got)
					return
				}
				got += n
			}
			// Past what was announced, ReadAt may return more (the
			// writer is ahead) but never wrong bytes or more than exist.
			n, err := w.ReadAt(p, int64(got))
			if n > total-got || !bytes.Equal(p[:n], body[got:got+n]) {
				errs <- fmt.Errorf("announced follower: read ahead at %d returned %d wrong bytes", got, n)
				return
			}
			if n < len(p) && err == nil {
				errs <- fmt.Errorf("announced follower: short ReadAt (%d < %d) without error", n, len(p))
				return
			}
		}
		if got != total {
			errs <- fmt.Errorf("announced follower got %d bytes, want %d", got, total)
		}
	})

	// Free-running follower.
	wg.Go(func() {
		got := 0
		p := make([]byte, 10_000)
		for got < total {
			n, err := w.ReadAt(p, int64(got))
			if n > 0 && !bytes.Equal(p[:n], body[got:got+n]) {
				errs <- fmt.Errorf("free follower: wrong bytes at %d", got)
				return
			}
			if n < len(p) && err == nil {
				errs <- fmt.Errorf("free follower: short ReadAt (%d < %d) without error", n, len(p))
				return
			}
			if err != nil && err != io.EOF {
				errs <- fmt.Errorf("free follower: ReadAt: %v", err)
				return
			}
			got += n
			if n == 0 {
				select {
				case <-writerDone:
					// The writer has finished: everything must be there.
					if n, _ := w.ReadAt(p[:min(len(p), total-got)], int64(got)); n == 0 {
						errs <- fmt.Errorf("free follower stuck at %d after the writer finished", got)
						return
					}
				default:
					runtime.Gosched()
				}
			}
		}
	})

	rng := rand.New(rand.NewPCG(9, 9))
	written := 0
	for written < total {
		n := min(1+rng.IntN(40_000), total-written)
		if m, err := w.Write(body[written : written+n]); m != n || err != nil {
			t.Fatalf("Write = %d, %v", m, err)
		}
		written += n
		progress <- written
	}
	close(progress)
	close(writerDone)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, total)
	if n, err := w.ReadAt(p, 0); n != total || (err != nil && err != io.EOF) || !bytes.Equal(p, body) {
		t.Fatalf("ReadAt after Commit = %d, %v", n, err)
	}
	if n, err := w.ReadAt(p[:10], total); n != 0 || err == nil {
		t.Fatalf("ReadAt at the end after Commit = %d, %v; want 0, io.EOF", n, err)
	}
	wantObject(t, s, "k", metaFor(9, total, 0), body)
}

func testLastCommitWins(t *testing.T, s cache.Store) {
	ctx := t.Context()
	for _, order := range []string{"ab", "ba"} {
		t.Run(order, func(t *testing.T) {
			key := "k-" + order
			ws := map[byte]cache.Writer{}
			for i, name := range []byte("ab") {
				w, err := s.Create(ctx, key, metaFor(i, 1000*(i+1), 0))
				if err != nil {
					t.Fatal(err)
				}
				defer w.Close()
				ws[name] = w
			}
			// Interleave the writes.
			for off := 0; off < 2000; off += 500 {
				for i, name := range []byte("ab") {
					b := pattern(i, 1000*(i+1))
					if off < len(b) {
						writeAll(t, ws[name], b[off:min(off+500, len(b))], 0)
					}
				}
			}
			for _, name := range []byte(order) {
				if err := ws[name].Commit(ctx); err != nil {
					t.Fatal(err)
				}
			}
			last := strings.IndexByte("ab", order[1])
			wantObject(t, s, key, metaFor(last, 1000*(last+1), 0), pattern(last, 1000*(last+1)))
		})
	}
}

// checkConsistent opens key (if present) and checks that meta and body
// belong to the same write.
func checkConsistent(t testing.TB, s cache.Store, key string) (id int, found bool) {
	o, err := s.Open(context.Background(), key)
	if errors.Is(err, cache.ErrNotFound) {
		return 0, false
	}
	if err != nil {
		t.Errorf("Open(%q): %v", key, err)
		return 0, false
	}
	defer o.Close()
	id, n, _, err := parseMeta(o.Meta())
	if err != nil {
		t.Error(err)
		return 0, true
	}
	if o.Size() != int64(n) {
		t.Errorf("Open(%q): meta says %d bytes, Size %d: a mix of two writes", key, n, o.Size())
		return id, true
	}
	r, err := o.Reader(0, o.Size())
	if err != nil {
		t.Errorf("Reader: %v", err)
		return id, true
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Errorf("reading %q: %v", key, err)
		return id, true
	}
	if !bytes.Equal(b, pattern(id, n)) {
		t.Errorf("Open(%q): body does not belong to write %d", key, id)
	}
	return id, true
}

func testConcurrentCreates(t *testing.T, s cache.Store) {
	const writers = 8
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				checkConsistent(t, s, "k")
				runtime.Gosched()
			}
		})
	}
	for i := range writers {
		wg.Go(func() {
			n := 1000 + i*37_001
			if err := putErr(s, "k", metaFor(i, n, 0), pattern(i, n), 1000+i*1000); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	id, found := checkConsistent(t, s, "k")
	if !found || id < 0 || id >= writers {
		t.Fatalf("after concurrent creates: found %v, id %d", found, id)
	}
}

func testContextCancelled(t *testing.T, s cache.Store) {
	put(t, s, "k", metaFor(1, 100, 0), pattern(1, 100), 0)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()

	if o, err := s.Open(ctx, "k"); !errors.Is(err, context.Canceled) {
		if err == nil {
			o.Close()
		}
		t.Errorf("Open with a cancelled context = %v, want context.Canceled", err)
	}
	if w, err := s.Create(ctx, "k", metaFor(2, 0, 0)); !errors.Is(err, context.Canceled) {
		if err == nil {
			w.Close()
		}
		t.Errorf("Create with a cancelled context = %v, want context.Canceled", err)
	}
	if err := s.UpdateMeta(ctx, "k", metaFor(1, 100, 0), []byte("changed")); !errors.Is(err, context.Canceled) {
		t.Errorf("UpdateMeta with a cancelled context = %v, want context.Canceled", err)
	}
	if err := s.Delete(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("Delete with a cancelled context = %v, want context.Canceled", err)
	}
	wantObject(t, s, "k", metaFor(1, 100, 0), pattern(1, 100))

	// Commit with a cancelled context fails and leaves the previous object.
	w, err := s.Create(t.Context(), "k", metaFor(3, 50, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	writeAll(t, w, pattern(3, 50), 0)
	if err := w.Commit(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Commit with a cancelled context = %v, want context.Canceled", err)
	}
	wantObject(t, s, "k", metaFor(1, 100, 0), pattern(1, 100))
	w.Close()
	wantObject(t, s, "k", metaFor(1, 100, 0), pattern(1, 100))
}

func testLargeBody(t *testing.T, s cache.Store) {
	const size = 6<<20 + 17
	body := pattern(42, size)
	put(t, s, "big", metaFor(42, size, 0), body, 32<<10)
	o, err := s.Open(t.Context(), "big")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if o.Size() != size {
		t.Fatalf("Size = %d, want %d", o.Size(), size)
	}
	r, err := o.Reader(0, size)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if n, err := io.Copy(h, r); n != size || err != nil {
		t.Fatalf("copied %d, %v", n, err)
	}
	if !bytes.Equal(h.Sum(nil), sha256Sum(body)) {
		t.Fatal("large body differs")
	}
	r, err = o.Reader(3<<20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(b, body[3<<20:4<<20]) {
		t.Fatalf("range of the large body differs (%d bytes, %v)", len(b), err)
	}
}

func sha256Sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

func testEmptyBody(t *testing.T, s cache.Store) {
	ctx := t.Context()
	for _, meta := range [][]byte{nil, metaFor(1, 0, 0)} {
		w, err := s.Create(ctx, "empty", meta)
		if err != nil {
			t.Fatal(err)
		}
		p := make([]byte, 4)
		if n, err := w.ReadAt(p, 0); n != 0 || err == nil {
			t.Errorf("ReadAt of an empty writer = %d, %v; want 0 and an error", n, err)
		}
		if err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		w.Close()
		o, err := s.Open(ctx, "empty")
		if err != nil {
			t.Fatal(err)
		}
		if o.Size() != 0 || len(o.Meta()) != len(meta) || !bytes.Equal(o.Meta(), meta) {
			t.Errorf("empty object: Size %d, Meta %q", o.Size(), o.Meta())
		}
		if n, err := o.ReadAt(p, 0); n != 0 || err == nil {
			t.Errorf("ReadAt of an empty object = %d, %v; want 0 and an error", n, err)
		}
		r, err := o.Reader(0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if b, err := io.ReadAll(r); len(b) != 0 || err != nil {
			t.Errorf("Reader of an empty object gave %d bytes, %v", len(b), err)
		}
		o.Close()
	}
}

func testCopiesInputs(t *testing.T, s cache.Store) {
	ctx := t.Context()
	meta := []byte("original meta")
	w, err := s.Create(ctx, "k", meta)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	copy(meta, "CHANGED")
	buf := []byte("original body")
	if _, err := w.Write(buf); err != nil {
		t.Fatal(err)
	}
	copy(buf, "CHANGED")
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	wantObject(t, s, "k", []byte("original meta"), []byte("original body"))
	upd := []byte("updated meta")
	if err := s.UpdateMeta(ctx, "k", []byte("original meta"), upd); err != nil {
		t.Fatal(err)
	}
	copy(upd, "CHANGED")
	wantObject(t, s, "k", []byte("updated meta"), []byte("original body"))
}

func testHostileKeys(t *testing.T, s cache.Store) {
	keys := []string{
		"",
		".",
		"..",
		"../../../../etc/passwd",
		"/etc/passwd",
		"a/b/c",
		`a\b`,
		"nul\x00byte",
		"GET https://example.onion/a?b=c&d=e#f",
		"GET https://example.onion/a?b=c&d=E#f",
		strings.Repeat("long", 4096),
		"ünïcödé ✓",
		"\xff\xfe invalid utf-8",
	}
	for i, k := range keys {
		put(t, s, k, metaFor(i, 100+i, 0), pattern(i, 100+i), 0)
	}
	for i, k := range keys {
		wantObject(t, s, k, metaFor(i, 100+i, 0), pattern(i, 100+i))
	}
	wantNotFound(t, s, "etc/passwd")
	wantNotFound(t, s, "../../../../etc/passwd/")
}

func testManyObjects(t *testing.T, s cache.Store) {
	const n = 300
	for i := range n {
		put(t, s, fmt.Sprint("obj-", i), metaFor(i, 1000+i, 0), pattern(i, 1000+i), 0)
	}
	for i := range n {
		wantObject(t, s, fmt.Sprint("obj-", i), metaFor(i, 1000+i, 0), pattern(i, 1000+i))
	}
}

// testStress mixes every operation on a few keys from several goroutines;
// every object read must be consistent (meta and body from the same write).
func testStress(t *testing.T, s cache.Store) {
	const (
		goroutines = 6
		iterations = 150
	)
	keys := []string{"s0", "s1", "s2"}
	put(t, s, "u", metaFor(-1, 4000, 0), pattern(-1, 4000), 0)
	var uAttempts, uUpdates atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			ctx := context.Background()
			for i := range iterations {
				key := keys[rng.IntN(len(keys))]
				id := g*iterations + i
				switch rng.IntN(7) {
				case 0, 1:
					n := rng.IntN(50_000)
					w, err := s.Create(ctx, key, metaFor(id, n, 0))
					if err != nil {
						t.Errorf("Create: %v", err)
						return
					}
					b := pattern(id, n)
					if err := writeAllErr(w, b, 1+rng.IntN(9000)); err != nil {
						t.Error(err)
					}
					if rng.IntN(4) == 0 {
						w.Abort()
					} else if err := w.Commit(ctx); err != nil {
						t.Errorf("Commit: %v", err)
					}
					w.Close()
				case 2, 3:
					checkConsistent(t, s, key)
				case 4:
					if err := s.Delete(ctx, key); err != nil && !errors.Is(err, cache.ErrNotFound) {
						t.Errorf("Delete: %v", err)
					}
				case 5:
					// Updates of a key only ever updated, racing
					// readers and each other: with a compare-and-swap,
					// an update fails only because another succeeded.
					if updateSeen(t, s, "u", id, &uUpdates) {
						uAttempts.Add(1)
					}
					checkConsistent(t, s, "u")
				case 6:
					// An update with the id and length of the object
					// opened: if a Commit replaced it meanwhile, the
					// compare-and-swap must fail, or checkConsistent
					// finds the old meta on the new body.
					updateSeen(t, s, key, id, nil)
					checkConsistent(t, s, key)
				}
			}
		})
	}
	wg.Wait()
	for _, k := range keys {
		checkConsistent(t, s, k)
	}
	if _, found := checkConsistent(t, s, "u"); !found {
		t.Error("key u lost")
	}
	if uAttempts.Load() > 0 && uUpdates.Load() == 0 {
		t.Errorf("all %d updates of key u failed", uAttempts.Load())
	}
}

// updateSeen opens key and, if found, updates its meta to the same id and
// length with update counter op+1 (unique to this operation), passing the
// meta it opened as prev. It reports whether it attempted the update, and
// counts successes in ok (if not nil). ErrNotFound (the object changed
// meanwhile) is expected; other errors are reported.
func updateSeen(t testing.TB, s cache.Store, key string, op int, ok *atomic.Int64) bool {
	ctx := context.Background()
	o, err := s.Open(ctx, key)
	if errors.Is(err, cache.ErrNotFound) {
		return false
	}
	if err != nil {
		t.Errorf("Open(%q): %v", key, err)
		return false
	}
	prev := bytes.Clone(o.Meta())
	o.Close()
	id, n, _, err := parseMeta(prev)
	if err != nil {
		t.Error(err)
		return false
	}
	err = s.UpdateMeta(ctx, key, prev, metaFor(id, n, op+1))
	switch {
	case err == nil:
		if ok != nil {
			ok.Add(1)
		}
	case !errors.Is(err, cache.ErrNotFound):
		t.Errorf("UpdateMeta(%q): %v", key, err)
	}
	return true
}
