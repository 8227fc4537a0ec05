package route

import (
	"crypto/ed25519"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRoutingFollowsLoad(t *testing.T) {
	const n = 4000
	tests := []struct {
		name         string
		weightA      float64
		weightB      float64
		loadA, loadB Load
		// maxShareA bounds the share of clients sent to a; minShareA
		// keeps the draw from degenerating into "always the lightest".
		minShareA, maxShareA float64
	}{
		// Equal weights, a twice as loaded: p2c with replacement gives a
		// 1/4 in expectation.
		{"twice_active", 0, 0, Load{Active: 200}, Load{Active: 100}, 0.15, 0.35},
		{"twice_bandwidth", 0, 0, Load{BytesPerSecond: 4 << 20}, Load{BytesPerSecond: 2 << 20}, 0.15, 0.35},
		// a has twice b's load but three times its capacity: a is the less
		// loaded relative to capacity; b wins only when drawn twice
		// (1/16), so a expects 15/16.
		{"relative_to_capacity", 3, 1, Load{Active: 200}, Load{Active: 100}, 0.85, 0.99},
		// Equal load, a has twice the capacity: a expects 1-(1/3)² = 8/9.
		{"equal_load_more_capacity", 2, 1, Load{Active: 100}, Load{Active: 100}, 0.80, 0.95},
		// Load proportional to capacity: equal scores, so the draw alone
		// decides and a expects its weight share, 2/3.
		{"load_proportional_to_weight", 2, 1, Load{Active: 200}, Load{Active: 100}, 0.58, 0.75},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, func(rt *Router) {
				rt.Groups[0].Weight = tc.weightA
				rt.Groups[1].Weight = tc.weightB
			})
			r.report(t, r.ea, true, tc.loadA)
			r.report(t, r.eb, true, tc.loadB)
			counts := map[string]int{}
			for i := range n {
				counts[r.groupOf(t, r.get(fmt.Sprintf("/seg%d.ts", i)))]++
			}
			if counts["a"]+counts["b"] != n {
				t.Fatalf("counts %v: not every request redirected", counts)
			}
			share := float64(counts["a"]) / n
			t.Logf("a=%d b=%d share(a)=%.3f", counts["a"], counts["b"], share)
			if share < tc.minShareA || share > tc.maxShareA {
				t.Errorf("share of a = %.3f, want in [%.2f, %.2f]", share, tc.minShareA, tc.maxShareA)
			}
			st, _ := r.rt.Stats()
			if st.Groups[0].Redirects != uint64(counts["a"]) || st.Redirects != n {
				t.Errorf("stats %+v disagree with counts %v", st, counts)
			}
		})
	}
}

func TestStaleAndUnhealthySkipped(t *testing.T) {
	r := newRig(t, func(rt *Router) { rt.StaleAfter = 30 * time.Second })
	ec := newTestEdge(t, "c", "c1")
	oc := testOnion(t)
	r.rt.Groups = append(r.rt.Groups, Group{ID: "c", Onion: oc, Edges: []Edge{ec.edge()}})
	r.onions[oc] = "c"

	// b reports first, then time passes beyond StaleAfter; a and c report
	// fresh, c unhealthy. b and c carry no load, a a lot: only a is usable.
	r.report(t, r.eb, true, Load{})
	r.clock.Add(31 * time.Second)
	r.report(t, r.ea, true, Load{Active: 10000})
	r.report(t, ec, false, Load{})
	for i := range 200 {
		if g := r.groupOf(t, r.get(fmt.Sprintf("/%d", i))); g != "a" {
			t.Fatalf("request %d went to %q, want a (b stale, c unhealthy)", i, g)
		}
	}
	st, _ := r.rt.Stats()
	if !st.Groups[0].Healthy || st.Groups[1].Healthy || st.Groups[2].Healthy {
		t.Errorf("health in stats = %v %v %v, want true false false", st.Groups[0].Healthy, st.Groups[1].Healthy, st.Groups[2].Healthy)
	}

	// a goes stale too: nothing is left.
	r.clock.Add(31 * time.Second)
	if w := r.get("/x"); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("all stale: status %d, want 503", w.Code)
	}
	// b comes back.
	r.report(t, r.eb, true, Load{})
	if g := r.groupOf(t, r.get("/y")); g != "b" {
		t.Fatalf("after b's fresh report: went to %q, want b", g)
	}
}

