// Package onioncdn lets the operator of a Tor onion service build a CDN for
// it inside their own Go programs.
//
// # Overview
//
// Onion services are slow (every request crosses two three-hop circuits)
// and an onion hosted on one machine dies with that machine. onioncdn
// provides composable [net/http] pieces to build caching tiers in front of
// an origin:
//
//	client ──Tor──▶ Edge onion ──Tor──▶ Midtier onion ──▶ Origin
//	               (several machines,    (disposable
//	                one shared key)       buffer tier)
//
// Each tier is an [net/http.Handler] stack assembled from these packages:
//
//   - tier: serves a tier from built components, with Tor-suited server
//     settings and the shutdown order that loses nothing.
//   - onion: publish an onion service from Go over the system tor, with a
//     persistent v3 key shared by several edges and a watchdog that
//     re-publishes when the answering edge dies; dial onions through Tor.
//   - cache: a shared (RFC 9111) HTTP cache on disk with request collapsing
//     that streams to every waiter while the object downloads.
//   - upstream: the keep-alive transport to the next tier, with a warm pool
//     of Tor circuits, failover and header hygiene; upstream/integrity:
//     origin-signed responses that no tier can alter unnoticed.
//   - hls: HLS-aware cache policy, segment prefetch, a stream tester and a
//     cache warmer.
//   - route: a load-aware router that redirects clients to the least-loaded
//     group of edges.
//   - metrics: Prometheus collectors, one per component.
//   - oniontest: a private Tor network on loopback for tests.
//
// # Usage
//
// A tier is an upstream transport wrapped by a cache, served by a Tier on
// a listener (an onion listener from package onion in production):
//
//	tr := &upstream.Transport{Upstreams: []string{"http://midtier.onion"}, DialIsolated: tor.Dialer().DialIsolated}
//	c := &cache.Cache{Transport: tr, Store: store}
//	t := &tier.Tier{Cache: c, Transport: tr, Store: store, Tor: tor}
//	err := t.Run(ctx, ln)
//
// See the examples directory for complete edge, midtier, origin and router
// programs (recipes on this public API only) and an all-in-one demo.
package onioncdn
