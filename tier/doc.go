// Package tier serves a caching tier of an onioncdn CDN (an edge or a
// midtier) from components built with the other packages, and owns what
// every tier program would otherwise write again: the wiring between the
// components, the http.Server settings suited to Tor clients, and the
// shutdown order.
//
// # Overview
//
// A tier is a [cache.Cache] in front of an upstream transport (an
// [upstream.Transport] through Tor to the next tier, possibly under an
// integrity.Transport that verifies the origin's signatures), on a store
// (a diskstore), optionally with HLS prefetch ([hls.Prefetcher]) and a
// router agent ([route.Agent]), served on one or more listeners (an
// [onion.Listener] from an [onion.Server], or TCP). You build each
// component with its own package, with the settings you want, and hand
// them to a [Tier], which:
//
//   - puts a Limiter (package limit) in front of everything: request size
//     bounds (431/414/413), per-circuit rate, concurrency and bandwidth
//     limits (429) on an onion listener with circuit-id export, and
//     shedding of misses and prefetches (503) when the tier is overloaded,
//     while hits are still served;
//   - attaches the Prefetcher to the Cache (client sessions are Tor
//     circuits) and the Agent's meter and hit-ratio sample to the handler,
//     and strips players' CMCD where requests enter, leaving what it says
//     to the Prefetcher (see the fields' docs);
//   - serves with a read-header timeout, an idle timeout and a header size
//     bound chosen for Tor clients ([DefaultReadHeaderTimeout],
//     [DefaultIdleTimeout], [DefaultMaxHeaderBytes]), circuit ids in the
//     request context on onion listeners that export them, and package
//     cache/heldwrite for small hits;
//   - runs a purge follower (package purge) that keeps the cache in step
//     with the origin's signed purge log, and on a midtier serves that log
//     to the edges ([Tier.ServePurgeLog]);
//   - shuts down in the order that loses nothing: agent (its last report
//     marks the tier unhealthy) and purge follower, server drain, cache
//     fills, prefetcher, transport, store, tor.
//
// Recommended settings of the components themselves are their zero
// values: upstream.Transport keeps a warm pool of two circuits per
// upstream and sends a keep-alive every minute over Tor; cache.Cache
// strips the headers that name the origin's software, keys objects
// without the client's Host and sends no Cache-Status (turn it on between
// tiers, never towards users).
//
// # Usage
//
// An edge in onion mode (errors elided; examples/edge is the whole
// program, with flags):
//
//	tor := &onion.Server{DataDir: "/var/lib/edge/tor"}
//	key, _, _ := onion.LoadOrCreateKey("/var/lib/edge/group.key") // same file on every edge of the group
//	ln, _ := tor.Listen(ctx, onion.ListenConfig{Key: key, Watchdog: &onion.Watchdog{}, ExportCircuitID: true})
//	tr := &upstream.Transport{Upstreams: []string{"http://MIDTIER.onion"}, DialIsolated: tor.Dialer().DialIsolated}
//	store, _ := diskstore.Open("/var/cache/edge", diskstore.Options{})
//	c := &cache.Cache{Transport: &integrity.Transport{Base: tr, Keys: integrity.Keys(originPub)}, Store: store, Policy: &hls.Policy{}}
//	t := &tier.Tier{Name: "edge", Cache: c, Prefetcher: &hls.Prefetcher{}, Transport: tr, Store: store, Tor: tor}
//	err := t.Run(ctx, ln) // until ctx ends (SIGINT/SIGTERM), then a graceful shutdown
//
// Metrics come from package metrics, one collector per component.
//
// # Security
//
// The Tier adds no header and logs no request; its logs name the tier and
// its shutdown steps only. CMCD, which identifies viewing sessions, is
// removed from requests before anything else sees them unless
// [Tier.ForwardCMCD] is set. Metrics are served by the caller (package
// metrics refuses non-loopback addresses).
package tier
