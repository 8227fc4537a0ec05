package hls_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/hls"
	"github.com/onioncdn/onioncdn/hls/hlstest"
)

// counter is an origin wrapper counting requests per path and query
// (parameters sorted).
type counter struct {
	next http.Handler
	mu   sync.Mutex
	n    map[string]int
}

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	k := r.URL.Path // with the query normalised (sorted)
	if r.URL.RawQuery != "" {
		k += "?" + r.URL.Query().Encode()
	}
	c.n[k]++
	c.mu.Unlock()
	c.next.ServeHTTP(w, r)
}

func (c *counter) get(uri string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[uri]
}

func (c *counter) max(prefix string) (string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	worst, n := "", 0
	for k, v := range c.n {
		if strings.HasPrefix(k, prefix) && v > n {
			worst, n = k, v
		}
	}
	return worst, n
}

// tiers is origin → midtier cache → edge cache (with prefetch).
type tiers struct {
	origin     *counter
	mid, edge  *cache.Cache
	prefetcher *hls.Prefetcher
	edgeURL    string
}

func newTiers(t *testing.T, origin http.Handler, now func() time.Time) *tiers {
	t.Helper()
	tt := &tiers{origin: &counter{next: origin}}
	osrv := httptest.NewServer(tt.origin)
	t.Cleanup(osrv.Close)
	ou, _ := url.Parse(osrv.URL)
	tt.mid = &cache.Cache{Upstream: ou, Policy: &hls.Policy{}, CacheStatus: true, Name: "mid", Now: now}
	msrv := httptest.NewServer(tt.mid)
	t.Cleanup(msrv.Close)
	mu, _ := url.Parse(msrv.URL)
	tt.edge = &cache.Cache{Upstream: mu, Policy: &hls.Policy{}, CacheStatus: true, Name: "edge", Now: now}
	tt.prefetcher = &hls.Prefetcher{Now: now}
	if err := tt.prefetcher.Attach(tt.edge); err != nil {
		t.Fatal(err)
	}
	esrv := httptest.NewServer(tt.prefetcher.Wrap(tt.edge))
	t.Cleanup(esrv.Close)
	t.Cleanup(func() { tt.prefetcher.Close() })
	tt.edgeURL = esrv.URL
	return tt
}

