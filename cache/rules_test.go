package cache

import (
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// step is one request of a rule test, after advancing the cache's clock.
type step struct {
	advance time.Duration
	method  string   // default GET
	path    string   // default "/r"
	hdr     []string // request header name/value pairs
	status  int      // expected status
	body    string   // expected body; "-" skips the check
	cs      string   // expected prefix of this tier's Cache-Status member ("" skips)
	origin  int64    // expected origin request count after the step
	check   func(t *testing.T, res result, o *origin)
}

type ruleTest struct {
	name      string
	handler   func(w http.ResponseWriter, r *http.Request, n int64) // n: 1-based origin request number
	configure func(*Cache)
	steps     []step
}

func runRuleTests(t *testing.T, tests []ruleTest) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var o *origin
			var tr *tier
			o = newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				// The origin's clock is the cache's, so that Date agrees
				// with the time the test advances.
				w.Header().Set("Date", tr.clock.Now().UTC().Format(http.TimeFormat))
				tt.handler(w, r, o.count.Load())
			})
			tr = newTier(t, o, tt.configure)
			for i, s := range tt.steps {
				tr.clock.Advance(s.advance)
				m := s.method
				if m == "" {
					m = http.MethodGet
				}
				p := s.path
				if p == "" {
					p = "/r"
				}
				res := tr.mustDo(t, m, p, s.hdr...)
				if res.status != s.status {
					t.Errorf("step %d: status %d, want %d (body %q)", i, res.status, s.status, res.body)
				}
				if s.body != "-" && res.body != s.body {
					t.Errorf("step %d: body %q, want %q", i, res.body, s.body)
				}
				if got := cacheStatus(res); s.cs != "" && !strings.HasPrefix(got, s.cs) {
					t.Errorf("step %d: Cache-Status %q, want prefix %q", i, got, s.cs)
				}
				if got := o.count.Load(); got != s.origin {
					t.Errorf("step %d: origin saw %d requests, want %d", i, got, s.origin)
				}
				if s.check != nil {
					s.check(t, res, o)
				}
				// Let fills finish so that the next step sees them stored.
				if err := tr.c.Shutdown(t.Context()); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// fixed returns a handler answering every request with the given header
// pairs and body "v<n>" (n = origin request number).
func fixed(hdr ...string) func(http.ResponseWriter, *http.Request, int64) {
	return func(w http.ResponseWriter, r *http.Request, n int64) {
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Add(hdr[i], hdr[i+1])
		}
		fmt.Fprintf(w, "v%d", n)
	}
}

func hasAge(t *testing.T, res result, _ *origin) {
	t.Helper()
	if _, err := strconv.Atoi(res.header.Get("Age")); err != nil {
		t.Errorf("Age header %q on a cached response", res.header.Get("Age"))
	}
}

