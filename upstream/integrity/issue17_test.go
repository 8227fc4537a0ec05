package integrity_test

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/hls"
	"github.com/onioncdn/onioncdn/upstream/integrity"
)

// Issue #17, cases 4 to 6 (cases 1 to 3 are rows of TestTamperMatrix:
// large/flip_byte_10/{slow,fast}/{range,multi_range},
// */empty/*/full_get and large/flip_middle/*/full_get).

// lifetimeOrigin serves, signed on clock, a page kept by the tiers' policy
// longer than its signature lasts, and a VOD playlist; both answer
// If-None-Match with 304.
type lifetimeOrigin struct {
	srv  *httptest.Server
	hits atomic.Int64 // requests
	cond atomic.Int64 // conditional requests the site answered with 304
}

const vodPlaylist = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:10,\nseg0.ts\n#EXTINF:10,\nseg1.ts\n#EXT-X-ENDLIST\n"

func newLifetimeOrigin(t *testing.T, priv ed25519.PrivateKey, now func() time.Time) *lifetimeOrigin {
	o := &lifetimeOrigin{}
	serve := func(ct, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", ct)
			w.Header().Set("Cache-Control", "public, max-age=3600")
			w.Header().Set("ETag", `"v1"`)
			if r.Header.Get("If-None-Match") == `"v1"` {
				o.cond.Add(1)
				w.WriteHeader(http.StatusNotModified)
				return
			}
			io.WriteString(w, body)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/page.html", serve("text/html; charset=utf-8", "<p>a page the tiers keep a day</p>"))
	mux.Handle("/vod/index.m3u8", serve("application/vnd.apple.mpegurl", vodPlaylist))
	signed := (&integrity.Signer{Key: priv, Now: now, TempDir: t.TempDir()}).Handler(mux)
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.hits.Add(1)
		signed.ServeHTTP(w, r)
	}))
	t.Cleanup(o.srv.Close)
	return o
}

// dayPolicy keeps every response 24 h, like the HLS policy's segments and
// VOD playlists or heuristic freshness.
var dayPolicy = cache.PolicyFunc(func(*http.Request, *http.Response) cache.Decision {
	return cache.Decision{TTL: 24 * time.Hour}
})

// Case 4: a midtier copy older than its signature is revalidated, and a
// cold edge gets a verified 200, not a 502 "signature expired"; a warm
// edge revalidates its own copy against the midtier's. Without the bound
// (the control), the cold edge gets the 502 the issue reported.
func TestIssue17SignatureOutlivedByPolicy(t *testing.T) {
	for _, bound := range []bool{true, false} {
		t.Run(map[bool]string{true: "bound", false: "unbound_control"}[bound], func(t *testing.T) {
			t.Parallel()
			clock := &testClock{t: time.Now().Truncate(time.Second)}
			pub, priv := newKey(t)
			origin := newLifetimeOrigin(t, priv, clock.Now)
			mid := newTier(t, "midtier", origin.srv.URL, plainTransport(t), pub, clock.Now)
			mid.cache.Now = clock.Now
			mid.cache.CacheStatus = true
			var pol cache.Policy = dayPolicy
			if bound {
				pol = &integrity.BoundPolicy{Policy: dayPolicy}
			}
			mid.cache.Policy = pol
			newEdge := func(name string) *tier {
				e := newTier(t, name, mid.srv.URL, plainTransport(t), pub, clock.Now)
				e.cache.Now = clock.Now
				e.cache.Policy = pol
				e.cache.CacheStatus = true
				return e
			}
			warm := newEdge("edge1")
			client := &http.Client{Transport: plainTransport(t)}
			get := func(e *tier) (int, string, http.Header) {
				t.Helper()
				resp, err := client.Get(e.srv.URL + "/page.html")
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatalf("%s: body: %v", e.name, err)
				}
				if err := e.cache.Shutdown(t.Context()); err != nil {
					t.Fatal(err)
				}
				return resp.StatusCode, string(b), resp.Header
			}
			if st, _, h := get(warm); st != 200 {
				t.Fatalf("t0: %d", st)
			} else if bound && !strings.Contains(h.Get("Cache-Status"), "ttl=3") {
				t.Errorf("t0: Cache-Status %q: want the ttl bounded by the 1 h signature (35xx s)", h.Get("Cache-Status"))
			}
			clock.Set(clock.Now().Add(2 * time.Hour)) // past the page's 1 h signature, within the policy's day
			cold := newEdge("edge2")
			st, body, h := get(cold)
			if !bound {
				if st != http.StatusBadGateway {
					t.Fatalf("without the bound: cold edge got %d, want the 502 of the issue", st)
				}
				if rej := cold.rejections(t); len(rej) != 1 || rej[0]["reason"] != "signature expired" {
					t.Fatalf("without the bound: rejections %v", rej)
				}
				return
			}
			if st != 200 || !strings.Contains(body, "a page") {
				t.Fatalf("cold edge: %d %q, want a verified 200", st, body)
			}
			if n := origin.cond.Load(); n != 1 {
				t.Errorf("origin saw %d conditional requests, want 1 (the midtier revalidated)", n)
			}
			if cs := h.Values("Cache-Status"); len(cs) != 2 || !strings.Contains(cs[0], "midtier; fwd=stale") {
				t.Errorf("Cache-Status %q: want the midtier's revalidation", cs)
			}
			if s := cold.verify.Stats(); s.Verified != 1 || s.Rejected != 0 {
				t.Errorf("cold edge integrity %+v", s)
			}
			// The warm edge's copy is past its signature too: it
			// revalidates with the midtier, which answers 304 from its
			// store (its stored 200's signature, renewed by the origin).
			st, body, h = get(warm)
			if st != 200 || !strings.Contains(body, "a page") {
				t.Fatalf("warm edge: %d %q", st, body)
			}
			if cs := h.Values("Cache-Status"); !strings.Contains(cs[len(cs)-1], "edge1; fwd=stale") {
				t.Errorf("warm edge Cache-Status %q: want a revalidation", cs)
			}
			if s := warm.verify.Stats(); s.Verified != 2 || s.Rejected != 0 {
				t.Errorf("warm edge integrity %+v: want the 200 and the midtier's 304 verified", s)
			}
			if n := origin.hits.Load(); n != 2 {
				t.Errorf("origin hits %d, want 2 (the fill and one revalidation)", n)
			}
		})
	}
}

