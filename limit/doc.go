// Package limit protects a CDN tier from its clients: it bounds what one
// request may make the tier read, what one client (at an onion edge, one
// Tor circuit) may make it do, and sheds upstream work before an
// overloaded tier's latency collapses for everyone.
//
// # Overview
//
// An edge faces anonymous clients it cannot block by address. A
// [Limiter] is a middleware ([Limiter.Handler]) placed in front of
// everything else of a tier (router agent, prefetcher, cache):
//
//   - Request size: a request line and header over [Limiter.MaxHeaderBytes]
//     (32 KiB) or with more than [Limiter.MaxHeaderFields] (100) field
//     lines gets 431, a target over [Limiter.MaxURIBytes] (8 KiB) 414.
//     [Limiter.ConfigureServer] sets the http.Server fields that bound
//     reading (MaxHeaderBytes, ReadHeaderTimeout 15 s, ReadTimeout 1 min,
//     IdleTimeout 2 min); net/http itself only knows the byte limit.
//   - Request bodies are read completely before anything goes upstream,
//     up to [Limiter.MaxBodyBytes] (64 KiB; 413 beyond, 400 for a body
//     that cannot be read, such as malformed chunked framing): a
//     malformed, truncated or trickled body never reaches an upstream. A
//     request with a chunked body closes its connection after the answer
//     (RFC 9112 §6.1: net/http does not tell whether it also had a
//     Content-Length), so nothing smuggled after it is ever read.
//   - Per client (see [Limiter.Key], by default the Tor circuit id from an
//     onion listener with circuit-id export): a token bucket of
//     [Limiter.RequestsPerSecond] (20/s, bursts of 200), at most
//     [Limiter.MaxConcurrent] (16) requests in progress, and
//     [Limiter.BytesPerSecond] (4 MiB/s, bursts of 64 MiB) of responses.
//     Beyond them: 429 with Retry-After. A client refused more than
//     [Limiter.Strikes] (50) times (strikes decay by one per second) is
//     abusive: its refusals close their connections, and
//     [Limiter.OnAbuse] may ask tor to close its circuit (only worth it
//     with proof of work on: a new circuit is a new client). At most
//     [Limiter.MaxKeys] (16384) clients are tracked, least recently seen
//     forgotten first, so memory is bounded however many circuits come.
//   - Overload: [Limiter.AdmitMiss], installed as cache.Cache.AdmitMiss,
//     refuses upstream work while more than [Limiter.MaxInFlight] (1024)
//     requests are in progress, [Limiter.MaxUpstream] (64) requests are
//     working upstream, or [Limiter.Busy] says so: the cache then still
//     serves hits and stale content allowed by stale-while-revalidate or
//     stale-if-error, and answers misses 503 with Retry-After. Beyond four
//     times MaxInFlight every new request gets 503.
//   - [Limiter.Stats] counts refusals by [Reason], shed requests, closed
//     connections, abusive clients and tracked clients.
//
// # Usage
//
// An onion edge (circuit-id export on, so that each request knows its
// circuit):
//
//	lim := &limit.Limiter{}
//	c := &cache.Cache{Transport: tr, Store: store, AdmitMiss: lim.AdmitMiss}
//	srv := &http.Server{
//		Handler:     lim.Handler(c), // outermost: before agent and prefetcher
//		ConnContext: onion.ConnContext,
//	}
//	lim.ConfigureServer(srv)
//	ln, _ := onionServer.Listen(ctx, onion.ListenConfig{
//		ExportCircuitID: true, PoW: true, IntroDoSDefense: true,
//		MaxStreams: 32,
//	})
//	srv.Serve(ln)
//
// The zero value uses the defaults above; a negative field turns its
// limit off. A tier not behind tor (or a midtier, whose clients are edges)
// sets Key, for example to limit by the address of a trusted proxy's
// header, or leaves the default, which limits non-loopback client
// addresses and exempts loopback clients.
//
// # Security
//
// Keys identify clients: the Limiter never logs them and keeps them only in
// memory, for as long as they stay among the MaxKeys most recently seen.
// Circuit ids are local to the tor instance that exported them; never
// forward them (the upstream and cache packages strip circuit headers).
// Refusals are logged at Debug level with their reason and path only.
//
// Limits per circuit do not stop a client that opens many circuits: each
// costs it a rendezvous, and tor's own defences (proof of work,
// introduction-point rate limits, MaxStreams per circuit, see
// onion.ListenConfig) make that expensive. The overload bounds protect the
// tier as a whole in that case. The Limiter is not a WAF: it looks at
// sizes and rates, not at content.
package limit
