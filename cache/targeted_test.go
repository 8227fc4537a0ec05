package cache

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"
)

// TestTargetedCacheControl checks RFC 9213 end to end: CDN-Cache-Control
// and the tier's own TargetedFields decide storing and freshness in place
// of Cache-Control and Expires (§2.2), an invalid targeted field is
// ignored as a whole (§2.1), and Cache-Control reaches the client
// unchanged.
func TestTargetedCacheControl(t *testing.T) {
	unchanged := func(field, want string) func(*testing.T, result, *origin) {
		return func(t *testing.T, res result, _ *origin) {
			t.Helper()
			if got := res.header.Values(field); !slices.Equal(got, []string{want}) {
				t.Errorf("client got %s %q, want %q as the origin sent it", field, got, want)
			}
		}
	}
	onion := func(c *Cache) { c.TargetedFields = []string{"Onioncdn-Cache-Control"} }
	runRuleTests(t, []ruleTest{
		// RFC 9213 §3.1, first example: fresh for 600 s at a CDN.
		{name: "cdn_max_age_over_cache_control", handler: fixed("Cache-Control", "max-age=60, s-maxage=120", "CDN-Cache-Control", "max-age=600"), steps: []step{
			{status: 200, body: "v1", origin: 1, check: unchanged("Cache-Control", "max-age=60, s-maxage=120")},
			{advance: 300 * time.Second, status: 200, body: "v1", cs: "hit", origin: 1, check: func(t *testing.T, res result, o *origin) {
				unchanged("Cache-Control", "max-age=60, s-maxage=120")(t, res, o)
				unchanged("Cdn-Cache-Control", "max-age=600")(t, res, o)
			}},
			{advance: 301 * time.Second, status: 200, body: "v2", origin: 2},
		}},
		// §3.1, second example: stored by a CDN despite no-store.
		{name: "cdn_stores_despite_cache_control_no_store", handler: fixed("CDN-Cache-Control", "max-age=600", "Cache-Control", "no-store"), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{advance: time.Minute, status: 200, body: "v1", cs: "hit", origin: 1, check: unchanged("Cache-Control", "no-store")},
		}},
		// §3.1, fourth example: "CDN-Cache-Control: none" lets a CDN store
		// (here with a heuristic lifetime from Last-Modified).
		{name: "cdn_none_stores", handler: func(w http.ResponseWriter, r *http.Request, n int64) {
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("CDN-Cache-Control", "none")
			w.Header().Set("Last-Modified", time.Now().Add(-1000*time.Second).UTC().Format(http.TimeFormat))
			fmt.Fprintf(w, "v%d", n)
		}, steps: []step{
			{status: 200, body: "v1", origin: 1},
			{advance: 50 * time.Second, status: 200, body: "v1", cs: "hit", origin: 1},
		}},
		{name: "cdn_no_store_overrides_cache_control", handler: fixed("Cache-Control", "max-age=10000", "CDN-Cache-Control", "no-store"), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{status: 200, body: "v2", origin: 2},
		}},
		{name: "cdn_private_overrides_cache_control", handler: fixed("Cache-Control", "max-age=10000", "CDN-Cache-Control", "private"), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{status: 200, body: "v2", origin: 2},
		}},
		{name: "short_cdn_max_age_wins", handler: fixed("Cache-Control", "max-age=3600", "CDN-Cache-Control", "max-age=1"), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{advance: 2 * time.Second, status: 200, body: "v2", origin: 2},
		}},
		{name: "expires_ignored", handler: func(w http.ResponseWriter, r *http.Request, n int64) {
			w.Header().Set("CDN-Cache-Control", "must-revalidate")
			w.Header().Set("Expires", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat))
			fmt.Fprintf(w, "v%d", n)
		}, steps: []step{
			{status: 200, body: "v1", origin: 1},
			{advance: time.Second, status: 200, body: "v2", origin: 2},
		}},
		// The fast freshness path (Cache.evaluate) uses the targeted
		// no-cache too.
		{name: "cdn_no_cache_always_validates", handler: func(w http.ResponseWriter, r *http.Request, n int64) {
			w.Header().Set("CDN-Cache-Control", "no-cache, max-age=600")
			etagHandler("max-age=600")(w, r, n)
		}, steps: []step{
			{status: 200, body: "v1", origin: 1},
			{status: 200, body: "v1", cs: "fwd=stale; fwd-status=304", origin: 2, check: sawINM},
			{status: 200, body: "v1", cs: "fwd=stale; fwd-status=304", origin: 3, check: sawINM},
		}},
		{name: "cdn_stale_if_error", handler: func(w http.ResponseWriter, r *http.Request, n int64) {
			if n > 1 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("Cache-Control", "max-age=10")
			w.Header().Set("CDN-Cache-Control", "max-age=10, stale-if-error=600")
			fmt.Fprintf(w, "v%d", n)
		}, steps: []step{
			{status: 200, body: "v1", origin: 1},
			{advance: time.Minute, status: 200, body: "v1", cs: "hit", origin: 2},
		}},
		{name: "cache_control_stale_if_error_ignored", handler: func(w http.ResponseWriter, r *http.Request, n int64) {
			if n > 1 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("Cache-Control", "max-age=10, stale-if-error=600")
			w.Header().Set("CDN-Cache-Control", "max-age=10")
			fmt.Fprintf(w, "v%d", n)
		}, steps: []step{
			{status: 200, body: "v1", origin: 1},
			{advance: time.Minute, status: 503, body: "", origin: 2},
		}},
		// §2.1: an invalid targeted field is ignored as a whole.
		{name: "invalid_type_falls_back_to_cache_control", handler: fixed("CDN-Cache-Control", `max-age="10000"`, "Cache-Control", "no-store"), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{status: 200, body: "v2", origin: 2},
		}},
		{name: "invalid_syntax_falls_back_to_cache_control", handler: fixed("Cache-Control", "max-age=1", "CDN-Cache-Control", "max-age =100"), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{advance: 2 * time.Second, status: 200, body: "v2", origin: 2},
		}},
		// The tier's own field comes first; CDN-Cache-Control still counts.
		{name: "own_field_before_cdn", configure: onion,
			handler: fixed("Cache-Control", "max-age=1", "CDN-Cache-Control", "max-age=1", "Onioncdn-Cache-Control", "max-age=3600"), steps: []step{
				{status: 200, body: "v1", origin: 1},
				{advance: time.Minute, status: 200, body: "v1", cs: "hit", origin: 1, check: unchanged("Onioncdn-Cache-Control", "max-age=3600")},
			}},
		{name: "invalid_own_field_falls_to_cdn", configure: onion,
			handler: fixed("Cache-Control", "max-age=1", "CDN-Cache-Control", "max-age=3600", "Onioncdn-Cache-Control", "max-age=1.5"), steps: []step{
				{status: 200, body: "v1", origin: 1},
				{advance: time.Minute, status: 200, body: "v1", cs: "hit", origin: 1},
			}},
		{name: "cdn_field_without_own_field", configure: onion, handler: fixed("Cache-Control", "max-age=1", "CDN-Cache-Control", "max-age=3600"), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{advance: time.Minute, status: 200, body: "v1", cs: "hit", origin: 1},
		}},
		// §2.2: "Targeted fields that are not on a cache's target list
		// MUST NOT change that cache's behaviour, and MUST be passed
		// through."
		{name: "other_field_ignored_and_passed", handler: fixed("Cache-Control", "max-age=1", "Onioncdn-Cache-Control", "max-age=3600"), steps: []step{
			{status: 200, body: "v1", origin: 1, check: unchanged("Onioncdn-Cache-Control", "max-age=3600")},
			{advance: 2 * time.Second, status: 200, body: "v2", origin: 2, check: unchanged("Onioncdn-Cache-Control", "max-age=3600")},
		}},
	})
}

