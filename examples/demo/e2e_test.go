package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/hls/hlstest"
	"github.com/onioncdn/onioncdn/onion"
	"github.com/onioncdn/onioncdn/oniontest"
	"github.com/onioncdn/onioncdn/route"
)

var testNet oniontest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	testNet.Close()
	os.Exit(code)
}

// tlog is an io.Writer and slog handler target that writes to t.Log.
type tlog struct{ t *testing.T }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// between records, per edge, the Cache-Status the midtier sent for each
// path: the disposition between tiers.
type between struct {
	mu   sync.Mutex
	seen map[string][]string // "edge path" → Cache-Status values
}

func (b *between) wrap(edge string, rt http.RoundTripper) http.RoundTripper {
	return rtFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(r)
		if err == nil {
			b.mu.Lock()
			k := edge + " " + r.URL.Path
			b.seen[k] = append(b.seen[k], strings.Join(resp.Header.Values("Cache-Status"), ", "))
			b.mu.Unlock()
		}
		return resp, err
	})
}

func (b *between) get(edge, path string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.seen[edge+" "+path]...)
}

type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// fetch GETs url, retrying transport errors (Tor circuits can fail), and
// returns the status and Cache-Status.
func fetch(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	var lastErr error
	for attempt := range 4 {
		ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := c.Do(req)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			cancel()
			if err == nil {
				return resp.StatusCode, strings.Join(resp.Header.Values("Cache-Status"), ", ")
			}
		}
		cancel()
		lastErr = err
		t.Logf("GET %s attempt %d: %v", url, attempt+1, err)
	}
	t.Fatalf("GET %s: %v", url, lastErr)
	return 0, ""
}

// wantStatus checks the last Cache-Status member (the cache nearest the
// client; the members of the caches before it come first, RFC 9211).
func wantStatus(t *testing.T, what, cs, prefix string) {
	t.Helper()
	last := cs
	if i := strings.LastIndex(cs, ", "); i >= 0 {
		last = cs[i+2:]
	}
	if !strings.HasPrefix(last, prefix) {
		t.Fatalf("%s: Cache-Status %q, want %q…", what, cs, prefix)
	}
}