func TestStoring(t *testing.T) {
	runRuleTests(t, []ruleTest{
		{name: "max_age_stored", handler: fixed("Cache-Control", "max-age=60"), steps: []step{
			{status: 200, body: "v1", cs: "fwd=uri-miss", origin: 1, check: hasAge},
			{status: 200, body: "v1", cs: "hit", origin: 1, check: hasAge},
		}},
		{name: "no_store_response", handler: fixed("Cache-Control", "no-store, max-age=60"), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{status: 200, body: "v2", origin: 2},
		}},
		{name: "private_never_stored", handler: fixed("Cache-Control", "private, max-age=60"), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{status: 200, body: "v2", origin: 2},
		}},
		{name: "set_cookie_not_stored", handler: fixed("Cache-Control", "max-age=60", "Set-Cookie", "id=1"), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{status: 200, body: "v2", origin: 2, check: func(t *testing.T, res result, _ *origin) {
				if res.header.Get("Set-Cookie") != "id=1" {
					t.Errorf("Set-Cookie not passed to its own client")
				}
			}},
		}},
		{name: "set_cookie_allowed", handler: fixed("Cache-Control", "max-age=60", "Set-Cookie", "id=1"),
			configure: func(c *Cache) { c.AllowSetCookie = true }, steps: []step{
				{status: 200, body: "v1", origin: 1},
				{status: 200, body: "v1", cs: "hit", origin: 1},
			}},
		{name: "authorization_not_shared", handler: fixed("Cache-Control", "max-age=60"), steps: []step{
			{hdr: []string{"Authorization", "Bearer a"}, status: 200, body: "v1", cs: "fwd=request", origin: 1},
			{status: 200, body: "v2", cs: "fwd=uri-miss", origin: 2},
		}},
		{name: "authorization_public_stored", handler: fixed("Cache-Control", "public, max-age=60"), steps: []step{
			{hdr: []string{"Authorization", "Bearer a"}, status: 200, body: "v1", origin: 1},
			{status: 200, body: "v1", cs: "hit", origin: 1},
		}},
		{name: "request_no_store", handler: fixed("Cache-Control", "max-age=60"), steps: []step{
			{hdr: []string{"Cache-Control", "no-store"}, status: 200, body: "v1", origin: 1},
			{status: 200, body: "v2", origin: 2},
		}},
		{name: "404_heuristic_with_max_age", handler: func(w http.ResponseWriter, r *http.Request, n int64) {
			w.Header().Set("Cache-Control", "max-age=60")
			w.WriteHeader(404)
			fmt.Fprintf(w, "nf%d", n)
		}, steps: []step{
			{status: 404, body: "nf1", origin: 1},
			{status: 404, body: "nf1", cs: "hit", origin: 1},
		}},
		{name: "201_not_cacheable_by_default", handler: func(w http.ResponseWriter, r *http.Request, n int64) {
			w.Header().Set("Last-Modified", time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat))
			w.WriteHeader(201)
			fmt.Fprintf(w, "c%d", n)
		}, steps: []step{
			{status: 201, body: "c1", origin: 1},
			{status: 201, body: "c2", origin: 2},
		}},
		{name: "policy_ttl_makes_storable", handler: func(w http.ResponseWriter, r *http.Request, n int64) {
			w.WriteHeader(201)
			fmt.Fprintf(w, "c%d", n)
		}, configure: func(c *Cache) {
			c.Policy = PolicyFunc(func(*http.Request, *http.Response) Decision { return Decision{TTL: time.Minute} })
		}, steps: []step{
			{status: 201, body: "c1", origin: 1},
			{status: 201, body: "c1", cs: "hit", origin: 1},
			{advance: 61 * time.Second, status: 201, body: "c2", origin: 2},
		}},
		{name: "policy_no_store", handler: fixed("Cache-Control", "max-age=60"), configure: func(c *Cache) {
			c.Policy = PolicyFunc(func(*http.Request, *http.Response) Decision { return Decision{NoStore: true} })
		}, steps: []step{
			{status: 200, body: "v1", origin: 1},
			{status: 200, body: "v2", origin: 2},
		}},
		{name: "policy_stale_windows", handler: func(w http.ResponseWriter, r *http.Request, n int64) {
			if n > 1 {
				w.WriteHeader(http.StatusBadGateway)
				return
			}
			w.Header().Set("Cache-Control", "max-age=10")
			fmt.Fprintf(w, "v%d", n)
		}, configure: func(c *Cache) {
			c.Policy = PolicyFunc(func(*http.Request, *http.Response) Decision {
				return Decision{StaleIfError: time.Hour}
			})
		}, steps: []step{
			{status: 200, body: "v1", origin: 1},
			{advance: 20 * time.Minute, status: 200, body: "v1", cs: "hit", origin: 2},
		}},
		{name: "policy_ttl_never_overrides_private", handler: fixed("Cache-Control", "private"), configure: func(c *Cache) {
			c.Policy = PolicyFunc(func(*http.Request, *http.Response) Decision { return Decision{TTL: time.Minute} })
		}, steps: []step{
			{status: 200, body: "v1", origin: 1},
			{status: 200, body: "v2", origin: 2},
		}},
	})
}

