package cache

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Issue 16: with AdmitMiss saying no (an overloaded tier), hits and stale
// content allowed by stale-while-revalidate or stale-if-error are still
// served; everything that would go upstream gets 503 with Retry-After and
// costs the origin nothing.
func TestAdmitMissSheds(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/swr":
			w.Header().Set("Cache-Control", "max-age=10, stale-while-revalidate=600")
		case "/sie":
			w.Header().Set("Cache-Control", "max-age=10, stale-if-error=600")
		case "/stale":
			w.Header().Set("Cache-Control", "max-age=10")
		default:
			w.Header().Set("Cache-Control", "max-age=600")
		}
		w.Write([]byte("body"))
	})
	var admit atomic.Bool
	admit.Store(true)
	var asked atomic.Int64
	tr := newTier(t, o, func(c *Cache) {
		c.AdmitMiss = func(*http.Request) bool { asked.Add(1); return admit.Load() }
	})
	for _, p := range []string{"/hit", "/swr", "/sie", "/stale"} {
		tr.mustDo(t, "GET", p)
	}
	tr.clock.Advance(time.Minute) // all but /hit stale
	admit.Store(false)
	asked.Store(0)
	before := o.count.Load()

	for _, tc := range []struct {
		method, path string
		hdr          []string
		status       int
		cs           string
	}{
		{"GET", "/hit", nil, 200, "hit"},
		{"GET", "/swr", nil, 200, "hit"},
		{"GET", "/sie", nil, 200, "hit"},
		{"GET", "/stale", nil, 503, "fwd=miss; detail=shed"},
		{"GET", "/new", nil, 503, "fwd=miss; detail=shed"},
		{"GET", "/hit", []string{"Cache-Control", "no-store"}, 503, "fwd=miss; detail=shed"},
		{"POST", "/form", nil, 503, "fwd=miss; detail=shed"},
	} {
		res := tr.mustDo(t, tc.method, tc.path, tc.hdr...)
		if res.status != tc.status || !strings.HasPrefix(cacheStatus(res), tc.cs) {
			t.Errorf("%s %s %v: %d %q, want %d %q", tc.method, tc.path, tc.hdr, res.status, cacheStatus(res), tc.status, tc.cs)
		}
		if res.status == 503 && res.header.Get("Retry-After") != "1" {
			t.Errorf("%s %s: Retry-After %q", tc.method, tc.path, res.header.Get("Retry-After"))
		}
	}
	if err := tr.c.Shutdown(t.Context()); err != nil { // no background revalidation started
		t.Fatal(err)
	}
	if n := o.count.Load() - before; n != 0 {
		t.Errorf("origin saw %d requests while shedding, want 0", n)
	}
	if asked.Load() == 0 {
		t.Error("AdmitMiss never asked")
	}
	var shed int
	for _, r := range tr.records() {
		if r.Disposition == Shed {
			shed++
		}
	}
	if shed != 4 {
		t.Errorf("%d records with disposition shed, want 4", shed)
	}

	// Admitted again: the stale object is refetched.
	admit.Store(true)
	if res := tr.mustDo(t, "GET", "/stale"); res.status != 200 || o.count.Load() != before+1 {
		t.Errorf("after overload: %d, origin %d", res.status, o.count.Load()-before)
	}
}
