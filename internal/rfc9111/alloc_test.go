//go:build !race

package rfc9111

import (
	"net/http"
	"testing"
	"time"
)

// The hit path parses Cache-Control twice per request; it must not
// allocate for ordinary headers. (Skipped under -race, which allocates.)
func TestHitPathAllocations(t *testing.T) {
	vs := []string{`public, max-age=3600, stale-while-revalidate=60, no-cache="x"`}
	if n := testing.AllocsPerRun(100, func() { _ = ParseCacheControl(vs) }); n != 0 {
		t.Errorf("ParseCacheControl allocates %v times, want 0", n)
	}
	req := newReq("GET", "http://example.com/seg.ts", "Cache-Control: max-stale=10")
	e := &Entry{
		Status:       200,
		Header:       http.Header{"Date": {httpDate(t0)}, "Cache-Control": {"public, max-age=3600"}, "Age": {"3"}},
		RequestTime:  t0,
		ResponseTime: t0,
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = Evaluate(req, e, t0.Add(time.Minute), Options{}) }); n != 0 {
		t.Errorf("Evaluate allocates %v times, want 0", n)
	}
	// With a target list and a CDN-Cache-Control field (RFC 9213).
	e.Header["Cdn-Cache-Control"] = []string{"max-age=600, stale-if-error=60"}
	o := Options{TargetedFields: []string{CDNCacheControl}}
	if n := testing.AllocsPerRun(100, func() { _, _ = Evaluate(req, e, t0.Add(time.Minute), o) }); n != 0 {
		t.Errorf("Evaluate with a targeted field allocates %v times, want 0", n)
	}
	vs = []string{`max-age=600, no-cache="x", stale-if-error=60;p=1`}
	if n := testing.AllocsPerRun(100, func() { _, _ = ParseTargeted(vs) }); n != 0 {
		t.Errorf("ParseTargeted allocates %v times, want 0", n)
	}
}
