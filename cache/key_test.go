package cache

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestKeys(t *testing.T) {
	t.Parallel()
	c := &Cache{}
	tests := []struct {
		name, a, b        string
		sameRT, sameServe bool // same key through RoundTrip, as a Handler
	}{
		{"host_case_insensitive", "http://Example.onion/a", "http://example.onion/a", true, true},
		{"host_matters_for_round_trip_only", "http://a.onion/x", "http://b.onion/x", false, true},
		{"port_matters_for_round_trip_only", "http://a.onion/x", "http://a.onion:8080/x", false, true},
		{"query_matters", "http://e.onion/a?x=1", "http://e.onion/a?x=2", false, false},
		{"scheme_matters_for_round_trip_only", "http://e.onion/a", "https://e.onion/a", false, true},
		{"path_case_matters", "http://e.onion/A", "http://e.onion/a", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, rt := range []bool{true, false} {
				ka := c.baseKey(httptest.NewRequest("GET", tt.a, nil), rt)
				kb := c.baseKey(httptest.NewRequest("GET", tt.b, nil), rt)
				want := tt.sameServe
				if rt {
					want = tt.sameRT
				}
				if (ka == kb) != want {
					t.Errorf("round trip %v: keys %q and %q: same=%v, want %v", rt, ka, kb, ka == kb, want)
				}
			}
		})
	}
	head := httptest.NewRequest("HEAD", "http://e.onion/a", nil)
	get := httptest.NewRequest("GET", "http://e.onion/a", nil)
	if c.baseKey(head, true) != c.baseKey(get, true) || c.baseKey(head, false) != c.baseKey(get, false) {
		t.Errorf("HEAD and GET keys differ")
	}
}

// TestKeyHost checks the host part of keys: none by default for a Handler,
// FixedHost, AllowHosts, and that no host and path can be spliced into
// another's key.
func TestKeyHost(t *testing.T) {
	t.Parallel()
	req := func(host, target string) *http.Request {
		r := httptest.NewRequest("GET", target, nil)
		r.URL.Scheme, r.URL.Host = "", ""
		r.Host = host
		return r
	}
	key := func(c *Cache, r *http.Request) string { return c.baseKey(r, false) }
	def := &Cache{}
	if a, b := key(def, req("a.onion", "/x")), key(def, req("evil.example", "/x")); a != b || a != "GET /x" {
		t.Errorf("default handler keys %q, %q: want both \"GET /x\"", a, b)
	}
	fixed := &Cache{KeyHost: FixedHost("Site.Onion.")}
	if a, b := key(fixed, req("x.onion:80", "/p?q")), key(fixed, req("127.0.0.1:9000", "/p?q")); a != b || a != "GET site.onion /p?q" {
		t.Errorf("FixedHost keys %q, %q", a, b)
	}
	allow := &Cache{KeyHost: AllowHosts("a.onion", "B.onion")}
	tests := []struct{ host, target, want string }{
		{"a.onion", "/p", "GET a.onion /p"},
		{"A.ONION:80", "/p", "GET a.onion /p"},
		{"b.onion.", "/p", "GET b.onion /p"},
		{"other.onion", "/p", "GET /p"},
		{"invented-1", "/p", "GET /p"},
		// An unknown host asking for a path that spells a known host's key
		// must not reach that key.
		{"other", "//a.onion/p", "GET //a.onion/p"},
	}
	for _, tt := range tests {
		if got := key(allow, req(tt.host, tt.target)); got != tt.want {
			t.Errorf("AllowHosts: Host %q %s: key %q, want %q", tt.host, tt.target, got, tt.want)
		}
	}
	if key(allow, req("other", "//a.onion/p")) == key(allow, req("a.onion", "/p")) {
		t.Error("spliced key collides")
	}
}

// keyPolicy drops the query parameter "session" from keys.
type keyPolicy struct{}

func (keyPolicy) Key(r *http.Request) string {
	u := *r.URL
	q := u.Query()
	q.Del("session")
	u.RawQuery = q.Encode()
	r2 := *r
	r2.URL = &u
	return DefaultKey(&r2)
}

func (keyPolicy) Decide(*http.Request, *http.Response) Decision { return Decision{} }