// ttl returns the ttl parameter of the edge's Cache-Status member.
func ttl(t *testing.T, rawURL string) (int, string) {
	t.Helper()
	resp, err := http.Get(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	cs := resp.Header.Values("Cache-Status")
	last := cs[len(cs)-1]
	_, v, ok := strings.Cut(last, "ttl=")
	if !ok {
		return -1, last
	}
	v, _, _ = strings.Cut(v, ";")
	n, _ := strconv.Atoi(strings.TrimSpace(v))
	return n, last
}

func near(got, want int) bool { return got <= want && got >= want-5 }

// TestFFmpegThroughTiers plays a real ffmpeg ABR set through a midtier and
// an edge cache, both with the HLS policy, and checks the TTLs, the
// collapsing across tiers, the prefetch hits and the player's figures.
func TestFFmpegThroughTiers(t *testing.T) {
	bin := hlstest.RequireFFmpeg(t)
	for _, fmp4 := range []bool{false, true} {
		t.Run(fmt.Sprintf("fmp4_%v", fmp4), func(t *testing.T) {
			dir := t.TempDir()
			genStart := time.Now()
			if _, err := hlstest.GenerateFFmpeg(t.Context(), dir, hlstest.FFmpegOptions{FFmpeg: bin, FMP4: fmp4, Duration: 12 * time.Second}); err != nil {
				t.Fatal(err)
			}
			t.Logf("ffmpeg: 12 s × 3 renditions in %v", time.Since(genStart).Round(time.Millisecond))
			tt := newTiers(t, http.FileServer(http.Dir(dir)), nil)
			rep, err := (&hls.Tester{Players: 3}).Run(t.Context(), tt.edgeURL+"/master.m3u8")
			if err != nil {
				t.Fatal(err)
			}
			var txt strings.Builder
			rep.WriteText(&txt)
			t.Logf("through midtier and edge:\n%s", txt.String())
			s := rep.Summary
			if s.Failed != 0 || s.Errors != 0 || s.Segments != 18 || s.Stalls != 0 {
				t.Fatalf("summary %+v", s)
			}
			// Every object crossed the origin once, whatever the players.
			if uri, n := tt.origin.max("/"); n != 1 {
				t.Errorf("origin served %s %d times", uri, n)
			}
			ps := tt.prefetcher.Stats()
			t.Logf("prefetch %+v", ps)
			if ps.Prefetched == 0 || ps.Hits == 0 {
				t.Errorf("prefetch stats %+v", ps)
			}
			if s.Dispositions["hit"]+s.Dispositions["collapsed"] == 0 {
				t.Errorf("dispositions %v", s.Dispositions)
			}
			ext := ".ts"
			if fmp4 {
				ext = ".m4s"
			}
			want := map[string]int{
				"/master.m3u8":         300,
				"/480p/index.m3u8":     86400,
				"/480p/seg001" + ext:   86400,
				"/720p/seg005" + ext:   86400,
				"/240p/no-such-seg.ts": 0, // a 404 segment gets no HLS TTL
			}
			if fmp4 {
				want["/480p/init_1.mp4"] = 86400 // ffmpeg numbers init sections per stream
			}
			for path, want := range want {
				if got, cs := ttl(t, tt.edgeURL+path); !near(got, want) && !(want == 0 && got <= 0) {
					t.Errorf("%s: ttl %d (%s), want %d", path, got, cs, want)
				}
			}
		})
	}
}

// TestLiveThroughTiers plays a live synthetic stream through the tiers on
// a clock running 2× real time: no stalls, and the origin sees each
// playlist about once per half target duration, not once per player.
func TestLiveThroughTiers(t *testing.T) {
	const speed = 2
	start := time.Now()
	clock := func() time.Time { return start.Add(time.Since(start) * speed) }
	origin := &hlstest.Origin{Live: true, Now: clock}
	tt := newTiers(t, origin, clock)
	rep, err := (&hls.Tester{Players: 4, Speed: speed, Duration: 12 * time.Second, Rendition: 2}).Run(t.Context(), tt.edgeURL+"/master.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	if s := rep.Summary; s.Failed != 0 || s.Stalls != 0 || s.Segments != 24 {
		for _, p := range rep.Players {
			for _, seg := range p.Segments {
				t.Logf("player %d msn %d start %.3f ttfb %.3f %s", p.Player, seg.MSN, seg.Start, seg.TTFB, seg.CacheStatus)
			}
		}
		t.Fatalf("summary %+v", s)
	}
	elapsed := clock().Sub(start)
	t.Logf("origin: live playlist %d times in %v of media", tt.origin.get("/480p/index.m3u8"), elapsed)
	// TD = 2 s, TTL 1 s per tier: at most one origin fetch per media
	// second (+2 for the edges of the window), whatever the player count.
	if n, limit := tt.origin.get("/480p/index.m3u8"), int(elapsed/time.Second)+2; n > limit {
		t.Errorf("origin served the live playlist %d times in %v (limit %d)", n, elapsed, limit)
	}
	if uri, n := tt.origin.max("/480p/seg"); n != 1 {
		t.Errorf("origin served %s %d times", uri, n)
	}
}

// TestLLHLSBlockingCollapsed sends many concurrent LL-HLS blocking reload
// requests through the tiers: one upstream request per distinct key, with
// the directives in any order; a 404 for a future MSN is cached 4 TD.
func TestLLHLSBlockingCollapsed(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan string, 10)
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("_HLS_msn") == "999" {
			http.NotFound(w, r)
			return
		}
		select {
		case arrived <- r.URL.RawQuery:
		default: // more upstream requests than distinct keys: the test fails below
		}
		<-release
		w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
		fmt.Fprintf(w, "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.0\n#EXT-X-PART-INF:PART-TARGET=0.5\n#EXT-X-MEDIA-SEQUENCE:10\n#EXTINF:2,\ns10.mp4\n#EXT-X-PART:DURATION=0.5,URI=\"p11.%s.mp4\"\n", q.Get("_HLS_part"))
	})
	tt := newTiers(t, origin, nil)
	keys := []string{"_HLS_msn=11&_HLS_part=1", "_HLS_msn=11&_HLS_part=2"}
	var wg sync.WaitGroup
	bodies := make(chan string, 40)
	for i := range 40 {
		q := keys[i%2]
		part := q[len(q)-1:]
		if i%4 >= 2 { // same directives, other order
			a, b, _ := strings.Cut(q, "&")
			q = b + "&" + a
		}
		wg.Go(func() {
			resp, err := http.Get(tt.edgeURL + "/ll/index.m3u8?" + q)
			if err != nil {
				bodies <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			bodies <- fmt.Sprintf("%d %v", resp.StatusCode, strings.Contains(string(b), "p11."+part+".mp4"))
		})
	}
	// Both distinct fills reach the origin; then let them finish.
	for range 2 {
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatal("blocking requests never reached the origin")
		}
	}
	close(release)
	wg.Wait()
	close(bodies)
	for b := range bodies {
		if b != "200 true" {
			t.Errorf("client got %q", b)
		}
	}
	for _, q := range keys {
		if n := tt.origin.get("/ll/index.m3u8?" + q); n != 1 {
			t.Errorf("origin saw %s %d times, want 1", q, n)
		}
	}
	for range 3 {
		resp, err := http.Get(tt.edgeURL + "/ll/index.m3u8?_HLS_msn=999")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	if n := tt.origin.get("/ll/index.m3u8?_HLS_msn=999"); n != 1 {
		t.Errorf("blocking 404 fetched %d times from the origin, want 1 (cached 4 TD)", n)
	}
}

// TestLLHLSSyntheticOrigin runs clients' blocking reloads for the next part
// of the synthetic LL-HLS origin through the tiers: they all get the
// playlist listing it, and the origin answers one request for that key.
func TestLLHLSSyntheticOrigin(t *testing.T) {
	origin := &hlstest.Origin{Live: true, SegmentDuration: time.Second, PartDuration: 250 * time.Millisecond}
	tt := newTiers(t, origin, nil)
	resp, err := http.Get(tt.edgeURL + "/240p/index.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	pl, err := hls.ParsePlaylist(nil, body)
	if err != nil || !pl.CanBlockReload || len(pl.Parts) == 0 {
		t.Fatalf("%v:\n%s", err, body)
	}
	var msn, part int
	hint := pl.Parts[len(pl.Parts)-1] // the preload hint: segN.P.ts
	if _, err := fmt.Sscanf(hint, "seg%d.%d.ts", &msn, &part); err != nil {
		t.Fatalf("hint %q: %v", hint, err)
	}
	q := fmt.Sprintf("_HLS_msn=%d&_HLS_part=%d", msn, part)
	var wg sync.WaitGroup
	errs := make(chan string, 20)
	for range 20 {
		wg.Go(func() {
			resp, err := http.Get(tt.edgeURL + "/240p/index.m3u8?" + q)
			if err != nil {
				errs <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(b), `URI="`+hint+`"`) {
				errs <- fmt.Sprintf("status %d:\n%s", resp.StatusCode, b)
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if n := tt.origin.get("/240p/index.m3u8?" + q); n != 1 {
		t.Errorf("origin answered %d blocking requests for %s, want 1", n, q)
	}
}