// The Signer's default lifetime matches the HLS policy's: a VOD playlist
// with max-age=3600, kept 24 h by hls.Policy, is signed for 24 h, so a
// cold edge 23 h later gets the midtier's copy, verified, without any
// revalidation (the issue's example: 502 from 1 h to 24 h).
func TestIssue17VODPlaylistSignedForPolicyTTL(t *testing.T) {
	clock := &testClock{t: time.Now().Truncate(time.Second)}
	pub, priv := newKey(t)
	origin := newLifetimeOrigin(t, priv, clock.Now)
	mid := newTier(t, "midtier", origin.srv.URL, plainTransport(t), pub, clock.Now)
	mid.cache.Now = clock.Now
	mid.cache.Policy = &integrity.BoundPolicy{Policy: &hls.Policy{}}
	client := &http.Client{Transport: plainTransport(t)}
	for i, at := range []time.Duration{0, 23 * time.Hour} {
		clock.Set(clock.Now().Add(at))
		edge := newTier(t, "edge", mid.srv.URL, plainTransport(t), pub, clock.Now)
		edge.cache.Now = clock.Now
		edge.cache.Policy = &integrity.BoundPolicy{Policy: &hls.Policy{}}
		status, body, err := fetch(t, client, edge.srv.URL+"/vod/index.m3u8")
		if err != nil || status != 200 || string(body) != vodPlaylist {
			t.Fatalf("cold edge %d: %d %q %v", i, status, body, err)
		}
	}
	if h, c := origin.hits.Load(), origin.cond.Load(); h != 1 || c != 0 {
		t.Errorf("origin saw %d requests (%d conditional), want 1: the signature lasts as long as the policy keeps the playlist", h, c)
	}
}

// closeRelay answers each request with the midtier's response, re-framed
// as delimited by the connection closing (no Content-Length, no
// chunking), its body cut to cut(n) bytes.
func closeRelay(t *testing.T, upstream string, cut func(n int) int) (*url.URL, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				req, err := http.ReadRequest(bufio.NewReader(conn))
				if err != nil {
					return
				}
				n.Add(1)
				resp, err := plainRT.RoundTrip(httptest.NewRequest(req.Method, upstream+req.URL.RequestURI(), nil))
				if err != nil {
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				fmt.Fprintf(conn, "HTTP/1.1 %d %s\r\n", resp.StatusCode, http.StatusText(resp.StatusCode))
				resp.Header.Del("Content-Length")
				resp.Header.Set("Connection", "close")
				resp.Header.Write(conn)
				io.WriteString(conn, "\r\n")
				conn.Write(b[:cut(len(b))])
			}()
		}
	}()
	return &url.URL{Scheme: "http", Host: ln.Addr().String()}, &n
}

