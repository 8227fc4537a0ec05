package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/onioncdn/onioncdn/cache"
)

// tagTests are run by Run for stores that implement cache.TagStore.
var tagTests = []struct {
	name string
	fn   func(t *testing.T, s cache.TagStore)
}{
	{"tags_delete_tag", testDeleteTag},
	{"tags_object_tags", testObjectTags},
	{"tags_replace", testTagsReplace},
	{"tags_uncommitted_and_aborted", testTagsUncommitted},
	{"tags_delete_leaves_index", testTagsDelete},
	{"tags_update_meta_keeps_tags", testTagsUpdateMeta},
	{"tags_object_survives_delete_tag", testTagsObjectSurvives},
	{"tags_copies_inputs", testTagsCopiesInputs},
	{"tags_hostile", testTagsHostile},
	{"tags_context_cancelled", testTagsContextCancelled},
	{"tags_concurrent", testTagsConcurrent},
}

// putTagged stores body under key with tags.
func putTagged(t testing.TB, s cache.TagStore, key string, meta, body []byte, tags ...string) {
	t.Helper()
	if err := putTaggedErr(s, key, meta, body, tags...); err != nil {
		t.Fatal(err)
	}
}

func putTaggedErr(s cache.TagStore, key string, meta, body []byte, tags ...string) error {
	w, err := s.CreateTagged(context.Background(), key, meta, tags)
	if err != nil {
		return fmt.Errorf("CreateTagged(%q): %w", key, err)
	}
	defer w.Close()
	if err := writeAllErr(w, body, 0); err != nil {
		return err
	}
	if err := w.Commit(context.Background()); err != nil {
		return fmt.Errorf("Commit(%q): %w", key, err)
	}
	return nil
}

func deleteTag(t testing.TB, s cache.TagStore, tag string, want int) {
	t.Helper()
	n, err := s.DeleteTag(context.Background(), tag)
	if err != nil {
		t.Fatalf("DeleteTag(%q): %v", tag, err)
	}
	if n != want {
		t.Fatalf("DeleteTag(%q) removed %d objects, want %d", tag, n, want)
	}
}

func wantTags(t testing.TB, s cache.Store, key string, want ...string) {
	t.Helper()
	o, err := s.Open(context.Background(), key)
	if err != nil {
		t.Fatalf("Open(%q): %v", key, err)
	}
	defer o.Close()
	to, ok := o.(cache.TaggedObject)
	if !ok {
		t.Fatalf("object %T from a TagStore does not implement cache.TaggedObject", o)
	}
	got := slices.Clone(to.Tags())
	slices.Sort(got)
	want = slices.Clone(want)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("Tags of %q = %q, want %q", key, got, want)
	}
}

func testDeleteTag(t *testing.T, s cache.TagStore) {
	putTagged(t, s, "a", metaFor(1, 10, 0), pattern(1, 10), "t1", "t2")
	putTagged(t, s, "b", metaFor(2, 10, 0), pattern(2, 10), "t2")
	putTagged(t, s, "c", metaFor(3, 10, 0), pattern(3, 10))
	put(t, s, "d", metaFor(4, 10, 0), pattern(4, 10), 0)
	deleteTag(t, s, "t2", 2)
	wantNotFound(t, s, "a")
	wantNotFound(t, s, "b")
	wantObject(t, s, "c", metaFor(3, 10, 0), pattern(3, 10))
	wantObject(t, s, "d", metaFor(4, 10, 0), pattern(4, 10))
	// a left the index with its other tag: nothing left to delete.
	deleteTag(t, s, "t1", 0)
	deleteTag(t, s, "t2", 0)
	deleteTag(t, s, "never-used", 0)
	deleteTag(t, s, "", 0)
}

