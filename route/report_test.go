package route

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestReportRejected sends bad reports that would, if accepted, make group
// a (the only healthy group) unhealthy, and checks the status, the counter
// and that routing did not change.
func TestReportRejected(t *testing.T) {
	tests := []struct {
		name    string
		code    int
		counter func(ReportStats) uint64
		// prep sends any legitimate reports the case needs and returns a
		// function that sends the bad report and returns the status.
		prep func(t *testing.T, r *rig) func() int
	}{
		{"unsigned", http.StatusUnauthorized, func(s ReportStats) uint64 { return s.Unsigned }, func(t *testing.T, r *rig) func() int {
			return func() int { return r.post(r.body(t, r.ea, false, Load{}), "") }
		}},
		{"forged_other_key", http.StatusForbidden, func(s ReportStats) uint64 { return s.BadSignature }, func(t *testing.T, r *rig) func() int {
			b := r.body(t, r.ea, false, Load{})
			return func() int { return r.post(b, signReport(newTestEdge(t, "a", "a1").priv, b)) }
		}},
		{"signed_by_other_edge", http.StatusForbidden, func(s ReportStats) uint64 { return s.BadSignature }, func(t *testing.T, r *rig) func() int {
			b := r.body(t, r.ea, false, Load{}) // claims a/a1, signed by b1
			return func() int { return r.post(b, signReport(r.eb.priv, b)) }
		}},
		{"body_altered_after_signing", http.StatusForbidden, func(s ReportStats) uint64 { return s.BadSignature }, func(t *testing.T, r *rig) func() int {
			b := r.body(t, r.ea, true, Load{})
			sig := signReport(r.ea.priv, b)
			return func() int {
				return r.post(bytes.Replace(b, []byte(`"healthy":true`), []byte(`"healthy":false`), 1), sig)
			}
		}},
		{"garbled_signature", http.StatusForbidden, func(s ReportStats) uint64 { return s.BadSignature }, func(t *testing.T, r *rig) func() int {
			return func() int { return r.post(r.body(t, r.ea, false, Load{}), "not base64 at all") }
		}},
		{"signature_without_context", http.StatusForbidden, func(s ReportStats) uint64 { return s.BadSignature }, func(t *testing.T, r *rig) func() int {
			b := r.body(t, r.ea, false, Load{})
			return func() int { return r.post(b, base64.RawURLEncoding.EncodeToString(ed25519Sign(r.ea, b))) }
		}},
		{"unknown_edge", http.StatusForbidden, func(s ReportStats) uint64 { return s.UnknownEdge }, func(t *testing.T, r *rig) func() int {
			e := newTestEdge(t, "a", "intruder")
			b := r.body(t, e, false, Load{})
			return func() int { return r.post(b, signReport(e.priv, b)) }
		}},
		{"unknown_group", http.StatusForbidden, func(s ReportStats) uint64 { return s.UnknownEdge }, func(t *testing.T, r *rig) func() int {
			e := r.ea
			e.group = "z"
			b := r.body(t, e, false, Load{})
			return func() int { return r.post(b, signReport(e.priv, b)) }
		}},
		{"stale_past", http.StatusForbidden, func(s ReportStats) uint64 { return s.Stale }, func(t *testing.T, r *rig) func() int {
			b := r.body(t, r.ea, false, Load{})
			r.clock.Add(61 * time.Second)
			// Keep a fresh so that only the rejection could change it.
			r.report(t, r.ea, true, Load{})
			return func() int { return r.post(b, signReport(r.ea.priv, b)) }
		}},
		{"stale_future", http.StatusForbidden, func(s ReportStats) uint64 { return s.Stale }, func(t *testing.T, r *rig) func() int {
			r.clock.Add(61 * time.Second)
			b := r.body(t, r.ea, false, Load{})
			r.clock.Add(-61 * time.Second)
			return func() int { return r.post(b, signReport(r.ea.priv, b)) }
		}},
		{"replayed", http.StatusConflict, func(s ReportStats) uint64 { return s.Replayed }, func(t *testing.T, r *rig) func() int {
			// An earlier unhealthy report from a is captured, a recovers,
			// the capture is replayed.
			b := r.body(t, r.ea, false, Load{})
			sig := signReport(r.ea.priv, b)
			if code := r.post(b, sig); code != http.StatusNoContent {
				t.Fatalf("original: %d", code)
			}
			r.clock.Add(time.Second)
			r.report(t, r.ea, true, Load{})
			return func() int { return r.post(b, sig) }
		}},
		{"replayed_healthy_after_failure", http.StatusConflict, func(s ReportStats) uint64 { return s.Replayed }, func(t *testing.T, r *rig) func() int {
			// The reverse: replaying a captured healthy report must not
			// revive a group that has since reported failure.
			b := r.body(t, r.ea, true, Load{})
			sig := signReport(r.ea.priv, b)
			if code := r.post(b, sig); code != http.StatusNoContent {
				t.Fatalf("original: %d", code)
			}
			r.clock.Add(time.Second)
			r.report(t, r.ea, false, Load{})
			return func() int { return r.post(b, sig) }
		}},
		{"malformed_json", http.StatusBadRequest, func(s ReportStats) uint64 { return s.Malformed }, func(t *testing.T, r *rig) func() int {
			b := []byte(`{"v":1,"group":"a"`)
			return func() int { return r.post(b, signReport(r.ea.priv, b)) }
		}},
		{"unknown_field", http.StatusBadRequest, func(s ReportStats) uint64 { return s.Malformed }, func(t *testing.T, r *rig) func() int {
			b := bytes.Replace(r.body(t, r.ea, false, Load{}), []byte(`{`), []byte(`{"extra":1,`), 1)
			return func() int { return r.post(b, signReport(r.ea.priv, b)) }
		}},
		{"trailing_data", http.StatusBadRequest, func(s ReportStats) uint64 { return s.Malformed }, func(t *testing.T, r *rig) func() int {
			b := append(r.body(t, r.ea, false, Load{}), `{}`...)
			return func() int { return r.post(b, signReport(r.ea.priv, b)) }
		}},
		{"negative_load", http.StatusBadRequest, func(s ReportStats) uint64 { return s.Malformed }, func(t *testing.T, r *rig) func() int {
			b := r.body(t, r.ea, true, Load{Active: -5})
			return func() int { return r.post(b, signReport(r.ea.priv, b)) }
		}},
		{"oversized", http.StatusRequestEntityTooLarge, func(s ReportStats) uint64 { return s.Oversized }, func(t *testing.T, r *rig) func() int {
			b := append(r.body(t, r.ea, false, Load{}), bytes.Repeat([]byte(" "), DefaultMaxReportBytes)...)
			return func() int { return r.post(b, signReport(r.ea.priv, b)) }
		}},
		{"oversized_chunked", http.StatusRequestEntityTooLarge, func(s ReportStats) uint64 { return s.Oversized }, func(t *testing.T, r *rig) func() int {
			b := append(r.body(t, r.ea, false, Load{}), bytes.Repeat([]byte(" "), DefaultMaxReportBytes)...)
			return func() int {
				req := httptest.NewRequest(http.MethodPost, DefaultReportPath, io.MultiReader(bytes.NewReader(b)))
				req.ContentLength = -1
				req.Header.Set(SignatureHeader, signReport(r.ea.priv, b))
				w := httptest.NewRecorder()
				r.rt.ServeHTTP(w, req)
				return w.Code
			}
		}},
		{"get_method", http.StatusMethodNotAllowed, func(s ReportStats) uint64 { return s.BadMethod }, func(t *testing.T, r *rig) func() int {
			return func() int { return r.get(DefaultReportPath).Code }
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, nil)
			r.report(t, r.ea, true, Load{Active: 5})
			send := tc.prep(t, r)
			before, _ := r.rt.Stats()
			code := send()
			after, _ := r.rt.Stats()
			if code != tc.code {
				t.Fatalf("status %d, want %d", code, tc.code)
			}
			if got := tc.counter(after.Reports) - tc.counter(before.Reports); got != 1 {
				t.Errorf("counter moved by %d, want 1 (stats %+v)", got, after.Reports)
			}
			total := func(s ReportStats) uint64 {
				return s.Unsigned + s.BadSignature + s.UnknownEdge + s.Stale + s.Replayed + s.Malformed + s.Oversized + s.BadMethod + s.RateLimited
			}
			if got := total(after.Reports) - total(before.Reports); got != 1 {
				t.Errorf("%d rejection counters moved, want exactly 1", got)
			}
			if after.Reports.Accepted != before.Reports.Accepted {
				t.Errorf("Accepted moved on a rejected report")
			}
			if !reflect.DeepEqual(before.Groups, after.Groups) {
				t.Errorf("rejected report changed routing state:\nbefore %+v\nafter  %+v", before.Groups, after.Groups)
			}
		})
	}
}