// TestEndToEndOverTor runs the whole CDN on the private Tor network:
// origin with an ffmpeg-made ABR set → midtier onion → two edges that
// publish one shared onion key (each also publishes an onion of its own, so
// the test can reach a chosen edge) → clients through the network's SOCKS
// port, and a router.
func TestEndToEndOverTor(t *testing.T) {
	n := testNet.Get(t)
	ffmpeg := hlstest.RequireFFmpeg(t)
	start := time.Now()
	content := t.TempDir()
	if _, err := hlstest.GenerateFFmpeg(t.Context(), content, hlstest.FFmpegOptions{
		FFmpeg: ffmpeg, Duration: 8 * time.Second, SegmentDuration: 2 * time.Second, FrameRate: 12,
		Renditions: []hlstest.FFmpegRendition{
			{Name: "144p", Width: 256, Height: 144, VideoBitrate: 120_000},
			{Name: "240p", Width: 426, Height: 240, VideoBitrate: 250_000},
		},
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("ffmpeg content in %v", time.Since(start).Round(time.Millisecond))

	decoy, err := onion.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	decoyPub, _, _ := ed25519.GenerateKey(nil)
	obs := &between{seen: map[string][]string{}}
	c, err := startCluster(t.Context(), clusterConfig{
		Tor: true, Network: n, ContentDir: content, EdgeOnions: true,
		Watchdog: 4 * time.Second, ReportInterval: 2 * time.Second,
		// A group that never reports: the router must never choose it.
		ExtraGroups:       []route.Group{{ID: "decoy", Onion: decoy.Address(), Edges: []route.Edge{{ID: "d1", PublicKey: decoyPub}}}},
		WrapEdgeTransport: obs.wrap,
		Out:               tlog{t},
		Log:               slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	t.Cleanup(func() {
		if left := c.Close(); len(left) > 0 {
			t.Errorf("tor processes left running: %v", left)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("CDN up in %v", time.Since(start).Round(time.Millisecond))
	a, b := c.edges[0], c.edges[1]
	client := c.client("e2e-client")

	const seg0, seg1 = "/144p/seg000.ts", "/144p/seg001.ts"
	t.Run("miss_then_hit", func(t *testing.T) {
		if code, _ := fetch(t, client, a.ownURL()+"/144p/index.m3u8"); code != 200 {
			t.Fatalf("playlist: %d", code)
		}
		code, cs := fetch(t, client, a.ownURL()+seg0)
		if code != 200 {
			t.Fatalf("segment: %d", code)
		}
		wantStatus(t, "first fetch at edge-a", cs, "edge-a; fwd=uri-miss")
		if up := obs.get("edge-a", seg0); len(up) != 1 || !strings.HasPrefix(up[0], "midtier; fwd=uri-miss") {
			t.Fatalf("between midtier and edge-a: %q, want one midtier miss", up)
		}
		_, cs = fetch(t, client, a.ownURL()+seg0)
		wantStatus(t, "second fetch at edge-a", cs, "edge-a; hit")
		if up := obs.get("edge-a", seg0); len(up) != 1 {
			t.Fatalf("the hit went upstream: %q", up)
		}
	})

	t.Run("prefetch", func(t *testing.T) {
		// Serving seg000 made edge-a prefetch the next segments.
		deadline := time.Now().Add(2 * time.Minute)
		for a.tier.Prefetcher.Stats().Prefetched < 2 {
			if time.Now().After(deadline) {
				t.Fatalf("prefetch did not complete: %+v", a.tier.Prefetcher.Stats())
			}
			time.Sleep(100 * time.Millisecond)
		}
		_, cs := fetch(t, client, a.ownURL()+seg1)
		wantStatus(t, "prefetched segment at edge-a", cs, "edge-a; hit")
		if st := a.tier.Prefetcher.Stats(); st.Hits < 1 {
			t.Fatalf("prefetch hit not counted: %+v", st)
		}
		if up := obs.get("edge-a", seg1); len(up) != 1 || !strings.HasPrefix(up[0], "midtier; fwd=uri-miss") {
			t.Fatalf("prefetch between tiers: %q", up)
		}
	})

	t.Run("midtier_shared_by_edges", func(t *testing.T) {
		// edge-a's prefetch filled the midtier: edge-b misses, the midtier hits.
		_, cs := fetch(t, client, b.ownURL()+seg1)
		wantStatus(t, "segment at edge-b", cs, "edge-b; fwd=uri-miss")
		if up := obs.get("edge-b", seg1); len(up) != 1 || !strings.HasPrefix(up[0], "midtier; hit") {
			t.Fatalf("between midtier and edge-b: %q, want a midtier hit", up)
		}
		ms := c.mid.Tier.Cache.Stats()
		as, bs := a.tier.Cache.Stats(), b.tier.Cache.Stats()
		t.Logf("stats: midtier %+v; edge-a %+v; edge-b %+v", ms, as, bs)
		if ms.Hits < 1 || as.Hits < 2 || bs.Misses < 1 {
			t.Fatalf("stats disagree: midtier hits %d, edge-a hits %d, edge-b misses %d", ms.Hits, as.Hits, bs.Misses)
		}
		if c.midRec.count("hit") < 1 {
			t.Fatal("midtier record of the hit missing")
		}
	})

	t.Run("router_steers_to_group", func(t *testing.T) {
		nr := c.client("e2e-router")
		nr.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		for i := range 3 {
			loc, err := redirectOf(t.Context(), nr, c.routerURL+"/master.m3u8?i="+fmt.Sprint(i))
			if err != nil {
				t.Fatal(err)
			}
			if want := c.sharedURL + "/master.m3u8?i=" + fmt.Sprint(i); loc != want {
				t.Fatalf("router sent the client to %q, want %q (the healthy group, not the decoy)", loc, want)
			}
		}
		// Following the redirect lands on one of the group's edges.
		code, cs := fetch(t, client, c.routerURL+"/master.m3u8")
		if code != 200 || (!strings.Contains(cs, "edge-a;") && !strings.Contains(cs, "edge-b;")) {
			t.Fatalf("followed redirect: %d %q", code, cs)
		}
		st, _ := c.router.Stats()
		if st.Groups[0].Redirects < 4 || st.Groups[1].Redirects != 0 || st.Groups[1].Healthy {
			t.Fatalf("router stats: %+v", st.Groups)
		}
	})

	t.Run("failover", func(t *testing.T) {
		// Which edge answers the shared address now?
		_, cs := fetch(t, client, c.sharedURL+"/master.m3u8")
		serving, other := a, b
		if edgeOf(cs) == "edge-b" {
			serving, other = b, a
		} else if edgeOf(cs) != "edge-a" {
			t.Fatalf("shared address answered with Cache-Status %q", cs)
		}
		pid := serving.tor.TorPID()
		t.Logf("shared address served by %s; killing its tor (pid %d)", serving.name, pid)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		deadline := start.Add(3 * time.Minute)
		for attempt := 0; ; attempt++ {
			fresh := c.client(fmt.Sprintf("failover-%d", attempt)) // a fresh circuit each time
			fresh.Timeout = 30 * time.Second
			resp, err := fresh.Get(c.sharedURL + "/master.m3u8")
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 && edgeOf(strings.Join(resp.Header.Values("Cache-Status"), ", ")) == other.name {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("shared address not served by %s %v after the kill (last error %v)", other.name, time.Since(start), err)
			}
			time.Sleep(time.Second)
		}
		w := other.shared.WatchdogStats()
		t.Logf("%s took over after %v; its watchdog: %+v", other.name, time.Since(start).Round(time.Millisecond), w)
		if w.Republishes < 1 {
			t.Fatalf("%s answered without a watchdog re-publication: %+v", other.name, w)
		}
	})
}

// TestBalancedGroupOverTor (issue 15): in balance mode both edges of the
// group serve at the group's one address: 16 requests on fresh circuits
// reach both (all on one edge would happen with probability 2^-15 if
// introductions were split evenly; a race-mode group sends all 16 to one).
func TestBalancedGroupOverTor(t *testing.T) {
	n := testNet.Get(t)
	c, err := startCluster(t.Context(), clusterConfig{
		Tor: true, Network: n, Segments: 3, SegmentDuration: time.Second, Balance: true, ReportInterval: 2 * time.Second,
		Out: tlog{t},
		Log: slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	t.Cleanup(func() {
		if left := c.Close(); len(left) > 0 {
			t.Errorf("tor processes left running: %v", left)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]int{}
	for i := range 16 {
		code, cs := fetch(t, c.client(fmt.Sprintf("balanced-%d", i)), c.sharedURL+"/master.m3u8")
		if code != 200 {
			t.Fatalf("request %d: status %d", i, code)
		}
		served[edgeOf(cs)]++
	}
	t.Logf("requests per edge: %v", served)
	if served["edge-a"] == 0 || served["edge-b"] == 0 {
		t.Errorf("requests per edge %v: want both edges serving", served)
	}
	for _, e := range c.edges {
		if st := e.pub.Stats(); st.UploadRejected != 0 {
			t.Errorf("%s: tor rejected %d uploads", e.name, st.UploadRejected)
		}
	}
}