func testObjectTags(t *testing.T, s cache.TagStore) {
	putTagged(t, s, "k", metaFor(1, 5, 0), pattern(1, 5), "x", "", "y", "x")
	wantTags(t, s, "k", "x", "y")
	putTagged(t, s, "none", metaFor(2, 5, 0), pattern(2, 5))
	wantTags(t, s, "none")
	// Create (untagged) on a TagStore opens TaggedObjects too.
	put(t, s, "plain", metaFor(3, 5, 0), pattern(3, 5), 0)
	wantTags(t, s, "plain")
}

func testTagsReplace(t *testing.T, s cache.TagStore) {
	putTagged(t, s, "k", metaFor(1, 10, 0), pattern(1, 10), "old", "both")
	putTagged(t, s, "k", metaFor(2, 10, 0), pattern(2, 10), "new", "both")
	wantTags(t, s, "k", "new", "both")
	// The replaced object's tag no longer selects the key.
	deleteTag(t, s, "old", 0)
	wantObject(t, s, "k", metaFor(2, 10, 0), pattern(2, 10))
	deleteTag(t, s, "both", 1)
	wantNotFound(t, s, "k")
	deleteTag(t, s, "new", 0)

	// Replaced by an untagged object: the key leaves the index.
	putTagged(t, s, "j", metaFor(3, 10, 0), pattern(3, 10), "gone")
	put(t, s, "j", metaFor(4, 10, 0), pattern(4, 10), 0)
	deleteTag(t, s, "gone", 0)
	wantObject(t, s, "j", metaFor(4, 10, 0), pattern(4, 10))
}