// ed25519Sign signs b without the signature context, as a naive or
// cross-protocol signer would.
func ed25519Sign(e testEdge, b []byte) []byte { return ed25519.Sign(e.priv, b) }

// TestRejectedReportNeverChangesRouting applies the strongest check: the
// complete group state before and after each rejected report is identical.
func TestRejectedReportNeverChangesRouting(t *testing.T) {
	r := newRig(t, nil)
	r.report(t, r.ea, true, Load{Active: 5, BytesPerSecond: 100})
	r.report(t, r.eb, true, Load{Active: 7})
	before, _ := r.rt.Stats()
	good := r.body(t, r.ea, false, Load{Active: 1000})
	goodSig := signReport(r.ea.priv, good)
	if code := r.post(good, goodSig); code != http.StatusNoContent {
		t.Fatal(code)
	}
	applied, _ := r.rt.Stats()
	if applied.Groups[0].Healthy {
		t.Fatal("accepted unhealthy report not applied")
	}
	r.report(t, r.ea, true, Load{Active: 5, BytesPerSecond: 100})
	before, _ = r.rt.Stats()
	bad := [][2]string{
		{string(good), goodSig}, // replay
		{string(good), ""},      // unsigned
		{string(good), signReport(r.eb.priv, good)},
		{string(good[:len(good)-1]), goodSig},
		{strings.Repeat("x", 9000), goodSig},
	}
	for i, b := range bad {
		if code := r.post([]byte(b[0]), b[1]); code < 400 || code > 499 {
			t.Fatalf("bad report %d: status %d, want 4xx", i, code)
		}
		after, _ := r.rt.Stats()
		if !reflect.DeepEqual(before.Groups, after.Groups) {
			t.Fatalf("bad report %d changed groups:\n%+v\n%+v", i, before.Groups, after.Groups)
		}
	}
}

