package diskstore

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/onioncdn/onioncdn/cache"
)

// flagTags marks an entry file whose meta region starts with tags.
const flagTags = 1

// Bounds on the tags of one entry, checked on write and on read.
const (
	maxTags     = 1024
	maxTagsSize = 64 << 10
)

// encodeRegion returns the meta region of an entry with tags and meta,
// and its header flags: without tags, meta itself; with tags, uvarint
// (size of the tag list) then each tag as uvarint (length) and bytes, then
// meta.
func encodeRegion(tags []string, meta []byte) (uint16, []byte, error) {
	if len(tags) == 0 {
		return 0, meta, nil
	}
	if len(tags) > maxTags {
		return 0, nil, fmt.Errorf("%d tags exceed %d", len(tags), maxTags)
	}
	n := 0
	for _, t := range tags {
		n += binary.MaxVarintLen64 + len(t)
	}
	list := make([]byte, 0, n)
	for _, t := range tags {
		list = binary.AppendUvarint(list, uint64(len(t)))
		list = append(list, t...)
	}
	if len(list) > maxTagsSize {
		return 0, nil, fmt.Errorf("tags of %d bytes exceed %d", len(list), maxTagsSize)
	}
	b := make([]byte, 0, binary.MaxVarintLen64+len(list)+len(meta))
	b = binary.AppendUvarint(b, uint64(len(list)))
	b = append(b, list...)
	return flagTags, append(b, meta...), nil
}

// splitRegion parses a meta region written by encodeRegion. It never
// panics on damaged input (a corruptError).
func splitRegion(region []byte, flags uint16) (tags []string, meta []byte, err error) {
	if flags&flagTags == 0 {
		return nil, region, nil
	}
	size, k := binary.Uvarint(region)
	if k <= 0 || size > maxTagsSize || size > uint64(len(region)-k) {
		return nil, nil, corrupt("bad tag list")
	}
	list, meta := region[k:k+int(size)], region[k+int(size):]
	for len(list) > 0 {
		l, k := binary.Uvarint(list)
		if k <= 0 || l > uint64(len(list)-k) || len(tags) >= maxTags {
			return nil, nil, corrupt("bad tag list")
		}
		tags = append(tags, string(list[k:k+int(l)]))
		list = list[k+int(l):]
	}
	return tags, meta, nil
}

// normalTags returns tags without empty strings and duplicates, in a new
// slice (nil if none).
func normalTags(tags []string) []string {
	var out []string
	for _, t := range tags {
		if t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// CreateTagged implements [cache.TagStore]: the tags are written in the
// entry file, so that Open rebuilds the index after a restart.
func (s *Store) CreateTagged(ctx context.Context, key string, meta []byte, tags []string) (cache.Writer, error) {
	return s.create(ctx, key, meta, normalTags(tags))
}

// DeleteTag implements [cache.TagStore].
func (s *Store) DeleteTag(ctx context.Context, tag string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("diskstore: delete tag: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, errClosed()
	}
	var errs []error
	n := 0
	for _, e := range s.tagged[tag] {
		if err := s.removeLocked(e); err != nil {
			errs = append(errs, err)
		}
		n++
	}
	if len(errs) > 0 {
		return n, fmt.Errorf("diskstore: delete tag: %w", errs[0])
	}
	return n, nil
}

// indexLocked adds e to the tag index.
func (s *Store) indexLocked(e *entry) {
	if len(e.tags) == 0 {
		return
	}
	if s.tagged == nil {
		s.tagged = make(map[string]map[[32]byte]*entry)
	}
	for _, t := range e.tags {
		es := s.tagged[t]
		if es == nil {
			es = make(map[[32]byte]*entry)
			s.tagged[t] = es
		}
		es[e.sum] = e
	}
}

// unindexLocked removes e from the tag index.
func (s *Store) unindexLocked(e *entry) {
	for _, t := range e.tags {
		if es := s.tagged[t]; es != nil && es[e.sum] == e {
			delete(es, e.sum)
			if len(es) == 0 {
				delete(s.tagged, t)
			}
		}
	}
}