func TestStickyClients(t *testing.T) {
	const name = "ocdn"
	r := newRig(t, func(rt *Router) { rt.StickyCookie = name })
	r.report(t, r.ea, true, Load{Active: 10})
	r.report(t, r.eb, true, Load{Active: 10})

	w := r.get("/")
	first := r.groupOf(t, w)
	ck := stickyCookieOf(w, name)
	if ck == nil {
		t.Fatal("no sticky cookie on first redirect")
	}
	other, otherEdge, ownEdge := "b", r.eb, r.ea
	if first == "b" {
		other, otherEdge, ownEdge = "a", r.ea, r.eb
	}
	// Make the sticky group much busier: the client stays anyway, and gets
	// no new cookie.
	r.report(t, ownEdge, true, Load{Active: 10000})
	r.report(t, otherEdge, true, Load{})
	for i := range 100 {
		w := r.get(fmt.Sprintf("/s/%d", i), &http.Cookie{Name: name, Value: ck.Value})
		if g := r.groupOf(t, w); g != first {
			t.Fatalf("request %d: sticky client moved to %q while %q is healthy", i, g, first)
		}
		if stickyCookieOf(w, name) != nil {
			t.Fatalf("request %d: cookie re-issued for a known, healthy mapping", i)
		}
	}
	// Meanwhile new clients avoid the busy group most of the time.
	// The sticky group fails: the client is moved, under a new value.
	r.report(t, ownEdge, false, Load{})
	w = r.get("/after", &http.Cookie{Name: name, Value: ck.Value})
	if g := r.groupOf(t, w); g != other {
		t.Fatalf("after failure: client sent to %q, want %q", g, other)
	}
	moved := stickyCookieOf(w, name)
	if moved == nil || moved.Value == ck.Value {
		t.Fatalf("moved client got cookie %v, want a fresh value", moved)
	}
	// The new mapping sticks; the old value is forgotten even when the
	// first group recovers.
	r.report(t, ownEdge, true, Load{})
	r.report(t, otherEdge, true, Load{Active: 10000})
	for i := range 20 {
		if g := r.groupOf(t, r.get("/again", &http.Cookie{Name: name, Value: moved.Value})); g != other {
			t.Fatalf("request %d with new cookie went to %q, want %q", i, g, other)
		}
	}
	w = r.get("/old", &http.Cookie{Name: name, Value: ck.Value})
	if c := stickyCookieOf(w, name); c == nil || c.Value == ck.Value {
		t.Fatalf("old value after move: got cookie %v, want a fresh one", c)
	}
	st, _ := r.rt.Stats()
	if st.StickyHits != 120 || st.StickyMoved != 1 {
		t.Errorf("StickyHits=%d StickyMoved=%d, want 120 and 1", st.StickyHits, st.StickyMoved)
	}
}

func TestStickyExpiresAndIsBounded(t *testing.T) {
	const name = "s"
	r := newRig(t, func(rt *Router) {
		rt.StickyCookie = name
		rt.StickyTTL = time.Minute
		rt.MaxSticky = 10
		rt.StaleAfter = time.Hour
	})
	r.report(t, r.ea, true, Load{})
	r.report(t, r.eb, true, Load{})
	ck := stickyCookieOf(r.get("/"), name)
	// Before expiry it is honoured.
	r.clock.Add(59 * time.Second)
	if c := stickyCookieOf(r.get("/", ck), name); c != nil {
		t.Fatal("cookie re-issued before expiry")
	}
	r.clock.Add(2 * time.Second)
	if c := stickyCookieOf(r.get("/", ck), name); c == nil || c.Value == ck.Value {
		t.Fatal("expired mapping still honoured")
	}
	for range 100 {
		r.get("/")
	}
	st, _ := r.rt.Stats()
	if st.StickyEntries > 10 {
		t.Fatalf("StickyEntries = %d, want <= MaxSticky (10)", st.StickyEntries)
	}
}

