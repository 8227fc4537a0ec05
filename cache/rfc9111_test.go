package cache

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Tests for RFC 9111 rules found missing by conformance checks kept
// outside the repository (issue 13, section 3).

// TestInvalidExpiresIsExpired: RFC 9111 §5.3, "A cache recipient MUST
// interpret invalid date formats ... as representing a time in the past".
// Only RFC 9110 §5.6.7 HTTP-dates are valid (GMT accepted in any case).
func TestInvalidExpiresIsExpired(t *testing.T) {
	expires := func(layout string) func(http.ResponseWriter, *http.Request, int64) {
		return func(w http.ResponseWriter, r *http.Request, n int64) {
			w.Header().Set("Expires", time.Now().Add(3*time.Hour).UTC().Format(layout))
			fmt.Fprintf(w, "v%d", n)
		}
	}
	runRuleTests(t, []ruleTest{
		{name: "one_digit_hour", handler: fixed("Expires", "Sun, 06 Nov 2050 8:49:37 GMT"), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{status: 200, body: "v2", origin: 2},
		}},
		{name: "two_digit_hour", handler: fixed("Expires", "Sun, 06 Nov 2050 08:49:37 GMT"), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{status: 200, body: "v1", cs: "hit", origin: 1},
		}},
		{name: "extra_spaces", handler: expires("Mon, 02  Jan  2006 15:04:05 GMT"), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{status: 200, body: "v2", origin: 2},
		}},
		{name: "other_zone", handler: expires("Monday, 02-Jan-06 15:04:05 PST"), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{status: 200, body: "v2", origin: 2},
		}},
		{name: "valid_imf_fixdate", handler: expires(http.TimeFormat), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{status: 200, body: "v1", cs: "hit", origin: 1},
		}},
		{name: "lower_case_gmt_accepted", handler: expires("Mon, 02 Jan 2006 15:04:05 gmt"), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{status: 200, body: "v1", cs: "hit", origin: 1},
		}},
		{name: "obsolete_formats_accepted", handler: expires("Monday, 02-Jan-06 15:04:05 GMT"), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{status: 200, body: "v1", cs: "hit", origin: 1},
		}},
		{name: "asctime_accepted", handler: expires(time.ANSIC), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{status: 200, body: "v1", cs: "hit", origin: 1},
		}},
	})
}

// TestStoredHeaderFields: response header fields are stored and replayed
// as received (RFC 9111 §3.1), including unusual ones on a 200; only the
// hop-by-hop fields and those named by Connection are dropped (§3.1, RFC
// 9110 §7.6.1).
func TestStoredHeaderFields(t *testing.T) {
	kept := [][2]string{
		{"Content-Range", "bytes 0-1/2"}, // unusual on a 200, but the origin sent it
		{"Test-Header", "a"},
		{"X-Test-Header", "b"},
		{"Content-Type", "text/plain"},
		{"X-Frame-Options", "deny"},
		{"X-Xss-Protection", "1"},
		{"Clear-Site-Data", `"cookies"`},
		{"Public-Key-Pins", "x"},
		{"Strict-Transport-Security", "max-age=1"},
		{"Strict-Transport-Security2", "y"},
		{"Www-Authenticate", "Basic"},
		{"Link", "</s.css>; rel=preload"},
		{"C", "3"},
	}
	// Proxy-Authenticate and Proxy-Authentication-Info are for the next
	// client only and MUST NOT be stored (RFC 9111 §3.1).
	dropped := []string{"Connection", "A", "B", "Keep-Alive", "Upgrade", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authentication-Info"}
	check := func(t *testing.T, res result, _ *origin) {
		t.Helper()
		for _, f := range kept {
			if got := res.header.Values(f[0]); !slices.Equal(got, []string{f[1]}) {
				t.Errorf("%s = %q, want %q as received", f[0], got, f[1])
			}
		}
		for _, k := range dropped {
			if v, ok := res.header[k]; ok {
				t.Errorf("%s = %q replayed; it is hop-by-hop or named by Connection", k, v)
			}
		}
	}
	runRuleTests(t, []ruleTest{{name: "replayed_as_received", handler: func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "max-age=3600")
		for _, f := range kept {
			w.Header().Set(f[0], f[1])
		}
		w.Header().Set("Connection", "a, b")
		w.Header().Set("A", "1")
		w.Header().Set("B", "2")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("Upgrade", "h2c")
		w.Header().Set("Proxy-Connection", "keep-alive")
		w.Header().Set("Proxy-Authenticate", "Basic")
		w.Header().Set("Proxy-Authentication-Info", "nextnonce=x")
		io.WriteString(w, "xy")
	}, steps: []step{
		{status: 200, body: "xy", origin: 1, check: check},
		{status: 200, body: "xy", cs: "hit", origin: 1, check: check},
		{method: http.MethodHead, status: 200, body: "", cs: "hit", origin: 1, check: check},
	}}})
}

