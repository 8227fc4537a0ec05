package limit_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/limit"
	"github.com/onioncdn/onioncdn/upstream"
)

// Issue 16: a 1 MB request header and 10,000 header fields were accepted
// with 200. With a Limiter, requests over the size limits are refused
// before they reach the tier, and malformed bodies never do.
func TestIssue16RequestLimits(t *testing.T) {
	bigField := strings.Repeat("a", 40<<10)
	manyFields := func(n int) string {
		var b strings.Builder
		for i := range n {
			b.WriteString("X-F" + strconv.Itoa(i) + ": v\r\n")
		}
		return b.String()
	}
	tests := []struct {
		name      string
		req       string
		halfClose bool
		status    int
		closed    bool // the connection must be closed after the answer
		reached   bool // the request reaches the next handler
		reason    limit.Reason
		body      string // body the next handler must see
	}{
		{name: "ok", req: "GET / HTTP/1.1\r\nHost: t\r\n\r\n", status: 200, reached: true},
		{name: "header_1MB", req: "GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + strings.Repeat("a", 1<<20) + "\r\n\r\n",
			status: 431, closed: true},
		{name: "header_over_32KiB", req: "GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + bigField[:33<<10] + "\r\n\r\n",
			status: 431, closed: true, reason: limit.RejectHeaderBytes},
		{name: "header_fields_10000", req: "GET / HTTP/1.1\r\nHost: t\r\n" + manyFields(10000) + "\r\n",
			status: 431, closed: true},
		{name: "header_fields_150", req: "GET / HTTP/1.1\r\nHost: t\r\n" + manyFields(150) + "\r\n",
			status: 431, closed: true, reason: limit.RejectHeaderFields},
		{name: "header_fields_90", req: "GET / HTTP/1.1\r\nHost: t\r\n" + manyFields(90) + "\r\n",
			status: 200, reached: true},
		{name: "uri_9KiB", req: "GET /" + strings.Repeat("u", 9<<10) + " HTTP/1.1\r\nHost: t\r\n\r\n",
			status: 414, closed: true, reason: limit.RejectURI},
		{name: "body_ok", req: "POST /f HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
			status: 200, reached: true, body: "hello"},
		{name: "body_chunked_ok", req: "POST /f HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
			status: 200, reached: true, body: "hello", closed: true},
		{name: "body_over_limit_declared", req: "POST /f HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\nabc",
			status: 413, closed: true, reason: limit.RejectBody},
		{name: "body_over_limit_chunked", req: "POST /f HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" +
			strings.Repeat("1000\r\n"+strings.Repeat("b", 0x1000)+"\r\n", 20) + "0\r\n\r\n",
			status: 413, closed: true, reason: limit.RejectBody},
		{name: "chunk_size_overflow", req: "POST /f HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
			status: 400, closed: true, reason: limit.RejectBody},
		{name: "te_and_cl_malformed", req: "POST /f HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX\r\n0\r\n\r\n",
			status: 400, closed: true, reason: limit.RejectBody},
		// RFC 9112 §6.1: answered, and the connection closed; the bytes
		// after the chunked body (a request for /smuggled) never read.
		{name: "te_and_cl_smuggling", req: "POST /f HTTP/1.1\r\nHost: t\r\nContent-Length: 50\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n",
			status: 200, closed: true, reached: true},
		{name: "smuggled_in_trailer", req: "POST /f HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n",
			status: 400, closed: true, reason: limit.RejectBody},
		{name: "short_body", req: "POST /f HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc", halfClose: true,
			status: 400, closed: true, reason: limit.RejectBody},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			next := &counting{h: func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/smuggled" {
					t.Errorf("smuggled request served")
				}
				io.WriteString(w, "ok")
			}}
			lim := &limit.Limiter{}
			srv, open := frontCounting(t, lim, next)
			goroutines := runtimeGoroutines()
			res := raw(t, srv.Listener.Addr().String(), tc.req, tc.halfClose)
			if tc.closed {
				// The server itself lets go of the connection, promptly
				// (not after a read timeout).
				waitFor(t, "the server to close the connection", func() bool { return open.Load() == 0 })
			}
			if res.status != tc.status {
				t.Errorf("status %d, want %d", res.status, tc.status)
			}
			if tc.closed && !res.closed {
				t.Errorf("connection left open")
			}
			if got := next.n.Load() > 0; got != tc.reached {
				t.Errorf("reached next handler: %v, want %v", got, tc.reached)
			}
			if tc.reached && next.n.Load() != 1 {
				t.Errorf("next handler saw %d requests, want 1", next.n.Load())
			}
			if tc.body != "" && (len(next.bodies) != 1 || next.bodies[0] != tc.body) {
				t.Errorf("next handler saw bodies %q, want %q", next.bodies, tc.body)
			}
			if tc.reason != "" {
				if n := lim.Stats().Rejected[tc.reason]; n != 1 {
					t.Errorf("Rejected[%s] = %d, want 1 (%v)", tc.reason, n, lim.Stats().Rejected)
				}
			}
			if tc.status == 429 || tc.status == 503 {
				t.Errorf("a malformed request counted against a client's rate")
			}
			srv.Close()
			waitGoroutines(t, goroutines)
		})
	}
}

