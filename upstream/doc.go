// Package upstream provides the transport a tier uses to reach the next
// one: an edge to its midtier onions, a midtier to the origin.
//
// # Overview
//
// Going upstream over Tor is expensive mostly because of circuit setup: a
// request that has to build a circuit waits seconds, one that finds a warm
// keep-alive connection waits one round trip. [Transport] is an
// [net/http.RoundTripper] with its own HTTP/1.1 connection pool that
//
//   - keeps a warm pool: at least [Transport.MinIdle] idle connections per
//     upstream (and site) are open at all times. They are dialled in the
//     background before any request, a connection taken by a request is
//     replaced at once, connections the far side closes are noticed (a
//     read is pending on every idle connection) and replaced, and dial
//     failures back off exponentially (250 ms doubling to 1 min). A
//     request that finds no idle connection starts a dial and takes
//     whichever comes first: its dial or a connection another request
//     returns. Surplus idle connections are closed after
//     [Transport.IdleTimeout]; with [Transport.KeepAliveInterval] set, idle
//     connections are exercised with "OPTIONS *" (or "HEAD
//     KeepAlivePath") so that no idle timeout on the way closes them.
//   - isolates circuits: every connection is dialled with an isolation tag
//     (see [Transport.Isolation]); with (*onion.Dialer).DialIsolated as
//     [Transport.DialIsolated] the tag becomes the SOCKS user name, so each
//     pooled connection gets a circuit of its own and two sites
//     ([Transport.Site]) never share one. The default tag is
//     "host/slot" or "host/slot/site", slot being the lowest index unused
//     by the pool's other open connections.
//   - routes every request to one of [Transport.Upstreams]: the request's
//     scheme and host are replaced by the upstream's and its path is
//     appended to the upstream's path prefix; the query is kept. The Host
//     header is the upstream's host unless [Transport.PreserveHost] is set.
//     A cache in front of the Transport therefore only needs to forward
//     path and query.
//   - fails over: an upstream is avoided for [Transport.DownTime] (doubling
//     per consecutive failure, up to 2 min) after a dial error, a timeout,
//     a broken connection or a 5xx response, and optionally after a failed
//     active probe ([Transport.ProbePath]). Among the healthy upstreams the
//     one with the fewest requests in flight is chosen; ties go round
//     robin. When no upstream is healthy, all are candidates.
//   - retries at most once, and only when that is safe: a request that is
//     idempotent (GET, HEAD, OPTIONS, TRACE, or with an Idempotency-Key
//     header) and replayable (no body, or GetBody set) is sent again on
//     another healthy upstream when the first one failed before any
//     response byte arrived, or answered 5xx (that response is then
//     discarded; if no other upstream is healthy the 5xx is returned as
//     is). A response that has started is never retried: an error while
//     reading its body reaches the caller. A pooled connection that turns
//     out to have been dead before the request reached the upstream (the
//     far side closed it, as an upstream restart or an idle timeout does)
//     is replaced once, transparently, for such requests on the same
//     upstream. The Transport tells it from an upstream that worked on the
//     request and then aborted by timing: the connection failed, with no
//     response byte, sooner after the request was written than the
//     fastest response this upstream ever gave (or while the request was
//     being written), so the close was under way before the request
//     arrived. Anything slower is an upstream failure, never resent on the
//     same upstream. A request therefore reaches at most two upstream
//     attempts that may have been acted on: no client can multiply
//     upstream work, whatever it makes the upstream do.
//   - blames clients for their own faults: when reading the request body
//     fails (malformed chunked framing, a body shorter than its
//     Content-Length, a size limit), RoundTrip returns an error wrapping
//     [ErrRequestBody] and the body's error; the upstream's health does
//     not change, nothing is retried, and the event is logged at Debug
//     level. A handler answers such a request with 400 (413 for an
//     [net/http.MaxBytesError]).
//   - times out like Tor needs: dials (circuit build) after
//     [Transport.DialTimeout] (60 s), response headers after
//     [Transport.ResponseHeaderTimeout] (60 s). Errors read
//     "upstream: dial timeout after …" or "upstream: response header
//     timeout after …" and wrap both [context.DeadlineExceeded] and the
//     underlying error.
//   - counts: [Transport.Stats] reports per upstream dials, dial failures,
//     requests on reused and on new connections, requests that had to dial
//     (ColdDials), in-flight requests, failures, retries, idle and open
//     connections, connections the far side closed, keep-alives and probes.
//
// Request bodies are written in full before the response is read
// ("Expect: 100-continue" is removed). Responses are passed through
// unchanged: no Accept-Encoding is added and nothing is decompressed. Only
// HTTP/1.1 is spoken, also over TLS for https upstreams.
//
// # Usage
//
// An edge reaching two midtier onions through tor, with four warm circuits
// to each:
//
//	d := &onion.Dialer{SocksAddr: "127.0.0.1:9050"}
//	tr := &upstream.Transport{
//		Upstreams:    []string{"http://midtier1….onion", "http://midtier2….onion"},
//		DialIsolated: d.DialIsolated,
//		MinIdle:      4,
//	}
//	defer tr.Close()
//	if err := tr.Warm(ctx); err != nil { … } // optional: wait for the pool
//	c := &cache.Cache{Transport: tr, Store: store}
//
// The zero value (with Upstreams set) dials with a plain [net.Dialer].
// Start the pool early with [Transport.Warm]; otherwise it starts on the
// first request. Close the Transport to stop its background goroutines.
// A Transport is safe for concurrent use.
//
// # Security
//
// The Transport is built not to reveal more than the request path to the
// next tier. It removes hop-by-hop headers (and those named in Connection)
// in both directions and never forwards X-Forwarded-*, Forwarded, Via,
// X-Real-IP or circuit-id headers, nor adds any of them. Trace and
// correlation ids (Traceparent, Tracestate, Baggage, X-Request-Id,
// X-Correlation-Id, X-B3-*, Uber-Trace-Id, X-Amzn-Trace-Id, Sentry-Trace
// and similar) and a request's Cache-Status are removed unless listed in
// [Transport.ForwardHeaders]. A Range field is forwarded only within the
// caches' range rule (coalesced, at most 16 ranges), so no client can make
// an upstream send many times an object's size. It sends no
// User-Agent unless [Transport.UserAgent] or the caller sets one (never
// Go's default), and removes Server, X-Powered-By and similar headers from
// responses unless [Transport.KeepServerHeaders] is set. It logs hosts and paths,
// never queries, and never isolation tags.
//
// Isolation only separates circuits if the dialer honours the tag (tor's
// IsolateSOCKSAuth, the default). [Transport.Site] must map requests to a
// small fixed set of names chosen by the operator, never to a value a
// client controls: pools are created per site, up to [Transport.MaxSites].
//
// The Transport never mutates the caller's request and always closes its
// body. It is not a general-purpose client: it does not follow redirects,
// speak HTTP/2 or use proxies from the environment.
//
// Several sites on one tier: give the Transport the same site name the
// cache partitions by (cache.Cache.Partition), decided by the listener a
// request arrived on or by a fixed table of Host names, and list the names
// in [Transport.Sites] to warm their pools. Each site then has its own
// pools and isolation tags, so its requests never share a connection or a
// Tor circuit with another site's, and connections open at the same time
// have distinct tags; a custom [Transport.Isolation] that returns one tag
// for two sites makes the dial fail rather than merge them. The next tier
// must be able to tell the sites apart too, or its cache would mix them:
// keep per-site Host names with [Transport.PreserveHost], or give each site
// its own upstream path prefix, and partition that tier's cache as well.
// The other halves of the recipe are separate onion keys per site and one
// route.Router per site (see the cache and route packages).
//
// Timing is not hidden: the next tier sees when and how often a site's
// requests arrive (and a warm pool reveals that the tier is running), but
// no client address, circuit id, cookie of another request or forwarding
// header reaches it.
//
// Logging defaults: the Logger receives the upstream's host and port, the
// request path (never its query), failure reasons and counts; never
// isolation tags, header values, cookies, client addresses or circuit ids
// (the Transport itself reads neither the request's RemoteAddr nor the
// onion circuit id).
package upstream
