// Package integrity lets an onion site's origin sign its responses so that
// no CDN tier can alter them unnoticed, and gives pages Subresource
// Integrity values for the assets they load from CDN onions.
//
// # Overview
//
// A CDN tier can tamper with what it serves: a compromised or "disposable"
// midtier could poison every edge below it. With this package the origin
// signs each response ([Signer], RFC 9421 HTTP Message Signatures with
// ed25519, over an RFC 9530 Content-Digest), and every tier verifies what
// it receives from the tier above before caching it ([Transport]). A
// response that does not verify is never stored and never served: the tier
// answers 502, logs the reason and counts it.
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
// At every tier, below the cache:
//
//	verified := &integrity.Transport{Base: upstreamTransport, Keys: map[string]ed25519.PublicKey{integrity.KeyID(pub): pub}}
//	c := &cache.Cache{Transport: verified}
//
// # Security
//
// A signature covers the status, the request path, the Content-Digest and
// every field present that changes how a response is cached or interpreted
// (Cache-Control, Content-Type, ETag, Expires, Vary, Set-Cookie, Location…),
// with created and expires times. Tiers may still add fields outside that
// set (Age, Cache-Status), reorder nothing that matters, and re-frame the
// body. The signature does not cover the host, because every tier has its
// own onion address; it does not cover the query by default, because the
// HLS policy may normalise it.
//
// What a signature cannot stop: a tier can withhold a response, delay it,
// or replay an older signed version of the same path until that version's
// signature expires. The Signer sets expires to created plus the longer of
// Validity and the response's cache lifetime (max-age or s-maxage plus its
// stale windows), which bounds such a rollback. Keep the private key on the
// origin only; tiers hold the public key.
//
// Only the subset of RFC 9421 this needs is implemented: the derived
// components @method, @path, @query, @authority, @scheme, @target-uri and
// @status, HTTP fields with the req parameter, and the ed25519 algorithm.
package integrity
