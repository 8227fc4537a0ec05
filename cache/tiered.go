package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// DefaultTieredMaxObject is the largest body a [TieredStore] copies to its
// fast store when MaxObject is zero.
const DefaultTieredMaxObject = 64 << 10

// TieredStore is a [Store] that keeps copies of the small objects of a slow
// store (typically the disk store) in a fast one (a [MemoryStore]), so that
// hits on small objects cost no file system calls. Large objects are always
// served from the slow store, where a disk store can send them with
// sendfile(2).
//
// Slow is the store of record: every write, metadata update and delete goes
// to it, and removes the fast copy. An object is copied to Fast when Open
// finds it only in Slow; a copy made while the object was being replaced is
// dropped again, so Fast never serves an object Slow no longer holds under
// that key (it may serve one that Slow has evicted, until Fast evicts it
// too).
//
// Slow must be set; the other fields have defaults. Fields must not be
// changed after first use. A TieredStore is safe for concurrent use.
type TieredStore struct {
	// Slow is the store of record. Required: calls fail without it.
	Slow Store

	// Fast holds copies of small objects. If nil, a MemoryStore with its
	// default bound (64 MiB) is used.
	Fast Store

	// MaxObject is the largest body copied to Fast. If zero,
	// DefaultTieredMaxObject (64 KiB).
	MaxObject int64

	once  sync.Once
	fast  Store
	epoch atomic.Uint64 // incremented by every change to Slow
}

var errNoSlow = errors.New("cache: TieredStore without a Slow store")

func (s *TieredStore) init() {
	s.once.Do(func() {
		s.fast = s.Fast
		if s.fast == nil {
			s.fast = &MemoryStore{}
		}
	})
}

func (s *TieredStore) maxObject() int64 {
	if s.MaxObject > 0 {
		return s.MaxObject
	}
	return DefaultTieredMaxObject
}

// Open implements [Store]: from Fast if it holds a copy, else from Slow
// (copying a small object to Fast).
func (s *TieredStore) Open(ctx context.Context, key string) (Object, error) {
	s.init()
	if s.Slow == nil {
		return nil, errNoSlow
	}
	if o, err := s.fast.Open(ctx, key); err == nil {
		return o, nil
	}
	e0 := s.epoch.Load()
	o, err := s.Slow.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	size := o.Size()
	if size > s.maxObject() {
		return o, nil
	}
	var tags []string
	if to, ok := o.(TaggedObject); ok {
		tags = to.Tags()
	}
	fastTags, tagged := s.fast.(TagStore)
	if len(tags) > 0 && !tagged {
		return o, nil // Fast could not drop the copy by tag (see DeleteTag)
	}
	body := make([]byte, size)
	if n, err := o.ReadAt(body, 0); n != len(body) || (err != nil && err != io.EOF) {
		return o, nil // serve it from Slow; it reports its own errors
	}
	meta := append([]byte(nil), o.Meta()...)
	o.Close()
	var w Writer
	if len(tags) > 0 {
		w, err = fastTags.CreateTagged(ctx, key, meta, tags)
	} else {
		w, err = s.fast.Create(ctx, key, meta)
	}
	if err == nil {
		if _, err = w.Write(body); err == nil {
			err = w.Commit(ctx)
		}
		w.Close()
		if err == nil && s.epoch.Load() != e0 {
			// Slow changed meanwhile: the copy may be of the old object.
			s.fast.Delete(context.WithoutCancel(ctx), key)
		}
	}
	return &bytesObject{meta: meta, body: body, tags: tags}, nil
}

// changed drops the fast copy of key after Slow changed.
func (s *TieredStore) changed(ctx context.Context, key string) {
	s.epoch.Add(1)
	s.fast.Delete(context.WithoutCancel(ctx), key)
}

// Create implements [Store]; the object is written to Slow.
func (s *TieredStore) Create(ctx context.Context, key string, meta []byte) (Writer, error) {
	s.init()
	if s.Slow == nil {
		return nil, errNoSlow
	}
	w, err := s.Slow.Create(ctx, key, meta)
	if err != nil {
		return nil, err
	}
	return &tieredWriter{Writer: w, s: s, key: key}, nil
}

// UpdateMeta implements [Store]: the compare-and-swap runs on Slow (a fast
// copy holds the same meta as the Slow object it was copied from), and the
// fast copy is dropped.
func (s *TieredStore) UpdateMeta(ctx context.Context, key string, prev, meta []byte) error {
	s.init()
	if s.Slow == nil {
		return errNoSlow
	}
	err := s.Slow.UpdateMeta(ctx, key, prev, meta)
	if ctx.Err() == nil {
		s.changed(ctx, key)
	}
	return err
}

// Delete implements [Store].
func (s *TieredStore) Delete(ctx context.Context, key string) error {
	s.init()
	if s.Slow == nil {
		return errNoSlow
	}
	err := s.Slow.Delete(ctx, key)
	if ctx.Err() == nil {
		s.changed(ctx, key)
	}
	return err
}

type tieredWriter struct {
	Writer
	s   *TieredStore
	key string
}

func (w *tieredWriter) Commit(ctx context.Context) error {
	err := w.Writer.Commit(ctx)
	if err == nil {
		w.s.changed(ctx, w.key)
	}
	return err
}

// bytesObject is an Object over bytes already in memory.
type bytesObject struct {
	meta   []byte
	body   []byte
	tags   []string
	closed atomic.Bool
	rd     bytes.Reader // the last reader returned (Reader may invalidate earlier ones)
}

func (o *bytesObject) Meta() []byte   { return o.meta }
func (o *bytesObject) Tags() []string { return o.tags }
func (o *bytesObject) Size() int64    { return int64(len(o.body)) }

func (o *bytesObject) ReadAt(p []byte, off int64) (int, error) {
	if o.closed.Load() {
		return 0, fmt.Errorf("cache: %w", net.ErrClosed)
	}
	if off < 0 {
		return 0, errors.New("cache: negative offset")
	}
	if off >= int64(len(o.body)) {
		return 0, io.EOF
	}
	n := copy(p, o.body[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (o *bytesObject) Reader(off, n int64) (io.Reader, error) {
	if o.closed.Load() {
		return nil, fmt.Errorf("cache: %w", net.ErrClosed)
	}
	if off < 0 || n < 0 || off > int64(len(o.body)) || n > int64(len(o.body))-off {
		return nil, fmt.Errorf("cache: range %d+%d outside body of %d bytes", off, n, len(o.body))
	}
	o.rd.Reset(o.body[off : off+n])
	return &o.rd, nil
}

func (o *bytesObject) Close() error {
	if o.closed.Swap(true) {
		return fmt.Errorf("cache: %w", net.ErrClosed)
	}
	return nil
}
