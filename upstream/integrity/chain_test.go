package integrity_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/upstream/integrity"
)

// These tests run the verifying Transport where it is meant to run: below
// the cache of a tier, in a real chain of tiers over loopback HTTP
// (client → edge → midtier → origin). A tampered, unsigned, wrongly signed
// or expired response must be refused (502, or an aborted body once the
// response has started), never stored by any cache, counted and logged.

const largeSize = 4 << 20

// testClock is a settable clock shared by the origin's Signer and the
// tiers' verifying Transports.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// logBuf collects JSON log lines; safe for concurrent use.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// lines returns the decoded log records whose msg is msg.
func (l *logBuf) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

func (l *logBuf) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func largeBody() []byte {
	b := make([]byte, largeSize)
	for i := range b {
		b[i] = byte(i*7 + i>>10)
	}
	return b
}

// testOrigin is a signing origin with a small and a large object.
type testOrigin struct {
	srv   *httptest.Server
	hits  atomic.Int64
	large []byte
}

func newOrigin(t *testing.T, key ed25519.PrivateKey, now func() time.Time) *testOrigin {
	t.Helper()
	o := &testOrigin{large: largeBody()}
	mux := http.NewServeMux()
	mux.HandleFunc("/small.txt", func(w http.ResponseWriter, r *http.Request) {
		o.hits.Add(1)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "public, max-age=60")
		io.WriteString(w, "hello from the origin, signed")
	})
	mux.HandleFunc("/large.bin", func(w http.ResponseWriter, r *http.Request) {
		o.hits.Add(1)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Write(o.large)
	})
	signer := &integrity.Signer{Key: key, Now: now, TempDir: t.TempDir()}
	o.srv = httptest.NewServer(signer.Handler(mux))
	t.Cleanup(o.srv.Close)
	return o
}

// tamperTransport applies tamper (if set) to every response of base.
type tamperTransport struct {
	base   http.RoundTripper
	tamper atomic.Pointer[func(*http.Response) *http.Response]
}

func (tt *tamperTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := tt.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	if f := tt.tamper.Load(); f != nil {
		return (*f)(resp), nil
	}
	return resp, nil
}

func (tt *tamperTransport) set(f func(*http.Response) *http.Response) { tt.tamper.Store(&f) }

func plainTransport(t *testing.T) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableCompression = true
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// tier is one caching tier whose upstream responses are verified.
type tier struct {
	name   string
	cache  *cache.Cache
	store  *cache.MemoryStore
	verify *integrity.Transport
	logs   *logBuf
	srv    *httptest.Server
}

func newTier(t *testing.T, name, upstreamURL string, base http.RoundTripper, pub ed25519.PublicKey, now func() time.Time) *tier {
	t.Helper()
	u, err := url.Parse(upstreamURL)
	if err != nil {
		t.Fatal(err)
	}
	tr := &tier{name: name, store: &cache.MemoryStore{}, logs: &logBuf{}}
	tr.verify = &integrity.Transport{
		Base:   base,
		Keys:   map[string]ed25519.PublicKey{integrity.KeyID(pub): pub},
		Now:    now,
		Logger: tr.logs.logger(),
	}
	tr.cache = &cache.Cache{
		Upstream:    u,
		Transport:   tr.verify,
		Store:       tr.store,
		Name:        name,
		FillTimeout: 30 * time.Second,
		Logger:      tr.logs.logger(),
	}
	tr.srv = httptest.NewUnstartedServer(tr.cache)
	// The cache aborts broken responses with http.ErrAbortHandler, which
	// net/http does not log; keep anything else visible.
	tr.srv.Config.ErrorLog = slog.NewLogLogger(tr.logs.logger().Handler(), slog.LevelWarn)
	tr.srv.Start()
	t.Cleanup(tr.srv.Close)
	return tr
}

// rejections returns the tier's "integrity: response rejected" log records.
func (tr *tier) rejections(t *testing.T) []map[string]any {
	return tr.logs.lines(t, "integrity: response rejected")
}

