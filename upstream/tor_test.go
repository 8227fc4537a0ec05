package upstream

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/onion"
	"github.com/onioncdn/onioncdn/oniontest"
)

// Tests over the private Tor network from internal/oniontest. They skip when
// tor is not installed (fail with ONIONCDN_REQUIRE_TOR=1, as in CI).

var testNet oniontest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	testNet.Close()
	os.Exit(code)
}

// midtier is an onion service answering with its name, counting requests
// and accepted connections.
type midtier struct {
	name     string
	addr     string // "xxx.onion"
	srv      *http.Server
	ln       *onion.Listener
	hits     atomic.Int64
	accepted atomic.Int64
}

func (m *midtier) URL() string { return "http://" + m.addr }

func (m *midtier) Close() {
	m.ln.Close()
	m.srv.Close()
}

// onionServer starts an onion.Server with its own tor joined to n.
func onionServer(tb testing.TB, n *oniontest.Network) *onion.Server {
	tb.Helper()
	s := &onion.Server{ExtraTorrc: n.TorrcLines(), DataDir: tb.TempDir(), Logger: testLogger(tb)}
	tb.Cleanup(func() { s.Close() })
	if err := s.Start(tb.Context()); err != nil {
		tb.Fatalf("onion server: %v", err)
	}
	return s
}

func publishMidtier(tb testing.TB, s *onion.Server, name string) *midtier {
	tb.Helper()
	ln, err := s.Listen(tb.Context(), onion.ListenConfig{})
	if err != nil {
		tb.Fatalf("publish %s: %v", name, err)
	}
	m := &midtier{name: name, addr: ln.Onion(), ln: ln}
	m.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			m.hits.Add(1)
			io.WriteString(w, name)
		}),
		ConnState: func(c net.Conn, st http.ConnState) {
			if st == http.StateNew {
				m.accepted.Add(1)
			}
		},
	}
	go m.srv.Serve(ln)
	tb.Cleanup(m.Close)
	return m
}

// warmTor waits until tr's pools are warm; the first dials after a publish
// may legitimately fail on Tor, so dial errors are retried within a bound.
func warmTor(tb testing.TB, tr *Transport) {
	tb.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(tb.Context(), 2*time.Minute)
		err := tr.Warm(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("warm over tor: %v", err)
		}
		tb.Logf("warm: %v (retrying)", err)
		select {
		case <-tb.Context().Done():
			tb.Fatal(tb.Context().Err())
		case <-time.After(time.Second):
		}
	}
}

func torTransport(tb testing.TB, n *oniontest.Network, tr *Transport) *Transport {
	d := &onion.Dialer{SocksAddr: n.SocksAddr()}
	tr.DialIsolated = d.DialIsolated
	if tr.DialTimeout == 0 {
		tr.DialTimeout = 45 * time.Second
	}
	if tr.Logger == nil {
		tr.Logger = testLogger(tb)
	}
	tb.Cleanup(func() { tr.Close() })
	return tr
}

func TestTorWarmPoolReuse(t *testing.T) {
	n := testNet.Get(t)
	s := onionServer(t, n)
	m := publishMidtier(t, s, "mid")
	tr := torTransport(t, n, &Transport{Upstreams: []string{m.URL()}, MinIdle: 2})
	warmTor(t, tr)
	if st := tr.Stats().Upstreams[0]; st.Idle < 2 || st.Requests != 0 {
		t.Fatalf("after Warm: %+v", st)
	}

	if _, body := mustGet(t, tr, "http://edge/first"); body != "mid" {
		t.Fatalf("body %q", body)
	}
	// The request took a warm connection; the warmer replaces it and the
	// used one comes back: 3 idle.
	settled := waitStats(t, tr, "pool settled", func(s Stats) bool { return s.Upstreams[0].Idle == 3 })
	before := settled.Upstreams[0]
	if before.ColdDials != 0 {
		t.Fatalf("first request dialled on its path: %+v", before)
	}
	accepted := m.accepted.Load()

	// An idle period, then a request: it must use an existing connection.
	time.Sleep(3 * time.Second)
	if _, body := mustGet(t, tr, "http://edge/after-idle"); body != "mid" {
		t.Fatalf("body %q", body)
	}
	after := tr.Stats().Upstreams[0]
	// It may get the connection of the first request or one the warmer
	// dialled meanwhile; either way an existing one.
	if after.Dials != before.Dials || after.ColdDials != 0 || after.Requests != before.Requests+1 {
		t.Fatalf("request after idle period: before %+v after %+v; want an existing connection and no dial", before, after)
	}
	if m.accepted.Load() != accepted {
		t.Fatalf("midtier accepted %d new connections for the request after the idle period", m.accepted.Load()-accepted)
	}
}

