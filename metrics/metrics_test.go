package metrics_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/limit"
	"github.com/onioncdn/onioncdn/metrics"
	"github.com/onioncdn/onioncdn/onion/balance"
	"github.com/onioncdn/onioncdn/route"
	"github.com/onioncdn/onioncdn/upstream"
	"github.com/onioncdn/onioncdn/upstream/integrity"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// get fetches url and returns the body and the Cache-Status header.
func get(t *testing.T, url string) (string, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), strings.Join(resp.Header.Values("Cache-Status"), ", ")
}

// scrape serves reg through Handler and returns the exposition text.
func scrape(t *testing.T, reg prometheus.Gatherer) string {
	t.Helper()
	rec := httptest.NewRecorder()
	metrics.Handler(reg).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("metrics handler: %d", rec.Code)
	}
	return rec.Body.String()
}

// TestTiers runs two tiers (edge → midtier → origin) in one process,
// registers both in one registry, and checks that the exported counters
// and histograms match what the requests did: the first fetch is a miss
// at both tiers, the second a hit at the edge.
func TestTiers(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=600")
		io.WriteString(w, "segment-bytes")
	}))
	defer origin.Close()

	mid := &cache.Cache{Name: "mid", CacheStatus: true, Transport: &upstream.Transport{Upstreams: []string{origin.URL}, MinIdle: -1}}
	midSrv := httptest.NewServer(mid)
	defer midSrv.Close()
	edgeTr := &upstream.Transport{Upstreams: []string{midSrv.URL}, MinIdle: -1}
	defer edgeTr.Close()
	edge := &cache.Cache{Name: "edge", CacheStatus: true, Transport: edgeTr}
	edgeSrv := httptest.NewServer(edge)
	defer edgeSrv.Close()

	reg := prometheus.NewRegistry()
	d := metrics.NewDelivery()
	reg.MustRegister(d, metrics.Cache("edge", edge), metrics.Cache("mid", mid), metrics.Upstream("edge", edgeTr))
	edge.OnRecord = append(edge.OnRecord, d.OnRecord("edge"))
	mid.OnRecord = append(mid.OnRecord, d.OnRecord("mid"))

	for range 2 {
		body, _ := get(t, edgeSrv.URL+"/v/seg1.ts")
		if body != "segment-bytes" {
			t.Fatalf("body %q", body)
		}
		// Wait until the fill is committed, so that the next request is
		// a hit rather than joining the fill (collapsed).
		if err := edge.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
	}

	want := `
# HELP onioncdn_cache_requests_total Requests handled by the cache, by disposition.
# TYPE onioncdn_cache_requests_total counter
onioncdn_cache_requests_total{disposition="collapsed",tier="edge"} 0
onioncdn_cache_requests_total{disposition="hit",tier="edge"} 1
onioncdn_cache_requests_total{disposition="miss",tier="edge"} 1
onioncdn_cache_requests_total{disposition="passed",tier="edge"} 0
onioncdn_cache_requests_total{disposition="revalidated",tier="edge"} 0
onioncdn_cache_requests_total{disposition="stale",tier="edge"} 0
onioncdn_cache_requests_total{disposition="uncacheable",tier="edge"} 0
onioncdn_cache_requests_total{disposition="collapsed",tier="mid"} 0
onioncdn_cache_requests_total{disposition="hit",tier="mid"} 0
onioncdn_cache_requests_total{disposition="miss",tier="mid"} 1
onioncdn_cache_requests_total{disposition="passed",tier="mid"} 0
onioncdn_cache_requests_total{disposition="revalidated",tier="mid"} 0
onioncdn_cache_requests_total{disposition="stale",tier="mid"} 0
onioncdn_cache_requests_total{disposition="uncacheable",tier="mid"} 0
# HELP onioncdn_cache_bytes_served_total Body bytes written to clients.
# TYPE onioncdn_cache_bytes_served_total counter
onioncdn_cache_bytes_served_total{tier="edge"} 26
onioncdn_cache_bytes_served_total{tier="mid"} 13
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"onioncdn_cache_requests_total", "onioncdn_cache_bytes_served_total"); err != nil {
		t.Fatal(err)
	}

	// Histograms: one miss and one hit observed at the edge, one miss at
	// the midtier; upstream wait only for the misses.
	for _, tc := range []struct {
		name, tier, disp string
		want             int
	}{
		{"onioncdn_delivery_seconds", "edge", "hit", 1},
		{"onioncdn_delivery_seconds", "edge", "miss", 1},
		{"onioncdn_delivery_seconds", "mid", "miss", 1},
		{"onioncdn_upstream_wait_seconds", "edge", "miss", 1},
		{"onioncdn_upstream_wait_seconds", "edge", "hit", 0},
	} {
		if got := histCount(t, reg, tc.name, tc.tier, tc.disp); got != tc.want {
			t.Errorf("%s{tier=%s,disposition=%s} count = %d, want %d", tc.name, tc.tier, tc.disp, got, tc.want)
		}
	}

	// Upstream: one request on a new connection, one reused, labelled with
	// the configured URL.
	text := scrape(t, reg)
	for _, line := range []string{
		`onioncdn_upstream_requests_total{conn="new",tier="edge",upstream="` + midSrv.URL + `"} 1`,
		`onioncdn_upstream_requests_total{conn="reused",tier="edge",upstream="` + midSrv.URL + `"} 0`,
		`onioncdn_upstream_healthy{tier="edge",upstream="` + midSrv.URL + `"} 1`,
	} {
		if !strings.Contains(text, line) {
			t.Errorf("scrape lacks %q:\n%s", line, text)
		}
	}
	// No request path in any label.
	if strings.Contains(text, "seg1") {
		t.Errorf("metrics mention a request path:\n%s", text)
	}
}

func histCount(t *testing.T, g prometheus.Gatherer, name, tier, disp string) int {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["tier"] == tier && labels["disposition"] == disp {
				return int(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

func TestDeliveryBoundsLabels(t *testing.T) {
	d := metrics.NewDelivery()
	d.Observe("edge", cache.Record{Disposition: "something-new", Delivery: time.Millisecond})
	d.Observe("edge", cache.Record{Disposition: cache.Miss, Prefetch: true, Delivery: time.Second})
	reg := prometheus.NewRegistry()
	reg.MustRegister(d)
	if got := histCount(t, reg, "onioncdn_delivery_seconds", "edge", "other"); got != 1 {
		t.Errorf("unknown disposition counted %d times as other, want 1", got)
	}
	if got := histCount(t, reg, "onioncdn_delivery_seconds", "edge", "miss"); got != 0 {
		t.Errorf("prefetch observed as a delivery (%d)", got)
	}
}

// TestDeliveryOnRecordSeries: the per-tier hook creates a series only for
// what it observes: a hit that never waited upstream adds no upstream-wait
// series, and repeated records land in the same series.
func TestDeliveryOnRecordSeries(t *testing.T) {
	d := metrics.NewDelivery()
	hook := d.OnRecord("edge")
	for range 3 {
		hook(nil, cache.Record{Disposition: cache.Hit, Delivery: time.Millisecond})
	}
	hook(nil, cache.Record{Disposition: cache.Miss, Delivery: time.Second, Upstream: time.Second / 2, Timing: cache.Timing{FirstByte: time.Second / 2}})
	reg := prometheus.NewRegistry()
	reg.MustRegister(d)
	if got := histCount(t, reg, "onioncdn_first_byte_seconds", "edge", "miss"); got != 1 {
		t.Errorf("miss first byte counted %d times, want 1", got)
	}
	if n, err := testutil.GatherAndCount(reg, "onioncdn_first_byte_seconds"); err != nil || n != 1 {
		t.Errorf("%d first-byte series (err %v), want 1 (the hits had none recorded)", n, err)
	}
	if got := histCount(t, reg, "onioncdn_delivery_seconds", "edge", "hit"); got != 3 {
		t.Errorf("hits counted %d times, want 3", got)
	}
	if got := histCount(t, reg, "onioncdn_upstream_wait_seconds", "edge", "miss"); got != 1 {
		t.Errorf("miss upstream wait counted %d times, want 1", got)
	}
	if n, err := testutil.GatherAndCount(reg, "onioncdn_upstream_wait_seconds"); err != nil || n != 1 {
		t.Errorf("%d upstream-wait series (err %v), want 1 (the miss)", n, err)
	}
}

func TestRouter(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rt := &route.Router{
		Groups:        []route.Group{{ID: "eu", Onion: "127.0.0.1:1", Edges: []route.Edge{{ID: "e1", PublicKey: pub}}}},
		AllowNonOnion: true,
	}
	srv := httptest.NewServer(rt)
	defer srv.Close()
	a := &route.Agent{URL: srv.URL + route.DefaultReportPath, Group: "eu", Edge: "e1", Key: priv}
	if err := a.Report(t.Context()); err != nil {
		t.Fatal(err)
	}
	// One redirect, and one unsigned report.
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(srv.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("router answered %d", resp.StatusCode)
	}
	resp, err = http.Post(srv.URL+route.DefaultReportPath, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.Router(rt))
	want := `