func TestFreshness(t *testing.T) {
	runRuleTests(t, []ruleTest{
		{name: "max_age_expires", handler: fixed("Cache-Control", "max-age=10"), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{advance: 5 * time.Second, status: 200, body: "v1", cs: "hit", origin: 1, check: func(t *testing.T, res result, _ *origin) {
				if a, _ := strconv.Atoi(res.header.Get("Age")); a < 5 {
					t.Errorf("Age %d after 5s", a)
				}
			}},
			{advance: 6 * time.Second, status: 200, body: "v2", cs: "fwd=stale", origin: 2},
		}},
		{name: "s_maxage_over_max_age", handler: fixed("Cache-Control", "max-age=1, s-maxage=100"), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{advance: 50 * time.Second, status: 200, body: "v1", cs: "hit", origin: 1},
		}},
		{name: "expires", handler: func(w http.ResponseWriter, r *http.Request, n int64) {
			w.Header().Set("Expires", time.Now().Add(30*time.Second).UTC().Format(http.TimeFormat))
			fmt.Fprintf(w, "v%d", n)
		}, steps: []step{
			{status: 200, body: "v1", origin: 1},
			{advance: 10 * time.Second, status: 200, body: "v1", cs: "hit", origin: 1},
			{advance: 30 * time.Second, status: 200, body: "v2", origin: 2},
		}},
		{name: "invalid_expires_is_expired", handler: fixed("Expires", "0"), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{status: 200, body: "v2", origin: 2},
		}},
		{name: "heuristic_last_modified", handler: func(w http.ResponseWriter, r *http.Request, n int64) {
			w.Header().Set("Last-Modified", time.Now().Add(-1000*time.Second).UTC().Format(http.TimeFormat))
			fmt.Fprintf(w, "v%d", n)
		}, steps: []step{
			{status: 200, body: "v1", origin: 1},
			{advance: 50 * time.Second, status: 200, body: "v1", cs: "hit", origin: 1}, // 10% of 1000 s
			{advance: 60 * time.Second, status: 200, body: "v2", origin: 2},
		}},
		{name: "upstream_age_counts", handler: fixed("Cache-Control", "max-age=60", "Age", "50"), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{advance: 5 * time.Second, status: 200, body: "v1", cs: "hit", origin: 1, check: func(t *testing.T, res result, _ *origin) {
				if a, _ := strconv.Atoi(res.header.Get("Age")); a < 55 {
					t.Errorf("Age %d, want >= 55", a)
				}
			}},
			{advance: 6 * time.Second, status: 200, body: "v2", origin: 2},
		}},
	})
}