// fetch GETs url and reports the status, the body and the body read error.
func fetch(t *testing.T, client *http.Client, u string) (int, []byte, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func newKey(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// recorded is a response captured earlier, for replaying it.
type recorded struct {
	status int
	header http.Header
	body   []byte
}

func (rc *recorded) response(req *http.Request) *http.Response {
	return &http.Response{
		Status: fmt.Sprintf("%d %s", rc.status, http.StatusText(rc.status)), StatusCode: rc.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: rc.header.Clone(), Body: io.NopCloser(bytes.NewReader(rc.body)),
		ContentLength: int64(len(rc.body)), Request: req,
	}
}

// lastByteFlipper flips the last byte of a body of known size as it streams.
type lastByteFlipper struct {
	rc   io.ReadCloser
	n    int64
	size int64
}

func (f *lastByteFlipper) Read(p []byte) (int, error) {
	k, err := f.rc.Read(p)
	if last := f.size - 1 - f.n; last >= 0 && last < int64(k) {
		p[last] ^= 0xff
	}
	f.n += int64(k)
	return k, err
}

func (f *lastByteFlipper) Close() error { return f.rc.Close() }

// TestChainRejectsUnverified sends each kind of forged response through a
// real chain and checks that it is refused at the first verifying tier,
// stored nowhere, counted and logged, and that the next request goes
// upstream again. The forgery happens either on the midtier's link to the
// origin (the midtier must catch it) or inside a malicious midtier (the
// edge must catch it).
func TestChainRejectsUnverified(t *testing.T) {
	start := time.Now().Truncate(time.Second)
	cases := []struct {
		name     string
		path     string
		wrongKey bool // the origin signs with a key the tiers do not know
		tamper   func(t *testing.T, o *testOrigin, clock *testClock) func(*http.Response) *http.Response
		reason   string // expected in the rejection log line
		mayStart bool   // the response may have started before the failure (body checks)
	}{
		{
			name: "tampered_body", path: "/small.txt", reason: "content digest mismatch", mayStart: true,
			tamper: func(*testing.T, *testOrigin, *testClock) func(*http.Response) *http.Response {
				return func(resp *http.Response) *http.Response {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					b = bytes.Replace(b, []byte("origin"), []byte("ORIGIN"), 1) // same length
					resp.Body = io.NopCloser(bytes.NewReader(b))
					return resp
				}
			},
		},
		{
			name: "tampered_header", path: "/small.txt", reason: "bad signature",
			tamper: func(*testing.T, *testOrigin, *testClock) func(*http.Response) *http.Response {
				return func(resp *http.Response) *http.Response {
					resp.Header.Set("Cache-Control", "public, max-age=31536000, immutable")
					return resp
				}
			},
		},
		{
			name: "tampered_content_type", path: "/small.txt", reason: "bad signature",
			tamper: func(*testing.T, *testOrigin, *testClock) func(*http.Response) *http.Response {
				return func(resp *http.Response) *http.Response {
					resp.Header.Set("Content-Type", "text/html; charset=utf-8")
					return resp
				}
			},
		},
		{
			name: "added_protected_header", path: "/small.txt", reason: "does not cover set-cookie",
			tamper: func(*testing.T, *testOrigin, *testClock) func(*http.Response) *http.Response {
				return func(resp *http.Response) *http.Response {
					resp.Header.Set("Set-Cookie", "track=1")
					return resp
				}
			},
		},
		{
			name: "wrong_key", path: "/small.txt", wrongKey: true, reason: "no signature from a known key",
		},
		{
			name: "missing_signature", path: "/small.txt", reason: "no signature",
			tamper: func(*testing.T, *testOrigin, *testClock) func(*http.Response) *http.Response {
				return func(resp *http.Response) *http.Response {
					resp.Header.Del("Signature")
					resp.Header.Del("Signature-Input")
					return resp
				}
			},
		},
		{
			name: "replayed_expired_signature", path: "/small.txt", reason: "signature expired",
			tamper: func(t *testing.T, o *testOrigin, clock *testClock) func(*http.Response) *http.Response {
				// Record a genuine response two hours ago (the Signer's
				// validity is one hour, max-age 60 s), then replay it now.
				clock.Set(start.Add(-2 * time.Hour))
				resp, err := http.Get(o.srv.URL + "/small.txt")
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Signature") == "" {
					t.Fatalf("recording: status %d, err %v, signature %q", resp.StatusCode, err, resp.Header.Get("Signature"))
				}
				clock.Set(start)
				old := &recorded{status: resp.StatusCode, header: resp.Header, body: b}
				return func(resp *http.Response) *http.Response {
					resp.Body.Close()
					return old.response(resp.Request)
				}
			},
		},
		{
			name: "tampered_last_chunk_of_large_body", path: "/large.bin", reason: "content digest mismatch", mayStart: true,
			tamper: func(*testing.T, *testOrigin, *testClock) func(*http.Response) *http.Response {
				return func(resp *http.Response) *http.Response {
					resp.Body = &lastByteFlipper{rc: resp.Body, size: resp.ContentLength}
					return resp
				}
			},
		},
	}
	for _, where := range []string{"midtier_link", "malicious_midtier"} {
		for _, tc := range cases {
			t.Run(where+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				clock := &testClock{t: start}
				pub, priv := newKey(t)
				signKey := priv
				if tc.wrongKey {
					_, signKey = newKey(t)
				}
				origin := newOrigin(t, signKey, clock.Now)
				tamper := &tamperTransport{base: plainTransport(t)}
				if tc.tamper != nil {
					tamper.set(tc.tamper(t, origin, clock))
				}

				// guard is the tier expected to refuse the response;
				// upstreamHits counts requests reaching the link above it.
				var edge, guard *tier
				var upstreamHits func() int64
				switch where {
				case "midtier_link":
					mid := newTier(t, "midtier", origin.srv.URL, tamper, pub, clock.Now)
					edge = newTier(t, "edge", mid.srv.URL, plainTransport(t), pub, clock.Now)
					guard = mid
					upstreamHits = origin.hits.Load
				case "malicious_midtier":
					var evilHits atomic.Int64
					ou, _ := url.Parse(origin.srv.URL)
					evilProxy := &httputil.ReverseProxy{
						Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(ou) },
						Transport: tamper,
					}
					evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						evilHits.Add(1)
						evilProxy.ServeHTTP(w, r)
					}))
					t.Cleanup(evil.Close)
					edge = newTier(t, "edge", evil.URL, plainTransport(t), pub, clock.Now)
					guard = edge
					upstreamHits = evilHits.Load
				}
				client := &http.Client{Transport: plainTransport(t)}
				hits0 := upstreamHits() // the replay case recorded a response

				for round := 1; round <= 2; round++ {
					status, body, err := fetch(t, client, edge.srv.URL+tc.path)
					t.Logf("round %d: status %d, %d bytes, err %v", round, status, len(body), err)
					switch {
					case status == http.StatusBadGateway:
						// Refused before the response started.
					case tc.mayStart && (status == http.StatusOK || status == 0) && err != nil:
						// Refused after the response started: the client's
						// read fails, as for a broken upstream (status 0:
						// the connection was reset before the buffered
						// header went out).
					case status == http.StatusOK && err == nil:
						t.Fatalf("round %d: client received a complete-looking %d response of %d bytes: the forgery was served", round, status, len(body))
					default:
						t.Fatalf("round %d: status %d, body %d bytes, read error %v; want 502 or an aborted body", round, status, len(body), err)
					}
					if status == http.StatusBadGateway && tc.mayStart && tc.path == "/large.bin" && where == "malicious_midtier" {
						// The edge streams verified records: a forgery in
						// the last one is found long after the first
						// record went out. (Behind a verifying midtier the
						// edge may answer 502: the midtier aborts as soon
						// as its fill fails, possibly before the edge has
						// verified its first record inside RoundTrip.)
						t.Errorf("round %d: 502 for a forgery in the last record of a streamed response; want an aborted 200", round)
					}
					// Each round must reach the link above the guard again
					// (nothing was cached). net/http may retry a GET once
					// on a reused connection that was reset before any
					// response byte, so count what went up rather than
					// assume one request per round.
					hits := upstreamHits() - hits0
					if hits < int64(round) {
						t.Errorf("round %d: %d requests reached the link above the %s, want at least %d (a rejected response must not be cached)", round, hits, guard.name, round)
					}
					if got := guard.verify.Stats().Rejected; got != uint64(hits) {
						t.Errorf("round %d: %s integrity Rejected = %d, want one per upstream response (%d)", round, guard.name, got, hits)
					}
					rej := guard.rejections(t)
					if int64(len(rej)) != hits {
						t.Fatalf("round %d: %d rejection log lines at the %s, want %d; logs:\n%s", round, len(rej), guard.name, hits, guard.logs.String())
					}
					last := rej[len(rej)-1]
					if r, _ := last["reason"].(string); !strings.Contains(r, tc.reason) {
						t.Errorf("round %d: rejection reason %q, want it to contain %q", round, r, tc.reason)
					}
					if p, _ := last["path"].(string); p != tc.path {
						t.Errorf("round %d: rejection log path %q, want %q", round, p, tc.path)
					}
					if last["level"] != "WARN" {
						t.Errorf("round %d: rejection logged at %v, want WARN", round, last["level"])
					}
				}
				// Fills end asynchronously after an abort; wait for them
				// before looking at the stores.
				for _, tr := range []*tier{guard, edge} {
					if err := tr.cache.Shutdown(t.Context()); err != nil {
						t.Fatal(err)
					}
					if st := tr.store.Stats(); st.Objects != 0 || st.PendingBytes != 0 {
						t.Errorf("%s store holds %d objects (%d pending bytes) after rejected responses, want none", tr.name, st.Objects, st.PendingBytes)
					}
					if s := tr.cache.Stats(); s.Hits != 0 || s.Errors == 0 {
						t.Errorf("%s cache stats %+v: want no hits and some errors", tr.name, s)
					}
				}
			})
		}
	}
}

