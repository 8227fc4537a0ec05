package hls

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/hls/hlstest"
)

// flaky fails the first n requests for each path matching match.
type flaky struct {
	next  http.Handler
	n     int
	match func(string) bool
	mu    sync.Mutex
	seen  map[string]int
	hosts map[string]int
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	if f.seen == nil {
		f.seen, f.hosts = map[string]int{}, map[string]int{}
	}
	f.seen[r.URL.Path]++
	f.hosts[r.Host]++
	c := f.seen[r.URL.Path]
	f.mu.Unlock()
	if f.match(r.URL.Path) && c <= f.n {
		http.Error(w, "try again", http.StatusBadGateway)
		return
	}
	w.Header().Set("Cache-Status", "edge; fwd=uri-miss; stored")
	f.next.ServeHTTP(w, r)
}

func TestWarmRetries(t *testing.T) {
	origin := &hlstest.Origin{Segments: 5, FMP4: true}
	f := &flaky{next: origin, n: 2, match: func(p string) bool { return strings.HasSuffix(p, "seg3.m4s") || p == "/480p/index.m3u8" }}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	var last WarmProgress
	w := &Warmer{Backoff: time.Millisecond, Host: "cdn.example", Progress: func(p WarmProgress) { last = p }}
	rep, err := w.Warm(t.Context(), srv.URL+"/master.m3u8")
	if err != nil {
		t.Fatalf("%v %+v", err, rep)
	}
	// 1 master + 3 × (playlist + init + 5 segments).
	if rep.Objects != 22 || len(rep.Failures) != 0 || rep.Retried != 4 {
		t.Fatalf("report %+v", rep)
	}
	if rep.Dispositions["miss"] != 22 {
		t.Errorf("dispositions %v", rep.Dispositions)
	}
	if last.Done != 22 || last.Total != 22 {
		t.Errorf("last progress %+v", last)
	}
	for _, r := range hlstest.DefaultRenditions {
		for n := range 5 {
			if got := origin.Requests("/" + r.Name + "/seg" + string(rune('0'+n)) + ".m4s"); got != 1 {
				t.Errorf("%s seg%d fetched %d times", r.Name, n, got)
			}
		}
	}
	// 22 objects + 2 retries of the 480p playlist + 2 of each seg3.
	if f.hosts["cdn.example"] != 30 || len(f.hosts) != 1 {
		t.Errorf("Host header not applied: %v", f.hosts)
	}
}

func TestWarmReportsFailures(t *testing.T) {
	origin := &hlstest.Origin{Segments: 3}
	f := &flaky{next: origin, n: 100, match: func(p string) bool { return p == "/240p/seg1.ts" }}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	w := &Warmer{Backoff: time.Millisecond, Retries: 2, Select: func(v Variant) bool { return v.Bandwidth < 1_000_000 }}
	rep, err := w.Warm(t.Context(), srv.URL+"/master.m3u8")
	if !errors.Is(err, ErrWarmIncomplete) {
		t.Fatalf("err = %v", err)
	}
	if len(rep.Failures) != 1 || rep.Failures[0].Path != "/240p/seg1.ts" || rep.Failures[0].Attempts != 3 || !strings.Contains(rep.Failures[0].Err, "502") {
		t.Fatalf("failures %+v", rep.Failures)
	}
	if f.seen["/240p/seg1.ts"] != 3 {
		t.Errorf("failed object tried %d times, want 3", f.seen["/240p/seg1.ts"])
	}
	// Only 240p was selected: master + playlist + 2 good segments.
	if rep.Objects != 4 || origin.Requests("/480p/index.m3u8") != 0 {
		t.Errorf("objects %d", rep.Objects)
	}
}