func etagHandler(cc string) func(http.ResponseWriter, *http.Request, int64) {
	return func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", cc)
		w.Header().Set("ETag", `"e1"`)
		w.Header().Set("X-Origin-N", strconv.FormatInt(n, 10))
		if r.Header.Get("If-None-Match") == `"e1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprintf(w, "v%d", n)
	}
}

func sawINM(t *testing.T, _ result, o *origin) {
	t.Helper()
	if got := o.last().Header.Get("If-None-Match"); got != `"e1"` {
		t.Errorf("origin saw If-None-Match %q, want the stored ETag", got)
	}
}

func TestRequestDirectives(t *testing.T) {
	runRuleTests(t, []ruleTest{
		{name: "only_if_cached_miss_504", handler: fixed("Cache-Control", "max-age=60"), steps: []step{
			{hdr: []string{"Cache-Control", "only-if-cached"}, status: 504, body: "", origin: 0},
			{status: 200, body: "v1", origin: 1},
			{hdr: []string{"Cache-Control", "only-if-cached"}, status: 200, body: "v1", cs: "hit", origin: 1},
		}},
		{name: "no_cache_revalidates", handler: etagHandler("max-age=60"), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{hdr: []string{"Cache-Control", "no-cache"}, status: 200, body: "v1", cs: "fwd=stale; fwd-status=304", origin: 2, check: sawINM},
		}},
		{name: "pragma_no_cache", handler: etagHandler("max-age=60"), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{hdr: []string{"Pragma", "no-cache"}, status: 200, body: "v1", origin: 2, check: sawINM},
		}},
		{name: "max_age_request", handler: etagHandler("max-age=60"), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{advance: 10 * time.Second, hdr: []string{"Cache-Control", "max-age=20"}, status: 200, body: "v1", cs: "hit", origin: 1},
			{hdr: []string{"Cache-Control", "max-age=5"}, status: 200, body: "v1", origin: 2, check: sawINM},
		}},
		{name: "min_fresh", handler: etagHandler("max-age=60"), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{advance: 50 * time.Second, hdr: []string{"Cache-Control", "min-fresh=20"}, status: 200, body: "v1", origin: 2},
		}},
		{name: "max_stale", handler: fixed("Cache-Control", "max-age=10"), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{advance: 15 * time.Second, hdr: []string{"Cache-Control", "max-stale=10"}, status: 200, body: "v1", cs: "hit", origin: 1},
			{hdr: []string{"Cache-Control", "max-stale=1"}, status: 200, body: "v2", origin: 2},
		}},
		{name: "only_if_cached_stale_504", handler: fixed("Cache-Control", "max-age=10"), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{advance: 15 * time.Second, hdr: []string{"Cache-Control", "only-if-cached"}, status: 504, body: "", origin: 1},
		}},
	})
}

func TestValidation(t *testing.T) {
	runRuleTests(t, []ruleTest{
		{name: "stale_revalidated_304_updates_headers", handler: etagHandler("max-age=10"), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{advance: 11 * time.Second, status: 200, body: "v1", cs: "fwd=stale; fwd-status=304", origin: 2, check: func(t *testing.T, res result, o *origin) {
				sawINM(t, res, o)
				if res.header.Get("X-Origin-N") != "2" {
					t.Errorf("X-Origin-N %q: 304 did not update the stored header", res.header.Get("X-Origin-N"))
				}
				if res.header.Get("Content-Length") != "2" {
					t.Errorf("Content-Length %q", res.header.Get("Content-Length"))
				}
			}},
			{advance: 5 * time.Second, status: 200, body: "v1", cs: "hit", origin: 2, check: func(t *testing.T, res result, _ *origin) {
				if res.header.Get("X-Origin-N") != "2" {
					t.Errorf("stored header not updated: X-Origin-N %q", res.header.Get("X-Origin-N"))
				}
			}},
		}},
		{name: "must_revalidate_never_stale", handler: etagHandler("max-age=10, must-revalidate"),
			configure: func(c *Cache) { c.DefaultStaleWhileRevalidate = time.Hour }, steps: []step{
				{status: 200, body: "v1", origin: 1},
				{advance: 11 * time.Second, hdr: []string{"Cache-Control", "max-stale"}, status: 200, body: "v1", origin: 2, check: sawINM},
			}},
		{name: "response_no_cache_always_validates", handler: etagHandler("no-cache"), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{status: 200, body: "v1", cs: "fwd=stale; fwd-status=304", origin: 2, check: sawINM},
		}},
		{name: "client_if_none_match_304_from_cache", handler: etagHandler("max-age=60"), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{hdr: []string{"If-None-Match", `"e1"`}, status: 304, body: "", cs: "hit", origin: 1},
			{hdr: []string{"If-None-Match", `"other"`}, status: 200, body: "v1", cs: "hit", origin: 1},
		}},
		{name: "client_if_modified_since_304_from_cache", handler: func(w http.ResponseWriter, r *http.Request, n int64) {
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT")
			fmt.Fprintf(w, "v%d", n)
		}, steps: []step{
			{status: 200, body: "v1", origin: 1},
			{hdr: []string{"If-Modified-Since", "Tue, 03 Jan 2006 15:04:05 GMT"}, status: 304, body: "", origin: 1},
		}},
		{name: "client_conditional_on_miss_not_forwarded", handler: etagHandler("max-age=60"), steps: []step{
			{hdr: []string{"If-None-Match", `"e1"`}, status: 304, body: "", origin: 1, check: func(t *testing.T, _ result, o *origin) {
				if o.last().Header.Get("If-None-Match") != "" {
					t.Errorf("fill request carried the client's If-None-Match")
				}
			}},
			{status: 200, body: "v1", cs: "hit", origin: 1},
		}},
	})
}

func TestStaleDirectives(t *testing.T) {
	var failing func(http.ResponseWriter, *http.Request, int64) = func(w http.ResponseWriter, r *http.Request, n int64) {
		if n > 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, "down")
			return
		}
		w.Header().Set("Cache-Control", "max-age=10, stale-if-error=100")
		fmt.Fprintf(w, "v%d", n)
	}
	runRuleTests(t, []ruleTest{
		{name: "stale_if_error_on_5xx", handler: failing, steps: []step{
			{status: 200, body: "v1", origin: 1},
			{advance: 20 * time.Second, status: 200, body: "v1", cs: "hit", origin: 2},
			{advance: 200 * time.Second, status: 503, body: "down", origin: 3},
		}},
		{name: "stale_if_error_default", handler: func(w http.ResponseWriter, r *http.Request, n int64) {
			if n > 1 {
				w.WriteHeader(http.StatusBadGateway)
				return
			}
			w.Header().Set("Cache-Control", "max-age=10")
			fmt.Fprintf(w, "v%d", n)
		}, configure: func(c *Cache) { c.DefaultStaleIfError = time.Minute }, steps: []step{
			{status: 200, body: "v1", origin: 1},
			{advance: 20 * time.Second, status: 200, body: "v1", origin: 2},
		}},
		{name: "no_stale_if_error_passes_5xx", handler: func(w http.ResponseWriter, r *http.Request, n int64) {
			if n > 1 {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprint(w, "down")
				return
			}
			w.Header().Set("Cache-Control", "max-age=10")
			fmt.Fprintf(w, "v%d", n)
		}, steps: []step{
			{status: 200, body: "v1", origin: 1},
			{advance: 20 * time.Second, status: 503, body: "down", origin: 2},
		}},
	})
}

func TestInvalidation(t *testing.T) {
	h := func(w http.ResponseWriter, r *http.Request, n int64) {
		if r.Method == http.MethodPost {
			w.Header().Set("Location", "/other")
			w.WriteHeader(http.StatusCreated)
			return
		}
		if r.Method == http.MethodDelete {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "v%d", n)
	}
	runRuleTests(t, []ruleTest{
		{name: "post_invalidates_target_and_location", handler: h, steps: []step{
			{status: 200, body: "v1", origin: 1},
			{path: "/other", status: 200, body: "v2", origin: 2},
			{method: http.MethodPost, status: 201, body: "", cs: "fwd=method", origin: 3},
			{status: 200, body: "v4", origin: 4},
			{path: "/other", status: 200, body: "v5", origin: 5},
		}},
		{name: "failed_delete_keeps_entry", handler: h, steps: []step{
			{status: 200, body: "v1", origin: 1},
			{method: http.MethodDelete, status: 500, body: "", origin: 2},
			{status: 200, body: "v1", cs: "hit", origin: 2},
		}},
	})
}

func TestHEADAndRanges(t *testing.T) {
	const body = "0123456789abcdefghij"
	h := func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("ETag", `"strong"`)
		w.Header().Set("Content-Type", "text/plain")
		if r.Method == http.MethodHead {
			w.Header().Set("X-Was-Head", "1")
		}
		io.WriteString(w, body)
	}
	noOriginHead := func(t *testing.T, res result, o *origin) {
		for _, r := range o.requests() {
			if r.Method != http.MethodGet || r.Header.Get("Range") != "" {
				t.Errorf("origin saw %s with Range %q", r.Method, r.Header.Get("Range"))
			}
		}
	}
	runRuleTests(t, []ruleTest{
		{name: "head_from_stored_get", handler: h, steps: []step{
			{status: 200, body: body, origin: 1},
			{method: http.MethodHead, status: 200, body: "", cs: "hit", origin: 1, check: func(t *testing.T, res result, _ *origin) {
				if res.header.Get("Content-Length") != "20" {
					t.Errorf("HEAD Content-Length %q", res.header.Get("Content-Length"))
				}
			}},
		}},
		{name: "head_miss_fills_with_get", handler: h, steps: []step{
			{method: http.MethodHead, status: 200, body: "", origin: 1, check: noOriginHead},
			{status: 200, body: body, cs: "hit", origin: 1},
		}},
		{name: "single_range", handler: h, steps: []step{
			{status: 200, body: body, origin: 1},
			{hdr: []string{"Range", "bytes=2-5"}, status: 206, body: "2345", cs: "hit", origin: 1, check: func(t *testing.T, res result, _ *origin) {
				if got := res.header.Get("Content-Range"); got != "bytes 2-5/20" {
					t.Errorf("Content-Range %q", got)
				}
			}},
			{hdr: []string{"Range", "bytes=-3"}, status: 206, body: "hij", origin: 1},
		}},
		{name: "range_on_miss_served_from_fill", handler: h, steps: []step{
			{hdr: []string{"Range", "bytes=10-"}, status: 206, body: "abcdefghij", origin: 1, check: noOriginHead},
			{status: 200, body: body, cs: "hit", origin: 1},
		}},
		{name: "multi_range", handler: h, steps: []step{
			{status: 200, body: body, origin: 1},
			{hdr: []string{"Range", "bytes=0-1,18-19"}, status: 206, body: "-", origin: 1, check: func(t *testing.T, res result, _ *origin) {
				mt, params, err := mime.ParseMediaType(res.header.Get("Content-Type"))
				if err != nil || mt != "multipart/byteranges" {
					t.Fatalf("Content-Type %q", res.header.Get("Content-Type"))
				}
				mr := multipart.NewReader(strings.NewReader(res.body), params["boundary"])
				var parts []string
				for {
					p, err := mr.NextPart()
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					b, _ := io.ReadAll(p)
					parts = append(parts, p.Header.Get("Content-Range")+"="+string(b)+";"+p.Header.Get("Content-Type"))
				}
				want := []string{"bytes 0-1/20=01;text/plain", "bytes 18-19/20=ij;text/plain"}
				if fmt.Sprint(parts) != fmt.Sprint(want) {
					t.Errorf("parts %q, want %q", parts, want)
				}
			}},
		}},
		{name: "if_range_mismatch_full", handler: h, steps: []step{
			{status: 200, body: body, origin: 1},
			{hdr: []string{"Range", "bytes=0-1", "If-Range", `"other"`}, status: 200, body: body, origin: 1},
			{hdr: []string{"Range", "bytes=0-1", "If-Range", `"strong"`}, status: 206, body: "01", origin: 1},
		}},
		{name: "unsatisfiable_416", handler: h, steps: []step{
			{status: 200, body: body, origin: 1},
			{hdr: []string{"Range", "bytes=30-"}, status: 416, body: "", origin: 1, check: func(t *testing.T, res result, _ *origin) {
				if got := res.header.Get("Content-Range"); got != "bytes */20" {
					t.Errorf("Content-Range %q", got)
				}
			}},
		}},
	})
}

func TestVary(t *testing.T) {
	runRuleTests(t, []ruleTest{
		{name: "variants", handler: func(w http.ResponseWriter, r *http.Request, n int64) {
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("Vary", "Accept-Language")
			fmt.Fprintf(w, "%s%d", r.Header.Get("Accept-Language"), n)
		}, steps: []step{
			{hdr: []string{"Accept-Language", "en"}, status: 200, body: "en1", origin: 1},
			{hdr: []string{"Accept-Language", "fr"}, status: 200, body: "fr2", cs: "fwd=vary-miss", origin: 2},
			{hdr: []string{"Accept-Language", "en"}, status: 200, body: "en1", cs: "hit", origin: 2},
			{hdr: []string{"Accept-Language", "fr"}, status: 200, body: "fr2", cs: "hit", origin: 2},
			{status: 200, body: "3", origin: 3},
		}},
		{name: "vary_star_never_served", handler: fixed("Cache-Control", "max-age=60", "Vary", "*"), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{status: 200, body: "v2", origin: 2},
		}},
		{name: "invalidation_drops_variants", handler: func(w http.ResponseWriter, r *http.Request, n int64) {
			if r.Method == http.MethodPut {
				w.WriteHeader(204)
				return
			}
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("Vary", "Accept-Language")
			fmt.Fprintf(w, "%s%d", r.Header.Get("Accept-Language"), n)
		}, steps: []step{
			{hdr: []string{"Accept-Language", "en"}, status: 200, body: "en1", origin: 1},
			{hdr: []string{"Accept-Language", "fr"}, status: 200, body: "fr2", origin: 2},
			{method: http.MethodPut, status: 204, body: "", origin: 3},
			{hdr: []string{"Accept-Language", "en"}, status: 200, body: "en4", origin: 4},
			{hdr: []string{"Accept-Language", "fr"}, status: 200, body: "fr5", origin: 5},
		}},
	})
}

func TestHeaderHygiene(t *testing.T) {
	runRuleTests(t, []ruleTest{
		{name: "request_and_response", handler: func(w http.ResponseWriter, r *http.Request, n int64) {
			w.Header().Set("Connection", "X-Hop")
			w.Header().Set("X-Hop", "1")
			w.Header().Set("Keep-Alive", "timeout=5")
			w.Header().Set("Cache-Status", "origin; hit")
			w.Header().Set("Cache-Control", "max-age=60")
			fmt.Fprintf(w, "v%d", n)
		}, steps: []step{
			{hdr: []string{"X-Forwarded-For", "1.2.3.4", "Forwarded", "for=1.2.3.4", "Via", "1.1 x", "X-Real-Ip", "1.2.3.4",
				"Connection", "X-Secret", "X-Secret", "s", "User-Agent", ""}, status: 200, body: "v1", origin: 1,
				check: func(t *testing.T, res result, o *origin) {
					r := o.last()
					for _, k := range []string{"X-Forwarded-For", "Forwarded", "Via", "X-Real-Ip", "X-Secret", "X-Forwarded-Host", "X-Forwarded-Proto"} {
						if v := r.Header.Get(k); v != "" {
							t.Errorf("origin saw %s: %q", k, v)
						}
					}
					if ua := r.Header.Get("User-Agent"); strings.Contains(ua, "Go-http-client") {
						t.Errorf("origin saw Go's User-Agent %q", ua)
					}
					for _, k := range []string{"X-Hop", "Keep-Alive"} {
						if v := res.header.Get(k); v != "" {
							t.Errorf("client got hop-by-hop %s: %q", k, v)
						}
					}
					// RFC 9211 §2: the upstream's member is kept, ours follows.
					if got := res.header.Values("Cache-Status"); len(got) != 2 || got[0] != "origin; hit" || !strings.HasPrefix(got[1], "test; fwd=uri-miss") {
						t.Errorf("Cache-Status %q, want the upstream's member then ours", got)
					}
				}},
			{status: 200, body: "v1", origin: 1, cs: "hit",
				check: func(t *testing.T, res result, o *origin) {
					// Stored with the response: a hit still carries it.
					if got := res.header.Values("Cache-Status"); len(got) != 2 || got[0] != "origin; hit" || !strings.HasPrefix(got[1], "test; hit") {
						t.Errorf("Cache-Status %q on a hit, want the stored upstream member then ours", got)
					}
				}},
		}},
	})
}

func TestCacheStatusOffByDefault(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Cache-Status", "origin; fwd=uri-miss")
		io.WriteString(w, "x")
	})
	tr := newTier(t, o, func(c *Cache) { c.CacheStatus = false })
	for i := 0; i < 2; i++ {
		res := tr.mustDo(t, "GET", "/a")
		if v := res.header.Values("Cache-Status"); len(v) != 0 {
			t.Errorf("request %d: Cache-Status %q sent with CacheStatus off", i, v)
		}
		if res.header.Get("Age") == "" {
			t.Errorf("request %d: no Age", i)
		}
	}
}
