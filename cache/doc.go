// Package cache is the shared HTTP cache of every onioncdn tier: an
// RFC 9111 cache that collapses concurrent misses into one upstream request
// and streams the response to every waiting client as it downloads.
//
// # Overview
//
// A [Cache] is both an [http.Handler] (a caching reverse proxy for a tier)
// and an [http.RoundTripper] (a caching client transport). Objects live in a
// [Store]: [MemoryStore] in memory, or the disk store in
// github.com/onioncdn/onioncdn/cache/diskstore. A [Policy] (the HLS policy
// in github.com/onioncdn/onioncdn/hls) can normalise keys and override
// lifetimes.
//
// The cache follows the shared-cache rules of RFC 9111, with RFC 5861
// (stale-while-revalidate, stale-if-error) and RFC 9211 (Cache-Status):
//
//   - only responses a shared cache may store are stored: never no-store or
//     private ones, responses to requests with Authorization only when
//     public, s-maxage or must-revalidate allow it, never Set-Cookie unless
//     [Cache.AllowSetCookie];
//   - freshness from s-maxage, max-age, Expires or a Last-Modified
//     heuristic; the current age goes out in Age on every cached response;
//   - targeted cache control (RFC 9213): CDN-Cache-Control and the tier's
//     own [Cache.TargetedFields] take the place of Cache-Control and
//     Expires for this cache's decisions, and are forwarded unchanged;
//   - request directives max-age, max-stale, min-fresh, no-cache, no-store,
//     only-if-cached (504 when nothing usable is stored) and Pragma:
//     no-cache;
//   - stale responses are revalidated with If-None-Match/If-Modified-Since;
//     a 304 updates the stored header; clients' own conditionals are
//     answered from the store;
//   - Vary: each variant is stored under its own key behind a variant index
//     of the resource; Vary: * is never served from the cache;
//   - a successful POST, PUT, DELETE or PATCH invalidates the target and its
//     same-origin Location and Content-Location;
//   - HEAD is answered from a stored GET, Range (single and multiple
//     ranges, If-Range) from a stored complete response. Overlapping and
//     adjacent ranges are coalesced and more than 16 ranges are answered
//     with the whole object; a Range passed upstream (no-store,
//     Authorization, uncacheable responses) is limited by the same rule,
//     so no client gets many times an object's size for one request.
//   - a response delimited only by the connection closing (no
//     Content-Length, not chunked) is stored only if its body vouches for
//     its end ([CompleteBody], as a verifying transport's does): a
//     cut-short one would otherwise be stored and served as complete;
//   - a [BoundedPolicy] can end the use of a stored response (fresh or
//     stale) before its headers would, until a 304 renews it.
//   - interim responses (1xx, such as 103 Early Hints) are forwarded to the
//     client whose request the cache sent upstream (in RoundTrip mode, to
//     its httptrace.ClientTrace) and never stored.
//
// Request collapsing: while one upstream response for a key is being
// stored (a "fill"), every other request for that key reads it from the
// store's [Writer] as the bytes arrive, however many clients there are and
// however late they come. The fill is detached from the client that started
// it ([Cache.FillTimeout] bounds it), so that client hanging up does not
// fail the others. If the upstream fails mid-body, nothing is stored and
// every response already started is aborted (connection reset in handler
// mode, a Read error in RoundTrip mode), never passed off as complete. A
// response that may not be shared (private, Set-Cookie...) goes only to the
// request that fetched it; the others go upstream themselves.
//
// Hits are copied straight from the store to the connection (with
// sendfile(2) from the disk store): memory does not grow with object size
// or with the number of clients. Package heldwrite (opt-in) makes a small
// hit leave in a single write, header and body.
//
// [Cache.Purge] removes (hard) or makes stale (soft) the objects of a URL,
// a path prefix, a tag or all of them, on any Store: purges are rules
// checked when an object is looked up and when a fill commits, so a fill
// in progress never stores purged content. Tags are the response's
// Surrogate-Key and Cache-Tag fields; a [TagStore] (the memory, tiered and
// disk stores) indexes them, so that a hard purge by tag removes its
// objects at once. Package purge carries an origin's signed purges to
// every tier.
//
// # Usage
//
// A tier in front of an upstream:
//
//	u, _ := url.Parse("http://127.0.0.1:18000")
//	c := &cache.Cache{Upstream: u, Store: store, Name: "edge"}
//	ln, err := net.Listen("tcp", "127.0.0.1:8080")
//	...
//	srv := &http.Server{Handler: c, ReadHeaderTimeout: time.Minute}
//	srv.Serve(ln)
//
// (Package tier serves a tier with the recommended settings and shutdown
// order.)
//
// On disk, with small objects also kept in memory (hits on them then cost
// no file system calls; large ones go out with sendfile):
//
//	ds, err := diskstore.Open(dir, diskstore.Options{MaxBytes: 10 << 30})
//	store := &cache.TieredStore{Slow: ds, Fast: &cache.MemoryStore{MaxBytes: 64 << 20}}
//
// A caching client:
//
//	client := &http.Client{Transport: &cache.Cache{Transport: upstreamTransport}}
//
// Every request produces a [Record] (method, path, status, bytes,
// disposition, delivery and upstream time, and a [Timing] breakdown:
// connection wait, upstream headers, first and last byte of the fill read,
// first byte to the client) for [Cache.OnRecord] and the Logger; [Cache.Stats] returns counters. [Cache.Prefetch] fills an object
// ahead of clients (the HLS warmer uses it). [Cache.Shutdown] waits for
// fills in progress.
//
// # Security
//
// A shared cache can leak one user's response to another. This package
// never stores responses marked private or carrying Set-Cookie (unless
// AllowSetCookie is set, which links users), answers requests with
// Authorization or Cache-Control: no-store without sharing them, and never
// lets requests collapsed on a fill receive a response that could not be
// stored. Origins must still mark personalised responses private: a cache
// cannot guess them.
//
// Anonymity: requests going upstream lose hop-by-hop headers and every
// header that identifies clients, tiers or circuits (X-Forwarded-*,
// Forwarded, Via, X-Real-IP...) or links one client's requests (trace and
// correlation ids: Traceparent, Baggage, X-Request-Id, X-B3-*... and a
// request's Cache-Status, unless listed in [Cache.ForwardHeaders]), none
// is added, and Go's default User-Agent is never sent. Cache-Status is off by default: Cache-Status and similar
// headers tell an observer what is cached. Age is always sent, as RFC 9111
// requires. Logs carry the path without query unless [Cache.LogQuery] is
// set, and never client addresses or keys. [Cache.Partition] keeps sites
// that share a cache from sharing entries.
//
// What a client can still infer: Age, present on every stored response,
// tells how long ago the object was fetched, and the time a request takes
// tells a hit from a miss. Both reveal that someone asked for the same
// object recently. Neither can be hidden without breaking RFC 9111 or
// slowing every hit down, so the cache confines them instead: with
// [Cache.Partition] returning the request's site, entries, Age and timing
// are per site, and a client of one site cannot learn whether another
// site's object is stored (only-if-cached, conditionals, ranges, Age and
// even Cache-Status answer exactly as if it were not). Without a
// partition, sites whose requests produce the same key (the same Host
// reaching two listeners, or a [Policy] whose Key drops the host) share
// entries and reveal each other's cache state. The tests in
// internal/privacy check this byte for byte.
//
// Serving several onion sites from one tier without linking their users:
//
//   - decide the site from the listener a request arrived on (one onion
//     per site, e.g. a value stored by http.Server.ConnContext) or from a
//     fixed table of Host names, never from anything else the client
//     sends;
//   - use that name for [Cache.Partition] and for the upstream transport's
//     Site (upstream.Transport.Site), so each site has its own entries and
//     its own isolation tags, hence its own Tor circuits to the next tier;
//   - publish each site under its own onion key (Tor Browser isolates
//     circuits and cookies by first-party onion);
//   - run one route.Router per site, each with its own sticky cookie.
//
// Logging defaults: the Logger receives, per request, the method, the path
// without query (unless [Cache.LogQuery]), status, size, disposition and
// timings, and errors with their upstream error text (which names the
// upstream host, never the query). The cache reads neither the client's
// address nor the onion circuit id, and logs no header value: no cookie,
// no Authorization, no forwarding header. Cookie and Authorization do go
// upstream with the request that carried them (sites need them), never
// with another client's request. [Cache.OnRecord] receives the request
// itself; what it logs is the operator's choice.
package cache