// Case 5: a close-delimited body cut short is never stored nor served as
// complete; a whole one is stored only when its signed digest verified it.
func TestIssue17CloseDelimited(t *testing.T) {
	pub, priv := newKey(t)
	origin := newOrigin(t, priv, time.Now)
	mid := newTier(t, "midtier", origin.srv.URL, plainTransport(t), pub, time.Now)
	for _, tc := range []struct {
		name     string
		verify   bool
		cut      func(int) int
		complete bool  // the client may get a clean, complete response
		upstream int64 // relay requests after two client requests
	}{
		{"verified_cut_short", true, func(n int) int { return n / 2 }, false, 2},
		{"verified_whole_stored", true, func(n int) int { return n }, true, 1},
		{"unverified_cut_short_not_stored", false, func(n int) int { return n / 2 }, false, 2},
		{"unverified_whole_not_stored", false, func(n int) int { return n }, true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, relayHits := closeRelay(t, mid.srv.URL, tc.cut)
			var edge *tier
			if tc.verify {
				edge = newTier(t, "edge", u.String(), plainTransport(t), pub, time.Now)
			} else {
				edge = &tier{name: "edge", store: &cache.MemoryStore{}, logs: &logBuf{}}
				edge.cache = &cache.Cache{Upstream: u, Transport: plainTransport(t), Store: edge.store, Logger: edge.logs.logger()}
				edge.srv = httptest.NewServer(edge.cache)
				t.Cleanup(edge.srv.Close)
			}
			client := &http.Client{Transport: plainTransport(t)}
			for i := 0; i < 2; i++ {
				status, body, err := fetch(t, client, edge.srv.URL+"/large.bin")
				t.Logf("request %d: %d, %d bytes, %v", i, status, len(body), err)
				if !bytes.HasPrefix(origin.large, body) {
					t.Fatalf("request %d: bytes that are not the origin's", i)
				}
				if status == 200 && err == nil && len(body) != len(origin.large) {
					if tc.verify || tc.complete {
						t.Fatalf("request %d: a body cut to %d bytes ended cleanly", i, len(body))
					}
					// Without a length or a digest nobody can tell: the
					// client sees what the upstream sent, uncached.
				}
				if tc.complete && tc.verify && (status != 200 || err != nil || len(body) != len(origin.large)) {
					t.Fatalf("request %d: %d, %d bytes, %v; want the whole object", i, status, len(body), err)
				}
				if err := edge.cache.Shutdown(t.Context()); err != nil {
					t.Fatal(err)
				}
			}
			if got := relayHits.Load(); got != tc.upstream {
				t.Errorf("relay saw %d requests, want %d", got, tc.upstream)
			}
			if st := edge.store.Stats(); (st.Objects == 1) != (tc.verify && tc.complete) {
				t.Errorf("edge stores %d objects", st.Objects)
			}
			if tc.verify && !tc.complete {
				if s := edge.verify.Stats(); s.Length != 2 || s.Rejected != 2 {
					t.Errorf("edge integrity %+v, want 2 length rejections", s)
				}
			}
		})
	}
}

// Case 6: the signature binds the query. A relay serving the response
// signed for ?v=2 to a request for ?v=1 is refused; session tokens listed
// in IgnoreQuery (and dropped from the HLS cache key) may differ between
// requests sharing one cached copy.
func TestIssue17Query(t *testing.T) {
	pub, priv := newKey(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/app.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		w.Header().Set("Cache-Control", "public, max-age=600")
		fmt.Fprintf(w, "version(%q)", r.URL.Query().Get("v"))
	})
	var originHits atomic.Int64
	signed := (&integrity.Signer{Key: priv, IgnoreQuery: []string{"token"}, TempDir: t.TempDir()}).Handler(mux)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		originHits.Add(1)
		signed.ServeHTTP(w, r)
	}))
	t.Cleanup(origin.Close)
	policy := &hls.Policy{DropQuery: []string{"token"}}
	newVerifyingTier := func(name, up string, base http.RoundTripper, ignore []string) *tier {
		tr := newTier(t, name, up, base, pub, time.Now)
		tr.verify.IgnoreQuery = ignore
		tr.cache.Policy = &integrity.BoundPolicy{Policy: policy}
		return tr
	}
	mid := newVerifyingTier("midtier", origin.URL, plainTransport(t), []string{"token"})
	client := &http.Client{Transport: plainTransport(t)}

	t.Run("swapped_query", func(t *testing.T) {
		// The relay answers ?v=1 with the midtier's response for ?v=2.
		swap := &tamperTransport{base: plainTransport(t)}
		swap.set(func(resp *http.Response) *http.Response {
			r2 := resp.Request.Clone(resp.Request.Context())
			r2.URL.RawQuery = strings.Replace(r2.URL.RawQuery, "v=1", "v=2", 1)
			other, err := plainTransport(t).RoundTrip(r2)
			if err != nil {
				panic(err)
			}
			resp.Body.Close()
			return other
		})
		mu, _ := url.Parse(mid.srv.URL)
		relay := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(mu) }, Transport: swap})
		t.Cleanup(relay.Close)
		edge := newVerifyingTier("edge", relay.URL, plainTransport(t), []string{"token"})
		status, body, _ := fetch(t, client, edge.srv.URL+"/app.js?v=1")
		if status != http.StatusBadGateway {
			t.Fatalf("response for ?v=2 served for ?v=1: %d %q", status, body)
		}
		if s := edge.verify.Stats(); s.BadSignature != 1 {
			t.Errorf("edge integrity %+v, want a bad-signature rejection", s)
		}
	})

	t.Run("tokens_share_one_copy", func(t *testing.T) {
		e1 := newVerifyingTier("edge1", mid.srv.URL, plainTransport(t), []string{"token"})
		e2 := newVerifyingTier("edge2", mid.srv.URL, plainTransport(t), []string{"token"})
		before := originHits.Load()
		for _, c := range []struct {
			e     *tier
			query string
		}{{e1, "v=3&token=alice"}, {e2, "token=bob&v=3"}} {
			status, body, err := fetch(t, client, c.e.srv.URL+"/app.js?"+c.query)
			if err != nil || status != 200 || string(body) != `version("3")` {
				t.Fatalf("%s ?%s: %d %q %v", c.e.name, c.query, status, body, err)
			}
		}
		if n := originHits.Load() - before; n != 1 {
			t.Errorf("origin saw %d requests, want 1: requests differing only in their token share the midtier's copy", n)
		}
		// A tier that does not ignore the token refuses the shared copy.
		strict := newVerifyingTier("strict", mid.srv.URL, plainTransport(t), nil)
		if status, _, _ := fetch(t, client, strict.srv.URL+"/app.js?v=3&token=carol"); status != http.StatusBadGateway {
			t.Errorf("strict edge: %d, want 502 (the signature does not cover the token)", status)
		}
		if s := strict.verify.Stats(); s.Coverage != 1 {
			t.Errorf("strict edge integrity %+v, want a coverage rejection", s)
		}
	})
}

