package route

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"
)

// testClock is a settable clock for Router.Now and Agent.Now.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *testClock { return &testClock{t: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testEdge is a configured edge with its private key.
type testEdge struct {
	group, id string
	priv      ed25519.PrivateKey
}

func newTestEdge(t testing.TB, group, id string) testEdge {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testEdge{group: group, id: id, priv: priv}
}

func (e testEdge) edge() Edge {
	return Edge{ID: e.id, PublicKey: e.priv.Public().(ed25519.PublicKey)}
}

// testOnion returns a valid v3 onion address derived from a fresh key.
func testOnion(t testing.TB) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return OnionAddress(pub)
}

// testLogger writes to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// rig is a router with two groups "a" and "b", one edge each, on a test
// clock and a seeded random source.
type rig struct {
	rt     *Router
	clock  *testClock
	ea, eb testEdge
	onions map[string]string // host → group id
}

func newRig(t testing.TB, mod func(*Router)) *rig {
	t.Helper()
	r := &rig{clock: newClock(), ea: newTestEdge(t, "a", "a1"), eb: newTestEdge(t, "b", "b1"), onions: map[string]string{}}
	oa, ob := testOnion(t), testOnion(t)
	r.onions[oa], r.onions[ob] = "a", "b"
	r.rt = &Router{
		Groups: []Group{
			{ID: "a", Onion: oa, Edges: []Edge{r.ea.edge()}},
			{ID: "b", Onion: ob, Edges: []Edge{r.eb.edge()}},
		},
		Rand:   mrand.NewPCG(1, 2),
		Now:    r.clock.Now,
		Logger: testLogger(t),
	}
	if mod != nil {
		mod(r.rt)
	}
	return r
}

// body encodes a report for e at the clock's time with a fresh nonce.
func (r *rig) body(t testing.TB, e testEdge, healthy bool, load Load) []byte {
	t.Helper()
	var n [nonceBytes]byte
	rand.Read(n[:])
	b, err := json.Marshal(report{
		V: reportVersion, Group: e.group, Edge: e.id, TS: r.clock.Now().UnixMilli(),
		Nonce: base64.RawURLEncoding.EncodeToString(n[:]), Healthy: healthy, Load: load,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// post sends body signed with sig (no header if sig is "") to the report
// endpoint and returns the status.
func (r *rig) post(body []byte, sig string) int {
	req := httptest.NewRequest(http.MethodPost, DefaultReportPath, bytes.NewReader(body))
	if sig != "" {
		req.Header.Set(SignatureHeader, sig)
	}
	w := httptest.NewRecorder()
	r.rt.ServeHTTP(w, req)
	return w.Code
}

// report sends a correctly signed report and fails t unless it is accepted.
func (r *rig) report(t testing.TB, e testEdge, healthy bool, load Load) {
	t.Helper()
	b := r.body(t, e, healthy, load)
	if code := r.post(b, signReport(e.priv, b)); code != http.StatusNoContent {
		t.Fatalf("report from %s/%s: status %d, want 204", e.group, e.id, code)
	}
}

// get sends a GET for target with the given cookies and returns the
// recorder.
func (r *rig) get(target string, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, target, nil)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	w := httptest.NewRecorder()
	r.rt.ServeHTTP(w, req)
	return w
}

// groupOf returns the group id a redirect points at, or "" if none.
func (r *rig) groupOf(t testing.TB, w *httptest.ResponseRecorder) string {
	t.Helper()
	if w.Code != http.StatusFound && w.Code != http.StatusTemporaryRedirect {
		return ""
	}
	u, err := url.Parse(w.Header().Get("Location"))
	if err != nil {
		t.Fatalf("bad Location %q: %v", w.Header().Get("Location"), err)
	}
	g, ok := r.onions[u.Host]
	if !ok {
		t.Fatalf("Location %q points at no configured group", u)
	}
	return g
}

// stickyCookie returns the Set-Cookie of the given name in w, or nil.
func stickyCookieOf(w *httptest.ResponseRecorder, name string) *http.Cookie {
	for _, c := range w.Result().Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// alternatingSource makes the router's weighted draws alternate between
// the first and the last group: 0 (→ first), max (→ last), 0, max, ...
type alternatingSource struct{ n uint64 }

func (s *alternatingSource) Uint64() uint64 {
	s.n++
	if s.n%2 == 1 {
		return 0
	}
	return math.MaxUint64
}
