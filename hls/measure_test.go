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
// run's hls.Tester report there), MEASURE_TIMELINE=1 (every record of the
// first viewer at both tiers, with its upstream timing, not only the
// first eight), MEASURE_OLD_PREFETCH=1 (the edge and midtier prefetch as
// round 1 did: 2 segments ahead, no start-up prefetch, no headroom).
//
// Each run ends with a probe: a new player fetches a segment cold at both
// tiers (under /probe/, listed by no playlist, so no prefetch interferes)
// and its time is broken down by leg from the tiers' cache.Record.Timing.

package hls_test

import (
	"context"
	"fmt"
	"io"
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
	if os.Getenv("MEASURE_OLD_PREFETCH") == "1" { // round 1: lookahead of 2 only
		pf.Ahead, pf.StartVariants, pf.Headroom = 2, -1, -1
	}
	if err := pf.Attach(c); err != nil {
		t.Fatal(err)
	}
	log := &recLog{}
	c.OnRecord = append(c.OnRecord, log.add)
	srv := httptest.NewServer(&hls.CMCDFilter{Next: pf.Wrap(c)})
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
	// /probe/… is the same content under other paths, listed by no
	// playlist the viewers load: cold segments for the pipeline probe.
	mux := http.NewServeMux()
	mux.Handle("/probe/", http.StripPrefix("/probe", &hlstest.Origin{Segments: 100, SegmentDuration: 2 * time.Second}))
	mux.Handle("/", origin)
	osrv := httptest.NewServer(mux)
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
		n := 8
		if os.Getenv("MEASURE_TIMELINE") == "1" {
			n = 1000
		}
		t.Logf("run %d, cold viewer, start-up: the edge's and midtier's first records (start → end since the viewer started; prefetches marked pf):\n%s", run, timelineOf(begin, edge, mid, n))
		t.Logf("run %d, cold viewer, per segment (edge and midtier records of the same path):\n%s", run, breakdown(cold, edge, mid))
		t.Logf("run %d: edge prefetch %+v, midtier prefetch %+v, upstream %+v", run, edge.pf.Stats(), mid.pf.Stats(), tr.Stats().Upstreams[0])
		cs := edge.cache.Stats()
		t.Logf("run %d, first viewer: the edge fetched %.2f MB from the midtier and served %.2f MB", run, float64(cs.BytesFetched)/1e6, float64(cs.BytesServed)/1e6)
		edge.log.reset()
		mid.log.reset()
		time.Sleep(3 * time.Second) // the first viewer's prefetches settle
		results = append(results, measured{fmt.Sprintf("warm: second viewer (run %d)", run), viewer(t, u)})
		time.Sleep(3 * time.Second)
		for _, path := range []string{"/probe/720p/seg" + strconv.Itoa(run) + ".ts", "/probe/240p/seg" + strconv.Itoa(run) + ".ts"} {
			t.Logf("run %d, a cold segment through both tiers:\n%s", run, probe(t, client.Addr(), path, edge, mid))
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\n%-42s %9s %7s %9s %9s %9s %-14s %s\n", "viewer", "startup", "stalls", "ttfb p50", "dl/dur", "dl/dur", "renditions", "dispositions (player's)")
	fmt.Fprintf(&b, "%-42s %9s %7s %9s %9s %9s %-14s\n", "", "", "", "", "p50", "max", "(segments)")
	floorStartup := results[0].rep.Summary.Startup.Max
	for _, m := range results {
		s := m.rep.Summary
		var rends [4]int
		for _, seg := range m.rep.Players[0].Segments {
			rends[min(seg.Rendition, 3)]++
		}
		fmt.Fprintf(&b, "%-42s %5.2fs %+4.1f %3d (%.1fs) %7.3fs %9.2f %9.2f %2d/%2d/%2d       %v\n", m.name, s.Startup.Max, s.Startup.Max-floorStartup,
			s.Stalls, s.StallTotal, s.TTFB.P50, s.Ratio.P50, s.Ratio.Max, rends[1], rends[2], rends[3], s.Dispositions)
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

// probe fetches path, cold at both tiers, as a new player over the client
// path, and breaks its time down with the edge's and midtier's records.
func probe(t *testing.T, addr, path string, edge, mid *tier) string {
	t.Helper()
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	begin := time.Now()
	resp, err := (&http.Client{Transport: tr}).Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	ttfb := time.Since(begin)
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	last := time.Since(begin)
	var e, m []timedRecord
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if e, m = edge.log.find(path, false), mid.log.find(path, false); len(e) == 1 && len(m) == 1 {
			break
		}
	}
	if len(e) != 1 || len(m) != 1 {
		return fmt.Sprintf("  %s: %d edge and %d midtier records", path, len(e), len(m))
	}
	er, mr := e[0].rec, m[0].rec
	e0, m0 := e[0].end.Add(-er.Delivery), m[0].end.Add(-mr.Delivery)
	at := func(base time.Time, d time.Duration) float64 { return base.Add(d).Sub(begin).Seconds() }
	sent := er.Timing.UpstreamStart + er.Timing.ConnWait
	var b strings.Builder
	fmt.Fprintf(&b, "  %s, %d bytes (%s at the edge, %s at the midtier): player's first byte %.3fs, last byte %.3fs (÷ 2 s: %.2f)\n",
		path, n, er.Disposition, mr.Disposition, ttfb.Seconds(), last.Seconds(), last.Seconds()/2)
	fmt.Fprintf(&b, "    %.3fs edge receives the request\n", at(e0, 0))
	fmt.Fprintf(&b, "    %.3fs edge sends it upstream (connection wait %.3fs, warm %v)\n", at(e0, sent), er.Timing.ConnWait.Seconds(), er.Timing.ConnReused)
	fmt.Fprintf(&b, "    %.3fs midtier receives it, %.3fs sends it to the origin\n", at(m0, 0), at(m0, mr.Timing.UpstreamStart+mr.Timing.ConnWait))
	fmt.Fprintf(&b, "    %.3fs midtier has the origin's headers, %.3fs its first body byte, %.3fs its last\n",
		at(m0, mr.Timing.UpstreamHeaders), at(m0, mr.Timing.UpstreamFirstByte), at(m0, mr.Timing.UpstreamLastByte))
	fmt.Fprintf(&b, "    %.3fs midtier writes its first body byte to the edge\n", at(m0, mr.Timing.FirstByte))
	fmt.Fprintf(&b, "    %.3fs edge has the midtier's headers, %.3fs its first body byte\n", at(e0, er.Timing.UpstreamHeaders), at(e0, er.Timing.UpstreamFirstByte))
	fmt.Fprintf(&b, "    %.3fs edge writes its first body byte to the player\n", at(e0, er.Timing.FirstByte))
	fmt.Fprintf(&b, "    %.3fs player's first body byte\n", ttfb.Seconds())
	fmt.Fprintf(&b, "    %.3fs midtier's last byte written, %.3fs edge's last byte from the midtier, %.3fs edge's last byte written, %.3fs player's last byte\n",
		m[0].end.Sub(begin).Seconds(), at(e0, er.Timing.UpstreamLastByte), e[0].end.Sub(begin).Seconds(), last.Seconds())
	legs := 2*clientPath.Latency + 2*midPath.Latency
	edgeOwn := sent + (er.Timing.FirstByte - er.Timing.UpstreamFirstByte)
	midOwn := mr.Timing.UpstreamStart + (mr.Timing.FirstByte - mr.Timing.UpstreamFirstByte)
	originTime := mr.Timing.UpstreamFirstByte - mr.Timing.UpstreamStart
	fmt.Fprintf(&b, "    first byte: %.3fs = path latency %.3fs (client↔edge 2×%v, edge↔midtier 2×%v) + edge %.3fs + midtier %.3fs + origin %.3fs + the rest %.3fs\n",
		ttfb.Seconds(), legs.Seconds(), clientPath.Latency, midPath.Latency, edgeOwn.Seconds(), midOwn.Seconds(), originTime.Seconds(),
		(ttfb - legs - edgeOwn - midOwn - originTime).Seconds())
	xfer := time.Duration(float64(n*8) / float64(midPath.Bandwidth) * float64(time.Second))
	fmt.Fprintf(&b, "    last byte: %.3fs = first byte + %.3fs; %d bytes over the %d Mbit/s edge↔midtier leg take %.3fs\n",
		last.Seconds(), (last - ttfb).Seconds(), n, midPath.Bandwidth/1_000_000, xfer.Seconds())
	return b.String()
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
			start := r.end.Add(-r.rec.Delivery)
			tm := r.rec.Timing
			at := func(d time.Duration) string {
				if d == 0 {
					return "    -  "
				}
				return fmt.Sprintf("%6.3fs", start.Add(d).Sub(begin).Seconds())
			}
			fmt.Fprintf(&b, "  %-4s %6.3fs → %6.3fs  %-20s %-9s up: sent %s hdr %s first %s last %s %7dB conn-wait %.3fs%s\n", tt.name, start.Sub(begin).Seconds(), r.end.Sub(begin).Seconds(), r.rec.Path, r.rec.Disposition,
				at(tm.UpstreamStart+tm.ConnWait), at(tm.UpstreamHeaders), at(tm.UpstreamFirstByte), at(tm.UpstreamLastByte), tm.UpstreamBytes, tm.ConnWait.Seconds(), pf)
		}
	}
	return b.String()
}