func TestUnknownCookieValuesReplaced(t *testing.T) {
	const name = "ocdn"
	r := newRig(t, func(rt *Router) { rt.StickyCookie = name })
	r.report(t, r.ea, true, Load{})
	r.report(t, r.eb, true, Load{})
	for _, v := range []string{
		"AAAAAAAAAAAAAAAAAAAAAA", // well-formed but never issued
		"not-base64!!",
		strings.Repeat("A", 4000),
		"",
	} {
		w := r.get("/", &http.Cookie{Name: name, Value: v})
		c := stickyCookieOf(w, name)
		if c == nil || c.Value == v {
			t.Errorf("presented %.20q: got cookie %v, want a freshly issued value", v, c)
		}
	}
	st, _ := r.rt.Stats()
	if st.StickyHits != 0 {
		t.Errorf("StickyHits = %d for values never issued", st.StickyHits)
	}
}

func TestCookieAttributes(t *testing.T) {
	const name = "ocdn"
	r := newRig(t, func(rt *Router) { rt.StickyCookie = name })
	r.report(t, r.ea, true, Load{})
	w := r.get("/page?x=1")
	raw := w.Header().Values("Set-Cookie")
	if len(raw) != 1 {
		t.Fatalf("Set-Cookie = %q, want exactly one", raw)
	}
	c := stickyCookieOf(w, name)
	if c.Path != "/" || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Domain != "" ||
		c.MaxAge != int(DefaultStickyTTL/time.Second) || c.Secure {
		t.Errorf("cookie = %+v", c)
	}
	// Nothing but the random value and these attributes.
	want := fmt.Sprintf("%s=%s; Path=/; Max-Age=600; HttpOnly; SameSite=Lax", name, c.Value)
	if raw[0] != want {
		t.Errorf("Set-Cookie = %q, want %q", raw[0], want)
	}
	if k, ok := decodeSticky(c.Value); !ok || k == (stickyKey{}) {
		t.Errorf("value %q is not 16 random bytes in base64url", c.Value)
	}
	// Over TLS the cookie is Secure.
	req := httptest.NewRequest(http.MethodGet, "https://router.example/", nil)
	w = httptest.NewRecorder()
	r.rt.ServeHTTP(w, req)
	if c := stickyCookieOf(w, name); c == nil || !c.Secure {
		t.Errorf("cookie over TLS = %+v, want Secure", c)
	}
}

// Two routers for two sites issue unrelated values, even to the same
// client making the same requests at the same time.
func TestNoCrossSiteIdentifiers(t *testing.T) {
	const name = "ocdn"
	r1 := newRig(t, func(rt *Router) { rt.StickyCookie = name })
	r2 := newRig(t, func(rt *Router) { rt.StickyCookie = name })
	// Same random source seed and clock on both: values must still differ,
	// since they come from crypto/rand, not from Rand.
	r1.report(t, r1.ea, true, Load{})
	r2.report(t, r2.ea, true, Load{})
	seen := map[string]bool{}
	bitDiff := 0
	const n = 200
	for i := range n {
		target := fmt.Sprintf("/same/%d?q=1", i)
		c1 := stickyCookieOf(r1.get(target), name)
		c2 := stickyCookieOf(r2.get(target), name)
		if c1 == nil || c2 == nil {
			t.Fatal("missing cookie")
		}
		if seen[c1.Value] || seen[c2.Value] || c1.Value == c2.Value {
			t.Fatalf("value repeated across routers or requests: %q %q", c1.Value, c2.Value)
		}
		seen[c1.Value], seen[c2.Value] = true, true
		k1, _ := decodeSticky(c1.Value)
		k2, _ := decodeSticky(c2.Value)
		for j := range k1 {
			x := k1[j] ^ k2[j]
			for ; x != 0; x &= x - 1 {
				bitDiff++
			}
		}
	}
	// Independent 128-bit values differ in 64 bits on average; related
	// ones (a counter, a shared prefix, a hash of the request) would not.
	avg := float64(bitDiff) / n
	if avg < 56 || avg > 72 {
		t.Errorf("mean Hamming distance between paired values = %.1f bits, want ≈64", avg)
	}
}

