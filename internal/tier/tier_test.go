package tier_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/internal/tier"
	"github.com/onioncdn/onioncdn/metrics"
	"github.com/onioncdn/onioncdn/route"
	"github.com/onioncdn/onioncdn/upstream/integrity"
	"github.com/prometheus/client_golang/prometheus"
)

func serve(t *testing.T, tr *tier.Tier) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go tr.Serve(ln)
	return "http://" + ln.Addr().String()
}

func fetch(t *testing.T, url string) (int, string, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), strings.Join(resp.Header.Values("Cache-Status"), ", ")
}

// TestChain builds origin ← midtier (disk store) ← edge (HLS, agent,
// metrics) and checks dispositions between tiers, the agent's reports, the
// registered collectors and an orderly shutdown.
func TestChain(t *testing.T) {
	var originHits int
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		originHits++
		w.Header().Set("Cache-Control", "public, max-age=600")
		w.Header().Set("Content-Type", "video/mp2t")
		io.WriteString(w, "segment "+r.URL.Path)
	}))
	defer origin.Close()

	reg := prometheus.NewRegistry()
	d := metrics.NewDelivery()
	reg.MustRegister(d)
	mid, err := tier.New(tier.Config{Name: "mid", Upstreams: []string{origin.URL}, CacheDir: t.TempDir(), NoSync: true,
		CacheStatus: true, Registry: reg, Delivery: d, MinIdle: -1})
	if err != nil {
		t.Fatal(err)
	}
	midURL := serve(t, mid)

	pub, priv, _ := ed25519.GenerateKey(nil)
	rt := &route.Router{AllowNonOnion: true, Groups: []route.Group{{ID: "g", Onion: "127.0.0.1:1", Edges: []route.Edge{{ID: "e", PublicKey: pub}}}}}
	router := httptest.NewServer(rt)
	defer router.Close()

	// The Cache-Status the midtier sends the edge, observed between tiers.
	var between []string
	wrap := func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			resp, err := rt.RoundTrip(r)
			if err == nil {
				between = append(between, resp.Header.Get("Cache-Status"))
			}
			return resp, err
		})
	}
	edge, err := tier.New(tier.Config{Name: "edge", Upstreams: []string{midURL}, CacheStatus: true, HLS: true,
		Registry: reg, Delivery: d, MinIdle: 1, WrapTransport: wrap,
		Agent: &route.Agent{URL: router.URL + route.DefaultReportPath, Group: "g", Edge: "e", Key: priv, Interval: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if err := edge.Warm(t.Context()); err != nil {
		t.Fatal(err)
	}
	edgeURL := serve(t, edge)

	code, body, cs := fetch(t, edgeURL+"/v/seg0.ts")
	if code != 200 || body != "segment /v/seg0.ts" {
		t.Fatalf("got %d %q", code, body)
	}
	// The midtier's member is kept and comes first (RFC 9211 §2).
	if !strings.HasPrefix(cs, "mid; fwd=uri-miss") || !strings.Contains(cs, ", edge; fwd=uri-miss") || len(between) != 1 || !strings.HasPrefix(between[0], "mid; fwd=uri-miss") {
		t.Fatalf("first fetch Cache-Status %q, between tiers %q: want misses at both tiers", cs, between)
	}
	// Wait until the fill is committed, so that the next request is a hit
	// rather than joining the fill.
	if err := edge.Cache.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	_, _, cs = fetch(t, edgeURL+"/v/seg0.ts")
	if !strings.Contains(cs, "edge; hit") {
		t.Fatalf("second fetch Cache-Status %q, want an edge hit", cs)
	}
	if len(between) != 1 {
		t.Fatalf("edge hit went upstream: %q", between)
	}
	if originHits != 1 {
		t.Fatalf("origin saw %d requests, want 1", originHits)
	}
	if s := edge.Cache.Stats(); s.Hits != 1 || s.Misses != 1 {
		t.Fatalf("edge stats %+v", s)
	}
	if edge.Prefetcher == nil {
		t.Fatal("HLS tier without prefetcher")
	}

	// The agent's reports reach the router.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, _ := rt.Stats()
		if st.Reports.Accepted > 0 && st.Groups[0].Healthy {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no accepted report: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Both tiers' collectors are registered side by side.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"onioncdn_cache_requests_total", "onioncdn_upstream_dials_total", "onioncdn_prefetch_scheduled_total", "onioncdn_delivery_seconds"} {
		if !names[n] {
			t.Errorf("metric %s not registered", n)
		}
	}

	// Shutdown: the agent's last report marks the edge unhealthy.
	if err := edge.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st, _ := rt.Stats(); st.Groups[0].Healthy {
		t.Error("group still healthy after the edge shut down")
	}
	if err := edge.Shutdown(t.Context()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Shutdown: %v", err)
	}
	if _, err := http.Get(edgeURL + "/v/seg0.ts"); err == nil {
		t.Error("edge still serving after Shutdown")
	}
	if err := mid.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestVerify: a tier with VerifyKeys passes signed responses and refuses
// unsigned ones with 502, never caching them.
func TestVerify(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	site := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		io.WriteString(w, "hello")
	})
	signed := httptest.NewServer((&integrity.Signer{Key: priv}).Handler(site))
	defer signed.Close()
	unsigned := httptest.NewServer(site)
	defer unsigned.Close()
	for _, tc := range []struct {
		name, up string
		want     int
	}{
		{"signed", signed.URL, 200},
		{"unsigned", unsigned.URL, 502},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := tier.New(tier.Config{Name: "v", Upstreams: []string{tc.up}, VerifyKeys: []ed25519.PublicKey{pub}, MinIdle: -1})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Shutdown(t.Context())
			u := serve(t, tr)
			for range 2 {
				if code, _, _ := fetch(t, u+"/a"); code != tc.want {
					t.Fatalf("status %d, want %d", code, tc.want)
				}
			}
			if s := tr.Verifier.Stats(); tc.want == 502 && (s.Rejected < 2 || tr.Cache.Stats().Hits != 0) {
				t.Fatalf("unsigned response cached or not rejected twice: %+v %+v", s, tr.Cache.Stats())
			}
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  tier.Config
		want string
	}{
		{"no_name", tier.Config{Upstreams: []string{"http://x"}}, "no name"},
		{"no_upstream", tier.Config{Name: "a"}, "no upstream"},
		{"cache_dir_is_file", tier.Config{Name: "a", Upstreams: []string{"http://x"}, CacheDir: "/dev/null"}, "tier a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tier.New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

func TestParseUpstreams(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		n        int
		ok       bool
	}{
		{"one", "http://127.0.0.1:8000", 1, true},
		{"two_with_spaces", "http://a.onion, https://b.example/prefix", 2, true},
		{"empty", "", 0, false},
		{"no_scheme", "127.0.0.1:8000", 0, false},
		{"ftp", "ftp://x", 0, false},
		{"query", "http://x/?a=1", 0, false},
		{"user_info", "http://u:p@x", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tier.ParseUpstreams(tc.in)
			if (err == nil) != tc.ok || len(got) != tc.n {
				t.Fatalf("ParseUpstreams(%q) = %v, %v", tc.in, got, err)
			}
		})
	}
	if !tier.AnyOnion([]string{"http://127.0.0.1", "http://abc.onion:80"}) || tier.AnyOnion([]string{"http://onion.example"}) {
		t.Error("AnyOnion wrong")
	}
}

func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	l, err := tier.NewLogger(&buf, "json", "debug")
	if err != nil {
		t.Fatal(err)
	}
	l.Debug("x", "k", 1)
	if !strings.HasPrefix(buf.String(), "{") {
		t.Errorf("json logger wrote %q", buf.String())
	}
	if _, err := tier.NewLogger(&buf, "xml", ""); err == nil {
		t.Error("xml format accepted")
	}
	if _, err := tier.NewLogger(&buf, "text", "loud"); err == nil {
		t.Error("bad level accepted")
	}
}

func TestOnionKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hs_ed25519_secret_key")
	k1, created, err := tier.LoadOrCreateOnionKey(path)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v (%v)", st.Mode(), err)
	}
	k2, created, err := tier.LoadOrCreateOnionKey(path)
	if err != nil || created || k2.Address() != k1.Address() {
		t.Fatalf("reload: %v %v %v", created, err, k2)
	}
	os.Chmod(path, 0o644)
	if _, _, err := tier.LoadOrCreateOnionKey(path); err == nil {
		t.Error("world-readable key accepted")
	}
	bad := filepath.Join(t.TempDir(), "bad")
	os.WriteFile(bad, []byte("not a key"), 0o600)
	if _, _, err := tier.LoadOrCreateOnionKey(bad); err == nil {
		t.Error("garbage key accepted")
	}
}

func TestSigningKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sign.pem")
	k1, created, err := tier.LoadOrCreateSigningKey(path)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	k2, created, err := tier.LoadOrCreateSigningKey(path)
	if err != nil || created || !k1.Equal(k2) {
		t.Fatalf("reload: %v %v", created, err)
	}
	// The public key round-trips through base64 and a PEM file.
	pub := k1.Public().(ed25519.PublicKey)
	if p, err := tier.ParsePublicKey(tier.EncodePublicKey(pub)); err != nil || !p.Equal(pub) {
		t.Fatalf("base64: %v", err)
	}
	der, _ := x509.MarshalPKIXPublicKey(pub)
	pemFile := filepath.Join(t.TempDir(), "pub.pem")
	os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
	if p, err := tier.ParsePublicKey(pemFile); err != nil || !p.Equal(pub) {
		t.Fatalf("pem: %v", err)
	}
	// Keys whose base64 holds "/" still parse when padded (as printed) or
	// in the URL alphabet.
	slashy := ed25519.PublicKey(bytes.Repeat([]byte{0xff}, ed25519.PublicKeySize))
	for _, enc := range []string{tier.EncodePublicKey(slashy), base64.RawURLEncoding.EncodeToString(slashy)} {
		if p, err := tier.ParsePublicKey(enc); err != nil || !p.Equal(slashy) {
			t.Errorf("ParsePublicKey(%q) = %v", enc, err)
		}
	}
	// A missing file whose name is 43 characters of base64 alphabet (it
	// decodes to 32 bytes) is still a missing file.
	missing43 := "/tmp/" + strings.Repeat("a", 38)
	if _, err := base64.RawStdEncoding.DecodeString(missing43); err != nil || len(missing43) != 43 {
		t.Fatalf("test name %q does not decode as a key: %v", missing43, err)
	}
	for _, bad := range []string{"", "abc", filepath.Join(t.TempDir(), "missing"), missing43, path /* a private key */} {
		if _, err := tier.ParsePublicKey(bad); err == nil {
			t.Errorf("ParsePublicKey(%q) accepted", bad)
		}
	}
	os.Chmod(path, 0o640)
	if _, _, err := tier.LoadOrCreateSigningKey(path); err == nil {
		t.Error("group-readable signing key accepted")
	}
	garbage := filepath.Join(t.TempDir(), "g.pem")
	os.WriteFile(garbage, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600)
	if _, _, err := tier.LoadOrCreateSigningKey(garbage); err == nil {
		t.Error("garbage PEM accepted")
	}
}

func TestServeMetricsRefusesPublic(t *testing.T) {
	if _, err := tier.ServeMetrics("0.0.0.0:0", prometheus.NewRegistry(), nil); !errors.Is(err, metrics.ErrNotLoopback) {
		t.Fatalf("err %v", err)
	}
	m, err := tier.ServeMetrics("127.0.0.1:0", prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Shutdown(t.Context())
	if code, _, _ := fetch(t, "http://"+m.Addr()+"/metrics"); code != 200 {
		t.Fatalf("metrics endpoint: %d", code)
	}
}

func TestProcessGone(t *testing.T) {
	if tier.ProcessGone(os.Getpid()) {
		t.Error("own process reported gone")
	}
	if !tier.ProcessGone(0) {
		t.Error("pid 0 not gone")
	}
}
