package route

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkRouterRedirect measures one routing decision and redirect with
// n groups, with and without a sticky cookie.
func BenchmarkRouterRedirect(b *testing.B) {
	for _, n := range []int{2, 8, 32} {
		for _, sticky := range []bool{false, true} {
			b.Run(fmt.Sprintf("groups=%d/sticky=%v", n, sticky), func(b *testing.B) {
				r := newRig(b, func(rt *Router) { rt.Logger = nil })
				edges := []testEdge{r.ea, r.eb}
				for i := 2; i < n; i++ {
					e := newTestEdge(b, fmt.Sprintf("g%d", i), "e")
					o := testOnion(b)
					r.rt.Groups = append(r.rt.Groups, Group{ID: e.group, Onion: o, Edges: []Edge{e.edge()}})
					r.onions[o] = e.group
					edges = append(edges, e)
				}
				if sticky {
					r.rt.StickyCookie = "s"
				}
				for i, e := range edges {
					r.report(b, e, true, Load{Active: int64(i)})
				}
				req := httptest.NewRequest(http.MethodGet, "/v/seg1.ts?x=1", nil)
				if sticky {
					w := httptest.NewRecorder()
					r.rt.ServeHTTP(w, req)
					req.AddCookie(stickyCookieOf(w, "s"))
				}
				b.ReportAllocs()
				for b.Loop() {
					w := httptest.NewRecorder()
					r.rt.ServeHTTP(w, req)
					if w.Code != http.StatusFound {
						b.Fatal(w.Code)
					}
				}
			})
		}
	}
}

// BenchmarkReport measures verifying and applying one signed report.
func BenchmarkReport(b *testing.B) {
	r := newRig(b, func(rt *Router) { rt.Logger = nil })
	b.ReportAllocs()
	for b.Loop() {
		body := r.body(b, r.ea, true, Load{Active: 1})
		if code := r.post(body, signReport(r.ea.priv, body)); code != http.StatusNoContent {
			b.Fatal(code)
		}
		// Keep the nonce cache below its bound.
		r.clock.Add(DefaultClockSkew / 512)
	}
}