// TestStoredContentRangeAndRanges: a Content-Range stored with a 200 does
// not leak into the responses the cache makes from it: a 206 carries its
// own, a multipart/byteranges response none at the top level (RFC 9110
// §14.6), a 304 none.
func TestStoredContentRangeAndRanges(t *testing.T) {
	h := func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("ETag", `"e"`)
		w.Header().Set("Content-Range", "bytes 0-9/10")
		io.WriteString(w, "0123456789")
	}
	want := func(cr string) func(*testing.T, result, *origin) {
		return func(t *testing.T, res result, _ *origin) {
			t.Helper()
			if got := res.header.Values("Content-Range"); !slices.Equal(got, []string{cr}) && !(cr == "" && len(got) == 0) {
				t.Errorf("Content-Range %q, want %q", got, cr)
			}
		}
	}
	runRuleTests(t, []ruleTest{{name: "ranges", handler: h, steps: []step{
		{status: 200, body: "0123456789", origin: 1, check: want("bytes 0-9/10")},
		{hdr: []string{"Range", "bytes=2-3"}, status: 206, body: "23", origin: 1, check: want("bytes 2-3/10")},
		{hdr: []string{"Range", "bytes=0-0,5-5"}, status: 206, body: "-", origin: 1, check: want("")},
		{hdr: []string{"If-None-Match", `"e"`}, status: 304, body: "", origin: 1, check: want("")},
		{hdr: []string{"Range", "bytes=20-"}, status: 416, body: "", origin: 1, check: want("bytes */10")},
	}}})
}

