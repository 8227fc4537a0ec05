// Package oniontest runs a private Tor network on 127.0.0.1, so that
// programs built on onion services can be tested the way net/http/httptest
// tests HTTP servers: for real, without the real Tor network.
//
// # Overview
//
// [Start] runs the tor and tor-gencert binaries (Debian and Ubuntu package
// "tor"; tor 0.4.8 or later) to build a network of directory authorities
// that are also its relays, guards and HSDirs (5 by default; fewer than 4
// cannot build onion-service circuits), plus one client with a SOCKS5
// port. It starts in two phases: the authorities first, then, once a
// consensus lists every relay as an HSDir, the client; it returns when the
// client has bootstrapped to 100 %.
//
// A boot takes 15–30 s on a 2-core machine: key generation (about one
// CPU-second per authority, skipped with Config.KeyCache), two or three
// 10 s voting rounds and a few seconds of client bootstrap. The network
// uses about 0.4 GB of memory and 5 % of one core when idle. Tests should
// therefore share one network per test binary: [Shared] does that, and
// [Require] skips a test (or fails it when ONIONCDN_REQUIRE_TOR=1, as CI
// should set) when tor is not installed.
//
// Another tor process, such as one started by onion.Server, joins the
// network with the lines from [Network.TorrcLines] in its torrc and can
// then publish and reach onion services. Clients reach them through
// [Network.SocksAddr]; distinct SOCKS usernames get distinct circuits.
// A time period of the onion-service protocol (which decides the blinded
// keys and HSDirs) lasts 4 minutes on this network instead of 24 hours.
//
// # Usage
//
// In a program:
//
//	n, err := oniontest.Start(ctx, oniontest.Config{})
//	if err != nil {
//		return err
//	}
//	defer n.Close()
//	srv := &onion.Server{ExtraTorrc: n.TorrcLines()} // joins the network
//	dialer := &onion.Dialer{SocksAddr: n.SocksAddr()} // a Tor client on it
//
// In tests, one network per test binary:
//
//	var testNet oniontest.Shared
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		testNet.Close()
//		os.Exit(code)
//	}
//
//	func TestOverTor(t *testing.T) {
//		n := testNet.Get(t) // skips if tor is missing, boots on first use
//		_ = n.SocksAddr()
//	}
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
package oniontest