func TestPolicyKeyAndPartition(t *testing.T) {
	runRuleTests(t, []ruleTest{
		{name: "policy_key_normalises", handler: fixed("Cache-Control", "max-age=60"),
			configure: func(c *Cache) { c.Policy = keyPolicy{} }, steps: []step{
				{path: "/a?x=1&session=abc", status: 200, body: "v1", origin: 1},
				{path: "/a?x=1&session=def", status: 200, body: "v1", cs: "hit", origin: 1},
				{path: "/a?x=2", status: 200, body: "v2", origin: 2},
			}},
		{name: "partitions_do_not_share", handler: fixed("Cache-Control", "max-age=60"),
			configure: func(c *Cache) {
				c.Partition = func(r *http.Request) string { return r.Header.Get("X-Site") }
			}, steps: []step{
				{hdr: []string{"X-Site", "a"}, status: 200, body: "v1", origin: 1},
				{hdr: []string{"X-Site", "b"}, status: 200, body: "v2", origin: 2},
				{hdr: []string{"X-Site", "a"}, status: 200, body: "v1", cs: "hit", origin: 2},
				{hdr: []string{"X-Site", "a"}, method: http.MethodPost, status: 200, body: "-", origin: 3},
				{hdr: []string{"X-Site", "a"}, status: 200, body: "v4", origin: 4},
				{hdr: []string{"X-Site", "b"}, status: 200, body: "v2", cs: "hit", origin: 4},
			}},
	})
}

func TestRecords(t *testing.T) {
	t.Parallel()
	o := newCountingOrigin(t, fixed("Cache-Control", "max-age=60"))
	tr := newTier(t, o, nil)
	tr.mustDo(t, "GET", "/rec?secret=1")
	tr.c.Shutdown(t.Context())
	tr.mustDo(t, "GET", "/rec?secret=1")
	recs := tr.records()
	if len(recs) != 2 {
		t.Fatalf("%d records", len(recs))
	}
	for i, want := range []Disposition{Miss, Hit} {
		r := recs[i]
		if r.Method != "GET" || r.Path != "/rec" || r.Status != 200 || r.Bytes != 2 || r.Disposition != want || r.Err != nil {
			t.Errorf("record %d: %+v", i, r)
		}
		if strings.Contains(r.Path, "secret") {
			t.Errorf("record %d logs the query", i)
		}
	}
	u, _ := url.Parse(o.URL)
	var got Record
	c := &Cache{Upstream: u, LogQuery: true, OnRecord: []func(*http.Request, Record){func(_ *http.Request, r Record) { got = r }}}
	c.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/q?x=1", nil))
	if got.Path != "/q?x=1" {
		t.Errorf("LogQuery: path %q", got.Path)
	}
}

func TestRecordDelivery(t *testing.T) {
	t.Parallel()
	// The clock advances while the origin answers: delivery and upstream
	// time are measured with Cache.Now.
	var tr *tier
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		tr.clock.Advance(3 * time.Second)
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write([]byte("x"))
	})
	tr = newTier(t, o, nil)
	tr.mustDo(t, "GET", "/d")
	recs := tr.records()
	if len(recs) != 1 || recs[0].Delivery < 3*time.Second || recs[0].Upstream < 3*time.Second {
		t.Errorf("records %+v", recs)
	}
}

func FuzzDecodeMeta(f *testing.F) {
	m := &meta{kind: kindObject, status: 200, requestTime: time.Unix(1, 0), responseTime: time.Unix(2, 0),
		ttl: time.Second, header: http.Header{"Cache-Control": {"max-age=1"}, "X": {"a", "b"}}}
	f.Add(m.encode())                                                                                         // a valid object entry
	f.Add((&meta{kind: kindVary, status: 200, nonce: "n", header: http.Header{"Vary": {"Accept"}}}).encode()) // a variant index
	f.Add([]byte{})                                                                                           // empty
	f.Add([]byte{metaVersion, kindObject, 0xff, 0xff})                                                        // truncated varint
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		// Round trip: what decodes re-encodes to something that decodes
		// to the same entry.
		m2, err := decodeMeta(m.encode())
		if err != nil {
			t.Fatalf("re-encoded meta does not decode: %v", err)
		}
		if m2.status != m.status || m2.kind != m.kind || len(m2.header) != len(m.header) || m2.nonce != m.nonce {
			t.Fatalf("round trip changed the entry: %+v vs %+v", m, m2)
		}
	})
}