// rawMethodOrigin serves every request with the raw bytes resp(method), then
// closes the connection if close is set.
func rawMethodOrigin(t *testing.T, resp func(method string) string, close bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					if _, err := io.WriteString(c, resp(req.Method)); err != nil || close {
						return
					}
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// TestTransferEncodingNever502: a valid upstream response that uses
// Transfer-Encoding is served, stored and replayed (RFC 9112 §6.1, §7.1),
// in handler and RoundTrip mode. A request from the cache never carries
// TE, so chunked is the only transfer coding a valid response to it can
// use (RFC 9112 §7.4: "If the TE field value is empty or if no TE field
// is present, the only acceptable transfer coding is chunked").
func TestTransferEncodingNever502(t *testing.T) {
	const cc = "Cache-Control: max-age=60\r\n"
	tests := []struct {
		name   string
		head   string // status line and fields, without the final CRLF
		body   string // after the head's blank line
		close  bool   // the origin closes after the response
		status int
		want   string // body the client receives
	}{
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n" + cc, "5\r\nhello\r\n0\r\n\r\n", false, 200, "hello"},
		{"chunked_upper_case", "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n" + cc, "5\r\nhello\r\n0\r\n\r\n", false, 200, "hello"},
		{"chunked_several_chunks", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n" + cc, "2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n", false, 200, "hello"},
		{"chunk_extensions", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n" + cc, "5;name=value\r\nhello\r\n0;x\r\n\r\n", false, 200, "hello"},
		{"trailer_section", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n" + cc, "5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n", false, 200, "hello"},
		{"chunked_with_content_length", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n" + cc, "5\r\nhello\r\n0\r\n\r\n", true, 200, "hello"},
		{"chunked_empty_body", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n" + cc, "0\r\n\r\n", false, 200, ""},
		{"chunked_404", "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n" + cc, "5\r\nhello\r\n0\r\n\r\n", false, 404, "hello"},
		{"chunked_uncacheable", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nCache-Control: no-store\r\n", "5\r\nhello\r\n0\r\n\r\n", false, 200, "hello"},
		{"204_with_transfer_encoding", "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n" + cc, "", false, 204, ""},
		{"http10_ignores_transfer_encoding", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n" + cc, "hello", true, 200, "hello"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u, _ := url.Parse(rawMethodOrigin(t, func(method string) string {
				if method == http.MethodHead {
					return tt.head + "\r\n"
				}
				return tt.head + "\r\n" + tt.body
			}, tt.close))
			c := &Cache{Upstream: u, Logger: testLogger(t)}
			srv := httptest.NewServer(c)
			defer srv.Close()
			for i, m := range []string{"GET", "GET", "HEAD"} {
				req, _ := http.NewRequest(m, srv.URL+"/x", nil)
				resp, err := srv.Client().Do(req)
				if err != nil {
					t.Fatalf("%s %d: %v", m, i, err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != tt.status || (m == "GET" && string(b) != tt.want) {
					t.Errorf("%s %d: %d %q %v; want %d %q", m, i, resp.StatusCode, b, err, tt.status, tt.want)
				}
				if err := c.Shutdown(t.Context()); err != nil {
					t.Fatal(err)
				}
			}
			// RoundTrip mode.
			rt := &Cache{Upstream: u}
			req, _ := http.NewRequest("GET", "http://example.com/x", nil)
			resp, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatalf("RoundTrip: %v", err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != tt.status || string(b) != tt.want {
				t.Errorf("RoundTrip: %d %q %v; want %d %q", resp.StatusCode, b, err, tt.status, tt.want)
			}
		})
	}
}

// TestTransferEncodingOnRevalidationAndHEAD: a 304 and a response to HEAD
// may carry Transfer-Encoding without a body (RFC 9112 §6.1).
func TestTransferEncodingOnRevalidationAndHEAD(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=10, public")
		w.Header().Set("ETag", `"e"`)
		if r.Header.Get("If-None-Match") == `"e"` || r.Method == http.MethodHead {
			// Hijack to send a body-less response that declares chunked.
			hj, _ := w.(http.Hijacker)
			conn, buf, _ := hj.Hijack()
			defer conn.Close()
			status := "304 Not Modified"
			if r.Method == http.MethodHead {
				status = "200 OK"
			}
			fmt.Fprintf(buf, "HTTP/1.1 %s\r\nTransfer-Encoding: chunked\r\nETag: \"e\"\r\nCache-Control: max-age=10, public\r\nConnection: close\r\n\r\n", status)
			buf.Flush()
			return
		}
		io.WriteString(w, "body")
	})
	tr := newTier(t, o, nil)
	if res := tr.mustDo(t, "GET", "/r"); res.status != 200 || res.body != "body" {
		t.Fatalf("first GET: %d %q", res.status, res.body)
	}
	tr.c.Shutdown(t.Context())
	tr.clock.Advance(time.Minute)
	if res := tr.mustDo(t, "GET", "/r"); res.status != 200 || res.body != "body" || !strings.Contains(cacheStatus(res), "fwd-status=304") {
		t.Errorf("revalidated GET: %d %q %q", res.status, res.body, cacheStatus(res))
	}
	// HEAD with Authorization goes upstream as HEAD.
	if res := tr.mustDo(t, "HEAD", "/r", "Authorization", "Bearer x"); res.status != 200 {
		t.Errorf("HEAD: %d", res.status)
	}
}

// TestTransferCodingNotAcceptable pins what happens to a response with a
// transfer coding other than chunked: the cache never sends TE, so such a
// response is not acceptable (RFC 9112 §7.4) and net/http's transport
// refuses it; the client gets the ErrorHandler's 502, never a body the
// cache could not decode.
func TestTransferCodingNotAcceptable(t *testing.T) {
	u, _ := url.Parse(rawMethodOrigin(t, func(string) string {
		return "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nCache-Control: max-age=60\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
	}, false))
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {})
	tr := newTier(t, o, func(c *Cache) { c.Upstream = u })
	if res := tr.mustDo(t, "GET", "/x"); res.status != http.StatusBadGateway || res.body != "" {
		t.Errorf("got %d %q, want 502 without a body", res.status, res.body)
	}
	if te := o.last(); te != nil {
		t.Errorf("unexpected request to the placeholder origin")
	}
}

// TestQualifiedNoCache: with no-cache="field" the response is stored and
// reused, but the named fields "MUST NOT be sent in the response to a
// subsequent request without successful revalidation" (RFC 9111
// §5.2.2.4).
func TestQualifiedNoCache(t *testing.T) {
	has := func(want bool) func(*testing.T, result, *origin) {
		return func(t *testing.T, res result, _ *origin) {
			t.Helper()
			if got := res.header.Get("X-A") != ""; got != want {
				t.Errorf("X-A present %v, want %v", got, want)
			}
			if res.header.Get("X-B") != "2" || res.header.Get("X-C") != "" && want {
				t.Errorf("X-B %q, X-C %q", res.header.Get("X-B"), res.header.Get("X-C"))
			}
		}
	}
	h := func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Add("Cache-Control", `no-cache="X-A, x-c"`)
		w.Header().Add("Cache-Control", "max-age=3600, stale-if-error=3600")
		w.Header().Set("ETag", `"e"`)
		w.Header().Set("X-A", "1")
		w.Header().Set("X-B", "2")
		if n == 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if r.Header.Get("If-None-Match") == `"e"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprintf(w, "v%d", n)
	}
	runRuleTests(t, []ruleTest{{name: "fields_only_after_validation", handler: h, steps: []step{
		{status: 200, body: "v1", origin: 1, check: has(true)},
		{status: 200, body: "v1", cs: "hit", origin: 1, check: has(false)},
		{method: http.MethodHead, status: 200, body: "", cs: "hit", origin: 1, check: has(false)},
		{hdr: []string{"If-None-Match", `"e"`}, status: 304, body: "", cs: "hit", origin: 1, check: has(false)},
		{hdr: []string{"Cache-Control", "no-cache"}, status: 200, body: "v1", cs: "fwd=stale; fwd-status=304", origin: 2, check: has(true)},
		{status: 200, body: "v1", cs: "hit", origin: 2, check: has(false)},
		// Stale, validation fails: served under stale-if-error, without X-A.
		{advance: 90 * time.Minute, status: 200, body: "v1", cs: "hit", origin: 3, check: has(false)},
	}}})
}

// TestQualifiedPrivate: with private="field" a shared cache "MUST NOT
// store the listed header fields ... but MAY store the remainder of the
// response message without those fields" (RFC 9111 §5.2.2.7). The client
// whose request fetched the response still gets them.
func TestQualifiedPrivate(t *testing.T) {
	user := func(want string) func(*testing.T, result, *origin) {
		return func(t *testing.T, res result, _ *origin) {
			t.Helper()
			if got := res.header.Get("X-User"); got != want {
				t.Errorf("X-User %q, want %q", got, want)
			}
			if res.header.Get("X-Shared") != "s" {
				t.Errorf("X-Shared %q, want s", res.header.Get("X-Shared"))
			}
		}
	}
	h := func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", `private="X-User", max-age=10`)
		w.Header().Set("ETag", `"e"`)
		w.Header().Set("X-User", fmt.Sprintf("u%d", n))
		w.Header().Set("X-Shared", "s")
		if r.Header.Get("If-None-Match") == `"e"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprintf(w, "v%d", n)
	}
	cookie := func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", `max-age=60, private="Set-Cookie"`)
		w.Header().Set("Set-Cookie", fmt.Sprintf("id=%d", n))
		fmt.Fprintf(w, "v%d", n)
	}
	cookieIs := func(want string) func(*testing.T, result, *origin) {
		return func(t *testing.T, res result, _ *origin) {
			t.Helper()
			if got := res.header.Get("Set-Cookie"); got != want {
				t.Errorf("Set-Cookie %q, want %q", got, want)
			}
		}
	}
	runRuleTests(t, []ruleTest{
		{name: "stored_without_fields", handler: h, steps: []step{
			{status: 200, body: "v1", origin: 1, check: user("u1")},
			{status: 200, body: "v1", cs: "hit", origin: 1, check: user("")},
			{method: http.MethodHead, status: 200, body: "", cs: "hit", origin: 1, check: user("")},
			// A 304 with the field: the client that revalidated gets it,
			// the stored response does not.
			{advance: 20 * time.Second, status: 200, body: "v1", cs: "fwd=stale; fwd-status=304", origin: 2, check: user("u2")},
			{status: 200, body: "v1", cs: "hit", origin: 2, check: user("")},
		}},
		{name: "set_cookie_stored_without_it", handler: cookie, steps: []step{
			{status: 200, body: "v1", origin: 1, check: cookieIs("id=1")},
			{status: 200, body: "v1", cs: "hit", origin: 1, check: cookieIs("")},
		}},
	})
}

// TestQualifiedPrivateNotCollapsed: a client that joins the fill of a
// private="field" response does not get the fields meant for the client
// whose request fetched it.
func TestQualifiedPrivateNotCollapsed(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	first, second := gatedBody()
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", `max-age=600, private="X-User"`)
		w.Header().Set("X-User", "leader")
		w.Header().Set("Content-Length", fmt.Sprint(2*chunk))
		w.Write(first)
		http.NewResponseController(w).Flush()
		<-gate
		w.Write(second)
	})
	tr := newTier(t, o, nil)
	firsts := make(chan struct{}, 2)
	done := make(chan result, 2)
	startClient(t.Context(), tr, "/obj", firsts, done)
	waitN(t, firsts, 1, "the leader's first bytes")
	startClient(t.Context(), tr, "/obj", firsts, done)
	waitN(t, firsts, 1, "the follower's first bytes")
	close(gate)
	var leaders, followers int
	for i := 0; i < 2; i++ {
		res := <-done
		if res.err != nil || res.status != 200 || len(res.body) != 2*chunk {
			t.Fatalf("client: %d %v, %d bytes", res.status, res.err, len(res.body))
		}
		switch u := res.header.Get("X-User"); {
		case strings.Contains(cacheStatus(res), "collapsed") && u == "":
			followers++
		case !strings.Contains(cacheStatus(res), "collapsed") && u == "leader":
			leaders++
		default:
			t.Errorf("Cache-Status %q with X-User %q", cacheStatus(res), u)
		}
	}
	if leaders != 1 || followers != 1 || o.count.Load() != 1 {
		t.Errorf("%d leaders, %d followers, %d origin requests; want 1, 1, 1", leaders, followers, o.count.Load())
	}
}

