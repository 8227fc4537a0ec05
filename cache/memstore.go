package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/onioncdn/onioncdn/internal/lru"
)

// DefaultMemoryMaxBytes is the bound of a [MemoryStore] whose MaxBytes is
// zero.
const DefaultMemoryMaxBytes = 64 << 20

// MemoryStore is a [Store] that keeps objects in memory, bounded by
// MaxBytes and evicting the least recently used objects. It suits tests and
// small deployments; its contents are lost when the process exits.
//
// The zero value is an empty store ready to use. A MemoryStore must not be
// copied after first use. It is safe for concurrent use.
//
// # Size bound
//
// An object counts len(key) + len(meta) + body length bytes; a Writer
// counts the key, its meta and the bytes written so far. At every moment the
// committed objects plus the open Writers count at most MaxBytes: before
// Create, Write or UpdateMeta grows the total, the store evicts least
// recently used objects until the growth fits. If it cannot fit even with
// no object left, the call fails with an error (so no object larger than
// MaxBytes can be stored, and concurrent writes in progress together cannot
// exceed MaxBytes); the Writer then should be aborted. Replacing an object
// briefly counts both the old and the new version, until Commit. Objects
// evicted, replaced or deleted while open stay in memory, uncounted, until
// their last [Object] is closed. Map and list overhead (about 200 bytes per
// object) is not counted.
type MemoryStore struct {
	// MaxBytes bounds the bytes stored (see "Size bound" above).
	// If zero, DefaultMemoryMaxBytes (64 MiB) is used. A negative value
	// makes every Create fail. It must not be changed after first use.
	MaxBytes int64

	mu        sync.Mutex
	items     lru.List[string, *memEntry] // most recently used first
	used      int64                       // committed objects + pending
	pending   int64                       // bytes counted for open Writers
	evictions uint64
	tagged    map[string]map[string]struct{} // tag → keys of committed objects (see TagStore)
}

// MemoryStoreStats is a snapshot of a [MemoryStore]'s counters.
type MemoryStoreStats struct {
	Objects      int64  // committed objects
	Bytes        int64  // bytes counted for committed objects
	PendingBytes int64  // bytes counted for open Writers
	Evictions    uint64 // objects evicted to stay within MaxBytes
}

// Stats returns a snapshot of the store's counters.
func (s *MemoryStore) Stats() MemoryStoreStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return MemoryStoreStats{
		Objects:      int64(s.items.Len()),
		Bytes:        s.used - s.pending,
		PendingBytes: s.pending,
		Evictions:    s.evictions,
	}
}

type memEntry struct {
	key  string
	meta []byte
	body *memBuf
	size int64
	tags []string
}

func (s *MemoryStore) maxBytes() int64 {
	if s.MaxBytes == 0 {
		return DefaultMemoryMaxBytes
	}
	return s.MaxBytes
}

// reserveLocked counts n more bytes, evicting least recently used objects
// other than keep until they fit. It reports whether they fit.
func (s *MemoryStore) reserveLocked(n int64, keep *memEntry) bool {
	limit := s.maxBytes()
	for s.used+n > limit {
		var victim *memEntry
		for _, e := range s.items.Backward() {
			if e != keep {
				victim = e
				break
			}
		}
		if victim == nil {
			return false
		}
		s.removeLocked(victim)
		s.evictions++
	}
	s.used += n
	return true
}

func (s *MemoryStore) removeLocked(e *memEntry) {
	s.items.Remove(e.key)
	s.used -= e.size
	s.unindexLocked(e)
}

// errChanged is UpdateMeta's error when the object under the key is no
// longer the one whose meta the caller passed as prev.
var errChanged = fmt.Errorf("cache: update meta: object replaced or changed meanwhile: %w", ErrNotFound)

func errFull(n, limit int64) error {
	return fmt.Errorf("cache: memory store full: %d more bytes do not fit in MaxBytes %d", n, limit)
}

// Open implements [Store].
func (s *MemoryStore) Open(ctx context.Context, key string) (Object, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("cache: open: %w", err)
	}
	s.mu.Lock()
	e, ok := s.items.Get(key)
	if !ok {
		s.mu.Unlock()
		return nil, ErrNotFound
	}
	o := &memObject{meta: e.meta, body: e.body, tags: e.tags}
	s.mu.Unlock()
	return o, nil
}

// Create implements [Store].
func (s *MemoryStore) Create(ctx context.Context, key string, meta []byte) (Writer, error) {
	return s.create(ctx, key, meta, nil)
}

