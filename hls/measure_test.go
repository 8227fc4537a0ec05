//go:build measure

// The path measurement of issue #14, not run in CI (it takes real time
// and its figures are timings):
//
//	go test -tags measure -run TestPathMeasure -count=1 -v ./hls/
//
// Environment: MEASURE_RUNS (cold/warm pairs on fresh tiers, default 1),
// MEASURE_SEGMENTS (2 s segments of the VOD presentation, default 15),
// MEASURE_MID_SHARED=1 (the edge → midtier bandwidth shared by all pooled
// connections instead of one 4 Mbit/s circuit per connection),
// MEASURE_COLD_POOL=1 (the edge's first request finds no warm connection
// to the midtier: an edge that just started), MEASURE_JSON=DIR (write each
// run's hls.Tester report there).

package hls_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/hls"
	"github.com/onioncdn/onioncdn/hls/hlstest"
	"github.com/onioncdn/onioncdn/internal/netem"
	"github.com/onioncdn/onioncdn/upstream"
)

// The paths of issue #14 (Tor-like, without Tor).
var (
	clientPath = netem.Shape{Latency: 150 * time.Millisecond, Bandwidth: 12_000_000}
	midPath    = netem.Shape{Latency: 200 * time.Millisecond, Bandwidth: 4_000_000}
	midSetup   = time.Second
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// recLog keeps the cache records of one tier with their end times.
type recLog struct {
	mu   sync.Mutex
	recs []timedRecord
}

type timedRecord struct {
	end time.Time
	rec cache.Record
}

func (l *recLog) add(_ *http.Request, rec cache.Record) {
	l.mu.Lock()
	l.recs = append(l.recs, timedRecord{time.Now(), rec})
	l.mu.Unlock()
}

func (l *recLog) find(path string, prefetch bool) []timedRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []timedRecord
	for _, r := range l.recs {
		if r.rec.Path == path && r.rec.Prefetch == prefetch {
			out = append(out, r)
		}
	}
	return out
}

func (l *recLog) reset() {
	l.mu.Lock()
	l.recs = nil
	l.mu.Unlock()
}

// tier is one cache with the HLS policy and the current prefetcher, built
// from public packages the way the tier assembly builds it.
type tier struct {
	cache *cache.Cache
	pf    *hls.Prefetcher
	log   *recLog
	srv   *httptest.Server
}

func newTier(t *testing.T, name string, c *cache.Cache) *tier {
	c.Policy, c.Name, c.CacheStatus = &hls.Policy{}, name, true
	pf := &hls.Prefetcher{}
	if err := pf.Attach(c); err != nil {
		t.Fatal(err)
	}
	log := &recLog{}
	c.OnRecord = append(c.OnRecord, log.add)
	srv := httptest.NewServer(pf.Wrap(c))
	t.Cleanup(func() { srv.Close(); pf.Close() })
	return &tier{cache: c, pf: pf, log: log, srv: srv}
}

