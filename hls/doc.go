// Package hls makes onioncdn tiers understand HLS video and gives
// operators the tools to measure and warm their CDN.
//
// # Overview
//
// [Policy] is a [cache.Policy] for HLS: it classifies every upstream
// response (master playlist, live or VOD media playlist, segment, init
// section, LL-HLS part, key) by its content type, extension and, for
// playlists, content (parsed with gohlslib; bytes pass through unchanged)
// and gives it the TTL of draft-pantos-hls-rfc8216bis App. B.1: live
// playlists half a target duration, LL-HLS blocking reloads six, segments
// and VOD playlists a long time. Its [Policy.Key] keeps the LL-HLS delivery
// directives (_HLS_msn, _HLS_part, _HLS_skip) in the cache key in a
// canonical order and applies the operator's query rules to the rest.
//
// [Prefetcher] fills a tier's cache ahead of its viewers, through the
// cache's collapsing fill path ([cache.Cache.Prefetch]): on a master
// playlist request, what a player fetches first (the starting variant's
// media playlist, init section and first segment); on a segment request,
// the next segments of the rendition (as many as the measured upstream
// leg needs to stay ahead) and, while a viewer is starting, the next
// segment of the next variant up (where adaptive players climb); and the
// object a player announces in CMCD, if a playlist lists it. The
// breakdown of each request's time in cache.Record.Timing (upstream wait,
// first and last byte) shows where a cold segment's time goes.
//
// [StripCMCD] and the [CMCDFilter] middleware remove Common Media Client
// Data (CTA-5004) from requests where they enter a tier and hand the
// parsed [CMCD] (buffer length, throughput, the next object a player will
// request) to a hook, e.g. to prefetch that object.
//
// [Tester] simulates players (startup, stalls, per-segment delivery time ÷
// duration, ABR, cache dispositions; LL-HLS parts, preload hints and
// blocking reloads, live latency; optionally CMCD) and writes text, JSON
// and HTML/SVG reports; [Warmer] fetches a presentation through a tier ahead of
// viewers. The programs examples/streamtest and examples/warm wrap them.
//
// # Usage
//
// An edge tier with the HLS policy and prefetch:
//
//	c := &cache.Cache{Transport: tr, Policy: &hls.Policy{}}
//	pf := &hls.Prefetcher{}
//	if err := pf.Attach(c); err != nil { … } // learns playlists, fetches through c
//	http.Serve(ln, pf.Wrap(c))
//
// (package tier serves a tier with these wired, and shuts them down in
// order).
//
// Measuring a stream through the CDN:
//
//	rep, err := (&hls.Tester{Players: 10}).Run(ctx, "http://edge.onion/master.m3u8")
//	rep.WriteText(os.Stdout)
//
// By default the HLS TTLs override the origin's freshness headers
// ([HLSFirst]); set [Policy.Precedence] to [OriginCacheControl] to let an
// origin that sends max-age or s-maxage decide.
//
// # Security
//
// Keys (EXT-X-KEY URIs, and *.key) are never stored by a shared tier unless
// the origin marks them Cache-Control: public, whatever the precedence:
// a key behind authorisation must not reach another user. The policy can
// only shorten or lengthen freshness; what a shared cache must never store
// (private, no-store, Set-Cookie, Authorization) stays unstored. Dropping
// query parameters from the cache key ([Policy.DropQuery]) makes requests
// that differ only in them share one response: only drop parameters that
// do not select content. Playlist parsing is bounded by
// [Policy.MaxPlaylistBytes] and fuzzed; the remembered URIs and playlists
// are bounded in number and length. CMCD identifies viewing sessions:
// [CMCDFilter] strips it unless the operator sets Forward, [Policy.Key]
// never puts it in a cache key, and the next-object URLs a client announces
// are restricted to the request's own host. Prefetch requests carry none of the
// client's headers. The Tester and Warmer log and report URL paths only,
// never query strings.
package hls
