// Package onion publishes and dials Tor onion services from Go.
//
// # Overview
//
// A [Server] drives one tor: a tor process it starts itself, or an existing
// tor it reaches through the control port. [Server.Listen] publishes a v3
// onion service and returns a [Listener], an ordinary [net.Listener] whose
// Addr is the .onion address, so any server that takes a listener
// (net/http, gRPC, …) serves over Tor. Listen returns only once tor reports
// the service's descriptor uploaded to an HSDir, so the address is
// reachable when it returns.
//
// Keys ([Key]) are kept in tor's own hs_ed25519_secret_key format: a key
// from an existing HiddenServiceDir works here, and one saved here works in
// a plain tor configuration. [ParseAddress] validates v3 addresses.
//
// A [Dialer] opens streams through tor's SOCKS port with a DialContext that
// honours cancellation, and isolation tags that keep streams on separate
// circuits: use its DialContext as an [net/http.Transport]'s.
//
// Several publishers may serve the same key for redundancy. Clients follow
// whichever uploaded its descriptor last, and when that publisher dies the
// address stays dead until another one uploads, which tor does by itself
// only at the next time period (24 h). [Listener.Republish] forces a fresh
// upload; a [Watchdog] on each publisher probes the shared address and
// re-publishes when it stops answering.
//
// Instead of racing, the publishers of a group can run as Onionbalance-style
// instances: each publishes its own address with [ListenConfig.Frontend]
// set to the group's, and a balancer (package onion/balance) merges their
// introduction points into the group's descriptor, so every instance
// serves at once. [Server.FetchDescriptor] (HSFETCH), [Server.PostDescriptor]
// (HSPOST), [Server.GetInfo] and [Server.GetConf] give such programs the
// control-port operations they need without handing out the connection.
//
// With [ListenConfig.ExportCircuitID], tor tells the Listener which client
// circuit each connection came on; [ConnContext] and [CircuitID] make it
// available to handlers, for per-circuit rate limits and metrics.
//
// # Usage
//
// Publish an HTTP server:
//
//	srv := new(onion.Server) // starts "tor" from PATH on first use
//	defer srv.Close()
//	key, _, err := onion.LoadOrCreateKey("hs_ed25519_secret_key") // created (0600) on first run
//	if err != nil { … }
//	ln, err := srv.Listen(ctx, onion.ListenConfig{Key: key, Watchdog: &onion.Watchdog{}})
//	if err != nil { … }
//	log.Println("serving on", ln.Onion())
//	http.Serve(ln, handler)
//
// Attach to a running tor instead of starting one:
//
//	srv := &onion.Server{ControlAddr: "127.0.0.1:9051", ControlCookie: "/run/tor/control.authcookie"}
//
// Fetch through Tor, each site on its own circuits:
//
//	d := &onion.Dialer{SocksAddr: "127.0.0.1:9050", Isolation: "site-a"}
//	client := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
//
// Services come in two kinds. By default a service is ephemeral (tor's
// ADD_ONION): it lives as long as the Server's control connection, so it
// disappears with the Server even after a crash. ADD_ONION cannot set the
// number of introduction points, the intro-point DoS defence, circuit-id
// export or Onionbalance instance mode (Frontend); a service that uses any
// of them is a configured service instead
// (SETCONF with a HiddenServiceDir under [Server.DataDir]), and the Server
// sends its whole set of configured services, plus the services already in
// tor's own configuration, on every change, because SETCONF replaces all
// HiddenService* options at once. See [ListenConfig].
//
// # Security
//
//   - Keys never appear in logs, error strings or formatted output (a
//     [Key] prints as its address). Key files are written with mode 0600,
//     and [LoadKey] refuses a file its group or others can read. A
//     configured service's HiddenServiceDir holds a copy of the key while
//     the service is published and is removed when it closes.
//   - Circuit ids are meaningful only inside the publishing tor. They are
//     never logged, never forwarded, and a Listener's connections keep
//     tor's local RemoteAddr, so logging RemoteAddr reveals nothing.
//   - The isolation tag reaches only tor (as the SOCKS username and
//     password). Streams with the same tag may share circuits, and a shared
//     circuit links the streams' activity for the destination: give each
//     site or user its own tag where that matters.
//   - A tor the Server starts runs with __OwningControllerProcess and
//     TAKEOWNERSHIP, so it exits when the Server's process or control
//     connection goes away; Close stops it with SIGTERM and, if it hangs,
//     SIGKILL.
//   - When attached to a shared tor, anyone who can use that control port
//     can see and remove the Server's services.
//
// This package does not choose what to serve or cache, does not balance
// load between publishers (see package route), and does not support v2
// onion services or client authorization.
package onion
