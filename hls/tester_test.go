package hls

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/hls/hlstest"
)

func TestTesterVODABR(t *testing.T) {
	origin := &hlstest.Origin{Segments: 10}
	srv := httptest.NewServer(origin)
	t.Cleanup(srv.Close)
	tr := &Tester{Players: 3, Speed: 2}
	rep, err := tr.Run(t.Context(), srv.URL+"/master.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Summary
	if s.Players != 3 || s.Failed != 0 || s.Segments != 30 || s.Errors != 0 {
		t.Fatalf("summary %+v", s)
	}
	if s.Stalls != 0 {
		t.Errorf("%d stalls on loopback", s.Stalls)
	}
	for _, p := range rep.Players {
		if p.Played != 20 || p.Startup <= 0 {
			t.Errorf("player %d: played %v, startup %v", p.Player, p.Played, p.Startup)
		}
		// ABR starts at the lowest rendition and climbs on loopback.
		if first, last := p.Segments[0], p.Segments[len(p.Segments)-1]; first.Rendition != 1 || last.Rendition < 2 || p.Switches == 0 {
			t.Errorf("player %d: rendition %d → %d with %d switches", p.Player, first.Rendition, last.Rendition, p.Switches)
		}
		for i, seg := range p.Segments {
			if seg.MSN != i || seg.Status != 200 || seg.Bytes != int64(origin.SegmentSize(hlstest.DefaultRenditions[seg.Rendition-1])) {
				t.Errorf("segment %d: %+v", i, seg)
			}
		}
	}
	if s.Ratio.Max <= 0 || s.TTFB.P50 <= 0 || s.Throughput <= 0 {
		t.Errorf("figures: %+v", s)
	}
}

func TestTesterFixedRendition(t *testing.T) {
	srv := httptest.NewServer(&hlstest.Origin{Segments: 4})
	t.Cleanup(srv.Close)
	rep, err := (&Tester{Rendition: 2, Speed: 50}).Run(t.Context(), srv.URL+"/master.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	p := rep.Players[0]
	if p.Switches != 0 || len(p.Segments) != 4 {
		t.Fatalf("switches %d, segments %d", p.Switches, len(p.Segments))
	}
	for _, seg := range p.Segments {
		if seg.Rendition != 2 || !strings.HasPrefix(seg.Path, "/480p/") {
			t.Errorf("segment %+v", seg)
		}
	}
}

func TestTesterMediaPlaylistDuration(t *testing.T) {
	srv := httptest.NewServer(&hlstest.Origin{Segments: 10, FMP4: true})
	t.Cleanup(srv.Close)
	rep, err := (&Tester{Speed: 50, Duration: 5 * time.Second}).Run(t.Context(), srv.URL+"/240p/index.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	if p := rep.Players[0]; len(p.Segments) != 3 || p.Played != 6 || p.Segments[0].Rendition != 0 {
		t.Fatalf("segments %d, played %v", len(p.Segments), p.Played)
	}
}

func TestTesterLive(t *testing.T) {
	const speed = 5
	start := time.Now()
	clock := func() time.Time { return start.Add(time.Since(start) * speed) }
	origin := &hlstest.Origin{Live: true, Now: clock, Window: 6}
	srv := httptest.NewServer(origin)
	t.Cleanup(srv.Close)
	rep, err := (&Tester{Speed: speed, Duration: 12 * time.Second, Rendition: 1}).Run(t.Context(), srv.URL+"/master.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	p := rep.Players[0]
	if len(p.Segments) != 6 || p.Err != "" {
		t.Fatalf("segments %d, err %q", len(p.Segments), p.Err)
	}
	// Starts three segments from the live edge: MSNs 3..8 of a window 0..5.
	for i, seg := range p.Segments {
		if seg.MSN != 3+i {
			t.Errorf("segment %d has MSN %d", i, seg.MSN)
		}
	}
	if origin.Requests("/240p/index.m3u8") < 2 {
		t.Error("live playlist not reloaded")
	}
}

func TestTesterStall(t *testing.T) {
	origin := &hlstest.Origin{Segments: 8}
	delay := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/240p/seg5.ts" {
			select {
			case <-delay:
			case <-time.After(time.Second):
			}
		}
		origin.ServeHTTP(w, r)
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	// Speed 10: 2 s segments last 0.2 s; the player buffers at most 4 s of
	// media (0.4 s) + one segment, so a 1 s delay must stall for >= 0.4 s
	// wall = 4 s of media.
	rep, err := (&Tester{Speed: 10, BufferAhead: 4 * time.Second, Rendition: 1}).Run(t.Context(), srv.URL+"/master.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	p := rep.Players[0]
	if p.Stalls < 1 || p.StallLongest < 3.5 || p.StallRatio <= 0 {
		t.Fatalf("stalls %d, longest %.2f, ratio %.2f", p.Stalls, p.StallLongest, p.StallRatio)
	}
	if r := p.Segments[5].Ratio; r < 4.9 {
		t.Errorf("delayed segment ratio %.2f, want >= 5", r)
	}
}

func TestTesterRetriesErrors(t *testing.T) {
	origin := &hlstest.Origin{Segments: 3}
	var failed atomic.Bool
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/240p/seg1.ts" && !failed.Swap(true) {
			http.Error(w, "boom", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Cache-Status", `midtier; fwd=uri-miss; stored, edge; hit; ttl=86399`)
		origin.ServeHTTP(w, r)
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	rep, err := (&Tester{Speed: 50, Rendition: 1}).Run(t.Context(), srv.URL+"/master.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	p := rep.Players[0]
	if p.Errors != 1 || len(p.Segments) != 3 || p.Err != "" {
		t.Fatalf("errors %d, segments %d, err %q", p.Errors, len(p.Segments), p.Err)
	}
	if p.Dispositions["hit"] != 3 {
		t.Errorf("dispositions %v", p.Dispositions)
	}
}

func TestTesterGivesUp(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	rep, err := (&Tester{Retries: 1}).Run(t.Context(), srv.URL+"/master.m3u8")
	if err == nil || rep.Summary.Failed != 1 || rep.Summary.Errors != 2 {
		t.Fatalf("err %v, report %+v", err, rep)
	}
}

func TestDisposition(t *testing.T) {
	for in, want := range map[string]string{
		"":                                     "",
		"edge; hit":                            "hit",
		"mid; hit, edge; fwd=uri-miss; stored": "miss",
		"edge; fwd=uri-miss; collapsed":        "collapsed",
		"edge; fwd=stale; fwd-status=304":      "stale",
		`Other; fwd="request"`:                 "request",
		"edge":                                 "unknown",
		"origin; fwd=miss, edge;hit;ttl=5;detail": "hit",
	} {
		if got := Disposition(in); got != want {
			t.Errorf("Disposition(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReportOutputs(t *testing.T) {
	srv := httptest.NewServer(&hlstest.Origin{Segments: 4})
	t.Cleanup(srv.Close)
	rep, err := (&Tester{Players: 2, Speed: 50}).Run(t.Context(), srv.URL+"/master.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	var h bytes.Buffer
	if err := rep.WriteHTML(&h); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(h.String(), "<circle"); n != 8 {
		t.Errorf("%d points in the plot, want 8", n)
	}
	var j bytes.Buffer
	if err := rep.WriteJSON(&j); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(j.Bytes(), &back); err != nil || back.Summary.Segments != 8 || len(back.Players[1].Segments) != 4 {
		t.Fatalf("JSON round trip: %v %+v", err, back.Summary)
	}
	var txt bytes.Buffer
	rep.WriteText(&txt)
	if !strings.Contains(txt.String(), "players 2 (failed 0), segments 8") || !strings.Contains(txt.String(), "player 2:") {
		t.Errorf("text:\n%s", txt.String())
	}
}

func TestTesterCancelKeepsPartialReport(t *testing.T) {
	origin := &hlstest.Origin{Segments: 50}
	seen := make(chan struct{}, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- struct{}{}
		origin.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		for range 5 { // master, playlist, 3 segments
			<-seen
		}
		cancel()
	}()
	// Real time with a 4 s buffer: the player soon waits for playback.
	rep, err := (&Tester{Rendition: 1, BufferAhead: 4 * time.Second}).Run(ctx, srv.URL+"/master.m3u8")
	if !errors.Is(err, context.Canceled) || rep == nil || len(rep.Players[0].Segments) < 2 {
		t.Fatalf("err %v, report %+v", err, rep)
	}
}

// A player that was redirected (by a route.Router) keeps fetching from where
// it landed: relative playlist and segment URIs resolve against the final
// URL, so the redirector sees only the first request.
func TestTesterFollowsRedirectOnce(t *testing.T) {
	srv := httptest.NewServer(&hlstest.Origin{Segments: 4})
	t.Cleanup(srv.Close)
	var redirected atomic.Int32
	router := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		redirected.Add(1)
		http.Redirect(w, r, srv.URL+r.URL.RequestURI(), http.StatusFound)
	}))
	t.Cleanup(router.Close)
	rep, err := (&Tester{Rendition: 1, Speed: 50}).Run(t.Context(), router.URL+"/master.m3u8")
	if err != nil {
		t.Fatal(err)
	}
	if p := rep.Players[0]; len(p.Segments) != 4 || p.Errors != 0 {
		t.Fatalf("segments %d, errors %d", len(p.Segments), p.Errors)
	}
	if n := redirected.Load(); n != 1 {
		t.Errorf("router saw %d requests, want 1 (the master playlist)", n)
	}
}
