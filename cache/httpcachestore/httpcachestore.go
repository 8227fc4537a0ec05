package httpcachestore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/gregjones/httpcache"
	"github.com/onioncdn/onioncdn/cache"
)

// keyPrefix is prepended to httpcache's keys: a [cache.Cache] key never
// starts with it unless a Partition is named "httpcache" and even then is
// followed by a method name and a space, which httpcache's GET keys (bare
// URLs) never are.
const keyPrefix = "httpcache\x00"

// metaMark is the metadata of every object this package writes; objects
// with other metadata are not httpcache entries and are never returned.
var metaMark = []byte("httpcachestore/1")

var _ httpcache.Cache = (*Cache)(nil)

// Cache is an httpcache.Cache on a [cache.Store]. Its zero value keeps the
// responses in a new [cache.MemoryStore] with its default bound. Its
// exported fields may be changed until the first method call. A Cache is
// safe for concurrent use.
type Cache struct {
	// Store holds the responses. If nil, a new &cache.MemoryStore{} is
	// used.
	Store cache.Store

	// Logger receives store errors at Warn level (keys are not logged).
	// If nil, logs are discarded; errors are counted in Stats either way.
	Logger *slog.Logger

	once                     sync.Once
	store                    cache.Store
	log                      *slog.Logger
	hits, misses, sets, errs atomic.Uint64
}

// Stats counts a [Cache]'s operations.
type Stats struct {
	Hits   uint64 // Get found a response
	Misses uint64 // Get found none (or an error occurred)
	Sets   uint64 // Set stored a response
	Errors uint64 // store errors: the Get missed or the Set stored nothing
}

func (c *Cache) init() {
	c.once.Do(func() {
		c.store = c.Store
		if c.store == nil {
			c.store = &cache.MemoryStore{}
		}
		c.log = c.Logger
		if c.log == nil {
			c.log = slog.New(slog.DiscardHandler)
		}
	})
}

// Stats returns a snapshot of the counters.
func (c *Cache) Stats() Stats {
	return Stats{Hits: c.hits.Load(), Misses: c.misses.Load(), Sets: c.sets.Load(), Errors: c.errs.Load()}
}

func (c *Cache) fail(op string, err error) {
	c.errs.Add(1)
	c.log.Warn("httpcachestore: store error", "op", op, "err", err)
}

// Get returns the response stored under key, as httpcache stored it.
func (c *Cache) Get(key string) (responseBytes []byte, ok bool) {
	c.init()
	ctx := context.Background()
	o, err := c.store.Open(ctx, keyPrefix+key)
	if err != nil {
		if !errors.Is(err, cache.ErrNotFound) {
			c.fail("open", err)
		}
		c.misses.Add(1)
		return nil, false
	}
	defer o.Close()
	if !bytes.Equal(o.Meta(), metaMark) {
		c.misses.Add(1)
		return nil, false
	}
	b := make([]byte, o.Size())
	if n, err := o.ReadAt(b, 0); n != len(b) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		c.fail("read", err)
		c.misses.Add(1)
		return nil, false
	}
	c.hits.Add(1)
	return b, true
}

// Set stores responseBytes under key, replacing what was stored. If the
// store refuses it (too large for its bound, a full disk), nothing is
// stored and the previous response under key, if any, is removed, so that
// a stale one is not served instead.
func (c *Cache) Set(key string, responseBytes []byte) {
	c.init()
	ctx := context.Background()
	k := keyPrefix + key
	w, err := c.store.Create(ctx, k, metaMark)
	if err == nil {
		defer w.Close()
		if _, err = w.Write(responseBytes); err == nil {
			err = w.Commit(ctx)
		}
	}
	if err != nil {
		c.fail("set", err)
		if err := c.store.Delete(ctx, k); err != nil && !errors.Is(err, cache.ErrNotFound) {
			c.fail("delete", err)
		}
		return
	}
	c.sets.Add(1)
}

// Delete removes the response stored under key.
func (c *Cache) Delete(key string) {
	c.init()
	if err := c.store.Delete(context.Background(), keyPrefix+key); err != nil && !errors.Is(err, cache.ErrNotFound) {
		c.fail("delete", err)
	}
}