# HELP onioncdn_router_group_healthy 1 if the group is a routing candidate.
# TYPE onioncdn_router_group_healthy gauge
onioncdn_router_group_healthy{group="eu"} 1
# HELP onioncdn_router_group_redirects_total Clients sent to the group.
# TYPE onioncdn_router_group_redirects_total counter
onioncdn_router_group_redirects_total{group="eu"} 1
# HELP onioncdn_router_redirects_total Requests redirected to a group.
# TYPE onioncdn_router_redirects_total counter
onioncdn_router_redirects_total 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"onioncdn_router_group_healthy", "onioncdn_router_group_redirects_total", "onioncdn_router_redirects_total"); err != nil {
		t.Fatal(err)
	}
	text := scrape(t, reg)
	for _, line := range []string{`onioncdn_router_reports_total{outcome="accepted"} 1`, `onioncdn_router_reports_total{outcome="unsigned"} 1`} {
		if !strings.Contains(text, line) {
			t.Errorf("scrape lacks %q", line)
		}
	}
}

func TestRouterInvalidConfigExportsNothing(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.Router(&route.Router{}))
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 0 {
		t.Fatalf("invalid router exported %d metrics (err %v)", n, err)
	}
}

func TestListenLocal(t *testing.T) {
	for _, tc := range []struct {
		name, addr string
		ok         bool
	}{
		{"ipv4_loopback", "127.0.0.1:0", true},
		{"other_loopback", "127.0.0.2:0", true},
		{"ipv6_loopback", "[::1]:0", true},
		{"localhost", "localhost:0", true},
		{"all_interfaces_empty_host", ":0", false},
		{"all_interfaces", "0.0.0.0:0", false},
		{"ipv6_any", "[::]:0", false},
		{"public", "192.0.2.1:9100", false},
		{"hostname", "example.org:9100", false},
		{"no_port", "127.0.0.1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := metrics.ListenLocal(tc.addr)
			if tc.ok {
				if err != nil {
					if strings.Contains(tc.addr, "::1") && !errors.Is(err, metrics.ErrNotLoopback) {
						t.Skipf("no IPv6 loopback here: %v", err)
					}
					t.Fatal(err)
				}
				ln.Close()
				return
			}
			if err == nil {
				ln.Close()
				t.Fatalf("ListenLocal(%q) accepted a non-loopback address", tc.addr)
			}
		})
	}
	if _, err := metrics.ListenLocal("0.0.0.0:0"); !errors.Is(err, metrics.ErrNotLoopback) {
		t.Errorf("0.0.0.0: error %v does not wrap ErrNotLoopback", err)
	}
}