// interimOrigin sends 103 Early Hints and 102 Processing before a
// storable 200, as the origin of TestInterimResponses.
func interimOrigin(t *testing.T) *origin {
	return newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</s.css>; rel=preload; as=style")
		w.Header().Set("X-Hint", "early")
		w.WriteHeader(http.StatusEarlyHints)
		delete(w.Header(), "Link") // net/http keeps a 1xx's fields for the final response
		delete(w.Header(), "X-Hint")
		w.WriteHeader(http.StatusProcessing)
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "final")
	})
}

type interim struct {
	code   int
	header http.Header
}

// getWithTrace sends GET url with a trace recording the interim responses.
func getWithTrace(t *testing.T, client *http.Client, url string, hdr ...string) (result, []interim) {
	t.Helper()
	var got []interim
	ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			got = append(got, interim{code, http.Header(h).Clone()})
			return nil
		},
	})
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return result{status: resp.StatusCode, header: resp.Header, body: string(b)}, got
}

// TestInterimResponses: a proxy "MUST forward 1xx responses unless the
// proxy itself requested the generation of the 1xx response" (RFC 9110
// §15.2); they are never stored (RFC 9111 §3: only final responses), and
// a 103's fields are not part of the final response (RFC 8297 §2).
func TestInterimResponses(t *testing.T) {
	o := interimOrigin(t)
	tr := newTier(t, o, nil)
	// A middleware in front of the cache sets a field of its own.
	mw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Middleware", "1")
		tr.c.ServeHTTP(w, r)
	}))
	t.Cleanup(mw.Close)

	res, got := getWithTrace(t, mw.Client(), mw.URL+"/r")
	if res.status != 200 || res.body != "final" {
		t.Fatalf("final response %d %q", res.status, res.body)
	}
	if len(got) != 2 || got[0].code != 103 || got[1].code != 102 {
		t.Fatalf("interim responses %+v, want 103 then 102", got)
	}
	if got[0].header.Get("Link") != "</s.css>; rel=preload; as=style" || got[0].header.Get("X-Hint") != "early" {
		t.Errorf("103 fields %v", got[0].header)
	}
	if got[0].header.Get("X-Middleware") != "" || got[1].header.Get("Link") != "" {
		t.Errorf("interim responses carry fields that are not theirs: %+v", got)
	}
	if res.header.Get("Link") != "" || res.header.Get("X-Hint") != "" {
		t.Errorf("final response carries the 103's fields: %v", res.header)
	}
	if res.header.Get("X-Middleware") != "1" {
		t.Errorf("final response lost the middleware's field: %v", res.header)
	}
	tr.c.Shutdown(t.Context())

	// The stored response has neither the 1xx nor their fields.
	res, got = getWithTrace(t, mw.Client(), mw.URL+"/r")
	if res.body != "final" || !strings.HasPrefix(cacheStatus(res), "hit") || len(got) != 0 || res.header.Get("Link") != "" {
		t.Errorf("hit: %q %q, interim %+v, Link %q", res.body, cacheStatus(res), got, res.header.Get("Link"))
	}
	if n := o.count.Load(); n != 1 {
		t.Errorf("origin saw %d requests, want 1", n)
	}
}