func relay(t *testing.T, target string, shape netem.Shape, setup time.Duration, perConn bool) *netem.Relay {
	u, _ := url.Parse(target)
	r := &netem.Relay{Target: u.Host, Up: shape, Down: shape, Setup: setup, PerConnection: perConn}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// viewer plays the presentation once as a new viewer (own connections).
func viewer(t *testing.T, rawURL string) *hls.Report {
	t.Helper()
	tr := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 4}
	defer tr.CloseIdleConnections()
	rep, err := (&hls.Tester{Client: &http.Client{Transport: tr}}).Run(t.Context(), rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

type measured struct {
	name string
	rep  *hls.Report
}

func TestPathMeasure(t *testing.T) {
	runs := envInt("MEASURE_RUNS", 1)
	origin := &hlstest.Origin{Segments: envInt("MEASURE_SEGMENTS", 15), SegmentDuration: 2 * time.Second}
	osrv := httptest.NewServer(origin)
	t.Cleanup(osrv.Close)

	var results []measured
	// The floor: the player straight to the origin over the client path.
	floor := relay(t, osrv.URL, clientPath, 0, false)
	results = append(results, measured{"floor (player → client path → origin)", viewer(t, "http://"+floor.Addr()+"/master.m3u8")})

	for run := 1; run <= runs; run++ {
		// origin ← midtier ← netem(200 ms, 4 Mbit/s, 1 s set-up) ← edge
		// (warm pool) ← netem(150 ms, 12 Mbit/s) ← player.
		ou, _ := url.Parse(osrv.URL)
		mid := newTier(t, "mid", &cache.Cache{Upstream: ou})
		midRelay := relay(t, mid.srv.URL, midPath, midSetup, os.Getenv("MEASURE_MID_SHARED") != "1")
		tr := &upstream.Transport{Upstreams: []string{"http://" + midRelay.Addr()}, DialContext: midRelay.DialContext}
		t.Cleanup(func() { tr.Close() })
		edge := newTier(t, "edge", &cache.Cache{Transport: tr})
		client := relay(t, edge.srv.URL, clientPath, 0, false)
		if os.Getenv("MEASURE_COLD_POOL") != "1" {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			if err := tr.Warm(ctx); err != nil { // an edge that has been running: its pool is warm
				t.Fatal(err)
			}
			cancel()
		}
		u := "http://" + client.Addr() + "/master.m3u8"
		begin := time.Now()
		cold := viewer(t, u)
		results = append(results, measured{fmt.Sprintf("cold: first viewer (run %d)", run), cold})
		t.Logf("run %d, cold viewer, start-up: the edge's and midtier's first records (start → end since the viewer started; prefetches marked pf):\n%s", run, timelineOf(begin, edge, mid, 8))
		t.Logf("run %d, cold viewer, per segment (edge and midtier records of the same path):\n%s", run, breakdown(cold, edge, mid))
		t.Logf("run %d: edge prefetch %+v, midtier prefetch %+v, upstream %+v", run, edge.pf.Stats(), mid.pf.Stats(), tr.Stats().Upstreams[0])
		edge.log.reset()
		mid.log.reset()
		time.Sleep(3 * time.Second) // the first viewer's prefetches settle
		results = append(results, measured{fmt.Sprintf("warm: second viewer (run %d)", run), viewer(t, u)})
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\n%-42s %9s %7s %9s %9s %9s %s\n", "viewer", "startup", "stalls", "ttfb p50", "dl/dur", "dl/dur", "dispositions (player's)")
	fmt.Fprintf(&b, "%-42s %9s %7s %9s %9s %9s\n", "", "", "", "", "p50", "max")
	floorStartup := results[0].rep.Summary.Startup.Max
	for _, m := range results {
		s := m.rep.Summary
		fmt.Fprintf(&b, "%-42s %5.2fs %+4.1f %3d (%.1fs) %7.3fs %9.2f %9.2f %v\n", m.name, s.Startup.Max, s.Startup.Max-floorStartup,
			s.Stalls, s.StallTotal, s.TTFB.P50, s.Ratio.P50, s.Ratio.Max, s.Dispositions)
	}
	t.Log(b.String())
	if dir := os.Getenv("MEASURE_JSON"); dir != "" {
		for i, m := range results {
			f, err := os.Create(filepath.Join(dir, fmt.Sprintf("measure-%d.json", i)))
			if err != nil {
				t.Fatal(err)
			}
			m.rep.WriteJSON(f)
			f.Close()
		}
	}
}

// breakdown lists the cold viewer's requests for segments with the
// edge's and the midtier's records of the same path: what each tier spent
// waiting upstream and delivering.
func breakdown(rep *hls.Report, edge, mid *tier) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%4s %4s %-18s %7s %7s %6s %-10s | %-36s | %s\n", "msn", "rend", "path", "ttfb", "dl", "ratio", "disp",
		"edge: client rec (disp upstream deliv)", "edge prefetch / midtier records (disp upstream deliv)")
	p := rep.Players[0]
	for _, s := range p.Segments {
		e := edge.log.find(s.Path, false)
		ep := edge.log.find(s.Path, true)
		m := slices.Concat(mid.log.find(s.Path, false), mid.log.find(s.Path, true))
		fmt.Fprintf(&b, "%4d %4d %-18s %6.3fs %6.3fs %6.2f %-10s | %-36s | %s %s\n", s.MSN, s.Rendition, s.Path, s.TTFB, s.Download, s.Ratio, s.Disposition,
			recs(e), "pf:"+recs(ep), "mid:"+recs(m))
	}
	return b.String()
}

func recs(rs []timedRecord) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, fmt.Sprintf("%s %.3fs %.3fs", r.rec.Disposition, r.rec.Upstream.Seconds(), r.rec.Delivery.Seconds()))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, "; ")
}

// timelineOf lists the first n records of each tier since begin, in the
// order they started.
func timelineOf(begin time.Time, edge, mid *tier, n int) string {
	var b strings.Builder
	for _, tt := range []struct {
		name string
		t    *tier
	}{{"edge", edge}, {"mid", mid}} {
		tt.t.log.mu.Lock()
		recs := slices.Clone(tt.t.log.recs)
		tt.t.log.mu.Unlock()
		slices.SortFunc(recs, func(a, b timedRecord) int {
			return a.end.Add(-a.rec.Delivery).Compare(b.end.Add(-b.rec.Delivery))
		})
		for i, r := range recs {
			if i == n {
				break
			}
			pf := ""
			if r.rec.Prefetch {
				pf = " pf"
			}
			start := r.end.Add(-r.rec.Delivery).Sub(begin).Seconds()
			fmt.Fprintf(&b, "  %-4s %6.3fs → %6.3fs  %-20s %-9s upstream %.3fs%s\n", tt.name, start, r.end.Sub(begin).Seconds(), r.rec.Path, r.rec.Disposition, r.rec.Upstream.Seconds(), pf)
		}
	}
	return b.String()
}
