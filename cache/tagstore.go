package cache

import (
	"context"
	"fmt"
	"slices"
)

// normalTags returns tags without empty strings and duplicates, in a new
// slice (nil if none), so that a store never keeps the caller's slice.
func normalTags(tags []string) []string {
	var out []string
	for _, t := range tags {
		if t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// CreateTagged implements [TagStore].
func (s *MemoryStore) CreateTagged(ctx context.Context, key string, meta []byte, tags []string) (Writer, error) {
	return s.create(ctx, key, meta, normalTags(tags))
}

// DeleteTag implements [TagStore].
func (s *MemoryStore) DeleteTag(ctx context.Context, tag string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("cache: delete tag: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for key := range s.tagged[tag] {
		if e, ok := s.items.Peek(key); ok {
			s.removeLocked(e) // unindexes e (and may empty the set: ranging over it stays safe)
			n++
		}
	}
	return n, nil
}

// indexLocked adds e's tags to the index.
func (s *MemoryStore) indexLocked(e *memEntry) {
	if len(e.tags) == 0 {
		return
	}
	if s.tagged == nil {
		s.tagged = make(map[string]map[string]struct{})
	}
	for _, t := range e.tags {
		keys := s.tagged[t]
		if keys == nil {
			keys = make(map[string]struct{})
			s.tagged[t] = keys
		}
		keys[e.key] = struct{}{}
	}
}

// unindexLocked removes e's tags from the index, dropping empty sets.
func (s *MemoryStore) unindexLocked(e *memEntry) {
	for _, t := range e.tags {
		if keys := s.tagged[t]; keys != nil {
			delete(keys, e.key)
			if len(keys) == 0 {
				delete(s.tagged, t)
			}
		}
	}
}

// tagIndexLen returns the number of tags and of (tag, key) pairs in the
// index (tests: no orphans).
func (s *MemoryStore) tagIndexLen() (tags, pairs int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, keys := range s.tagged {
		pairs += len(keys)
	}
	return len(s.tagged), pairs
}

// CreateTagged implements [TagStore]: the object is written to Slow with
// its tags if Slow is a TagStore (else without them; DeleteTag then
// reports ErrNoTagIndex).
func (s *TieredStore) CreateTagged(ctx context.Context, key string, meta []byte, tags []string) (Writer, error) {
	s.init()
	if s.Slow == nil {
		return nil, errNoSlow
	}
	ts, ok := s.Slow.(TagStore)
	if !ok {
		return s.Create(ctx, key, meta)
	}
	w, err := ts.CreateTagged(ctx, key, meta, tags)
	if err != nil {
		return nil, err
	}
	return &tieredWriter{Writer: w, s: s, key: key}, nil
}

// DeleteTag implements [TagStore]: it removes the tagged objects from Slow
// and their copies from Fast. A tagged object is copied to Fast only if
// Fast is a TagStore too (a MemoryStore is).
func (s *TieredStore) DeleteTag(ctx context.Context, tag string) (int, error) {
	s.init()
	if s.Slow == nil {
		return 0, errNoSlow
	}
	ts, ok := s.Slow.(TagStore)
	if !ok {
		return 0, fmt.Errorf("cache: tiered store: %w", ErrNoTagIndex)
	}
	n, err := ts.DeleteTag(ctx, tag)
	// A copy to Fast in progress checks the epoch after its commit (see
	// Open): bumped before Fast's copies go, it drops any copy this
	// DeleteTag would miss.
	s.epoch.Add(1)
	if fs, ok := s.fast.(TagStore); ok {
		if _, ferr := fs.DeleteTag(context.WithoutCancel(ctx), tag); ferr != nil && err == nil {
			err = ferr
		}
	}
	return n, err
}
