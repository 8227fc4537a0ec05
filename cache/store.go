package cache

import (
	"context"
	"errors"
	"io"
)

// ErrNotFound is returned by [Store.Open], [Store.UpdateMeta] and
// [Store.Delete] when nothing is stored under the key, and (possibly
// wrapped) by [Store.UpdateMeta] when the object the caller saw is no
// longer there. Test for it with errors.Is.
var ErrNotFound = errors.New("cache: not found")

// Store holds cached objects: an opaque metadata blob (the stored response
// head, encoded by [Cache]) and a body. Keys are arbitrary strings chosen by
// the cache; a Store must not interpret them as paths.
//
// Implementations must be safe for concurrent use. Errors other than
// [ErrNotFound] (a full disk, an I/O error, a corrupt entry that could not be
// discarded) are returned, never swallowed: the cache then serves the request
// uncached and counts the error.
//
// Every Store in this module passes the conformance suite in
// github.com/onioncdn/onioncdn/cache/storetest.
type Store interface {
	// Open returns the object stored under key, or ErrNotFound.
	// An entry that fails validation (truncated, wrong length or checksum)
	// is discarded and reported as ErrNotFound: it is never served.
	// Opening an object marks it as recently used.
	Open(ctx context.Context, key string) (Object, error)

	// Create starts writing a new object under key with the given metadata.
	// Nothing becomes visible to Open until Commit; until then, and for good
	// if Abort is called or the process dies, the previous object under key
	// (if any) stays as it was.
	Create(ctx context.Context, key string, meta []byte) (Writer, error)

	// UpdateMeta replaces the metadata of the object stored under key
	// with meta, without touching its body (used after a 304
	// revalidation). It is a compare-and-swap: the update takes effect
	// only if the object stored under key still has metadata byte-equal
	// (bytes.Equal) to prev. Callers must pass as prev the Meta() of the
	// Object they opened (and revalidated). If nothing is stored under
	// key, or the object was replaced, deleted or its metadata changed
	// since (the object the caller saw is no longer there), UpdateMeta
	// changes nothing and returns an error wrapping ErrNotFound; so does
	// a Commit, UpdateMeta or Delete of the same key that races it and
	// takes effect first.
	//
	// prev works as a version token because the cache's metadata always
	// contains the request and response timestamps of the fill (or
	// revalidation) that wrote it: two fills never write equal metadata,
	// so an object replaced by a new fill never matches the old prev.
	UpdateMeta(ctx context.Context, key string, prev, meta []byte) error

	// Delete removes the object stored under key. Readers that already
	// opened it may finish reading it.
	Delete(ctx context.Context, key string) error
}

// Object is an open stored object. It stays readable until Close, even if
// it is deleted, replaced or evicted meanwhile.
type Object interface {
	// Meta returns the metadata given to Create or UpdateMeta. It is
	// what a caller passes as prev to [Store.UpdateMeta].
	// The caller must not modify the returned slice.
	Meta() []byte
	// Size returns the length of the body in bytes.
	Size() int64
	// ReadAt reads the body; it is safe for concurrent use.
	io.ReaderAt
	// Reader returns a reader of n body bytes starting at off. Readers
	// returned by one Object must not be used concurrently with each other,
	// and a call to Reader may invalidate the readers returned before it
	// (a disk store's readers share one file offset): use them one after
	// another, as for the parts of a multipart range response.
	// A disk store returns an *io.LimitedReader over an *os.File so that
	// net/http can send the body with sendfile(2).
	Reader(off, n int64) (io.Reader, error)
	Close() error
}

// Writer writes the body of a new object. Bytes already written can be read
// back with ReadAt while writing continues: this is how clients that joined
// a fill in progress receive the body as it downloads.
type Writer interface {
	io.Writer
	// ReadAt reads bytes already written. It is safe to call concurrently
	// with Write and with other ReadAt calls. Like any io.ReaderAt it
	// returns io.EOF when it reads fewer than len(p) bytes, here meaning
	// "no more bytes written yet", not "end of body": a follower learns
	// that the body is complete (or aborted) from the fill, not from
	// ReadAt. After Abort or Close, ReadAt returns an error.
	io.ReaderAt
	// Commit makes the object visible to Open, replacing any previous
	// object under the same key, and may evict other objects to keep the
	// store within its size bound. ReadAt stays valid after Commit until
	// Close.
	Commit(ctx context.Context) error
	// Abort discards the object. It is a no-op after Commit.
	Abort() error
	// Close releases the writer. Close without Commit aborts.
	Close() error
}