// TestChainGoodResponseStoredAndReverified sends genuine responses through
// edge → midtier → origin, each tier verifying what it receives: they are
// stored at both tiers, served as hits, and a response served from a
// tier's cache still verifies at the tier below it.
func TestChainGoodResponseStoredAndReverified(t *testing.T) {
	for _, path := range []string{"/small.txt", "/large.bin"} {
		t.Run(strings.Trim(strings.ReplaceAll(path, ".", "_"), "/"), func(t *testing.T) {
			t.Parallel()
			clock := &testClock{t: time.Now()}
			pub, priv := newKey(t)
			origin := newOrigin(t, priv, clock.Now)
			mid := newTier(t, "midtier", origin.srv.URL, plainTransport(t), pub, clock.Now)
			edge := newTier(t, "edge", mid.srv.URL, plainTransport(t), pub, clock.Now)
			want := []byte("hello from the origin, signed")
			if path == "/large.bin" {
				want = origin.large
			}
			client := &http.Client{Transport: plainTransport(t)}

			for round := 1; round <= 2; round++ {
				status, body, err := fetch(t, client, edge.srv.URL+path)
				if err != nil || status != http.StatusOK || !bytes.Equal(body, want) {
					t.Fatalf("round %d: status %d, %d bytes, err %v; want 200 with the origin's %d bytes", round, status, len(body), err, len(want))
				}
			}
			if got := origin.hits.Load(); got != 1 {
				t.Errorf("origin hits = %d, want 1", got)
			}
			for _, tr := range []*tier{mid, edge} {
				if err := tr.cache.Shutdown(t.Context()); err != nil {
					t.Fatal(err)
				}
				if st := tr.store.Stats(); st.Objects != 1 {
					t.Errorf("%s store holds %d objects, want 1", tr.name, st.Objects)
				}
				if s := tr.verify.Stats(); s.Verified != 1 || s.Rejected != 0 {
					t.Errorf("%s integrity stats %+v, want 1 verified, 0 rejected", tr.name, s)
				}
				if n := len(tr.rejections(t)); n != 0 {
					t.Errorf("%s logged %d rejections", tr.name, n)
				}
			}
			if s := edge.cache.Stats(); s.Hits != 1 || s.Misses != 1 {
				t.Errorf("edge stats %+v, want 1 miss then 1 hit", s)
			}

			// A second edge behind the same midtier gets the midtier's
			// stored copy (a hit there, with Age) and verifies it.
			edge2 := newTier(t, "edge2", mid.srv.URL, plainTransport(t), pub, clock.Now)
			status, body, err := fetch(t, client, edge2.srv.URL+path)
			if err != nil || status != http.StatusOK || !bytes.Equal(body, want) {
				t.Fatalf("edge2: status %d, %d bytes, err %v", status, len(body), err)
			}
			if s := mid.cache.Stats(); s.Hits != 1 {
				t.Errorf("midtier hits = %d, want 1 (edge2 served from the midtier's store)", s.Hits)
			}
			if s := edge2.verify.Stats(); s.Verified != 1 || s.Rejected != 0 {
				t.Errorf("edge2 integrity stats %+v, want 1 verified", s)
			}
			if got := origin.hits.Load(); got != 1 {
				t.Errorf("origin hits = %d after edge2, want 1", got)
			}

			// A client below the edge (a further tier) verifies the edge's hit.
			below := &integrity.Transport{Base: plainTransport(t), Keys: map[string]ed25519.PublicKey{integrity.KeyID(pub): pub}, Now: clock.Now}
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, edge.srv.URL+path, nil)
			resp, err := below.RoundTrip(req)
			if err != nil {
				t.Fatalf("verifying the edge's hit: %v", err)
			}
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || !bytes.Equal(body, want) {
				t.Fatalf("edge hit body: %d bytes, err %v", len(body), err)
			}
			if resp.Header.Get("Age") == "" {
				t.Error("edge hit has no Age header")
			}
			if s := edge.cache.Stats(); s.Hits != 2 {
				t.Errorf("edge hits = %d, want 2", s.Hits)
			}
		})
	}
}