// TestInterimResponsesRoundTrip: in RoundTrip mode the 1xx responses go to
// the caller's httptrace.ClientTrace, like http.Transport's.
func TestInterimResponsesRoundTrip(t *testing.T) {
	o := interimOrigin(t)
	u, _ := url.Parse(o.URL)
	c := &Cache{Upstream: u}
	res, got := getWithTrace(t, &http.Client{Transport: c}, "http://example.com/r")
	if res.status != 200 || res.body != "final" || len(got) != 2 || got[0].code != 103 || got[0].header.Get("Link") == "" {
		t.Errorf("RoundTrip: %d %q, interim %+v", res.status, res.body, got)
	}
	if res.header.Get("Link") != "" {
		t.Errorf("final response carries the 103's fields: %v", res.header)
	}
}

// TestInterimResponsesNotToHTTP10: "A server MUST NOT send a 1xx response
// to an HTTP/1.0 client" (RFC 9110 §15.2).
func TestInterimResponsesNotToHTTP10(t *testing.T) {
	tr := newTier(t, interimOrigin(t), nil)
	conn, err := net.Dial("tcp", tr.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /r HTTP/1.0\r\nHost: example.com\r\n\r\n")
	b, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "HTTP/1.0 200 ") || !strings.HasSuffix(string(b), "final") {
		t.Errorf("HTTP/1.0 client got %q", b)
	}
}

