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
		name, a, b string
		same       bool
	}{
		{"host_case_insensitive", "http://Example.onion/a", "http://example.onion/a", true},
		{"query_matters", "http://e.onion/a?x=1", "http://e.onion/a?x=2", false},
		{"scheme_matters", "http://e.onion/a", "https://e.onion/a", false},
		{"path_case_matters", "http://e.onion/A", "http://e.onion/a", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ka := c.baseKey(httptest.NewRequest("GET", tt.a, nil))
			kb := c.baseKey(httptest.NewRequest("GET", tt.b, nil))
			if (ka == kb) != tt.same {
				t.Errorf("keys %q and %q: same=%v, want %v", ka, kb, ka == kb, tt.same)
			}
		})
	}
	head := httptest.NewRequest("HEAD", "http://e.onion/a", nil)
	get := httptest.NewRequest("GET", "http://e.onion/a", nil)
	if c.baseKey(head) != c.baseKey(get) {
		t.Errorf("HEAD and GET keys differ")
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
	c := &Cache{Upstream: u, LogQuery: true, OnRecord: func(_ *http.Request, r Record) { got = r }}
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
		k := c.baseKey(req)
		if !strings.HasPrefix(k, "GET ") {
			t.Fatalf("key %q lacks the method", k)
		}
		if k != c.baseKey(req) {
			t.Fatal("key not deterministic")
		}
		if host := req.Host; strings.ToLower(host) != host {
			r2 := req.Clone(t.Context())
			r2.Host = strings.ToLower(host)
			if c.baseKey(r2) != k {
				t.Fatalf("host case changes the key")
			}
		}
	})
}

// TestDefaultKeyForms checks the resource key DefaultKey derives and that
// the cache's base key (built in one piece when there is no Policy or
// Partition) is exactly "GET " + DefaultKey.
func TestDefaultKeyForms(t *testing.T) {
	t.Parallel()
	server := func(target, host string) *http.Request {
		r := httptest.NewRequest("GET", target, nil)
		r.URL.Scheme, r.URL.Host = "", "" // as a server sees an origin-form target
		r.Host = host
		return r
	}
	tests := []struct {
		name string
		r    *http.Request
		want string
	}{
		{"absolute_lowercases_host", httptest.NewRequest("GET", "http://Example.ONION/A/b?x=1&Y=2", nil), "http://example.onion/A/b?x=1&Y=2"},
		{"tls_is_https", httptest.NewRequest("GET", "https://e.onion/s", nil), "https://e.onion/s"},
		{"origin_form_uses_host", server("/p?q", "Site.Onion:8080"), "http://site.onion:8080/p?q"},
		{"origin_form_tls", func() *http.Request { r := server("/p", "e.onion"); r.TLS = &tls.ConnectionState{}; return r }(), "https://e.onion/p"},
		{"empty_path_is_root", func() *http.Request { r := server("/", "e.onion"); r.URL.Path = ""; return r }(), "http://e.onion/"},
		{"escaped_path_kept", httptest.NewRequest("GET", "http://e.onion/a%2Fb/c%20d", nil), "http://e.onion/a%2Fb/c%20d"},
		{"no_host_header_uses_url", func() *http.Request {
			r := httptest.NewRequest("GET", "http://U.onion/x", nil)
			r.Host = ""
			return r
		}(), "http://u.onion/x"},
		{"empty_query_dropped", httptest.NewRequest("GET", "http://e.onion/x?", nil), "http://e.onion/x"},
	}
	c := &Cache{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DefaultKey(tt.r); got != tt.want {
				t.Errorf("DefaultKey = %q, want %q", got, tt.want)
			}
			if got, want := c.baseKey(tt.r), "GET "+tt.want; got != want {
				t.Errorf("baseKey = %q, want %q", got, want)
			}
		})
	}
}
