package tier_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/cache/diskstore"
	"github.com/onioncdn/onioncdn/hls"
	"github.com/onioncdn/onioncdn/metrics"
	"github.com/onioncdn/onioncdn/route"
	"github.com/onioncdn/onioncdn/tier"
	"github.com/onioncdn/onioncdn/upstream"
	"github.com/onioncdn/onioncdn/upstream/integrity"
	"github.com/prometheus/client_golang/prometheus"
)

func listen(t *testing.T) (net.Listener, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln, "http://" + ln.Addr().String()
}

func fetch(t *testing.T, url string) (int, string, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), strings.Join(resp.Header.Values("Cache-Status"), ", ")
}

// TestChain builds origin ← midtier (disk store, verifying signatures) ←
// edge (HLS prefetch, agent, metrics), from public components only, and
// checks dispositions between tiers, the agent's reports, the collectors
// and the orderly shutdown.
func TestChain(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	var originHits sync.Map
	site := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := originHits.LoadOrStore(r.URL.Path, new(int))
		*n.(*int)++
		w.Header().Set("Cache-Control", "public, max-age=600")
		w.Header().Set("Content-Type", "video/mp2t")
		io.WriteString(w, "segment "+r.URL.Path)
	})
	origin := httptest.NewServer((&integrity.Signer{Key: priv}).Handler(site))
	defer origin.Close()

	reg := prometheus.NewRegistry()
	d := metrics.NewDelivery()
	reg.MustRegister(d)

	// Midtier.
	midTr := &upstream.Transport{Upstreams: []string{origin.URL}, MinIdle: -1}
	verifier := &integrity.Transport{Base: midTr, Keys: integrity.Keys(pub)}
	store, err := diskstore.Open(t.TempDir(), diskstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	midCache := &cache.Cache{Transport: verifier, Store: store, Name: "mid", CacheStatus: true}
	midCache.OnRecord = append(midCache.OnRecord, d.OnRecord("mid"))
	reg.MustRegister(metrics.Cache("mid", midCache), metrics.Upstream("mid", midTr), metrics.Integrity("mid", verifier))
	mid := &tier.Tier{Name: "mid", Cache: midCache, Transport: midTr, Store: store}
	midLn, midURL := listen(t)
	go mid.Serve(midLn)

	// Edge, with an agent reporting to a router.
	agentPub, agentKey, _ := ed25519.GenerateKey(nil)
	rt := &route.Router{AllowNonOnion: true, Groups: []route.Group{{ID: "g", Onion: "127.0.0.1:1", Edges: []route.Edge{{ID: "e", PublicKey: agentPub}}}}}
	router := httptest.NewServer(rt)
	defer router.Close()
	edgeTr := &upstream.Transport{Upstreams: []string{midURL}, MinIdle: 1}
	edgeCache := &cache.Cache{Transport: edgeTr, Name: "edge", CacheStatus: true, Policy: &hls.Policy{}}
	edgeCache.OnRecord = append(edgeCache.OnRecord, d.OnRecord("edge"))
	pf := &hls.Prefetcher{}
	edge := &tier.Tier{Name: "edge", Cache: edgeCache, Prefetcher: pf, Transport: edgeTr,
		Agent: &route.Agent{URL: router.URL + route.DefaultReportPath, Group: "g", Edge: "e", Key: agentKey, Interval: 50 * time.Millisecond}}
	reg.MustRegister(metrics.Cache("edge", edgeCache), metrics.Upstream("edge", edgeTr), metrics.Prefetch("edge", pf))
	if err := edgeTr.Warm(t.Context()); err != nil {
		t.Fatal(err)
	}
	edgeLn, edgeURL := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- edge.Run(ctx, edgeLn) }()

	code, body, cs := fetch(t, edgeURL+"/v/seg0.ts")
	if code != 200 || body != "segment /v/seg0.ts" {
		t.Fatalf("got %d %q", code, body)
	}
	if !strings.HasPrefix(cs, "mid; fwd=uri-miss") || !strings.Contains(cs, ", edge; fwd=uri-miss") {
		t.Fatalf("first fetch Cache-Status %q: want misses at both tiers", cs)
	}
	if err := edgeCache.Shutdown(t.Context()); err != nil { // the fill is stored
		t.Fatal(err)
	}
	if _, _, cs = fetch(t, edgeURL+"/v/seg0.ts"); !strings.Contains(cs, "edge; hit") {
		t.Fatalf("second fetch Cache-Status %q, want an edge hit", cs)
	}
	if n, _ := originHits.Load("/v/seg0.ts"); *n.(*int) != 1 {
		t.Fatalf("origin saw %d requests, want 1", *n.(*int))
	}
	if s := verifier.Stats(); s.Verified != 1 {
		t.Fatalf("midtier verified %d responses, want 1", s.Verified)
	}

	// The agent's reports reach the router, with the hit ratio.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, _ := rt.Stats()
		if st.Reports.Accepted > 0 && st.Groups[0].Healthy {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no accepted report: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"onioncdn_cache_requests_total", "onioncdn_upstream_dials_total", "onioncdn_prefetch_scheduled_total", "onioncdn_delivery_seconds", "onioncdn_integrity_verified_total"} {
		if !names[n] {
			t.Errorf("metric %s not registered", n)
		}
	}

	// Run returns after a graceful shutdown; the agent's last report marks
	// the edge unhealthy.
	cancel()
	if err := <-runErr; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if st, _ := rt.Stats(); st.Groups[0].Healthy {
		t.Error("group still healthy after the edge shut down")
	}
	if err := edge.Shutdown(t.Context()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Shutdown: %v", err)
	}
	if _, err := http.Get(edgeURL + "/v/seg0.ts"); err == nil {
		t.Error("edge still serving after Shutdown")
	}
	if err := mid.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Open(t.Context(), "x"); err == nil || !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "closed") {
		t.Errorf("store not closed by Shutdown: %v", err)
	}
}

