// Package balance publishes one onion address for a group of backend onion
// services so that clients' connections land on all of them at once: an
// Onionbalance in Go, with health checks in seconds, more backends, and
// several publishers that do not fight.
//
// # Overview
//
// Each backend is an ordinary onion service of its own, run as an
// Onionbalance instance of the group (onion.ListenConfig.Frontend set to
// the group's address): tor then also accepts introductions that clients
// make with the group's descriptor. A [Publisher] holds the group's key. It
//
//   - fetches each backend's descriptor (HSFETCH through its onion.Server,
//     or from a Fetch hook), verifies it (signature, certificates, expiry,
//     time period, key) and skips, logs and counts bad ones by cause;
//   - probes each backend through Tor on a fresh circuit every few seconds
//     (or through a Probe hook, e.g. an agent's reports) and drops a backend
//     after ProbeFailures failed probes;
//   - computes the HSDirs responsible for the group's two descriptors (the
//     current and the next time period) from its tor's consensus, exactly
//     as tor does (package onion/hsdesc), and gives each HSDir that clients
//     fetch from its own descriptor: up to 20 introduction points each, so
//     that with more backends than fit in one descriptor different clients
//     see different backends and all HSDirs together list every backend;
//   - re-certifies the chosen introduction points under a fresh descriptor
//     signing key, encrypts and signs with the group's blinded key, checks
//     the result with its own parser and uploads (HSPOST) on change, at most
//     every MinUploadInterval, and every RefreshInterval otherwise.
//
// # How many backends one address reaches
//
// A client fetches the group's descriptor from one of the HSDirs
// responsible for it: 2 replicas × hsdir_spread_fetch (3) = 6 HSDirs on
// the real network, each holding at most 20 introduction points, so one
// address reaches up to 6 × 20 = 120 backends with one introduction point
// each (Onionbalance: 20 introduction points in one descriptor for all
// clients). With up to 20 backends every descriptor lists every backend;
// beyond, each descriptor lists 20 different ones. The private test network
// has 5 HSDirs: 100 backends.
//
// # Health and timing
//
// A backend that stops answering is dropped after ProbeFailures (2) probes
// ProbeInterval (5 s) apart, and the next upload follows at most
// MinUploadInterval (5 s) later: 10–20 s on the private network. A new
// backend (SetBackends) is fetched and probed at once. Clients that hold
// the old descriptor keep working: tor tries another introduction point
// when one fails.
//
// # Several publishers
//
// Run two or more Publishers for a group, each on its own tor and host.
// One is the primary (TakeoverDelay zero); the others are standbys with
// increasing delays. Every publisher computes the same descriptors from the
// same view (the choice of introduction points is deterministic) and
// revision counters are Unix milliseconds, so uploads never go backwards.
// A standby fetches the group's descriptor from an HSDir every
// ObserveInterval and uploads only when it has been missing, older than the
// current time periods, or different from its own view for TakeoverDelay,
// that is when the primary is gone; it stands by again when it sees a newer
// descriptor from another publisher.
//
// # Proof of work
//
// Backends may run tor's proof-of-work defence for their own addresses,
// but it cannot be carried into the group's descriptor with tor 0.4.9: a
// client solves the puzzle for the blinded key and seed of the descriptor
// it fetched (the group's), while the instance verifies the solution
// against its own blinded key and seed (hs_pow_verify with ip->blinded_id,
// "PoW INTRODUCE2 request failed to verify"), and rejects the introduction.
// Clients raise the effort by themselves after failed introductions, so
// even pow-params with effort 0 would break them. The Publisher therefore
// leaves pow-params out and counts backend descriptors that had them
// (Stats.PoWDropped). The introduction-point DoS defence
// (onion.ListenConfig.IntroDoSDefense) works unchanged.
//
// # Usage
//
// On each backend:
//
//	ln, err := srv.Listen(ctx, onion.ListenConfig{Key: backendKey, Frontend: groupKey.Address()})
//
// On one or more publisher hosts:
//
//	p := &balance.Publisher{Server: srv, Key: groupKey, Backends: backendAddrs}
//	defer p.Close()
//	if err := p.Up(ctx); err != nil { … }
//
// # Security
//
// The group key never leaves the Publisher's process and is never logged:
// backends need only its address. A backend learns nothing it could not
// read from the group's public descriptors. The Publisher's probes reveal
// to each backend's tor that someone connects every ProbeInterval; use the
// Probe hook with an agent's reports where that matters. Introduction
// points are listed under the group's key for all to see, as Onionbalance
// does; which backend an introduction point belongs to is visible to anyone
// who also knows the backends' addresses.
//
// Not supported: client authorization, and descriptor-race mode (the
// default of package onion, which needs no Publisher).
package balance