func TestOutOfOrderReportNotApplied(t *testing.T) {
	r := newRig(t, nil)
	older := r.body(t, r.ea, false, Load{})
	r.clock.Add(time.Second)
	r.report(t, r.ea, true, Load{Active: 3})
	if code := r.post(older, signReport(r.ea.priv, older)); code != http.StatusNoContent {
		t.Fatalf("older report: %d", code)
	}
	st, _ := r.rt.Stats()
	if !st.Groups[0].Healthy || st.Groups[0].Load.Active != 3 {
		t.Fatalf("older report rolled state back: %+v", st.Groups[0])
	}
}

func TestReplayCacheBounded(t *testing.T) {
	r := newRig(t, nil)
	for i := range maxNoncesPerEdge {
		r.report(t, r.ea, true, Load{Active: int64(i)})
	}
	b := r.body(t, r.ea, true, Load{})
	if code := r.post(b, signReport(r.ea.priv, b)); code != http.StatusTooManyRequests {
		t.Fatalf("report beyond the nonce bound: %d, want 429", code)
	}
	// Once the window has passed the old nonces are forgotten.
	r.clock.Add(DefaultClockSkew + time.Second)
	r.report(t, r.ea, true, Load{})
	st, _ := r.rt.Stats()
	if st.Reports.RateLimited != 1 {
		t.Errorf("RateLimited = %d", st.Reports.RateLimited)
	}
	r.rt.mu.Lock()
	n := len(r.rt.edges[edgeRef{"a", "a1"}].nonces)
	r.rt.mu.Unlock()
	if n != 1 {
		t.Errorf("nonce cache holds %d after the window, want 1", n)
	}
}