func FuzzKey(f *testing.F) {
	f.Add("GET", "http://example.onion/a?b=c")       // plain
	f.Add("HEAD", "http://EXAMPLE.onion/%2F/x")      // escaped slash, upper-case host
	f.Add("GET", "/relative/path")                   // server-side request
	f.Add("GET", "http://e.onion/seg.ts?_HLS_msn=1") // HLS query
	f.Fuzz(func(t *testing.T, method, target string) {
		req, err := http.NewRequest(method, target, nil)
		if err != nil {
			return
		}
		c := &Cache{}
		k := c.baseKey(req, true)
		if !strings.HasPrefix(k, "GET ") {
			t.Fatalf("key %q lacks the method", k)
		}
		if k != c.baseKey(req, true) {
			t.Fatal("key not deterministic")
		}
		if host := req.Host; strings.ToLower(host) != host {
			r2 := req.Clone(t.Context())
			r2.Host = strings.ToLower(host)
			if c.baseKey(r2, true) != k {
				t.Fatalf("host case changes the key")
			}
		}
		// As a Handler, the Host never changes the key.
		r3 := req.Clone(t.Context())
		r3.Host = "other.example"
		if c.baseKey(r3, false) != c.baseKey(req, false) {
			t.Fatalf("Host changes a handler key")
		}
	})
}

// TestDefaultKeyForms checks the resource key DefaultKey derives, and the
// cache's base keys: "GET " + DefaultKey as a Handler (built in one piece
// when there is no Policy, Partition or KeyHost), with URLHost in front
// through RoundTrip.
func TestDefaultKeyForms(t *testing.T) {
	t.Parallel()
	server := func(target, host string) *http.Request {
		r := httptest.NewRequest("GET", target, nil)
		r.URL.Scheme, r.URL.Host = "", "" // as a server sees an origin-form target
		r.Host = host
		return r
	}
	tests := []struct {
		name     string
		r        *http.Request
		want     string // DefaultKey
		wantHost string // URLHost
	}{
		{"absolute_lowercases_host", httptest.NewRequest("GET", "http://Example.ONION/A/b?x=1&Y=2", nil), "/A/b?x=1&Y=2", "http://example.onion"},
		{"tls_is_https", httptest.NewRequest("GET", "https://e.onion/s", nil), "/s", "https://e.onion"},
		{"origin_form_uses_host", server("/p?q", "Site.Onion:8080"), "/p?q", "http://site.onion:8080"},
		{"origin_form_tls", func() *http.Request { r := server("/p", "e.onion"); r.TLS = &tls.ConnectionState{}; return r }(), "/p", "https://e.onion"},
		{"empty_path_is_root", func() *http.Request { r := server("/", "e.onion"); r.URL.Path = ""; return r }(), "/", "http://e.onion"},
		{"escaped_path_kept", httptest.NewRequest("GET", "http://e.onion/a%2Fb/c%20d", nil), "/a%2Fb/c%20d", "http://e.onion"},
		{"no_host_header_uses_url", func() *http.Request {
			r := httptest.NewRequest("GET", "http://U.onion/x", nil)
			r.Host = ""
			return r
		}(), "/x", "http://u.onion"},
		{"empty_query_dropped", httptest.NewRequest("GET", "http://e.onion/x?", nil), "/x", "http://e.onion"},
	}
	c := &Cache{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DefaultKey(tt.r); got != tt.want {
				t.Errorf("DefaultKey = %q, want %q", got, tt.want)
			}
			if got := URLHost(tt.r); got != tt.wantHost {
				t.Errorf("URLHost = %q, want %q", got, tt.wantHost)
			}
			if got, want := c.baseKey(tt.r, false), "GET "+tt.want; got != want {
				t.Errorf("handler baseKey = %q, want %q", got, want)
			}
			if got, want := c.baseKey(tt.r, true), "GET "+tt.wantHost+" "+tt.want; got != want {
				t.Errorf("round-trip baseKey = %q, want %q", got, want)
			}
		})
	}
}