// TestInterimAfterClientLeft: a 1xx that arrives after the client that
// started the fill went away is dropped (the handler has returned), and
// a client collapsed on the fill gets none (run with -race).
func TestInterimAfterClientLeft(t *testing.T) {
	gate := make(chan struct{})
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</a.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		<-gate
		w.WriteHeader(http.StatusEarlyHints)
		delete(w.Header(), "Link")
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "final")
	})
	tr := newTier(t, o, nil)
	ctx, cancel := context.WithCancel(t.Context())
	got := make(chan int, 4)
	trace := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		Got1xxResponse: func(code int, _ textproto.MIMEHeader) error {
			got <- code
			return nil
		},
	})
	req, _ := http.NewRequestWithContext(trace, http.MethodGet, tr.srv.URL+"/r", nil)
	errc := make(chan error, 1)
	go func() {
		resp, err := tr.srv.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	select {
	case code := <-got:
		if code != http.StatusEarlyHints {
			t.Fatalf("first interim response %d", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no 103 forwarded")
	}
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("the cancelled request succeeded")
	}
	// A second client collapses on the fill, then the origin goes on.
	done := make(chan struct{})
	var res result
	var interims []interim
	go func() {
		defer close(done)
		res, interims = getWithTrace(t, tr.srv.Client(), tr.srv.URL+"/r")
	}()
	time.Sleep(50 * time.Millisecond) // let it join the flight
	close(gate)
	<-done
	if res.status != 200 || res.body != "final" || len(interims) != 0 {
		t.Errorf("collapsed client: %d %q, interim %+v", res.status, res.body, interims)
	}
	if n := o.count.Load(); n != 1 {
		t.Errorf("origin saw %d requests, want 1", n)
	}
}

// TestHEADUpdatesStoredGET: a 200 response to a HEAD the cache sent
// upstream (a HEAD with Authorization goes upstream as HEAD) updates the
// stored GET response's fields and freshness when its validators match,
// and makes it stale otherwise (RFC 9111 §4.3.5; stale here means removed).
func TestHEADUpdatesStoredGET(t *testing.T) {
	// headVariant returns an origin whose GET responses are stored for
	// 10 s and whose HEAD responses carry the given fields.
	headVariant := func(head ...string) func(http.ResponseWriter, *http.Request, int64) {
		return func(w http.ResponseWriter, r *http.Request, n int64) {
			w.Header().Set("X-N", fmt.Sprint(n))
			if r.Method == http.MethodHead {
				for i := 0; i+1 < len(head); i += 2 {
					w.Header().Set(head[i], head[i+1])
				}
				return
			}
			w.Header().Set("Cache-Control", "public, max-age=10")
			w.Header().Set("ETag", `"e"`)
			w.Header().Set("Content-Length", "2")
			io.WriteString(w, "v1")
		}
	}
	xn := func(want string) func(*testing.T, result, *origin) {
		return func(t *testing.T, res result, _ *origin) {
			t.Helper()
			if got := res.header.Get("X-N"); got != want {
				t.Errorf("X-N %q, want %q", got, want)
			}
		}
	}
	auth := []string{"Authorization", "Bearer x"}
	runRuleTests(t, []ruleTest{
		{name: "matching_etag_updates", handler: headVariant("ETag", `"e"`, "Content-Length", "2", "Cache-Control", "public, max-age=1000"), steps: []step{
			{status: 200, body: "v1", origin: 1, check: xn("1")},
			{advance: 20 * time.Second, method: http.MethodHead, hdr: auth, status: 200, body: "", cs: "fwd=request", origin: 2, check: xn("2")},
			// Fresh again (max-age=1000 from the HEAD), with its fields.
			{advance: 100 * time.Second, status: 200, body: "v1", cs: "hit", origin: 2, check: xn("2")},
		}},
		{name: "fresh_entry_updated_too", handler: headVariant("ETag", `"e"`, "Cache-Control", "public, max-age=1000"), steps: []step{
			{status: 200, body: "v1", origin: 1, check: xn("1")},
			{method: http.MethodHead, hdr: auth, status: 200, body: "", origin: 2, check: xn("2")},
			{status: 200, body: "v1", cs: "hit", origin: 2, check: xn("2")},
		}},
		{name: "other_etag_makes_stale", handler: headVariant("ETag", `"f"`, "Cache-Control", "public, max-age=1000"), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{method: http.MethodHead, hdr: auth, status: 200, body: "", origin: 2},
			{status: 200, body: "v1", cs: "fwd=uri-miss", origin: 3, check: xn("3")},
		}},
		{name: "other_length_makes_stale", handler: headVariant("ETag", `"e"`, "Content-Length", "3"), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{method: http.MethodHead, hdr: auth, status: 200, body: "", origin: 2},
			{status: 200, body: "v1", cs: "fwd=uri-miss", origin: 3},
		}},
		{name: "no_validator_makes_stale", handler: headVariant("Cache-Control", "public, max-age=1000"), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{method: http.MethodHead, hdr: auth, status: 200, body: "", origin: 2},
			{status: 200, body: "v1", cs: "fwd=uri-miss", origin: 3},
		}},
		{name: "head_adding_private_removes", handler: headVariant("ETag", `"e"`, "Cache-Control", "private"), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{method: http.MethodHead, hdr: auth, status: 200, body: "", origin: 2},
			{status: 200, body: "v1", cs: "fwd=uri-miss", origin: 3},
		}},
		{name: "authorized_head_needs_public", handler: headVariant("ETag", `"e"`, "Cache-Control", "max-age=1000", "X-User", "alice"), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{method: http.MethodHead, hdr: auth, status: 200, body: "", origin: 2},
			// The authorized response is not shareable: never merged.
			{status: 200, body: "v1", cs: "fwd=uri-miss", origin: 3, check: func(t *testing.T, res result, _ *origin) {
				if res.header.Get("X-User") != "" {
					t.Errorf("an authorized HEAD response's field reached another client")
				}
			}},
		}},
		{name: "request_no_store_touches_nothing", handler: headVariant("ETag", `"f"`), steps: []step{
			{status: 200, body: "v1", origin: 1},
			{method: http.MethodHead, hdr: []string{"Cache-Control", "no-store"}, status: 200, body: "", origin: 2},
			{status: 200, body: "v1", cs: "hit", origin: 2, check: xn("1")},
		}},
	})
}