func TestNoHealthyGroup(t *testing.T) {
	t.Run("retry_after", func(t *testing.T) {
		r := newRig(t, func(rt *Router) { rt.RetryAfter = 90 * time.Second })
		w := r.get("/x")
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "90" ||
			w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("Location") != "" {
			t.Fatalf("status %d headers %v", w.Code, w.Header())
		}
	})
	t.Run("default_retry_after", func(t *testing.T) {
		r := newRig(t, nil)
		r.report(t, r.ea, false, Load{})
		if w := r.get("/x"); w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "30" {
			t.Fatalf("status %d Retry-After %q", w.Code, w.Header().Get("Retry-After"))
		}
	})
	t.Run("fallback", func(t *testing.T) {
		r := newRig(t, func(rt *Router) {
			rt.StickyCookie = "s"
			rt.Fallback = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, "fallback %s", r.URL.Path)
			})
		})
		w := r.get("/v/a.ts")
		if w.Code != http.StatusOK || w.Body.String() != "fallback /v/a.ts" || w.Header().Get("Set-Cookie") != "" {
			t.Fatalf("status %d body %q headers %v", w.Code, w.Body, w.Header())
		}
		r.report(t, r.eb, true, Load{})
		if g := r.groupOf(t, r.get("/v/a.ts")); g != "b" {
			t.Fatalf("after recovery: %q", g)
		}
		st, _ := r.rt.Stats()
		if st.NoHealthy != 1 {
			t.Errorf("NoHealthy = %d, want 1", st.NoHealthy)
		}
	})
}

func TestLocationPreservesPathAndQuery(t *testing.T) {
	r := newRig(t, nil)
	r.report(t, r.ea, true, Load{})
	host := r.rt.Groups[0].Onion
	for _, uri := range []string{
		"/",
		"/a/b/c.m3u8",
		"/a/b?x=1&y=2",
		"/v/index.m3u8?_HLS_msn=3&_HLS_part=1",
		"/a%2Fb?q=%20&r=a+b",
		"/%7Euser/x",
		"/caf%C3%A9?x=%E2%82%AC&x=2",
		"/path?",
		"//double//slash/",
		"/semi;colon?a;b",
		"/q?redirect=http://evil.example/&x=%0D%0A",
	} {
		t.Run(strings.NewReplacer("/", "_", "?", "_", "%", "_").Replace(uri), func(t *testing.T) {
			w := r.get(uri)
			if w.Code != http.StatusFound {
				t.Fatalf("status %d", w.Code)
			}
			if got, want := w.Header().Get("Location"), "http://"+host+uri; got != want {
				t.Errorf("Location = %q, want %q", got, want)
			}
			if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q", cc)
			}
		})
	}
}

func TestSchemeAndPort(t *testing.T) {
	r := newRig(t, func(rt *Router) {
		rt.Scheme = "https"
		rt.Port = 8443
		rt.Groups[1].Onion += ":8080"
	})
	r.report(t, r.ea, true, Load{})
	if got, want := r.get("/x?y").Header().Get("Location"), "https://"+r.rt.Groups[0].Onion+":8443/x?y"; got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
	r.report(t, r.ea, false, Load{})
	r.report(t, r.eb, true, Load{})
	if got, want := r.get("/x").Header().Get("Location"), "https://"+r.rt.Groups[1].Onion+"/x"; got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
}

func TestRedirectStatusByMethod(t *testing.T) {
	r := newRig(t, nil)
	r.report(t, r.ea, true, Load{})
	for _, tc := range []struct {
		method string
		want   int
	}{
		{http.MethodGet, http.StatusFound},
		{http.MethodHead, http.StatusFound},
		{http.MethodPost, http.StatusTemporaryRedirect},
		{http.MethodPut, http.StatusTemporaryRedirect},
		{http.MethodDelete, http.StatusTemporaryRedirect},
		{http.MethodOptions, http.StatusTemporaryRedirect},
	} {
		t.Run(strings.ToLower(tc.method), func(t *testing.T) {
			w := httptest.NewRecorder()
			r.rt.ServeHTTP(w, httptest.NewRequest(tc.method, "/form?a=1", strings.NewReader("x=1")))
			if w.Code != tc.want || !strings.HasSuffix(w.Header().Get("Location"), ".onion/form?a=1") {
				t.Errorf("status %d Location %q, want %d", w.Code, w.Header().Get("Location"), tc.want)
			}
		})
	}
}