func (s *MemoryStore) create(ctx context.Context, key string, meta []byte, tags []string) (Writer, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("cache: create: %w", err)
	}
	if s.MaxBytes < 0 {
		return nil, errors.New("cache: MemoryStore.MaxBytes is negative")
	}
	n := int64(len(key) + len(meta))
	s.mu.Lock()
	ok := s.reserveLocked(n, nil)
	if ok {
		s.pending += n
	}
	s.mu.Unlock()
	if !ok {
		return nil, errFull(n, s.maxBytes())
	}
	return &memWriter{
		s:        s,
		key:      key,
		meta:     append([]byte(nil), meta...),
		buf:      new(memBuf),
		reserved: n,
		tags:     tags,
	}, nil
}

// UpdateMeta implements [Store]. The comparison with prev and the update
// happen under the store's lock.
func (s *MemoryStore) UpdateMeta(ctx context.Context, key string, prev, meta []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("cache: update meta: %w", err)
	}
	meta = append([]byte(nil), meta...)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.items.Get(key)
	if !ok {
		return ErrNotFound
	}
	if !bytes.Equal(e.meta, prev) {
		return errChanged
	}
	delta := int64(len(meta) - len(e.meta))
	if delta > 0 && !s.reserveLocked(delta, e) {
		return errFull(delta, s.maxBytes())
	} else if delta <= 0 {
		s.used += delta
	}
	e.meta = meta
	e.size += delta
	return nil
}

// Delete implements [Store].
func (s *MemoryStore) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("cache: delete: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.items.Peek(key)
	if !ok {
		return ErrNotFound
	}
	s.removeLocked(e)
	return nil
}

// Writer states.
const (
	wOpen int32 = iota
	wCommitted
	wAborted
)

type memWriter struct {
	s    *MemoryStore
	key  string
	meta []byte
	buf  *memBuf
	tags []string

	mu       sync.Mutex // serialises Write, Commit, Abort, Close
	state    atomic.Int32
	closed   atomic.Bool
	reserved int64
}

var errWriterDone = errors.New("cache: writer already committed or aborted")

func (w *memWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed.Load() || w.state.Load() != wOpen {
		return 0, errWriterDone
	}
	if len(p) == 0 {
		return 0, nil
	}
	n := int64(len(p))
	s := w.s
	s.mu.Lock()
	ok := s.reserveLocked(n, nil)
	if ok {
		s.pending += n
		w.reserved += n
	}
	s.mu.Unlock()
	if !ok {
		return 0, errFull(n, s.maxBytes())
	}
	w.buf.write(p)
	return len(p), nil
}

func (w *memWriter) ReadAt(p []byte, off int64) (int, error) {
	if w.closed.Load() {
		return 0, fmt.Errorf("cache: %w", net.ErrClosed)
	}
	if w.state.Load() == wAborted {
		return 0, errors.New("cache: writer aborted")
	}
	return w.buf.readAt(p, off)
}

func (w *memWriter) Commit(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed.Load() || w.state.Load() != wOpen {
		return errWriterDone
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("cache: commit: %w", err)
	}
	body := w.buf.compacted()
	s := w.s
	s.mu.Lock()
	if old, ok := s.items.Peek(w.key); ok {
		s.removeLocked(old)
	}
	e := &memEntry{key: w.key, meta: w.meta, body: body, size: w.reserved, tags: w.tags}
	s.items.Put(w.key, e)
	s.indexLocked(e)
	s.pending -= w.reserved
	w.reserved = 0
	s.mu.Unlock()
	w.state.Store(wCommitted)
	return nil
}

func (w *memWriter) Abort() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.abortLocked()
	return nil
}

func (w *memWriter) abortLocked() {
	if w.state.Load() != wOpen {
		return
	}
	w.state.Store(wAborted)
	s := w.s
	s.mu.Lock()
	s.used -= w.reserved
	s.pending -= w.reserved
	s.mu.Unlock()
	w.reserved = 0
}

func (w *memWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed.Load() {
		return fmt.Errorf("cache: %w", net.ErrClosed)
	}
	w.abortLocked()
	w.closed.Store(true)
	return nil
}

type memObject struct {
	meta   []byte
	tags   []string
	body   *memBuf
	closed atomic.Bool
	rd     memReader // the last reader returned (Reader may invalidate earlier ones)
}

func (o *memObject) Meta() []byte   { return o.meta }
func (o *memObject) Tags() []string { return o.tags }
func (o *memObject) Size() int64    { return o.body.size() }