// refusingStore is a MemoryStore whose Create always fails (a full disk).
type refusingStore struct{ *MemoryStore }

func (refusingStore) Create(context.Context, string, []byte) (Writer, error) {
	return nil, errors.New("disk full")
}

// TestQualifiedPrivateStoreRefuses: when the store refuses the response,
// the client that fetched it gets all of it, the private fields included.
func TestQualifiedPrivateStoreRefuses(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", `max-age=60, private="X-User"`)
		w.Header().Set("X-User", "alice")
		io.WriteString(w, "v")
	})
	tr := newTier(t, o, func(c *Cache) { c.Store = refusingStore{&MemoryStore{}} })
	if res := tr.mustDo(t, "GET", "/r"); res.status != 200 || res.body != "v" || res.header.Get("X-User") != "alice" {
		t.Errorf("got %d %q, X-User %q; want the whole response", res.status, res.body, res.header.Get("X-User"))
	}
}

// TestInterimNotFromBackgroundRevalidation: in RoundTrip mode the 1xx of
// a stale-while-revalidate refresh, which runs after RoundTrip returned,
// do not reach the ClientTrace of the request that triggered it.
func TestInterimNotFromBackgroundRevalidation(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</a.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		delete(w.Header(), "Link")
		w.Header().Set("Cache-Control", "max-age=10, stale-while-revalidate=600")
		io.WriteString(w, "v")
	})
	u, _ := url.Parse(o.URL)
	clk := newClock()
	c := &Cache{Upstream: u, Now: clk.Now}
	client := &http.Client{Transport: c}
	if _, got := getWithTrace(t, client, "http://example.com/r"); len(got) != 1 {
		t.Fatalf("miss: %d interim responses, want 1", len(got))
	}
	c.Shutdown(t.Context())
	clk.Advance(time.Minute)
	var mu sync.Mutex
	late := 0
	ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{
		Got1xxResponse: func(int, textproto.MIMEHeader) error {
			mu.Lock()
			late++
			mu.Unlock()
			return nil
		},
	})
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://example.com/r", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err := c.Shutdown(t.Context()); err != nil { // the background revalidation
		t.Fatal(err)
	}
	if n := o.count.Load(); n != 2 {
		t.Fatalf("origin saw %d requests, want 2 (the background revalidation)", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if late != 0 {
		t.Errorf("the stale hit's trace got %d interim responses of the background revalidation", late)
	}
}

// TestInterimBehindTimeoutHandler: a ResponseWriter that buffers the
// response (http.TimeoutHandler's) cannot send a 1xx ahead of it, and
// would take the 1xx for the final status: no 1xx is forwarded to it.
func TestInterimBehindTimeoutHandler(t *testing.T) {
	tr := newTier(t, interimOrigin(t), nil)
	srv := httptest.NewServer(http.TimeoutHandler(tr.c, 30*time.Second, "timeout"))
	t.Cleanup(srv.Close)
	res, got := getWithTrace(t, srv.Client(), srv.URL+"/r")
	if res.status != 200 || res.body != "final" || len(got) != 0 {
		t.Errorf("got %d %q, interim %+v; want 200 final without interim responses", res.status, res.body, got)
	}
}