// A body read by the Limiter is passed on replayable, with its length.
func TestBodyPassedOnReplayable(t *testing.T) {
	var got *http.Request
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		b, _ := io.ReadAll(r.Body)
		rb, err := r.GetBody()
		if err != nil {
			t.Fatal(err)
		}
		b2, _ := io.ReadAll(rb)
		if string(b) != "payload" || string(b2) != "payload" {
			t.Errorf("body %q, again %q", b, b2)
		}
	})
	srv := front(t, &limit.Limiter{}, next)
	resp, err := http.Post(srv.URL, "text/plain", io.MultiReader(strings.NewReader("pay"), strings.NewReader("load")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || got == nil || got.ContentLength != 7 || len(got.TransferEncoding) != 0 {
		t.Fatalf("status %d, request %+v", resp.StatusCode, got)
	}
	if resp.Close != true {
		t.Errorf("a chunked request's connection kept open")
	}
}

// Negative values turn limits off.
func TestLimitsOff(t *testing.T) {
	next := &counting{}
	lim := &limit.Limiter{MaxHeaderFields: -1, MaxURIBytes: -1, MaxBodyBytes: -1, MaxHeaderBytes: -1}
	srv := front(t, lim, next)
	var b strings.Builder
	for i := range 300 {
		b.WriteString("X-F" + strconv.Itoa(i) + ": v\r\n")
	}
	res := raw(t, srv.Listener.Addr().String(), "POST /"+strings.Repeat("u", 9<<10)+" HTTP/1.1\r\nHost: t\r\n"+b.String()+"Content-Length: 100000\r\n\r\n"+strings.Repeat("x", 100000), false)
	if res.status != 200 || next.n.Load() != 1 || len(next.bodies[0]) != 100000 {
		t.Fatalf("status %d, reached %d", res.status, next.n.Load())
	}
}

// Through a cache forwarding a POST upstream, a chunked request still
// closes its connection after the answer, and the upstream gets the body
// with a Content-Length.
func TestChunkedRequestClosesThroughCache(t *testing.T) {
	var got atomic.Value
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.Store(fmt.Sprintf("%d %q %v", r.ContentLength, b, r.TransferEncoding))
	}))
	t.Cleanup(origin.Close)
	tr := &upstream.Transport{Upstreams: []string{origin.URL}, MinIdle: -1}
	t.Cleanup(func() { tr.Close() })
	srv := front(t, &limit.Limiter{}, &cache.Cache{Transport: tr})
	res := raw(t, srv.Listener.Addr().String(), "POST /f HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: t\r\n\r\n", false)
	if res.status != 200 || !res.closed {
		t.Fatalf("status %d closed %v", res.status, res.closed)
	}
	if g := got.Load(); g != `5 "hello" []` {
		t.Fatalf("upstream got %v", g)
	}
}
