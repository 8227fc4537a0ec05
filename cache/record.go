package cache

import "time"

// Disposition says how the cache handled one request. The values follow
// RFC 9211 (Cache-Status): a hit, or the reason the request went forward.
type Disposition string

// Dispositions reported in [Record] and in the Cache-Status header.
const (
	Hit         Disposition = "hit"                 // served from a fresh stored object
	HitStale    Disposition = "stale"               // served stale (stale-while-revalidate, stale-if-error, max-stale)
	Revalidated Disposition = "revalidated"         // stored object validated upstream (304) and served
	Collapsed   Disposition = "collapsed"           // joined another request's fill in progress
	Miss        Disposition = "miss"                // fwd=uri-miss: nothing stored
	FwdStale    Disposition = "fwd-stale"           // fwd=stale: stored object stale, refetched in full
	FwdVary     Disposition = "fwd-vary"            // fwd=vary-miss
	FwdRequest  Disposition = "fwd-request"         // fwd=request: request directives (no-cache, no-store…)
	FwdMethod   Disposition = "fwd-method"          // fwd=method: method not cacheable
	Uncacheable Disposition = "uncacheable"         // response could not be stored
	OnlyIfCache Disposition = "only-if-cached-miss" // 504 for only-if-cached
	Error       Disposition = "error"               // upstream or store failed and nothing could be served
	Shed        Disposition = "shed"                // 503: Cache.AdmitMiss refused the upstream work (overload)
)

// Record describes one request handled by a [Cache]. It is passed to the
// cache's OnRecord hook after the last byte was written (or the client went
// away), and logged to the cache's Logger.
type Record struct {
	Method      string
	Path        string // URL path only; the query is omitted unless the cache is told to log it
	Status      int
	Bytes       int64 // body bytes written to the client
	Disposition Disposition
	Prefetch    bool          // the request was a background prefetch, not a client's
	Delivery    time.Duration // request headers received → last byte written
	Upstream    time.Duration // time spent waiting on upstream (0 for hits)
	Err         error         // set when the response was aborted or failed
}
