package limit_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/limit"
)

// shedTier is a cache behind a Limiter in front of an origin whose /slow/
// objects wait for release.
type shedTier struct {
	srv     *httptest.Server
	lim     *limit.Limiter
	release chan struct{}
	waiting sync.WaitGroup
	origin  *counting
}

func newShedTier(t *testing.T, lim *limit.Limiter) *shedTier {
	st := &shedTier{lim: lim, release: make(chan struct{})}
	st.origin = &counting{h: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		if len(r.URL.Path) > 6 && r.URL.Path[:6] == "/slow/" {
			st.waiting.Done()
			<-st.release
		}
		io.WriteString(w, "body")
	}}
	o := httptest.NewServer(st.origin)
	t.Cleanup(o.Close)
	c := &cache.Cache{AdmitMiss: lim.AdmitMiss}
	c.Upstream, _ = c.Upstream.Parse(o.URL)
	st.srv = front(t, lim, c)
	t.Cleanup(func() { c.Shutdown(t.Context()) })
	return st
}

// hold starts n requests for slow misses and waits until the origin has
// them all.
func (st *shedTier) hold(t *testing.T, n int) *sync.WaitGroup {
	var done sync.WaitGroup
	st.waiting.Add(n)
	for i := range n {
		done.Go(func() {
			if resp, _ := get(t, st.srv.URL+"/slow/"+strconv.Itoa(i)); resp.StatusCode != 200 {
				t.Errorf("held miss %d: %d", i, resp.StatusCode)
			}
		})
	}
	st.waiting.Wait()
	return &done
}

// Issue 16: when the tier is saturated, hits are still served and misses
// are shed with 503 and Retry-After before they cost upstream work.
func TestIssue16Shedding(t *testing.T) {
	for _, tc := range []struct {
		name string
		lim  *limit.Limiter
		held int
		shed uint64
	}{
		{name: "upstream_bound", lim: &limit.Limiter{MaxUpstream: 2}, held: 2, shed: 1},
		{name: "in_flight_bound", lim: &limit.Limiter{MaxInFlight: 2, MaxUpstream: -1}, held: 2, shed: 1},
		{name: "busy", lim: &limit.Limiter{Busy: func() bool { return true }}, held: 0, shed: 2}, // /hit is never filled
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newShedTier(t, tc.lim)
			if resp, _ := get(t, st.srv.URL+"/hit"); resp.StatusCode != 200 && tc.name != "busy" {
				t.Fatalf("filling /hit: %d", resp.StatusCode)
			}
			done := st.hold(t, tc.held)
			before := st.origin.n.Load()
			resp, _ := get(t, st.srv.URL+"/miss")
			if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
				t.Errorf("miss while saturated: %d Retry-After %q, want 503", resp.StatusCode, resp.Header.Get("Retry-After"))
			}
			if tc.name != "busy" {
				if resp, body := get(t, st.srv.URL+"/hit"); resp.StatusCode != 200 || body != "body" {
					t.Errorf("hit while saturated: %d %q", resp.StatusCode, body)
				}
			}
			if n := st.origin.n.Load() - before; n != 0 {
				t.Errorf("origin saw %d requests while saturated", n)
			}
			if s := tc.lim.Stats(); s.Shed != tc.shed {
				t.Errorf("Shed = %d, want %d", s.Shed, tc.shed)
			}
			close(st.release)
			done.Wait()
			if s := tc.lim.Stats(); s.InFlight != 0 || s.Upstream != 0 {
				t.Errorf("after: %+v", s)
			}
			if tc.name != "busy" {
				if resp, _ := get(t, st.srv.URL+"/miss"); resp.StatusCode != 200 {
					t.Errorf("miss after the load: %d", resp.StatusCode)
				}
			}
		})
	}
}

// Beyond four times MaxInFlight every request is refused at once.
func TestOverloadRefusesEverything(t *testing.T) {
	lim := &limit.Limiter{MaxInFlight: 1}
	release := make(chan struct{})
	var waiting sync.WaitGroup
	srv := front(t, lim, &counting{h: func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			waiting.Done()
			<-release
		}
	}})
	var done sync.WaitGroup
	waiting.Add(4)
	for range 4 {
		done.Go(func() { get(t, srv.URL+"/hold") })
	}
	waiting.Wait()
	resp, _ := get(t, srv.URL+"/")
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" {
		t.Errorf("over 4×MaxInFlight: %d", resp.StatusCode)
	}
	if n := lim.Stats().Rejected[limit.RejectOverload]; n != 1 {
		t.Errorf("Rejected[overload] = %d", n)
	}
	close(release)
	done.Wait()
	if resp, _ := get(t, srv.URL+"/"); resp.StatusCode != 200 {
		t.Errorf("afterwards: %d", resp.StatusCode)
	}
}
