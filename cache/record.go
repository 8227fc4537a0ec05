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
	Timing      Timing        // where the time went
	Err         error         // set when the response was aborted or failed
}

// Timing breaks one request's time down, for finding where a slow
// delivery spent it. Every field but the flags and UpstreamBytes is an
// offset from the moment the cache received the request, the start of
// Record.Delivery; a zero offset means the step did not happen for this
// request (a hit has no upstream steps) or is not known. The upstream
// fields describe the fill whose bytes the request read, which, for a
// request that joined a fill started earlier (Joined: by another client or
// by a prefetch), began before the request did: those offsets are then
// negative.
//
// For a request that read a fill from start to end, the legs add up:
// UpstreamStart + ConnWait is when the request went out, UpstreamHeaders
// minus that is the upstream tier's (or origin's) time to respond,
// UpstreamLastByte − UpstreamFirstByte is the body's transfer, and
// FirstByte − UpstreamFirstByte is this tier's own latency in passing
// bytes on.
type Timing struct {
	// Joined is set when the request read a fill another request started
	// (Disposition Collapsed).
	Joined bool

	// ConnReused reports that the fill's upstream request went out on a
	// connection that was open before it asked for one (an idle pooled
	// connection, used before or dialled ahead by a warm pool), and
	// ConnWait how long it waited for its connection: next to nothing for
	// an idle one, a dial (a Tor circuit) otherwise. Both are known only
	// from a Transport that reports httptrace.ClientTrace GetConn and
	// GotConn, as http.Transport and upstream.Transport do.
	ConnReused bool
	ConnWait   time.Duration

	// UpstreamStart is when the fill's request was handed to the
	// Transport, UpstreamHeaders when its response header arrived.
	UpstreamStart   time.Duration
	UpstreamHeaders time.Duration

	// UpstreamFirstByte and UpstreamLastByte are when the fill received
	// its first and last body bytes from upstream; UpstreamLastByte is
	// zero if the fill was not complete when the request ended.
	UpstreamFirstByte time.Duration
	UpstreamLastByte  time.Duration

	// UpstreamBytes is the size of the body the fill received, once
	// complete.
	UpstreamBytes int64

	// FirstByte is when the first body byte was handed to the client (to
	// the ResponseWriter, or by the RoundTrip response body's Read).
	FirstByte time.Duration
}