func TestTorFailover(t *testing.T) {
	n := testNet.Get(t)
	s := onionServer(t, n)
	a := publishMidtier(t, s, "a")
	b := publishMidtier(t, s, "b")
	tr := torTransport(t, n, &Transport{Upstreams: []string{a.URL(), b.URL()}, MinIdle: 1, DialTimeout: 20 * time.Second})
	warmTor(t, tr)

	var seen []string
	for range 4 {
		_, body := mustGet(t, tr, "http://edge/x")
		seen = append(seen, body)
	}
	if !slices.Contains(seen, "a") || !slices.Contains(seen, "b") {
		t.Fatalf("bodies %v; want both midtiers used", seen)
	}

	// Midtier a goes away: its onion is removed and its connections close.
	a.Close()
	aHits := a.hits.Load()
	for i := range 8 {
		_, body, err := get(t, tr, fmt.Sprintf("http://edge/after-close-%d", i))
		if err != nil || body != "b" {
			t.Fatalf("request %d after closing midtier a: %q %v; stats %+v", i, body, err, tr.Stats())
		}
	}
	if a.hits.Load() != aHits {
		t.Fatalf("closed midtier served requests")
	}
	st := waitStats(t, tr, "midtier a marked down", func(s Stats) bool {
		u := s.Upstreams[0]
		return !u.Healthy || u.DialFailures > 0
	})
	t.Logf("stats after failover: a=%+v b=%+v", st.Upstreams[0], st.Upstreams[1])
}

// firstRequest makes a new Transport to m and returns the latency of its
// first request, with the pool warmed beforehand or not. Each Transport
// uses fresh isolation tags, so no circuit of an earlier one is reused.
func firstRequest(tb testing.TB, n *oniontest.Network, m *midtier, warmPool bool, round int) (time.Duration, UpstreamStats) {
	return timedFirstRequest(tb, n, m, warmPool, round, func() {}, func() {})
}

// timedFirstRequest is firstRequest calling start and stop around the
// request alone.
func timedFirstRequest(tb testing.TB, n *oniontest.Network, m *midtier, warmPool bool, round int, startTimer, stopTimer func()) (time.Duration, UpstreamStats) {
	tr := &Transport{
		Upstreams: []string{m.URL()},
		MinIdle:   -1,
		Isolation: func(host, site string, slot int) string {
			return fmt.Sprintf("%s/%d/first-request-%v-%d", host, slot, warmPool, round)
		},
		Logger: testLogger(tb),
	}
	if warmPool {
		tr.MinIdle = 1
	}
	torTransport(tb, n, tr)
	defer tr.Close()
	if warmPool {
		warmTor(tb, tr)
	}
	startTimer()
	start := time.Now()
	_, _, err := get(tb, tr, "http://edge/first")
	d := time.Since(start)
	stopTimer()
	if err != nil {
		tb.Fatalf("first request (warm %v): %v", warmPool, err)
	}
	return d, tr.Stats().Upstreams[0]
}

func TestTorFirstRequestWarmVsCold(t *testing.T) {
	n := testNet.Get(t)
	s := onionServer(t, n)
	m := publishMidtier(t, s, "mid")
	// Make sure the onion is reachable (descriptor fetched) before measuring.
	firstRequest(t, n, m, true, -1)

	const rounds = 3
	var cold, warm []time.Duration
	for i := range rounds {
		d, st := firstRequest(t, n, m, false, i)
		if st.ColdDials != 1 {
			t.Fatalf("cold transport: %+v; want the first request to dial", st)
		}
		cold = append(cold, d)
		d, st = firstRequest(t, n, m, true, i)
		if st.ColdDials != 0 || st.Dials != 1 || st.New != 1 {
			t.Fatalf("warm transport: %+v; want the first request on the pre-dialled connection", st)
		}
		warm = append(warm, d)
	}
	slices.Sort(cold)
	slices.Sort(warm)
	mc, mw := cold[rounds/2], warm[rounds/2]
	t.Logf("first-request latency over the private Tor network: cold %v, warm %v (median of %d), ratio cold/warm %.1f", cold, warm, rounds, float64(mc)/float64(mw))
}

// BenchmarkFirstRequest measures the first request of a new Transport over
// the private Tor network, with and without the warm pool (the warm-up
// and the set-up are not timed). Run with -benchtime=5x; compare the two
// ns/op.
func BenchmarkFirstRequest(b *testing.B) {
	n := testNet.Get(b)
	s := onionServer(b, n)
	m := publishMidtier(b, s, "mid")
	firstRequest(b, n, m, true, -1)
	for _, warmPool := range []bool{false, true} {
		b.Run(map[bool]string{false: "cold", true: "warm"}[warmPool], func(b *testing.B) {
			b.StopTimer()
			for i := range b.N {
				timedFirstRequest(b, n, m, warmPool, 1000+i, b.StartTimer, b.StopTimer)
			}
		})
	}
}
