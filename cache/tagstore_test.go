package cache

import (
	"context"
	"fmt"
	"testing"
)

// TestMemoryStoreEvictionLeavesTagIndex: objects evicted to stay within
// MaxBytes leave the tag index (no orphaned entries), and DeleteTag then
// counts only the objects still stored.
func TestMemoryStoreEvictionLeavesTagIndex(t *testing.T) {
	s := &MemoryStore{MaxBytes: 10 << 10}
	ctx := context.Background()
	for i := range 40 {
		w, err := s.CreateTagged(ctx, fmt.Sprintf("k%d", i), []byte("m"), []string{"all", fmt.Sprintf("own%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
	st := s.Stats()
	if st.Evictions == 0 || st.Objects >= 40 {
		t.Fatalf("stats %+v: want evictions", st)
	}
	tags, pairs := s.tagIndexLen()
	if want := 1 + int(st.Objects); tags != want || pairs != 2*int(st.Objects) {
		t.Fatalf("index has %d tags and %d pairs for %d objects, want %d and %d", tags, pairs, st.Objects, want, 2*st.Objects)
	}
	n, err := s.DeleteTag(ctx, "all")
	if err != nil || int64(n) != st.Objects {
		t.Fatalf("DeleteTag(all) = %d, %v; want %d", n, err, st.Objects)
	}
	if tags, pairs := s.tagIndexLen(); tags != 0 || pairs != 0 {
		t.Fatalf("index not empty after removing every object: %d tags, %d pairs", tags, pairs)
	}
}
