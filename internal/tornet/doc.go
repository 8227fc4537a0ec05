// Package tornet boots a private Tor network on 127.0.0.1 for tests: the
// onion services and Tor clients of onioncdn's integration tests talk only
// to it, never to the real Tor network.
//
// # Overview
//
// [Start] runs the tor and tor-gencert binaries (Debian package "tor") to
// build a network of directory authorities that are also its relays,
// guards and HSDirs (5 by default; fewer than 4 cannot build onion-service
// circuits), plus one client with a SOCKS5 port. It starts in two phases:
// the authorities first, then, once a consensus lists every relay as an
// HSDir, the client; it returns when the client has bootstrapped to
// 100 %. A boot takes 20–30 s on a 2-core machine (key generation, about
// one CPU-second per authority, plus two or three 10 s voting rounds plus
// a few seconds of client bootstrap), so tests share one network per test
// binary: see package tornettest. With Config.KeyCache the authority keys
// are generated once and reused (they do not depend on the ports), which
// removes the CPU-bound part of the boot.
//
// Another tor process, such as one started by onion.Server, joins the
// network with the lines from [Network.TorrcLines] in its torrc and can
// then publish and reach onion services. Clients reach them through
// [Network.SocksAddr]; distinct SOCKS usernames get distinct circuits.
//
// # Usage
//
//	n, err := tornet.Start(ctx, tornet.Config{})
//	if err != nil {
//		return err
//	}
//	defer n.Close()
//	extra := n.TorrcLines() // for an onion-service tor
//	socks := n.SocksAddr()  // for clients
//
// Every tor runs with -f on its own torrc (so /etc/tor/torrc is never
// read), as a child of this process, with __OwningControllerProcess set
// to this process and, on Linux, a parent-death signal: if the test
// binary dies, its tor processes exit too. [Network.Close] stops them
// with SIGTERM, then SIGKILL after 5 s (tor 0.4.9 can deadlock on
// SIGTERM), and waits for each.
//
// # Security
//
// The network is for tests only. Its authorities use TestingTorNetwork,
// forced flags and 10 s voting intervals, and its torrcs disable
// SafeLogging, so the notice logs contain addresses. Everything listens
// on 127.0.0.1 only. Node keys, torrcs and logs live in Config.Dir or a
// temporary directory with mode 0700, removed by Close.
package tornet