func TestReportHandlerAndCustomPath(t *testing.T) {
	r := newRig(t, func(rt *Router) { rt.ReportPath = "/r" })
	b := r.body(t, r.eb, true, Load{})
	sig := signReport(r.eb.priv, b)
	// The default path is now an ordinary path (503: no group yet).
	if code := r.post(b, sig); code != http.StatusServiceUnavailable {
		t.Fatalf("report on the default path: %d, want 503", code)
	}
	req := httptest.NewRequest(http.MethodPost, "/r", bytes.NewReader(b))
	req.Header.Set(SignatureHeader, sig)
	w := httptest.NewRecorder()
	r.rt.ServeHTTP(w, req)
	if w.Code != http.StatusNoContent {
		t.Fatalf("report on /r: %d", w.Code)
	}
	// ReportHandler serves reports on any path.
	b = r.body(t, r.ea, true, Load{})
	req = httptest.NewRequest(http.MethodPost, "/elsewhere", bytes.NewReader(b))
	req.Header.Set(SignatureHeader, signReport(r.ea.priv, b))
	w = httptest.NewRecorder()
	r.rt.ReportHandler().ServeHTTP(w, req)
	if w.Code != http.StatusNoContent {
		t.Fatalf("ReportHandler: %d", w.Code)
	}
	st, _ := r.rt.Stats()
	if st.Reports.Accepted != 2 || !st.Groups[0].Healthy || !st.Groups[1].Healthy {
		t.Fatalf("stats %+v", st)
	}
}

func TestDecodeReportRoundTrip(t *testing.T) {
	var n [nonceBytes]byte
	rand.Read(n[:])
	in := report{V: 1, Group: "g-1", Edge: "e.2", TS: 1764150000000, Nonce: base64.RawURLEncoding.EncodeToString(n[:]), Healthy: true,
		Load: Load{Active: 3, RequestsPerSecond: 1.5, BytesPerSecond: 1e6, ErrorRatio: 0.01, HitRatio: 0.9}}
	b, _ := json.Marshal(in)
	out, nonce, err := decodeReport(b)
	if err != nil || out != in || nonce != n {
		t.Fatalf("decode = %+v %x %v", out, nonce, err)
	}
}

func TestReportPathDisabled(t *testing.T) {
	r := newRig(t, func(rt *Router) { rt.ReportPath = "-" })
	b := r.body(t, r.ea, true, Load{})
	// On the public handler the default path is an ordinary path.
	if code := r.post(b, signReport(r.ea.priv, b)); code != http.StatusServiceUnavailable {
		t.Fatalf("report through ServeHTTP: %d, want 503 (no report endpoint, no group)", code)
	}
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(b))
	req.Header.Set(SignatureHeader, signReport(r.ea.priv, b))
	w := httptest.NewRecorder()
	r.rt.ReportHandler().ServeHTTP(w, req)
	if w.Code != http.StatusNoContent {
		t.Fatalf("ReportHandler: %d", w.Code)
	}
	if g := r.groupOf(t, r.get(DefaultReportPath)); g != "a" {
		t.Fatalf("report path not redirected: %q", g)
	}
}
