package cache

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Tag fields: the response fields that list an object's surrogate keys
// (tags), by which a [Purge] of kind [PurgeTag] selects objects.
const (
	// SurrogateKeyField lists tags separated by spaces (Fastly, Varnish
	// xkey).
	SurrogateKeyField = "Surrogate-Key"
	// CacheTagField lists tags separated by commas (Cloudflare, Akamai).
	CacheTagField = "Cache-Tag"
)

// Bounds on the tags of one response. A response that exceeds them is
// not stored (it is passed through uncached): a tag the index left out
// would make a purge by that tag silently miss the object.
const (
	MaxTags      = 128 // tags per response
	MaxTagLength = 512 // bytes per tag
	maxTagBytes  = 16 << 10
)

// TagStore is a [Store] that indexes its objects by tags (surrogate keys),
// so that a [Cache] can remove every object carrying a tag without
// scanning the store. [MemoryStore], [TieredStore] and
// github.com/onioncdn/onioncdn/cache/diskstore implement it; a Store that
// does not still works: the Cache then applies tag purges when it looks
// objects up (see [Cache.Purge]).
//
// The index follows the objects exactly: an object's tags enter the index
// when its Writer commits, and leave it when the object is replaced,
// deleted, evicted or discarded as invalid, so that the index never holds
// an entry for an object that is gone nor misses one that is stored. A
// store that persists objects (diskstore) persists their tags with them.
//
// Objects opened from a TagStore implement [TaggedObject].
type TagStore interface {
	Store

	// CreateTagged is Create for an object indexed under tags (each
	// non-empty; duplicates count once). Until Commit the object is not
	// in the index; Commit replaces the previous object under key and its
	// tags. UpdateMeta keeps an object's tags.
	CreateTagged(ctx context.Context, key string, meta []byte, tags []string) (Writer, error)

	// DeleteTag removes every committed object indexed under tag and
	// returns how many it removed. Objects opened before stay readable
	// until closed, as with Delete.
	DeleteTag(ctx context.Context, tag string) (int, error)
}

// TaggedObject is an [Object] opened from a [TagStore].
type TaggedObject interface {
	Object
	// Tags returns the tags the object was created with (nil if none).
	// The caller must not modify the returned slice.
	Tags() []string
}

// ErrNoTagIndex is returned (wrapped) by [TagStore.DeleteTag] of a store
// that wraps another without a tag index (a [TieredStore] over a Store
// that is not a TagStore).
var ErrNoTagIndex = errors.New("cache: store has no tag index")

// errTags is wrapped by the errors of parseTags.
var errTags = errors.New("cache: surrogate keys")

// ResponseTags returns the tags (surrogate keys) listed in h's
// Surrogate-Key (separated by spaces) and Cache-Tag (separated by commas)
// fields, without duplicates, in order of appearance. It returns an error
// if they exceed [MaxTags] or [MaxTagLength], or contain control
// characters.
func ResponseTags(h http.Header) ([]string, error) {
	return parseTags(h, true)
}

// parseTags returns the tags of h; lenient skips the bounds and control
// character checks (for heads already stored).
func parseTags(h http.Header, strict bool) ([]string, error) {
	sk, ct := h[SurrogateKeyField], h[CacheTagField]
	if len(sk) == 0 && len(ct) == 0 {
		return nil, nil
	}
	var tags []string
	total := 0
	add := func(t string) error {
		if t == "" {
			return nil
		}
		if strict {
			if len(t) > MaxTagLength {
				return fmt.Errorf("%w: a tag of %d bytes exceeds %d", errTags, len(t), MaxTagLength)
			}
			if i := strings.IndexFunc(t, isTagControl); i >= 0 {
				return fmt.Errorf("%w: control character in a tag", errTags)
			}
		}
		if slices.Contains(tags, t) {
			return nil
		}
		total += len(t)
		if strict && (len(tags) >= MaxTags || total > maxTagBytes) {
			return fmt.Errorf("%w: more than %d tags or %d bytes", errTags, MaxTags, maxTagBytes)
		}
		tags = append(tags, t)
		return nil
	}
	for _, v := range sk {
		for _, t := range strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == '\t' }) {
			if err := add(t); err != nil {
				return nil, err
			}
		}
	}
	for _, v := range ct {
		for t := range strings.SplitSeq(v, ",") {
			if err := add(strings.Trim(t, " \t")); err != nil {
				return nil, err
			}
		}
	}
	return tags, nil
}

func isTagControl(r rune) bool { return r < 0x20 || r == 0x7f }

// validTag reports why tag cannot be a purge's tag, or nil.
func validTag(tag string) error {
	switch {
	case tag == "":
		return errors.New("empty tag")
	case len(tag) > MaxTagLength:
		return fmt.Errorf("tag of %d bytes exceeds %d", len(tag), MaxTagLength)
	case strings.ContainsAny(tag, " \t,"):
		return errors.New("a tag contains no space or comma (they separate tags in Surrogate-Key and Cache-Tag)")
	case strings.IndexFunc(tag, isTagControl) >= 0:
		return errors.New("control character in tag")
	}
	return nil
}

// stripTags removes the tag fields from h (a response to a client).
func stripTags(h http.Header) {
	delete(h, SurrogateKeyField)
	delete(h, CacheTagField)
}

// sameTags reports whether headers a and b list the same tags.
func sameTags(a, b http.Header) bool {
	ta, _ := parseTags(a, false)
	tb, _ := parseTags(b, false)
	return slices.Equal(ta, tb)
}