func TestHandlerMethods(t *testing.T) {
	h := metrics.Handler(prometheus.NewRegistry())
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/metrics", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/other", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET /other: %d", rec.Code)
	}
}

type integrityStats integrity.Stats

func (s integrityStats) Stats() integrity.Stats { return integrity.Stats(s) }

// TestIntegrityByCheck: rejections are exported per check, so a dashboard
// tells forgeries (digest, bad_signature) from replays (expired) and
// broken upstreams (length).
func TestIntegrityByCheck(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.Integrity("edge", integrityStats{Verified: 7, Digest: 2, Expired: 1, Length: 3, Rejected: 6}))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				if l.GetName() == "check" {
					key += "{" + l.GetValue() + "}"
				}
			}
			got[key] = m.GetCounter().GetValue()
		}
	}
	for k, want := range map[string]float64{
		"onioncdn_integrity_verified_total":                7,
		"onioncdn_integrity_rejected_total{digest}":        2,
		"onioncdn_integrity_rejected_total{expired}":       1,
		"onioncdn_integrity_rejected_total{length}":        3,
		"onioncdn_integrity_rejected_total{bad_signature}": 0,
		"onioncdn_integrity_rejected_total{too_large}":     0,
	} {
		if v, ok := got[k]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", k, v, ok, want)
		}
	}
}

