package purge_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/onion"
	"github.com/onioncdn/onioncdn/oniontest"
	"github.com/onioncdn/onioncdn/purge"
	"github.com/onioncdn/onioncdn/tier"
	"github.com/onioncdn/onioncdn/upstream"
	"github.com/onioncdn/onioncdn/upstream/integrity"
)

var testNet oniontest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	testNet.Close()
	os.Exit(code)
}

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// torEdge is one edge of the test: its own tor publishing the group's
// key, a tier following the midtier's purge log over Tor, and a loopback
// listener through which the test reads its cache directly.
type torEdge struct {
	name    string
	tor     *onion.Server
	onionLn *countingListener
	ln      *onion.Listener
	tier    *tier.Tier
	cache   *cache.Cache
	follow  *purge.Follower
	direct  string // http://127.0.0.1:port

	mu      sync.Mutex
	applied map[uint64]time.Time
	wake    chan struct{}
}

func (e *torEdge) appliedAt(seq uint64) (time.Time, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t, ok := e.applied[seq]
	return t, ok
}

// waitApplied waits until the edge applied entry seq, up to d.
func (e *torEdge) waitApplied(seq uint64, d time.Duration) (time.Time, bool) {
	deadline := time.After(d)
	for {
		e.mu.Lock()
		at, ok := e.applied[seq]
		wake := e.wake
		e.mu.Unlock()
		if ok {
			return at, true
		}
		select {
		case <-wake:
		case <-deadline:
			return time.Time{}, false
		}
	}
}

func getBody(t *testing.T, client *http.Client, url string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := client.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), strings.Join(resp.Header.Values("Cache-Status"), ", "), err
}

