package route

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/internal/rwrec"
)

// agentRig is a router on an httptest server with two loopback groups and
// an agent per edge.
type agentRig struct {
	*rig
	srv *httptest.Server
}

func newAgentRig(t *testing.T) *agentRig {
	t.Helper()
	r := newRig(t, func(rt *Router) { rt.AllowNonOnion = true })
	srv := httptest.NewServer(r.rt)
	t.Cleanup(srv.Close)
	return &agentRig{rig: r, srv: srv}
}

func (r *agentRig) agent(t *testing.T, e testEdge) *Agent {
	return &Agent{
		URL:    r.srv.URL + DefaultReportPath,
		Group:  e.group,
		Edge:   e.id,
		Key:    e.priv,
		Client: r.srv.Client(),
		Now:    r.clock.Now,
		Logger: testLogger(t),
	}
}

func TestAgentReportsMeasuredLoad(t *testing.T) {
	r := newAgentRig(t)
	a := r.agent(t, r.ea)
	a.Sample = func(l *Load) { l.HitRatio = 0.75 }

	entered := make(chan struct{})
	release := make(chan struct{})
	edge := a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch req.URL.Path {
		case "/block":
			entered <- struct{}{}
			<-release
			io.WriteString(w, strings.Repeat("x", 1000))
		case "/fail":
			http.Error(w, "boom", http.StatusBadGateway)
		default:
			io.WriteString(w, strings.Repeat("y", 500))
		}
	}))
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			edge.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/block", nil))
		})
	}
	for range 3 {
		<-entered
	}
	ctx := t.Context()
	if err := a.Report(ctx); err != nil {
		t.Fatal(err)
	}
	st, _ := r.rt.Stats()
	if g := st.Groups[0]; !g.Healthy || g.Load.Active != 3 || g.Load.HitRatio != 0.75 {
		t.Fatalf("group a after first report: %+v", g)
	}

	close(release)
	wg.Wait()
	edge.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/ok", nil))
	edge.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/fail", nil))
	r.clock.Add(2 * time.Second)
	if err := a.Report(ctx); err != nil {
		t.Fatal(err)
	}
	st, _ = r.rt.Stats()
	g := st.Groups[0]
	// 3×1000 + 500 + len("boom\n") bytes and 5 requests in 2 s, 1 error.
	wantBytes := float64(3*1000+500+len("boom\n")) / 2
	if g.Load.Active != 0 || g.Load.BytesPerSecond != wantBytes || g.Load.RequestsPerSecond != 2.5 || g.Load.ErrorRatio != 0.2 {
		t.Fatalf("group a after second report: %+v, want bps %v rps 2.5 errors 0.2", g.Load, wantBytes)
	}
	// The router now routes to a.
	if grp := r.groupOf(t, r.get("/v")); grp != "a" {
		t.Fatalf("redirect to %q", grp)
	}
}

func TestAgentHealthHook(t *testing.T) {
	r := newAgentRig(t)
	a := r.agent(t, r.ea)
	a.Healthy = func(context.Context) error { return errors.New("disk full") }
	if err := a.Report(t.Context()); err != nil {
		t.Fatal(err)
	}
	st, _ := r.rt.Stats()
	if st.Reports.Accepted != 1 || st.Groups[0].Healthy {
		t.Fatalf("unhealthy edge reported healthy: %+v", st)
	}
}

func TestAgentRefusedReportIsAnError(t *testing.T) {
	r := newAgentRig(t)
	a := r.agent(t, r.ea)
	a.Key = newTestEdge(t, "a", "a1").priv // not the configured key
	if err := a.Report(t.Context()); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("Report with the wrong key: %v, want a 403 error", err)
	}
}

func TestAgentInvalidConfig(t *testing.T) {
	good := newTestEdge(t, "a", "a1")
	for _, tc := range []struct {
		name string
		a    *Agent
	}{
		{"no_url", &Agent{Group: "a", Edge: "a1", Key: good.priv}},
		{"no_key", &Agent{URL: "http://x/", Group: "a", Edge: "a1"}},
		{"bad_group", &Agent{URL: "http://x/", Group: "", Edge: "a1", Key: good.priv}},
		{"negative_interval", &Agent{URL: "http://x/", Group: "a", Edge: "a1", Key: good.priv, Interval: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Run must return at once, not block until ctx ends.
			if err := tc.a.Run(t.Context()); err == nil || !strings.HasPrefix(err.Error(), "route: ") {
				t.Fatalf("Run = %v", err)
			}
		})
	}
}

// TestAgentRunRetriesAndSignsOff runs an agent against a router behind a
// proxy that fails the first reports: the agent keeps trying (backing off),
// gets through, and on shutdown reports the edge unhealthy.
func TestAgentRunRetriesAndSignsOff(t *testing.T) {
	r := newAgentRig(t)
	var calls atomic.Int32
	accepted := make(chan struct{}, 100)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if calls.Add(1) <= 2 {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		rec := httptest.NewRecorder()
		r.rt.ServeHTTP(rec, req)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		if rec.Code == http.StatusNoContent {
			accepted <- struct{}{}
		}
	}))
	t.Cleanup(front.Close)
	a := r.agent(t, r.ea)
	a.URL = front.URL + DefaultReportPath
	a.Client = front.Client()
	a.Interval = 20 * time.Millisecond
	a.Now = nil // real time: reports are a few ms apart

	// The router's clock must follow real time too (it has not been used
	// yet, so its fields may still change).
	r.rt.Now = nil

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	for range 2 {
		select {
		case <-accepted:
		case <-time.After(30 * time.Second):
			t.Fatal("no accepted report after failures")
		}
	}
	st, _ := r.rt.Stats()
	if !st.Groups[0].Healthy {
		t.Fatal("group a not healthy while the agent runs")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	st, _ = r.rt.Stats()
	if st.Groups[0].Healthy {
		t.Fatal("group a still healthy after the agent signed off")
	}
	if calls.Load() < 5 {
		t.Fatalf("%d calls, want 2 failures + 2 accepted + sign-off", calls.Load())
	}
}

func TestMeterCountsPanicsAndUnwraps(t *testing.T) {
	var m Meter
	h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic(http.ErrAbortHandler)
		}
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("Flush through the meter: %v", err)
		}
		io.WriteString(w, "hi")
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	func() {
		defer func() {
			if recover() == nil {
				t.Error("panic swallowed by the meter")
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/panic", nil))
	}()
	s := m.Snapshot()
	if s != (MeterSnapshot{Active: 0, Requests: 2, Bytes: 2, Errors: 1}) {
		t.Fatalf("snapshot %+v", s)
	}
	var _ interface{ Unwrap() http.ResponseWriter } = &rwrec.Writer{}
}

func TestAgentClampsSampledLoad(t *testing.T) {
	r := newAgentRig(t)
	a := r.agent(t, r.ea)
	a.Sample = func(l *Load) {
		l.HitRatio = math.NaN()
		l.ErrorRatio = 7
		l.BytesPerSecond = math.Inf(1)
		l.Active = -3
	}
	if err := a.Report(t.Context()); err != nil {
		t.Fatal(err)
	}
	st, _ := r.rt.Stats()
	if want := (Load{ErrorRatio: 1, BytesPerSecond: maxRate}); st.Groups[0].Load != want {
		t.Fatalf("load %+v, want %+v", st.Groups[0].Load, want)
	}
}