func TestLimit(t *testing.T) {
	lim := &limit.Limiter{}
	srv := httptest.NewServer(lim.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/"+strings.Repeat("a", 9<<10), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.Limit("edge", lim))
	want := `
# HELP onioncdn_limit_rejected_total Requests refused, by reason.
# TYPE onioncdn_limit_rejected_total counter
onioncdn_limit_rejected_total{reason="body",tier="edge"} 0
onioncdn_limit_rejected_total{reason="bytes",tier="edge"} 0
onioncdn_limit_rejected_total{reason="concurrency",tier="edge"} 0
onioncdn_limit_rejected_total{reason="header_bytes",tier="edge"} 0
onioncdn_limit_rejected_total{reason="header_fields",tier="edge"} 0
onioncdn_limit_rejected_total{reason="overload",tier="edge"} 0
onioncdn_limit_rejected_total{reason="rate",tier="edge"} 0
onioncdn_limit_rejected_total{reason="uri",tier="edge"} 1
`
	if resp.StatusCode != http.StatusRequestURITooLong {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "onioncdn_limit_rejected_total"); err != nil {
		t.Fatal(err)
	}
}

type balanceStats balance.Stats

func (s balanceStats) Stats() balance.Stats { return balance.Stats(s) }

func TestBalance(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.Balance("edge-a", balanceStats{BackendsKnown: 3, BackendsUp: 2, Active: true, UploadRejected: 1,
		Rejected: balance.RejectedStats{WrongKey: 4}}))
	want := `
# HELP onioncdn_balance_backends_up Backends whose probes succeed.
# TYPE onioncdn_balance_backends_up gauge
onioncdn_balance_backends_up{tier="edge-a"} 2
# HELP onioncdn_balance_rejected_descriptors_total Backend descriptors skipped, by cause.
# TYPE onioncdn_balance_rejected_descriptors_total counter
onioncdn_balance_rejected_descriptors_total{cause="bad_signature",tier="edge-a"} 0
onioncdn_balance_rejected_descriptors_total{cause="expired",tier="edge-a"} 0
onioncdn_balance_rejected_descriptors_total{cause="malformed",tier="edge-a"} 0
onioncdn_balance_rejected_descriptors_total{cause="wrong_key",tier="edge-a"} 4
onioncdn_balance_rejected_descriptors_total{cause="wrong_period",tier="edge-a"} 0
# HELP onioncdn_balance_uploads_rejected_total Descriptors refused by tor or an HSDir.
# TYPE onioncdn_balance_uploads_rejected_total counter
onioncdn_balance_uploads_rejected_total{tier="edge-a"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "onioncdn_balance_backends_up",
		"onioncdn_balance_rejected_descriptors_total", "onioncdn_balance_uploads_rejected_total"); err != nil {
		t.Fatal(err)
	}
}