func TestAbsurdRequests(t *testing.T) {
	r := newRig(t, nil)
	r.report(t, r.ea, true, Load{})
	if w := r.get("/" + strings.Repeat("a", DefaultMaxURLBytes)); w.Code != http.StatusRequestURITooLong {
		t.Errorf("long path: status %d, want 414", w.Code)
	}
	if w := r.get("/?" + strings.Repeat("q", DefaultMaxURLBytes)); w.Code != http.StatusRequestURITooLong {
		t.Errorf("long query: status %d, want 414", w.Code)
	}
	w := httptest.NewRecorder()
	r.rt.ServeHTTP(w, httptest.NewRequest(http.MethodOptions, "*", nil))
	if w.Code != http.StatusBadRequest {
		t.Errorf("OPTIONS *: status %d, want 400", w.Code)
	}
	st, _ := r.rt.Stats()
	if st.BadRequests != 3 || st.Redirects != 0 {
		t.Errorf("BadRequests=%d Redirects=%d", st.BadRequests, st.Redirects)
	}
}

func TestInvalidConfig(t *testing.T) {
	key := newTestEdge(t, "g", "e").edge()
	onion := testOnion(t)
	good := func() Group { return Group{ID: "g", Onion: onion, Edges: []Edge{key}} }
	// One character changed (never to itself: the address is random)
	// breaks the checksum.
	flipped := "a" + onion[1:]
	if onion[0] == 'a' {
		flipped = "b" + onion[1:]
	}
	tests := []struct {
		name string
		rt   *Router
	}{
		{"no_groups", &Router{}},
		{"bad_group_id", &Router{Groups: []Group{{ID: "a b", Onion: onion, Edges: []Edge{key}}}}},
		{"duplicate_group", &Router{Groups: []Group{good(), good()}}},
		{"not_onion", &Router{Groups: []Group{{ID: "g", Onion: "example.com", Edges: []Edge{key}}}}},
		{"bad_checksum", &Router{Groups: []Group{{ID: "g", Onion: flipped, Edges: []Edge{key}}}}},
		{"onion_subdomain", &Router{Groups: []Group{{ID: "g", Onion: "www." + onion, Edges: []Edge{key}}}}},
		{"bad_port", &Router{Groups: []Group{{ID: "g", Onion: onion + ":0", Edges: []Edge{key}}}}},
		{"no_edges", &Router{Groups: []Group{{ID: "g", Onion: onion}}}},
		{"short_key", &Router{Groups: []Group{{ID: "g", Onion: onion, Edges: []Edge{{ID: "e", PublicKey: make(ed25519.PublicKey, 5)}}}}}},
		{"duplicate_edge", &Router{Groups: []Group{{ID: "g", Onion: onion, Edges: []Edge{key, key}}}}},
		{"negative_weight", &Router{Groups: []Group{{ID: "g", Onion: onion, Weight: -1, Edges: []Edge{key}}}}},
		{"bad_scheme", &Router{Scheme: "ftp", Groups: []Group{good()}}},
		{"bad_cookie_name", &Router{StickyCookie: "a;b", Groups: []Group{good()}}},
		{"relative_report_path", &Router{ReportPath: "report", Groups: []Group{good()}}},
		{"non_onion_host_with_path", &Router{AllowNonOnion: true, Groups: []Group{{ID: "g", Onion: "127.0.0.1/x", Edges: []Edge{key}}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rt := tc.rt
			rt.Logger = testLogger(t)
			if _, err := rt.Stats(); err == nil || !strings.HasPrefix(err.Error(), "route: ") {
				t.Fatalf("Stats error = %v, want a route: error", err)
			}
			w := httptest.NewRecorder()
			rt.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
			if w.Code != http.StatusServiceUnavailable {
				t.Errorf("status %d, want 503", w.Code)
			}
		})
	}
	t.Run("error_handler", func(t *testing.T) {
		var got error
		rt := &Router{ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			got = err
			w.WriteHeader(http.StatusTeapot)
		}}
		w := httptest.NewRecorder()
		rt.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
		if w.Code != http.StatusTeapot || got == nil {
			t.Errorf("status %d err %v", w.Code, got)
		}
	})
	t.Run("non_onion_allowed", func(t *testing.T) {
		rt := &Router{AllowNonOnion: true, Groups: []Group{{ID: "g", Onion: "127.0.0.1:8080", Edges: []Edge{key}}}}
		if _, err := rt.Stats(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestValidOnion(t *testing.T) {
	for range 20 {
		if o := testOnion(t); !ValidOnion(o) {
			t.Fatalf("ValidOnion(%q) = false", o)
		}
	}
	// A fixed key keeps the character-flip loop below deterministic (a
	// random key would let 1 in 65536 flips collide with the checksum).
	o := OnionAddress(ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize)).Public().(ed25519.PublicKey))
	for _, bad := range []string{
		"", ".onion", "expyuzz4wqqyqhjn.onion", // v2
		strings.ToUpper(o[:56]) + ".onion",
		o[:55] + ".onion",
		o + ".",
		"x." + o,
		o[:56],
	} {
		if ValidOnion(bad) {
			t.Errorf("ValidOnion(%q) = true", bad)
		}
	}
	// Flip each character in turn: the checksum catches every change.
	for i := range 56 {
		b := []byte(o)
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		if ValidOnion(string(b)) {
			t.Errorf("ValidOnion accepted %q with char %d changed", b, i)
		}
	}
}

// With draws forced to (a, b) pairs, the lower score always wins, and a
// tie goes to the first draw.
func TestPickComparesBothDraws(t *testing.T) {
	for _, tc := range []struct {
		name         string
		loadA, loadB Load
		want         string
	}{
		{"b_lighter", Load{Active: 2}, Load{Active: 1}, "b"},
		{"a_lighter", Load{Active: 1}, Load{Active: 2}, "a"},
		{"tie_first_draw", Load{Active: 1}, Load{Active: 1}, "a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, func(rt *Router) { rt.Rand = &alternatingSource{} })
			r.report(t, r.ea, true, tc.loadA)
			r.report(t, r.eb, true, tc.loadB)
			for i := range 20 {
				if g := r.groupOf(t, r.get("/")); g != tc.want {
					t.Fatalf("request %d went to %q, want %q", i, g, tc.want)
				}
			}
		})
	}
}

func TestStickyEvictsOldestFirst(t *testing.T) {
	const name = "s"
	r := newRig(t, func(rt *Router) { rt.StickyCookie = name; rt.MaxSticky = 5 })
	r.report(t, r.ea, true, Load{})
	var issued []*http.Cookie
	for range 12 {
		issued = append(issued, stickyCookieOf(r.get("/"), name))
	}
	// The five newest are remembered (known lookups issue nothing and
	// evict nothing), the sixth newest was forgotten.
	for i := 11; i >= 7; i-- {
		if c := stickyCookieOf(r.get("/", issued[i]), name); c != nil {
			t.Fatalf("cookie %d (among the 5 newest) was forgotten", i)
		}
	}
	if c := stickyCookieOf(r.get("/", issued[6]), name); c == nil {
		t.Fatal("cookie 6 (beyond MaxSticky) still remembered")
	}
}

func TestConcurrentUse(t *testing.T) {
	r := newRig(t, func(rt *Router) { rt.StickyCookie = "s"; rt.MaxSticky = 50 })
	r.report(t, r.ea, true, Load{})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 200 {
				w := r.get(fmt.Sprintf("/%d/%d", i, j))
				if c := stickyCookieOf(w, "s"); c != nil {
					r.get("/again", c)
				}
			}
		})
	}
	for _, e := range []testEdge{r.ea, r.eb} {
		wg.Go(func() {
			for j := range 50 {
				b := r.body(t, e, j%2 == 0, Load{Active: int64(j)})
				if code := r.post(b, signReport(e.priv, b)); code != http.StatusNoContent {
					t.Errorf("report: %d", code)
				}
			}
		})
	}
	wg.Go(func() {
		for range 100 {
			r.rt.Stats()
		}
	})
	wg.Wait()
	st, _ := r.rt.Stats()
	if st.Reports.Accepted != 101 || st.StickyEntries > 50 {
		t.Fatalf("stats %+v", st)
	}
}
