package hls_test

import (
	"bytes"
	"fmt"
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

// llRequest is one request an LL-HLS origin served.
type llRequest struct {
	at    time.Time // on the origin's clock, when it arrived
	path  string
	query url.Values
	body  string // playlists only
}

// llRecorder records the requests (and playlist bodies) of an origin.
type llRecorder struct {
	next  http.Handler
	clock func() time.Time
	mu    sync.Mutex
	reqs  []llRequest
}

type teeWriter struct {
	http.ResponseWriter
	buf bytes.Buffer
}

func (w *teeWriter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	return w.ResponseWriter.Write(p)
}

func (l *llRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	at := l.clock()
	tw := &teeWriter{ResponseWriter: w}
	l.next.ServeHTTP(tw, r)
	req := llRequest{at: at, path: r.URL.Path, query: r.URL.Query()}
	if strings.HasSuffix(r.URL.Path, ".m3u8") {
		req.body = tw.buf.String()
	}
	l.mu.Lock()
	l.reqs = append(l.reqs, req)
	l.mu.Unlock()
}

func (l *llRecorder) requests() []llRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]llRequest(nil), l.reqs...)
}

// nextPart is the part a client should ask a blocking reload for after
// receiving body (hls.js's rule): the part after the last EXT-X-PART
// listed after the last segment, or part 0 of the segment after it.
func nextPart(t *testing.T, body string) (msn, part int) {
	t.Helper()
	pl, err := hls.ParsePlaylist(nil, []byte(body))
	if err != nil || len(pl.Segments) == 0 {
		t.Fatalf("playlist %v:\n%s", err, body)
	}
	_, tail, _ := strings.Cut(body, pl.Segments[len(pl.Segments)-1].URI+"\n")
	return pl.Segments[len(pl.Segments)-1].MSN + 1, strings.Count(tail, "#EXT-X-PART:")
}

// scaledClock runs speed times faster than real time from now on.
func scaledClock(speed float64) func() time.Time {
	start := time.Now()
	return func() time.Time { return start.Add(time.Duration(float64(time.Since(start)) * speed)) }
}