// TestTorPropagation runs issue #13's purge setup over the private Tor
// network: origin (signed responses, purge log) → a midtier published as
// an onion service → two edges publishing the same onion key, each with
// its own tor. One edge holds the descriptor clients find and receives
// them; the other cannot be reached at the shared address.
// Both follow the midtier's log over their warm Tor pools, and both apply
// every purge within 5 s of its submission at the origin; afterwards
// neither serves a purged object.
//
// ONIONCDN_PURGE_TOR_N sets the number of purges timed (default 5); the
// median and maximum propagation times are logged.
func TestTorPropagation(t *testing.T) {
	n := testNet.Get(t)
	purges := 5
	if s := os.Getenv("ONIONCDN_PURGE_TOR_N"); s != "" {
		if v, err := strconv.Atoi(s); err == nil && v > 0 {
			purges = v
		}
	}
	pub, priv, _ := ed25519.GenerateKey(nil)
	keys := integrity.Keys(pub)

	// The origin.
	var version atomic.Int64
	version.Store(1)
	site := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := version.Load()
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("ETag", fmt.Sprintf(`"%d"`, v))
		w.Header().Set("Surrogate-Key", "obj")
		if r.Header.Get("If-None-Match") == fmt.Sprintf(`"%d"`, v) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprintf(w, "v%d %s", v, r.URL.Path)
	})
	plog := &purge.Log{Key: priv}
	mux := http.NewServeMux()
	mux.Handle(purge.DefaultPath, plog)
	mux.Handle("/", (&integrity.Signer{Key: priv}).Handler(site))
	origin := httptest.NewServer(mux)
	t.Cleanup(origin.Close)
	t.Cleanup(func() { plog.Close() })

	// Three tors (the midtier's and one per edge), started together.
	tors := make([]*onion.Server, 3)
	var wg sync.WaitGroup
	errs := make([]error, len(tors))
	for i := range tors {
		tors[i] = &onion.Server{ExtraTorrc: n.TorrcLines(), DataDir: t.TempDir()}
		t.Cleanup(func() { tors[i].Close() })
		wg.Go(func() { errs[i] = tors[i].Start(t.Context()) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("starting tor: %v", err)
		}
	}

	// The midtier, an onion service.
	midTor := tors[0]
	midLn, err := midTor.Listen(t.Context(), onion.ListenConfig{})
	if err != nil {
		t.Fatalf("midtier onion: %v", err)
	}
	midTr := &upstream.Transport{Upstreams: []string{origin.URL}}
	midCache := &cache.Cache{Transport: &integrity.Transport{Base: midTr, Keys: keys}, Name: "mid", CacheStatus: true, ForwardTags: true}
	mid := &tier.Tier{Name: "mid", Cache: midCache, Transport: midTr,
		Purge: &purge.Follower{Transport: midTr, Keys: keys}, ServePurgeLog: true}
	go mid.Serve(midLn)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		mid.Shutdown(ctx)
	})

	// Two edges sharing one key, each with its own tor.
	groupKey, err := onion.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	edges := make([]*torEdge, 2)
	for i := range edges {
		e := &torEdge{name: "edge" + strconv.Itoa(i), applied: map[uint64]time.Time{}, wake: make(chan struct{})}
		e.tor = tors[1+i]
		e.ln, err = e.tor.Listen(t.Context(), onion.ListenConfig{Key: groupKey})
		if err != nil {
			t.Fatalf("%s onion: %v", e.name, err)
		}
		e.onionLn = &countingListener{Listener: e.ln}
		tr := &upstream.Transport{Upstreams: []string{"http://" + midLn.Onion()}, DialIsolated: e.tor.Dialer().DialIsolated, DialTimeout: 45 * time.Second}
		e.follow = &purge.Follower{Transport: tr, Keys: keys, OnApply: func(en purge.Entry, at time.Time) {
			e.mu.Lock()
			e.applied[en.Seq] = at
			close(e.wake)
			e.wake = make(chan struct{})
			e.mu.Unlock()
		}}
		e.cache = &cache.Cache{Transport: e.follow.Guard(&integrity.Transport{Base: tr, Keys: keys}), Name: e.name, CacheStatus: true}
		e.tier = &tier.Tier{Name: e.name, Cache: e.cache, Transport: tr, Purge: e.follow}
		direct, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		e.direct = "http://" + direct.Addr().String()
		go e.tier.Serve(e.onionLn)
		go e.tier.Serve(direct)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			e.tier.Shutdown(ctx)
		})
		edges[i] = e
	}

	// Clients reach the shared address at one edge, the one whose
	// descriptor they found (the last to publish, unless its upload had
	// not reached every HSDir yet); the other one does not hold the
	// descriptor.
	shared := "http://" + groupKey.Address()
	deadline := time.Now().Add(3 * time.Minute)
	var holder, other *torEdge
	for attempt := 0; holder == nil; attempt++ {
		d := &onion.Dialer{SocksAddr: n.SocksAddr(), Isolation: onion.NewIsolationTag()}
		client := d.HTTPClient()
		client.Transport.(*http.Transport).DisableKeepAlives = true
		body, cs, err := getBody(t, client, shared+"/probe")
		for i, e := range edges {
			if err == nil && strings.Contains(cs, e.name+";") {
				holder, other = e, edges[1-i]
				t.Logf("clients reach the shared address at %s (attempt %d); %s does not hold the descriptor", e.name, attempt, other.name)
			}
		}
		if holder == nil && time.Now().After(deadline) {
			t.Fatalf("the shared address does not answer: %q %q %v", body, cs, err)
		}
		if holder == nil {
			time.Sleep(time.Second)
		}
	}
	// A few fresh clients, all at the holder.
	for range 3 {
		d := &onion.Dialer{SocksAddr: n.SocksAddr(), Isolation: onion.NewIsolationTag()}
		client := d.HTTPClient()
		client.Transport.(*http.Transport).DisableKeepAlives = true
		if _, cs, err := getBody(t, client, shared+"/probe"); err != nil || !strings.Contains(cs, holder.name+";") {
			t.Fatalf("a fresh client reached %q (%v), want %s", cs, err, holder.name)
		}
	}
	holderConns, otherConns := holder.onionLn.n.Load(), other.onionLn.n.Load()

	// Both edges follow: a first purge reaches them once their pools to
	// the midtier are up (circuit setup, not propagation).
	warm, err := purge.Submit(t.Context(), nil, origin.URL+purge.DefaultPath, priv, cache.Purge{Kind: cache.PurgeURL, Value: "/warm-up"})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range edges {
		if _, ok := e.waitApplied(warm.Seq, 3*time.Minute); !ok {
			t.Fatalf("%s never applied the first purge: %+v", e.name, e.follow.Stats())
		}
	}

	// Objects cached at every tier, then a new version at the origin.
	paths := make([]string, purges)
	for i := range paths {
		paths[i] = "/obj/" + strconv.Itoa(i)
		for _, e := range edges {
			getBody(t, http.DefaultClient, e.direct+paths[i])
			e.cache.Shutdown(t.Context())
			if body, cs, err := getBody(t, http.DefaultClient, e.direct+paths[i]); err != nil || !strings.Contains(cs, e.name+"; hit") {
				t.Fatalf("%s %s not cached: %q %q %v", e.name, paths[i], body, cs, err)
			}
		}
	}
	version.Store(2)

	// The timed purges: hard and soft, by URL and prefix, one object each.
	var times []time.Duration
	for i := range purges {
		p := cache.Purge{Kind: cache.PurgeURL, Value: paths[i], Soft: i%2 == 1}
		if i%3 == 2 {
			p = cache.Purge{Kind: cache.PurgePrefix, Value: paths[i]}
		}
		start := time.Now()
		en, err := purge.Submit(t.Context(), nil, origin.URL+purge.DefaultPath, priv, p)
		if err != nil {
			t.Fatal(err)
		}
		var worst time.Duration
		for _, e := range edges {
			at, ok := e.waitApplied(en.Seq, 30*time.Second)
			if !ok {
				t.Fatalf("%s did not apply purge %d (%v) within 30 s: %+v", e.name, en.Seq, p, e.follow.Stats())
			}
			worst = max(worst, at.Sub(start))
			if d := at.Sub(start); d > 5*time.Second {
				t.Errorf("%s applied purge %d %v after its submission, want within 5 s", e.name, en.Seq, d.Round(time.Millisecond))
			}
		}
		times = append(times, worst)
		// Neither edge serves the purged object afterwards.
		for _, e := range edges {
			body, cs, err := getBody(t, http.DefaultClient, e.direct+paths[i])
			if err != nil || body != "v2 "+paths[i] {
				t.Errorf("%s serves %q (%s, %v) after purge %d", e.name, body, cs, err, en.Seq)
			}
		}
		time.Sleep(200 * time.Millisecond) // purges a little apart, as an operator's are
	}
	sorted := slices.Clone(times)
	slices.Sort(sorted)
	t.Logf("propagation over Tor, origin → midtier onion → both edges (worst of the two per purge), %d purges: median %v, max %v, all %v",
		len(sorted), sorted[len(sorted)/2].Round(time.Millisecond), sorted[len(sorted)-1].Round(time.Millisecond), roundAll(times))
	// The purges reached the edge that clients cannot reach, and it
	// received no client meanwhile.
	if got := other.onionLn.n.Load() - otherConns; got != 0 {
		t.Errorf("%s accepted %d connections at the shared address: it was meant not to hold the descriptor", other.name, got)
	}
	t.Logf("connections at the shared address: holder %s %d (%d before the purges), other %s %d",
		holder.name, holder.onionLn.n.Load(), holderConns, other.name, other.onionLn.n.Load())
	for _, e := range edges {
		st := e.follow.Stats()
		if st.Rejected[purge.ReasonBadSignature] != 0 || st.Resyncs != 0 {
			t.Errorf("%s: %+v", e.name, st)
		}
	}
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}