// TestTargetedFieldsChain runs origin → midtier → edge, each tier with its
// own targeted field: every field reaches the client unchanged, and the
// edge obeys its own field in a response that came through the midtier
// (RFC 9213 §3: CDN caches forward targeted fields so that downstream
// caches can use them). Age accumulates across tiers (§2.3).
func TestTargetedFieldsChain(t *testing.T) {
	fields := [][2]string{
		{"Cache-Control", "max-age=5"},
		{"Cdn-Cache-Control", "max-age=60"},
		{"Midtier-Cache-Control", "max-age=600"},
		{"Edge-Cache-Control", "max-age=3600"},
	}
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		for _, f := range fields {
			w.Header().Set(f[0], f[1])
		}
		w.Header().Set("Date", time.Now().UTC().Format(http.TimeFormat))
		fmt.Fprintf(w, "v%d", len(fields))
	})
	clk := newClock() // one clock for both tiers
	u, _ := url.Parse(o.URL)
	mid := &Cache{Upstream: u, Now: clk.Now, TargetedFields: []string{"Midtier-Cache-Control"}, Logger: testLogger(t)}
	midSrv := httptest.NewServer(mid)
	t.Cleanup(midSrv.Close)
	mu, _ := url.Parse(midSrv.URL)
	edge := &Cache{Upstream: mu, Now: clk.Now, TargetedFields: []string{"Edge-Cache-Control"}, Logger: testLogger(t)}
	edgeSrv := httptest.NewServer(edge)
	t.Cleanup(edgeSrv.Close)

	get := func() *http.Response {
		t.Helper()
		resp, err := edgeSrv.Client().Get(edgeSrv.URL + "/seg")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if err := edge.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := mid.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		return resp
	}
	resp := get()
	for _, f := range fields {
		if got := resp.Header.Values(f[0]); !slices.Equal(got, []string{f[1]}) {
			t.Errorf("client got %s %q, want %q", f[0], got, f[1])
		}
	}
	// After 20 minutes the midtier's copy is stale (600 s) but the
	// edge's is fresh (3600 s): no request leaves the edge.
	clk.Advance(20 * time.Minute)
	resp = get()
	if n := o.count.Load(); n != 1 {
		t.Errorf("origin saw %d requests, want 1", n)
	}
	if age, _ := strconv.Atoi(resp.Header.Get("Age")); age < 1200 {
		t.Errorf("Age %d after 20 minutes, want at least 1200", age)
	}
	// After an hour the edge revalidates through the midtier, whose copy
	// is stale too: the origin sees the second request.
	clk.Advance(41 * time.Minute)
	get()
	if n := o.count.Load(); n != 2 {
		t.Errorf("origin saw %d requests after an hour, want 2", n)
	}
}

func TestTargetList(t *testing.T) {
	tests := []struct {
		in   []string
		want []string
	}{
		{nil, []string{"Cdn-Cache-Control"}},
		{[]string{"onioncdn-cache-control"}, []string{"Onioncdn-Cache-Control", "Cdn-Cache-Control"}},
		{[]string{"A-Cache-Control", " ", "CDN-Cache-Control", "B-Cache-Control"}, []string{"A-Cache-Control", "Cdn-Cache-Control", "B-Cache-Control"}},
	}
	for _, tt := range tests {
		in := slices.Clip(tt.in)
		if got := targetList(in); !slices.Equal(got, tt.want) {
			t.Errorf("targetList(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