func (o *memObject) ReadAt(p []byte, off int64) (int, error) {
	if o.closed.Load() {
		return 0, fmt.Errorf("cache: %w", net.ErrClosed)
	}
	return o.body.readAt(p, off)
}

func (o *memObject) Reader(off, n int64) (io.Reader, error) {
	if o.closed.Load() {
		return nil, fmt.Errorf("cache: %w", net.ErrClosed)
	}
	size := o.body.size()
	if off < 0 || n < 0 || off > size || n > size-off {
		return nil, fmt.Errorf("cache: range %d+%d outside body of %d bytes", off, n, size)
	}
	o.rd = memReader{b: o.body, off: off, end: off + n}
	return &o.rd, nil
}

func (o *memObject) Close() error {
	if o.closed.Swap(true) {
		return fmt.Errorf("cache: %w", net.ErrClosed)
	}
	return nil
}

// memReader reads body bytes [off, end) of a committed (immutable) memBuf.
type memReader struct {
	b        *memBuf
	off, end int64
}

func (r *memReader) Read(p []byte) (int, error) {
	if r.off >= r.end {
		return 0, io.EOF
	}
	if int64(len(p)) > r.end-r.off {
		p = p[:r.end-r.off]
	}
	n, err := r.b.readAt(p, r.off)
	r.off += int64(n)
	if err == io.EOF && r.off < r.end {
		err = io.ErrUnexpectedEOF
	} else if err == io.EOF {
		err = nil
	}
	return n, err
}

// WriteTo writes the remaining bytes straight from the chunks, without an
// intermediate buffer.
func (r *memReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for r.off < r.end {
		c := r.b.chunkAt(r.off, r.end)
		if len(c) == 0 {
			return total, io.ErrUnexpectedEOF
		}
		n, err := w.Write(c)
		total += int64(n)
		r.off += int64(n)
		if err != nil {
			return total, err
		}
		if n < len(c) {
			return total, io.ErrShortWrite
		}
	}
	return total, nil
}

// memBuf is an append-only byte buffer made of chunks, so that appending
// never moves bytes already written and readers can follow a writer.
type memBuf struct {
	mu     sync.RWMutex
	chunks [][]byte
	starts []int64 // offset of each chunk's first byte
	n      int64
}

const (
	memMinChunk = 512
	memMaxChunk = 256 << 10
)

func (b *memBuf) write(p []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(p) > 0 {
		last := len(b.chunks) - 1
		if last < 0 || len(b.chunks[last]) == cap(b.chunks[last]) {
			// Grow geometrically: the new chunk is as large as the
			// buffer so far (or as the write), within bounds.
			c := max(b.n, int64(len(p)))
			c = min(max(c, memMinChunk), memMaxChunk)
			b.chunks = append(b.chunks, make([]byte, 0, c))
			b.starts = append(b.starts, b.n)
			last++
		}
		c := b.chunks[last]
		k := min(cap(c)-len(c), len(p))
		b.chunks[last] = append(c, p[:k]...)
		b.n += int64(k)
		p = p[k:]
	}
}

func (b *memBuf) size() int64 {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.n
}

func (b *memBuf) readAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("cache: negative offset")
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if off >= b.n {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	i := sort.Search(len(b.starts), func(i int) bool { return b.starts[i] > off }) - 1
	n := 0
	for n < len(p) && i < len(b.chunks) {
		c := b.chunks[i][off-b.starts[i]:]
		k := copy(p[n:], c)
		n += k
		off += int64(k)
		i++
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// chunkAt returns the bytes from off up to end or the end of off's chunk.
func (b *memBuf) chunkAt(off, end int64) []byte {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if off >= b.n {
		return nil
	}
	i := sort.Search(len(b.starts), func(i int) bool { return b.starts[i] > off }) - 1
	c := b.chunks[i][off-b.starts[i]:]
	if int64(len(c)) > end-off {
		c = c[:end-off]
	}
	return c
}

// compacted returns b, or a copy in one exactly sized chunk when that saves
// memory for a small body. b must no longer be written.
func (b *memBuf) compacted() *memBuf {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.n > memMaxChunk || len(b.chunks) == 0 ||
		(len(b.chunks) == 1 && len(b.chunks[0]) == cap(b.chunks[0])) {
		return b
	}
	c := make([]byte, 0, b.n)
	for _, ch := range b.chunks {
		c = append(c, ch...)
	}
	return &memBuf{chunks: [][]byte{c}, starts: []int64{0}, n: b.n}
}
