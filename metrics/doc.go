// Package metrics exports the counters of onioncdn's components as
// Prometheus metrics.
//
// # Overview
//
// Each component keeps its own counters as a Stats snapshot; this package
// turns snapshots into metrics when Prometheus scrapes, so nothing is
// counted twice and the components do not depend on Prometheus:
//
//   - [Cache]: requests by disposition, bytes served and fetched, errors
//     (onioncdn_cache_*), from cache.Cache.Stats.
//   - [Upstream]: per upstream URL, dials, reused and new connections,
//     in-flight requests, failures, retries, pool size and health
//     (onioncdn_upstream_*), from upstream.Transport.Stats.
//   - [Router]: redirects, stickiness, reports by outcome and each group's
//     health, score and load (onioncdn_router_*), from route.Router.Stats.
//   - [Watchdog], [Prefetch], [Integrity]: onion watchdog probes and
//     re-publications, HLS prefetches, verified and rejected signed
//     responses.
//   - [Purge], [PurgeLog]: a tier's purge follower (entries received,
//     applied, refused by reason, resyncs, objects purged, propagation
//     lag) and the origin's purge log (onioncdn_purge_*,
//     onioncdn_purge_log_*).
//   - [Delivery]: histograms of delivery time (request headers received to
//     last byte written) and upstream wait per tier and disposition, fed by
//     cache.Cache.OnRecord.
//
// Several tiers may run in one process (the demo does): every collector
// carries a constant "tier" label, so they register side by side in one
// registry.
//
// # Usage
//
//	reg := prometheus.NewRegistry()
//	d := metrics.NewDelivery()
//	reg.MustRegister(d, metrics.Cache("edge", c), metrics.Upstream("edge", tr))
//	c.OnRecord = append(c.OnRecord, d.OnRecord("edge"))
//	ln, err := metrics.ListenLocal("127.0.0.1:9100") // refuses other addresses
//	go http.Serve(ln, metrics.Handler(reg))
//
// # Security
//
// Metrics carry no client data: no paths, no query strings, no client
// addresses or circuit ids, only a tier name, a disposition from a fixed
// set, and (for upstreams and router groups) the operator's own configured
// URLs and group ids. They do reveal the CDN's layout (upstream onion
// addresses) and its traffic volume over time, which is why [ListenLocal]
// accepts only loopback addresses: scrape it locally or through an SSH
// tunnel, never publish it on an onion or a public interface.
package metrics
