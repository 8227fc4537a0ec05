package cache

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// headerBound is a BoundedPolicy whose bound is the Unix time in the
// response's X-Not-After field.
type headerBound struct{ PolicyFunc }

func (headerBound) NotAfter(h http.Header) time.Time {
	n, err := strconv.ParseInt(h.Get("X-Not-After"), 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.Unix(n, 0)
}

func boundedCache(c *Cache) {
	c.Policy = headerBound{func(*http.Request, *http.Response) Decision { return Decision{} }}
}

// bounded returns a handler whose responses carry a bound d after their
// Date, and the given Cache-Control; a request with If-None-Match "v1"
// gets a 304 (with a new bound), and origin requests numbered from
// failFrom on get 503 (0: never).
func bounded(cc string, d time.Duration, failFrom int64) func(http.ResponseWriter, *http.Request, int64) {
	return func(w http.ResponseWriter, r *http.Request, n int64) {
		if failFrom > 0 && n >= failFrom {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, "down")
			return
		}
		date, _ := http.ParseTime(w.Header().Get("Date"))
		w.Header().Set("X-Not-After", strconv.FormatInt(date.Add(d).Unix(), 10))
		w.Header().Set("Cache-Control", cc)
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprintf(w, "v%d", n)
	}
}

func ttlAtMost(max int) func(*testing.T, result, *origin) {
	return func(t *testing.T, res result, _ *origin) {
		t.Helper()
		cs := cacheStatus(res)
		_, v, ok := strings.Cut(cs, "ttl=")
		v, _, _ = strings.Cut(v, ";")
		ttl, err := strconv.Atoi(v)
		if !ok || err != nil || ttl > max || ttl < max-5 {
			t.Errorf("Cache-Status %q: want ttl just under %d (the bound)", cs, max)
		}
	}
}

func revalidatedWith(etag string) func(*testing.T, result, *origin) {
	return func(t *testing.T, _ result, o *origin) {
		t.Helper()
		if got := o.last().Header.Get("If-None-Match"); got != etag {
			t.Errorf("origin saw If-None-Match %q, want %q (a revalidation)", got, etag)
		}
	}
}

// A BoundedPolicy's NotAfter ends the use of a stored response, fresh or
// stale, until it is revalidated; the 304 moves the bound (issue #17: a
// signed response outliving its signature).
func TestBoundedPolicy(t *testing.T) {
	runRuleTests(t, []ruleTest{
		{name: "bound_revalidates_fresh_response", handler: bounded("max-age=3600", 10*time.Minute, 0), configure: boundedCache, steps: []step{
			{status: 200, body: "v1", cs: "fwd=uri-miss", origin: 1, check: ttlAtMost(600)},
			{advance: 5 * time.Minute, status: 200, body: "v1", cs: "hit", origin: 1, check: ttlAtMost(300)},
			{advance: 6 * time.Minute, status: 200, body: "v1", cs: "fwd=stale", origin: 2, check: revalidatedWith(`"v1"`)},
			{advance: 5 * time.Minute, status: 200, body: "v1", cs: "hit", origin: 2, check: ttlAtMost(300)},
			{advance: 6 * time.Minute, status: 200, body: "v1", cs: "fwd=stale", origin: 3, check: revalidatedWith(`"v1"`)},
		}},
		{name: "no_stale_while_revalidate_past_bound", handler: bounded("max-age=60, stale-while-revalidate=86400", 10*time.Minute, 2), configure: boundedCache, steps: []step{
			{status: 200, body: "v1", origin: 1},
			{advance: 11 * time.Minute, status: 503, body: "down", origin: 2, check: revalidatedWith(`"v1"`)},
		}},
		{name: "stale_if_error_before_bound", handler: bounded("max-age=60, stale-if-error=86400", time.Hour, 2), configure: boundedCache, steps: []step{
			{status: 200, body: "v1", origin: 1},
			{advance: 11 * time.Minute, status: 200, body: "v1", origin: 2},
		}},
		{name: "no_stale_if_error_past_bound", handler: bounded("max-age=60, stale-if-error=86400", 10*time.Minute, 2), configure: boundedCache, steps: []step{
			{status: 200, body: "v1", origin: 1},
			{advance: 11 * time.Minute, status: 503, body: "down", origin: 2},
		}},
		{name: "no_bound_without_policy", handler: bounded("max-age=3600", 10*time.Minute, 0), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{advance: 11 * time.Minute, status: 200, body: "v1", cs: "hit", origin: 1},
		}},
	})
}

// rawOrigin answers every connection with resp (a whole HTTP/1.1 response
// written as is) and closes it.
func rawOrigin(t *testing.T, resp string) (*url.URL, *atomic.Int64) {
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
				if _, err := http.ReadRequest(bufio.NewReader(conn)); err != nil {
					return
				}
				n.Add(1)
				io.WriteString(conn, resp)
			}()
		}
	}()
	return &url.URL{Scheme: "http", Host: ln.Addr().String()}, &n
}

// completeTransport marks every response body as complete at EOF, as a
// verifying transport does.
type completeTransport struct{ http.RoundTripper }

type completeBody struct{ io.ReadCloser }

func (completeBody) CompleteAtEOF() bool { return true }

func (t completeTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.RoundTripper.RoundTrip(r)
	if err == nil {
		resp.Body = completeBody{resp.Body}
	}
	return resp, err
}

// A response delimited only by the connection closing is passed through
// uncached, unless its body vouches for its end (issue #17: a cut-short
// close-delimited body was stored and later served as complete).
func TestCloseDelimitedNotStored(t *testing.T) {
	const resp = "HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nContent-Type: text/plain\r\n\r\nclose-delimited body, maybe cut short"
	for _, tc := range []struct {
		name    string
		checked bool
		origin  int64 // origin requests after two client requests
	}{
		{"unchecked_passed_through", false, 2},
		{"complete_at_eof_stored", true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u, n := rawOrigin(t, resp)
			c := &Cache{Upstream: u, CacheStatus: true, Name: "test", Logger: testLogger(t)}
			if tc.checked {
				c.Transport = completeTransport{http.DefaultTransport}
			}
			srv := &tier{c: c, srv: httptest.NewServer(c)}
			t.Cleanup(srv.srv.Close)
			for i := 0; i < 2; i++ {
				res := srv.mustDo(t, http.MethodGet, "/r")
				if res.status != 200 || !strings.HasPrefix(res.body, "close-delimited body") {
					t.Fatalf("request %d: %d %q", i, res.status, res.body)
				}
				if i == 0 {
					if err := c.Shutdown(t.Context()); err != nil {
						t.Fatal(err)
					}
				}
				t.Logf("request %d: Cache-Status %q", i, cacheStatus(res))
			}
			if got := n.Load(); got != tc.origin {
				t.Errorf("origin saw %d requests, want %d", got, tc.origin)
			}
			if st := c.Stats(); (st.Hits == 1) != tc.checked {
				t.Errorf("stats %+v: hits %d, want a hit only if the body was checked (%v)", st, st.Hits, tc.checked)
			}
		})
	}
}
