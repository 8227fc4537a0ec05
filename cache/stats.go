package cache

import "sync/atomic"

// Stats is a snapshot of a [Cache]'s counters since it was created.
// Every request is counted in exactly one of Hits, Misses, Collapsed,
// Revalidated, StaleServed, Uncacheable and Passed (unless it failed before
// a response started, then only in Errors).
type Stats struct {
	Hits        uint64 // served fresh from the store
	Misses      uint64 // fetched upstream by this request's fill (leader), stored
	Collapsed   uint64 // joined another request's fill instead of going upstream
	Revalidated uint64 // stored response validated upstream (304) and served
	StaleServed uint64 // served stale (stale-while-revalidate, stale-if-error, max-stale)
	Uncacheable uint64 // fetched upstream, response not storable
	Passed      uint64 // sent upstream without looking at the store (method, Authorization, no-store)
	Prefetched  uint64 // Prefetch calls that started or joined a fill

	BytesServed  uint64 // body bytes written to clients
	BytesFetched uint64 // body bytes of upstream responses written to the store
	Errors       uint64 // upstream failures, aborted responses, store errors
	Invalidated  uint64 // stored entries removed by unsafe methods

	Purges        uint64 // purges applied (Cache.Purge)
	PurgedObjects uint64 // objects removed by purges: at once, at lookup, or fills not stored
	PurgeStale    uint64 // lookups that found an object made stale by a soft purge
	PurgeRules    int    // purge rules in force (a gauge)
}

// HitRatio returns the share of the requests counted between prev (an
// earlier snapshot of the same Cache) and s that the cache answered
// without an upstream fetch of their own: hits, stale hits and collapsed
// requests, over those plus misses and revalidations. Requests that could
// not be cached (Uncacheable, Passed) are left out. It is 0 if there were
// none. It is the hit ratio an edge reports to a router (route.Load).
func (s Stats) HitRatio(prev Stats) float64 {
	served := (s.Hits - prev.Hits) + (s.StaleServed - prev.StaleServed) + (s.Collapsed - prev.Collapsed)
	fetched := (s.Misses - prev.Misses) + (s.Revalidated - prev.Revalidated)
	if served+fetched == 0 {
		return 0
	}
	return float64(served) / float64(served+fetched)
}

type counters struct {
	hits, misses, collapsed, revalidated, staleServed, uncacheable, passed, prefetched atomic.Uint64
	bytesServed, bytesFetched, errors, invalidated                                     atomic.Uint64
	purges, purgedObjects, purgeStale                                                  atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Hits:         c.hits.Load(),
		Misses:       c.misses.Load(),
		Collapsed:    c.collapsed.Load(),
		Revalidated:  c.revalidated.Load(),
		StaleServed:  c.staleServed.Load(),
		Uncacheable:  c.uncacheable.Load(),
		Passed:       c.passed.Load(),
		Prefetched:   c.prefetched.Load(),
		BytesServed:  c.bytesServed.Load(),
		BytesFetched: c.bytesFetched.Load(),
		Errors:       c.errors.Load(),
		Invalidated:  c.invalidated.Load(),

		Purges:        c.purges.Load(),
		PurgedObjects: c.purgedObjects.Load(),
		PurgeStale:    c.purgeStale.Load(),
	}
}

// count adds one to the counter of disposition d.
func (c *counters) count(d Disposition) {
	switch d {
	case Hit:
		c.hits.Add(1)
	case HitStale:
		c.staleServed.Add(1)
	case Revalidated:
		c.revalidated.Add(1)
	case Collapsed:
		c.collapsed.Add(1)
	case Miss, FwdStale, FwdVary:
		c.misses.Add(1)
	case Uncacheable:
		c.uncacheable.Add(1)
	case FwdRequest, FwdMethod:
		c.passed.Add(1)
	}
}
