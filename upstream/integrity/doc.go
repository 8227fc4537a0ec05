// Package integrity lets an onion site's origin sign its responses so that
// no CDN tier can alter them unnoticed, and gives pages Subresource
// Integrity values for the assets they load from CDN onions.
//
// # Overview
//
// A CDN tier can tamper with what it serves: a compromised or "disposable"
// midtier could poison every edge below it. With this package the origin
// signs each response ([Signer], RFC 9421 HTTP Message Signatures with
// ed25519, over an RFC 9530 Content-Digest and a Content-Record-Digest of
// per-record hashes), and every tier verifies what it receives from the
// tier above before caching or serving any of it ([Transport]). A
// response that does not verify is never stored and never served: the
// tier answers 502 (or aborts a response already started), logs the
// reason and counts it. No unverified byte is released: a tier verifies
// the body record by record (16 KiB by default) as it streams, so
// verification costs at most one record of delay, and ranges, collapsed
// waiters and zero-length replies only ever see verified bytes.
//
// Browsers do not check HTTP signatures. For pages, [Assets] computes the
// integrity attribute of scripts and style sheets, so that a page served
// from the origin's own onion can load them from CDN onions that cannot
// alter them (Tor Browser users mostly run without JavaScript, so
// in-page verification is out; SRI on <script> and <link> is not).
//
// # Usage
//
// At the origin:
//
//	http.ListenAndServe(addr, (&integrity.Signer{Key: originKey}).Handler(site))
//
// At every tier, below the cache, with the signature lifetime bounding the
// cache's freshness:
//
//	verified := &integrity.Transport{Base: upstreamTransport, Keys: map[string]ed25519.PublicKey{integrity.KeyID(pub): pub}}
//	c := &cache.Cache{Transport: verified, Policy: &integrity.BoundPolicy{Policy: &hls.Policy{}}}
//
// # Lifetimes
//
// One rule ties the signer's expiry to the tiers' cache lifetimes:
//
//	A tier uses a signed response, fresh or stale, only until its
//	signature expires (less BoundPolicy.Margin, 1 minute); from then on it
//	revalidates it (a 304 carries a new signature, which the tier merges)
//	or fetches it again.
//
// The [Signer] sets expires = created + max(V, the response's own
// lifetime: max-age or s-maxage plus stale-while-revalidate and
// stale-if-error), where V is LongValidity (24 h, the HLS policy's TTL for
// segments and ended playlists) for responses that do not change once
// published (immutable, HLS segments, init sections, parts, VOD
// playlists) and Validity (1 h) for the others. [BoundPolicy] applies the
// rule in a cache. So with the defaults, every lifetime the origin
// declares and every HLS TTL fits in its signature; a longer one (a
// policy TTL over 24 h, heuristic freshness of a page without
// Cache-Control, up to 24 h) costs one conditional request per signature
// lifetime, never a 502 at a cold tier below. Validity is also the longest
// a tier can replay an older version of a response that changes; raise it
// only for content whose old versions are harmless.
//
// # Lengths
//
// A tier releases the end of a body only at its signed length (the len of
// Content-Record-Digest) and only once every record matched (the
// Content-Digest, for a response without records), so a truncated,
// extended or emptied body never looks complete.
// A response without Content-Length and without chunking, delimited only
// by the connection closing, cannot otherwise be told complete from cut
// short: the cache stores it only when its body is verified this way
// (cache.CompleteBody), and passes it through uncached otherwise.
//
// # Security
//
// A signature covers the status, the request path and query, the
// Content-Digest, the Content-Record-Digest and every field present that
// changes how a response is cached or interpreted (Cache-Control,
// Content-Type, ETag, Expires, Vary, Set-Cookie, Location, and the
// Surrogate-Key and Cache-Tag fields that purges by tag select), with created
// and expires times. Tiers may still add fields outside that set (Age,
// Cache-Status), reorder nothing that matters, and re-frame the body. The
// signature does not cover the host, because every tier has its own onion
// address. It covers each query parameter (@query-param), so that a
// response signed for ?v=2 is refused for ?v=1, except the parameters
// listed in Signer.IgnoreQuery and Transport.IgnoreQuery: session tokens
// and other parameters that do not select content and that a cache may
// leave out of its key (hls.Policy.DropQuery) must be listed in all three.
//
// What a signature cannot stop: a tier can withhold a response, delay it,
// or replay an older signed version of the same URL until that version's
// signature expires (see Lifetimes). A 304 is accepted only for the
// validator the request carried, so an old 304 cannot relabel a stored
// body as another version. Keep the private key on the origin only; tiers
// hold the public key.
//
// Only the subset of RFC 9421 this needs is implemented: the derived
// components @method, @path, @query, @query-param, @authority, @scheme,
// @target-uri and @status, HTTP fields with the req parameter, and the
// ed25519 algorithm.
package integrity