// closer records when it is closed.
type closer struct {
	name string
	log  *eventLog
}

func (c closer) Close() error { c.log.add(c.name); return nil }

type eventLog struct {
	mu sync.Mutex
	ev []string
}

func (l *eventLog) add(e string) {
	l.mu.Lock()
	l.ev = append(l.ev, e)
	l.mu.Unlock()
}

func (l *eventLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.ev, " ")
}

// TestShutdownOrder: a download in progress completes, the agent's final
// report arrives before the listener stops accepting, the fill started by
// the download finishes, and the transport and the store close after it,
// in that order.
func TestShutdownOrder(t *testing.T) {
	events := &eventLog{}
	release := make(chan struct{})
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "01234")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "56789")
	}))
	defer origin.Close()
	agentPub, agentKey, _ := ed25519.GenerateKey(nil)
	rt := &route.Router{AllowNonOnion: true, Groups: []route.Group{{ID: "g", Onion: "127.0.0.1:1", Edges: []route.Edge{{ID: "e", PublicKey: agentPub}}}}}
	router := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt.ServeHTTP(w, r)
		if st, _ := rt.Stats(); st.Reports.Accepted > 0 && !st.Groups[0].Healthy {
			events.add("final-report")
		}
	}))
	defer router.Close()
	tr := &upstream.Transport{Upstreams: []string{origin.URL}, MinIdle: -1}
	c := &cache.Cache{Transport: tr}
	c.OnRecord = append(c.OnRecord, func(*http.Request, cache.Record) { events.add("request-done") })
	tt := &tier.Tier{Cache: c, Transport: closer{"transport", events}, Store: closer{"store", events},
		Agent: &route.Agent{URL: router.URL + route.DefaultReportPath, Group: "g", Edge: "e", Key: agentKey, Interval: time.Hour}}
	ln, url := listen(t)
	go tt.Serve(ln)

	resp, err := http.Get(url + "/big")
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	shut := make(chan error, 1)
	go func() { shut <- tt.Shutdown(context.Background()) }()
	// The drain waits for the download: let the origin finish only once
	// the final report is in.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(events.String(), "final-report") {
		if time.Now().After(deadline) {
			t.Fatalf("no final report; events %q", events)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	rest, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(first)+string(rest) != "0123456789" {
		t.Fatalf("download cut by the shutdown: %q%q, %v", first, rest, err)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	tr.Close()
	if got, want := events.String(), "final-report request-done transport store"; got != want {
		t.Fatalf("events %q, want %q", got, want)
	}
}

func TestStartErrors(t *testing.T) {
	if err := (&tier.Tier{}).Start(); err == nil || !strings.Contains(err.Error(), "neither Cache nor Handler") {
		t.Errorf("empty tier: %v", err)
	}
	c := &cache.Cache{Policy: cache.PolicyFunc(func(*http.Request, *http.Response) cache.Decision { return cache.Decision{} })}
	if err := (&tier.Tier{Cache: c, Prefetcher: &hls.Prefetcher{}}).Start(); err == nil || !strings.Contains(err.Error(), "not an *hls.Policy") {
		t.Errorf("prefetcher on a non-HLS policy: %v", err)
	}
	// A prefetcher finds the HLS policy under integrity's bound.
	bound := &cache.Cache{Upstream: &url.URL{Scheme: "http", Host: "x"}, Policy: &integrity.BoundPolicy{Policy: &hls.Policy{}}}
	if err := (&tier.Tier{Cache: bound, Prefetcher: &hls.Prefetcher{}}).Start(); err != nil {
		t.Errorf("prefetcher under BoundPolicy: %v", err)
	}
	if err := (&tier.Tier{Handler: http.NotFoundHandler()}).Run(t.Context()); err == nil {
		t.Error("Run without listeners accepted")
	}
}

// Issue 14: a tier strips the CMCD players send before its cache and its
// upstream see it, unless ForwardCMCD; either way the Prefetcher takes the
// next object it names (nor) as a hint.
func TestCMCD(t *testing.T) {
	for _, forward := range []bool{false, true} {
		t.Run(map[bool]string{false: "stripped", true: "forwarded"}[forward], func(t *testing.T) {
			var mu sync.Mutex
			var seen []string
			origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				seen = append(seen, r.URL.RequestURI()+" "+r.Header.Get("CMCD-Request"))
				mu.Unlock()
				if strings.HasSuffix(r.URL.Path, ".m3u8") {
					w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
					io.WriteString(w, "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\ns0.ts\n#EXTINF:2,\ns1.ts\n#EXTINF:2,\ns2.ts\n#EXTINF:2,\ns3.ts\n#EXT-X-ENDLIST\n")
					return
				}
				w.Header().Set("Content-Type", "video/mp2t")
				io.WriteString(w, "segment "+r.URL.Path)
			}))
			defer origin.Close()
			ou, _ := url.Parse(origin.URL)
			pf := &hls.Prefetcher{Ahead: 1}
			tr := &tier.Tier{Cache: &cache.Cache{Upstream: ou}, Prefetcher: pf, ForwardCMCD: forward}
			srv := httptest.NewServer(tr)
			defer srv.Close()
			defer pf.Close()
			fetch(t, srv.URL+"/v/index.m3u8")
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v/s0.ts?CMCD="+url.QueryEscape(`nor="s3.ts",sid="viewer-1"`), nil)
			req.Header.Set("CMCD-Request", "bl=2000")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			deadline := time.Now().Add(10 * time.Second)
			for pf.Stats().Prefetched < 2 { // s1 (lookahead) and s3 (the hint)
				if time.Now().After(deadline) {
					t.Fatalf("prefetch stats %+v", pf.Stats())
				}
				time.Sleep(time.Millisecond)
			}
			mu.Lock()
			defer mu.Unlock()
			leaked := false
			for _, s := range seen {
				leaked = leaked || strings.Contains(s, "CMCD") || strings.Contains(s, "bl=2000")
			}
			if leaked != forward {
				t.Errorf("origin saw %q; want CMCD only with ForwardCMCD", seen)
			}
			if !slices.ContainsFunc(seen, func(s string) bool { return strings.HasPrefix(s, "/v/s3.ts") }) {
				t.Errorf("origin saw %q; want the hinted /v/s3.ts", seen)
			}
		})
	}
}

// TestDefaultLimits: a Tier protects itself from its clients by default
// (package limit): too many header fields get 431, a URI too long 414,
// and the cache sheds misses through the same Limiter.
func TestDefaultLimits(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer origin.Close()
	u, _ := url.Parse(origin.URL)
	c := &cache.Cache{Upstream: u}
	tt := &tier.Tier{Cache: c}
	ln, base := listen(t)
	go tt.Serve(ln)
	defer tt.Shutdown(context.Background())
	req, _ := http.NewRequest("GET", base+"/a", nil)
	for i := range 150 {
		req.Header.Set(fmt.Sprintf("X-F%d", i), "v")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("150 header fields: %d, want 431", resp.StatusCode)
	}
	if code, _, _ := fetch(t, base+"/"+strings.Repeat("x", 9<<10)); code != http.StatusRequestURITooLong {
		t.Errorf("9 KiB URI: %d, want 414", code)
	}
	if code, body, _ := fetch(t, base+"/a"); code != 200 || body != "ok" {
		t.Errorf("normal request: %d %q", code, body)
	}
	if c.AdmitMiss == nil || tt.Limiter == nil {
		t.Error("the cache's AdmitMiss is not the tier's Limiter")
	}
}