// TestTesterLowLatency plays an LL-HLS origin directly and checks, from
// what the origin saw, that the player behaves as hls.js does: it starts
// at the independent part PART-HOLD-BACK behind the live edge, fetches
// parts, asks every blocking reload for the part after the last one it was
// given (with _HLS_skip once it holds a playlist), requests preload hints
// before the part exists, and reports its latency.
func TestTesterLowLatency(t *testing.T) {
	const speed = 2
	clock := scaledClock(speed)
	start := clock().Add(-10 * time.Second) // ten 1 s segments complete
	origin := &hlstest.Origin{Live: true, SegmentDuration: time.Second, PartDuration: 250 * time.Millisecond,
		Window: 10, Start: start, Now: clock, DeltaUpdates: true, Renditions: hlstest.DefaultRenditions[:1]}
	rec := &llRecorder{next: origin, clock: clock}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	rep, err := (&hls.Tester{Speed: speed, Duration: 6 * time.Second, Now: clock}).Run(t.Context(), srv.URL+"/master.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	p := rep.Players[0]
	if p.Err != "" || !p.LowLatency || p.Played < 6 {
		t.Fatalf("err %q, low latency %v, played %v", p.Err, p.LowLatency, p.Played)
	}
	srv.Close() // waits for the origin's handlers: every request is recorded
	reqs := rec.requests()
	var firstPlaylist string
	var last string // the last playlist body the player received
	blocking, skips, held := 0, 0, 0
	directives := map[string]int{} // "msn.part" of every blocking reload
	parts := map[string]int{}      // "msn.part" of every part request
	partDur := 250 * time.Millisecond
	for _, r := range reqs {
		switch {
		case r.path == "/240p/index.m3u8" && r.query.Has("_HLS_msn"):
			// Requests for playlists are sequential: each one follows the
			// response to the previous one.
			blocking++
			wantMSN, wantPart := nextPart(t, last)
			if got, _ := strconv.Atoi(r.query.Get("_HLS_msn")); got != wantMSN || r.query.Get("_HLS_part") != strconv.Itoa(wantPart) {
				t.Errorf("blocking reload %v after a playlist ending at (%d,%d)", r.query, wantMSN, wantPart)
			}
			if r.query.Get("_HLS_skip") == "YES" {
				skips++
			}
			directives[r.query.Get("_HLS_msn")+"."+r.query.Get("_HLS_part")]++
			last = r.body
		case r.path == "/240p/index.m3u8":
			if firstPlaylist == "" {
				firstPlaylist = r.body
			}
			last = r.body
		case strings.Count(r.path, ".") == 2: // a part: /240p/segN.P.ts
			var n, pt int
			fmt.Sscanf(r.path, "/240p/seg%d.%d.ts", &n, &pt)
			parts[fmt.Sprintf("%d.%d", n, pt)]++
			if r.at.Before(start.Add(time.Duration(n)*time.Second + time.Duration(pt+1)*partDur)) {
				held++ // arrived before the part existed: the origin held it
			}
		}
	}
	if blocking == 0 || blocking != p.BlockingReloads || skips == 0 || p.DeltaUpdates == 0 {
		t.Errorf("origin saw %d blocking reloads (%d with _HLS_skip), report %d (%d delta updates)", blocking, skips, p.BlockingReloads, p.DeltaUpdates)
	}
	// Every preload hint was requested alongside the blocking reload for
	// the same part, i.e. before the player's playlist listed it.
	hints := 0
	for _, s := range p.Segments {
		k := fmt.Sprintf("%d.%d", s.MSN, s.Part)
		if s.Hint {
			hints++
			if directives[k] != 1 || parts[k] != 1 {
				t.Errorf("hinted part %s: blocking reload for it %v, origin requests %d", k, directives[k], parts[k])
			}
		}
	}
	if hints == 0 || hints != p.Hints || p.Parts != len(parts) || p.HintErrors != 0 {
		t.Errorf("hints %d (report %d), parts %d (origin %d), hint errors %d", hints, p.Hints, p.Parts, len(parts), p.HintErrors)
	}
	t.Logf("%d of %d hinted parts reached the origin before they existed", held, hints)
	// The start: part 0 (the only independent part) of the segment holding
	// the point PART-HOLD-BACK (3 × 0.25 s) behind the end of the first
	// playlist.
	endMSN, endPart := nextPart(t, firstPlaylist)
	edge := float64(endMSN) + float64(endPart)*0.25
	first := p.Segments[0]
	if want := int(edge - 0.75); first.MSN != want || first.Part != 0 || first.Hint {
		t.Errorf("started at segment %d part %d (hint %v), want segment %d part 0 (edge %.2f)", first.MSN, first.Part, first.Hint, want, edge)
	}
	for i, s := range p.Segments {
		if s.Part < 0 || s.Status != 200 || s.Bytes != int64(origin.SegmentSize(hlstest.DefaultRenditions[0])/4) {
			t.Errorf("object %d: %+v", i, s)
		}
	}
	if p.TargetLatency != 0.75 || p.Latency == nil || p.ProgramLatency == nil || p.Latency.Max < 0.75 || p.ProgramLatency.P50 <= 0 {
		t.Errorf("target %v, latency %+v, program latency %+v", p.TargetLatency, p.Latency, p.ProgramLatency)
	}
	var txt strings.Builder
	rep.WriteText(&txt)
	t.Logf("\n%s", txt.String())
	if !strings.Contains(txt.String(), "latency") || !strings.Contains(txt.String(), "target 0.75s") {
		t.Errorf("text report without latency:\n%s", txt.String())
	}
	var h, j strings.Builder
	rep.WriteHTML(&h)
	rep.WriteJSON(&j)
	if strings.Count(h.String(), "<polyline") != 2 || !strings.Contains(j.String(), `"latency_samples"`) || !strings.Contains(j.String(), `"hint": true`) {
		t.Errorf("HTML plots %d latency lines (want edge and program time); JSON has samples %v, hints %v",
			strings.Count(h.String(), "<polyline"), strings.Contains(j.String(), `"latency_samples"`), strings.Contains(j.String(), `"hint": true`))
	}
}

// Without low-latency mode the same stream is played in whole segments,
// three target durations from the end, with blocking reloads that name no
// part.
func TestTesterNoLowLatency(t *testing.T) {
	const speed = 4
	clock := scaledClock(speed)
	origin := &hlstest.Origin{Live: true, SegmentDuration: time.Second, PartDuration: 250 * time.Millisecond,
		Now: clock, Renditions: hlstest.DefaultRenditions[:1]}
	rec := &llRecorder{next: origin, clock: clock}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	rep, err := (&hls.Tester{Speed: speed, Duration: 4 * time.Second, Now: clock, NoLowLatency: true}).Run(t.Context(), srv.URL+"/240p/index.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	p := rep.Players[0]
	if p.Err != "" || p.LowLatency || p.Parts != 0 || p.TargetLatency != 3 || p.BlockingReloads == 0 {
		t.Fatalf("%+v", p)
	}
	srv.Close() // waits for the origin's handlers: every request is recorded
	for _, r := range rec.requests() {
		if r.query.Has("_HLS_part") || strings.Count(r.path, ".") == 2 {
			t.Errorf("request %s?%v in normal mode", r.path, r.query)
		}
	}
}

// TestTesterLowLatencyThroughCache plays LL-HLS with three players through
// an edge cache: every blocking reload key and every part reaches the
// origin once, whatever the number of players (collapse and part caching
// as real LL-HLS players exercise them).
func TestTesterLowLatencyThroughCache(t *testing.T) {
	// Real time: a blocking reload stays fresh 6 TD (6 s), longer than
	// any player can fall behind another here.
	const speed = 1
	clock := scaledClock(speed)
	origin := &hlstest.Origin{Live: true, SegmentDuration: time.Second, PartDuration: 250 * time.Millisecond,
		Now: clock, Renditions: hlstest.DefaultRenditions[:1]}
	rec := &llRecorder{next: origin, clock: clock}
	osrv := httptest.NewServer(rec)
	t.Cleanup(osrv.Close)
	up, _ := url.Parse(osrv.URL)
	edge := &cache.Cache{Upstream: up, Policy: &hls.Policy{}, Now: clock, CacheStatus: true}
	esrv := httptest.NewServer(edge)
	t.Cleanup(esrv.Close)
	rep, err := (&hls.Tester{Players: 3, Speed: speed, Duration: 3 * time.Second, Now: clock}).Run(t.Context(), esrv.URL+"/master.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Summary
	if s.Failed != 0 || s.Hints == 0 || s.BlockingReloads == 0 || s.Latency == nil {
		t.Fatalf("summary %+v", s)
	}
	for _, p := range rep.Players {
		if !p.LowLatency || p.Parts == 0 {
			t.Errorf("player %d: low latency %v, %d parts", p.Player, p.LowLatency, p.Parts)
		}
	}
	esrv.Close()
	edge.Shutdown(t.Context()) // fills finish
	osrv.Close()               // every origin request is recorded
	count := map[string]int{}
	blockingKeys := 0
	for _, r := range rec.requests() {
		key := r.path
		switch {
		case r.query.Has("_HLS_msn"):
			blockingKeys++
			key += "?" + r.query.Encode()
		case strings.HasSuffix(r.path, ".m3u8"):
			continue // plain playlist loads expire every TD/2
		}
		count[key]++
	}
	for key, n := range count {
		if n != 1 {
			t.Errorf("origin served %s %d times, want 1", key, n)
		}
	}
	if blockingKeys == 0 || s.Dispositions["hit"]+s.Dispositions["collapsed"] == 0 {
		t.Errorf("%d blocking keys at the origin, dispositions %v", blockingKeys, s.Dispositions)
	}
	t.Logf("origin: %d keys for %d player requests; dispositions %v", len(count), s.Segments, s.Dispositions)
}