func testTagsUncommitted(t *testing.T, s cache.TagStore) {
	putTagged(t, s, "k", metaFor(1, 10, 0), pattern(1, 10), "committed")
	w, err := s.CreateTagged(t.Context(), "k", metaFor(2, 10, 0), []string{"pending"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	writeAll(t, w, pattern(2, 10), 0)
	// Not committed: not in the index, and the committed object keeps
	// its tags.
	deleteTag(t, s, "pending", 0)
	wantObject(t, s, "k", metaFor(1, 10, 0), pattern(1, 10))
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	deleteTag(t, s, "pending", 0)
	wantTags(t, s, "k", "committed")
	deleteTag(t, s, "committed", 1)

	// A writer committed after a DeleteTag of its tag is indexed then.
	w2, err := s.CreateTagged(t.Context(), "k2", metaFor(3, 10, 0), []string{"late"})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	writeAll(t, w2, pattern(3, 10), 0)
	deleteTag(t, s, "late", 0)
	if err := w2.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	deleteTag(t, s, "late", 1)
}

func testTagsDelete(t *testing.T, s cache.TagStore) {
	putTagged(t, s, "k", metaFor(1, 10, 0), pattern(1, 10), "t")
	if err := s.Delete(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	deleteTag(t, s, "t", 0)
	// A new object under the key with the same tag is found again.
	putTagged(t, s, "k", metaFor(2, 10, 0), pattern(2, 10), "t")
	deleteTag(t, s, "t", 1)
}

func testTagsUpdateMeta(t *testing.T, s cache.TagStore) {
	putTagged(t, s, "k", metaFor(1, 10, 0), pattern(1, 10), "t")
	if err := s.UpdateMeta(t.Context(), "k", metaFor(1, 10, 0), metaFor(1, 10, 1)); err != nil {
		t.Fatal(err)
	}
	wantObject(t, s, "k", metaFor(1, 10, 1), pattern(1, 10))
	wantTags(t, s, "k", "t")
	deleteTag(t, s, "t", 1)
	wantNotFound(t, s, "k")
}

func testTagsObjectSurvives(t *testing.T, s cache.TagStore) {
	body := pattern(7, 100_000)
	putTagged(t, s, "k", metaFor(7, len(body), 0), body, "t")
	o, err := s.Open(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	deleteTag(t, s, "t", 1)
	wantNotFound(t, s, "k")
	if got := readObject(t, o); string(got) != string(body) {
		t.Fatal("an object opened before DeleteTag changed")
	}
}

func testTagsCopiesInputs(t *testing.T, s cache.TagStore) {
	tags := []string{"a", "b"}
	w, err := s.CreateTagged(t.Context(), "k", metaFor(1, 3, 0), tags)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	tags[0] = "changed"
	writeAll(t, w, pattern(1, 3), 0)
	if err := w.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	tags[1] = "changed too"
	wantTags(t, s, "k", "a", "b")
	deleteTag(t, s, "changed", 0)
	deleteTag(t, s, "a", 1)
}

func testTagsHostile(t *testing.T, s cache.TagStore) {
	hostile := []string{"../../etc/passwd", "/abs", "nul\x00byte", "ünïcode", "sp ace", strings.Repeat("x", 512), "\n", "a,b"}
	for i, tag := range hostile {
		putTagged(t, s, fmt.Sprintf("k%d", i), metaFor(i, 4, 0), pattern(i, 4), tag, "common")
	}
	for i, tag := range hostile {
		wantTags(t, s, fmt.Sprintf("k%d", i), tag, "common")
	}
	for i, tag := range hostile {
		deleteTag(t, s, tag, 1)
		wantNotFound(t, s, fmt.Sprintf("k%d", i))
		if i+1 < len(hostile) {
			wantObject(t, s, fmt.Sprintf("k%d", i+1), metaFor(i+1, 4, 0), pattern(i+1, 4))
		}
	}
	deleteTag(t, s, "common", 0)
}

func testTagsContextCancelled(t *testing.T, s cache.TagStore) {
	putTagged(t, s, "k", metaFor(1, 10, 0), pattern(1, 10), "t")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.DeleteTag(ctx, "t"); !errors.Is(err, context.Canceled) {
		t.Errorf("DeleteTag with a cancelled context = %v, want context.Canceled", err)
	}
	if w, err := s.CreateTagged(ctx, "k", metaFor(2, 0, 0), []string{"t"}); !errors.Is(err, context.Canceled) {
		if err == nil {
			w.Close()
		}
		t.Errorf("CreateTagged with a cancelled context = %v, want context.Canceled", err)
	}
	wantObject(t, s, "k", metaFor(1, 10, 0), pattern(1, 10))
	deleteTag(t, s, "t", 1)
}

// testTagsConcurrent races tagged creates, replacements, deletes and
// DeleteTag of shared and per-key tags, then checks that the index agrees
// with the objects left: every stored key is found by its own tag exactly
// once, and no tag selects a key that is gone.
func testTagsConcurrent(t *testing.T, s cache.TagStore) {
	const keys, workers, ops = 16, 4, 150
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range ops {
				k := rng.IntN(keys)
				key := fmt.Sprintf("k%d", k)
				switch rng.IntN(5) {
				case 0, 1:
					tags := []string{fmt.Sprintf("own%d", k), fmt.Sprintf("group%d", k%3)}
					if err := putTaggedErr(s, key, metaFor(k, 64, i), pattern(k, 64), tags...); err != nil {
						errs <- err
						return
					}
				case 2:
					if err := s.Delete(context.Background(), key); err != nil && !errors.Is(err, cache.ErrNotFound) {
						errs <- err
						return
					}
				case 3:
					if _, err := s.DeleteTag(context.Background(), fmt.Sprintf("group%d", rng.IntN(3))); err != nil {
						errs <- err
						return
					}
				case 4:
					if err := putErr(s, key, metaFor(k, 32, i), pattern(k, 32), 0); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for k := range keys {
		key := fmt.Sprintf("k%d", k)
		o, err := s.Open(t.Context(), key)
		tagged := false
		if err == nil {
			tagged = len(o.(cache.TaggedObject).Tags()) > 0
			o.Close()
		} else if !errors.Is(err, cache.ErrNotFound) {
			t.Fatal(err)
		}
		want := 0
		if tagged {
			want = 1
		}
		deleteTag(t, s, fmt.Sprintf("own%d", k), want)
		if tagged {
			wantNotFound(t, s, key)
		}
	}
	for g := range 3 {
		deleteTag(t, s, fmt.Sprintf("group%d", g), 0)
	}
}
