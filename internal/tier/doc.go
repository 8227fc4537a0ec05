// Package tier holds what the onioncdn example programs share: building a
// caching tier (listener → cache → upstream), publishing it as an onion
// service, keys, flags, logging, the metrics endpoint and graceful
// shutdown.
//
// # Overview
//
// [New] assembles one tier from a [Config]: an [upstream.Transport] to the
// next tier up (warm keep-alive pool, failover, dialled through Tor when
// [Config.DialIsolated] is set), optionally wrapped by an
// [integrity.Transport] that verifies origin signatures, a [cache.Cache] on
// a disk store (or in memory), optionally the HLS policy and segment
// prefetch, and optionally a [route.Agent] that reports the tier's load to a
// router. [Tier.Serve] serves it on any number of listeners (TCP or
// onion); [Tier.Shutdown] stops it in the right order: the agent first (its
// last report marks the edge unhealthy, so the router stops sending
// clients), then the HTTP servers drain, the cache's fills finish, the
// prefetcher and the upstream pool close and the store closes.
//
// [Program] is a whole tier program: its flags (Register, Validate) and
// its life (Run: start or attach to tor, publish the onion or listen on
// TCP, serve, serve metrics, shut down in order and check that the tor it
// started is gone). examples/midtier is a Program; examples/edge can be
// one with Program.Edge set (watchdog and router agent flags).
//
// [StartTor] starts a tor (or attaches to one) and [Publish] publishes a
// listener for a key file that is created on first use. [LoadOrCreateOnionKey],
// [LoadOrCreateSigningKey] and [ParsePublicKey] handle the key files;
// [NewLogger] builds the text or JSON slog logger; [ServeMetrics] serves a
// Prometheus registry on a loopback address only; [WriteHLS] writes a
// synthetic HLS presentation (internal/hlstest) to files for a directory
// origin.
//
// # Usage
//
//	t, err := tier.New(tier.Config{
//		Name:      "midtier",
//		Upstreams: []string{"http://127.0.0.1:8000"},
//		CacheDir:  "/var/cache/onioncdn",
//	})
//	go t.Serve(ln)
//	<-ctx.Done()
//	t.Shutdown(shutdownCtx)
//
// # Security
//
// Key files (onion service keys in tor's hs_ed25519_secret_key format,
// ed25519 signing and agent keys as PKCS #8 PEM) are created with mode
// 0600 and refused when group or others can read them; keys are never
// logged (only public keys and onion addresses are). The tier adds no
// identifying headers (package cache and upstream strip them), and its
// Cache-Status header is off unless [Config.CacheStatus] is set, which is
// meant for links between tiers, not for tiers facing users. The metrics
// endpoint listens on loopback only.
//
// This package is internal: its API serves the example programs and may
// change with them.
package tier
