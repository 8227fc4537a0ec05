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
//     every MinUploadInterval, and every RefreshInterval otherwise; tor's
//     refusals are counted (Stats.UploadRejected), and none occur in the
//     tests.
//
// A descriptor never lists two introduction points on the same relay. tor's
// client builds a circuit to the relay of the introduction point it picked
// and then takes the first introduction point on that relay in the
// descriptor (find_desc_intro_point_by_legacy_id), so a second one would
// never be used, and a dead first one would hide a live second one. On the
// private test network, where 3 backends share 5 relays, duplicates let
// one backend get 3 of 60 requests; without them each gets a fair share.
//
// # How many backends one address reaches
//
// A client fetches the group's descriptor from one of the HSDirs
// responsible for it: 2 replicas × hsdir_spread_fetch (3) = 6 HSDirs on
// the real network, each holding at most 20 introduction points on 20
// different relays, so one address reaches up to 6 × 20 = 120 backends,
// each with one introduction point in one descriptor (Onionbalance: one
// descriptor of 20 for all clients). With up to 20 backends every
// descriptor lists every backend; beyond, each lists 20, mostly different
// ones. Measured on the private network (5 HSDirs, 5 relays): 25 backends
// (one introduction point per relay per descriptor, 5 × 5), and 100 when
// the introduction points are on distinct relays (5 × 20), all accepted and
// decoded by tor.
//
// # Health and timing
//
// A backend that stops answering is dropped after ProbeFailures (2) failed
// probes (the second right after the first), and the next upload follows
// at most MinUploadInterval (5 s) later. Measured on the private network
// with a 2 s probe interval: a backend killed with kill -9 was marked down
// after 4–13 s (a failing probe takes a few seconds, as tor tries each
// introduction point; one in flight at the kill can take ProbeTimeout) and
// was gone from every HSDir's descriptor after 15 s with the primary
// publishing, 16–24 s with a standby that had to take over (6 s delay).
// Every fresh-circuit request in the 40–60 s after the kill succeeded
// (26/26, 39/39): tor's client tries another introduction point when one
// fails. A new backend (SetBackends) is fetched and probed at once and was
// in every HSDir's descriptor after 2–3.5 s; a restarted one, 11 s after
// its own descriptor was out, through a standby.
//
// New clients use a new descriptor as soon as it is uploaded. A client
// that holds the group's descriptor keeps it until the next time period
// starts (tor's client cache) or until none of its introduction points
// works, so it reaches a new backend only then; a dead backend costs it
// one failed introduction, not the connection.
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