// A range is verified by the records it spans: a verifying client (a
// further tier, one day a browser) asking a cache for a range that starts
// and ends on record boundaries verifies the 206 the cache cut from its
// signed 200; a range that cuts a record cannot be verified and is
// refused, as is a forged byte inside an aligned range.
func TestRangeVerifiedByItsRecords(t *testing.T) {
	pub, priv := newKey(t)
	origin := newOrigin(t, priv, time.Now)
	edge := newTier(t, "edge", origin.srv.URL, plainTransport(t), pub, time.Now)
	const rs = 16 << 10
	size := len(origin.large)
	flip := &tamperTransport{base: plainTransport(t)}
	client := &integrity.Transport{Base: flip, Keys: map[string]ed25519.PublicKey{integrity.KeyID(pub): pub}}
	for _, tc := range []struct {
		name, rng string
		first     int
		n         int
		tamper    bool
		ok        bool
	}{
		{"aligned", fmt.Sprintf("bytes=%d-%d", rs, 3*rs-1), rs, 2 * rs, false, true},
		{"to_the_end", fmt.Sprintf("bytes=%d-", size-rs), size - rs, rs, false, true},
		{"suffix", fmt.Sprintf("bytes=-%d", 2*rs), size - 2*rs, 2 * rs, false, true},
		{"unaligned_start", "bytes=10-" + strconv.Itoa(2*rs-1), 0, 0, false, false},
		{"unaligned_end", "bytes=0-1023", 0, 0, false, false},
		{"multi_range", fmt.Sprintf("bytes=0-%d,%d-%d", rs-1, 2*rs, 3*rs-1), 0, 0, false, false},
		{"aligned_forged", fmt.Sprintf("bytes=%d-%d", rs, 3*rs-1), rs, 2 * rs, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			flip.set(func(r *http.Response) *http.Response {
				if tc.tamper {
					mapBody(r, flipAt(func(n int) int { return n - 5 }), sameLength)
				}
				return r
			})
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, edge.srv.URL+"/large.bin", nil)
			req.Header.Set("Range", tc.rng)
			before := client.Stats()
			resp, err := client.RoundTrip(req)
			var got []byte
			if err == nil {
				got, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusPartialContent {
					t.Fatalf("status %d", resp.StatusCode)
				}
			}
			if !tc.ok {
				if err == nil {
					t.Fatalf("range %s verified (%d bytes)", tc.rng, len(got))
				}
				if !bytes.HasPrefix(origin.large[tc.first:], got) {
					t.Errorf("released a byte that is not the origin's")
				}
				if client.Stats().Rejected != before.Rejected+1 {
					t.Errorf("rejection not counted: %+v", client.Stats())
				}
				return
			}
			if err != nil || !bytes.Equal(got, origin.large[tc.first:tc.first+tc.n]) {
				t.Fatalf("range %s: %d bytes, %v", tc.rng, len(got), err)
			}
		})
	}
}
