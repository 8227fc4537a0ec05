package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const chunk = 64 << 10

// gatedBody returns the two halves of a test object.
func gatedBody() (first, second []byte) {
	first = bytes.Repeat([]byte("a"), chunk)
	second = bytes.Repeat([]byte("b"), chunk)
	return first, second
}

// gatedHandler sends the first half of the object, then waits for gate
// before sending the second half (or failing, if fail reports true for this
// request number).
func gatedHandler(gate <-chan struct{}, fail func(n int64) bool) func(http.ResponseWriter, *http.Request, int64) {
	first, second := gatedBody()
	return func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Length", strconv.Itoa(2*chunk))
		w.Write(first)
		http.NewResponseController(w).Flush()
		<-gate
		if fail != nil && fail(n) {
			panic(http.ErrAbortHandler) // connection cut mid-body
		}
		w.Write(second)
	}
}

func newCountingOrigin(t *testing.T, h func(http.ResponseWriter, *http.Request, int64)) *origin {
	var o *origin
	o = newOrigin(t, func(w http.ResponseWriter, r *http.Request) { h(w, r, o.count.Load()) })
	return o
}

// startClient sends GET path and reports on first once the first half of
// the body arrived, then returns the rest of the result on done.
func startClient(ctx context.Context, tr *tier, path string, first chan<- struct{}, done chan<- result) {
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tr.srv.URL+path, nil)
		resp, err := tr.srv.Client().Do(req)
		if err != nil {
			first <- struct{}{}
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		buf := make([]byte, chunk)
		_, err = io.ReadFull(resp.Body, buf)
		first <- struct{}{}
		if err != nil {
			done <- result{status: resp.StatusCode, err: err}
			return
		}
		rest, err := io.ReadAll(resp.Body)
		done <- result{status: resp.StatusCode, header: resp.Header, body: string(buf) + string(rest), err: err}
	}()
}

func waitN(t *testing.T, ch <-chan struct{}, n int, what string) {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for i := 0; i < n; i++ {
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("timed out waiting for %s (%d of %d)", what, i, n)
		}
	}
}

// TestCollapseStreamsToWaiters proves that 50 concurrent clients cost one
// upstream request and all receive the first bytes while the origin is
// still holding back the rest of the body.
func TestCollapseStreamsToWaiters(t *testing.T) {
	t.Parallel()
	const n = 50
	gate := make(chan struct{})
	o := newCountingOrigin(t, gatedHandler(gate, nil))
	tr := newTier(t, o, nil)
	tr.srv.Client().Transport.(*http.Transport).MaxIdleConnsPerHost = n
	first := make(chan struct{}, n)
	done := make(chan result, n)
	for i := 0; i < n; i++ {
		startClient(t.Context(), tr, "/obj", first, done)
	}
	// Every client has the first half while the origin still blocks.
	waitN(t, first, n, "first bytes of every client")
	close(gate)
	a, b := gatedBody()
	want := string(a) + string(b)
	var collapsed int
	for i := 0; i < n; i++ {
		res := <-done
		if res.err != nil || res.status != 200 || res.body != want {
			t.Fatalf("client: status %d err %v body len %d", res.status, res.err, len(res.body))
		}
		if cacheStatus(res) != "" && bytes.Contains([]byte(cacheStatus(res)), []byte("collapsed")) {
			collapsed++
		}
	}
	if got := o.count.Load(); got != 1 {
		t.Errorf("origin saw %d requests, want 1", got)
	}
	if collapsed != n-1 {
		t.Errorf("%d responses marked collapsed, want %d", collapsed, n-1)
	}
	tr.c.Shutdown(t.Context())
	st := tr.c.Stats()
	if st.Misses != 1 || st.Collapsed != n-1 || st.BytesFetched != 2*chunk {
		t.Errorf("stats %+v", st)
	}
	if res := tr.mustDo(t, "GET", "/obj"); res.body != want || cacheStatus(res)[:3] != "hit" {
		t.Errorf("after the fill: %q, body ok %v", cacheStatus(res), res.body == want)
	}
}

// TestCollapseUpstreamFailsMidBody: every client that started is aborted,
// nothing is stored, and the next request fetches again.
func TestCollapseUpstreamFailsMidBody(t *testing.T) {
	t.Parallel()
	const n = 10
	gate := make(chan struct{})
	o := newCountingOrigin(t, gatedHandler(gate, func(n int64) bool { return n == 1 }))
	tr := newTier(t, o, nil)
	first := make(chan struct{}, n)
	done := make(chan result, n)
	for i := 0; i < n; i++ {
		startClient(t.Context(), tr, "/obj", first, done)
	}
	waitN(t, first, n, "first bytes")
	close(gate)
	for i := 0; i < n; i++ {
		res := <-done
		if res.err == nil {
			t.Fatalf("client got a complete-looking body of %d bytes from a failed fill", len(res.body))
		}
	}
	tr.c.Shutdown(t.Context())
	if got := o.count.Load(); got != 1 {
		t.Errorf("origin saw %d requests, want 1", got)
	}
	res := tr.mustDo(t, "GET", "/obj")
	a, b := gatedBody()
	if res.body != string(a)+string(b) {
		t.Errorf("refetch: body of %d bytes", len(res.body))
	}
	if got := o.count.Load(); got != 2 {
		t.Errorf("origin saw %d requests, want 2 (nothing may be stored from the failed fill)", got)
	}
	if st := tr.c.Stats(); st.Errors == 0 {
		t.Errorf("no error counted: %+v", st)
	}
}

// TestCollapseLeaderLeaves: the client that started the fill hangs up;
// the fill continues for the others and is stored.
func TestCollapseLeaderLeaves(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	o := newCountingOrigin(t, gatedHandler(gate, nil))
	tr := newTier(t, o, nil)
	first := make(chan struct{}, 2)
	done := make(chan result, 2)
	ctxA, cancelA := context.WithCancel(t.Context())
	startClient(ctxA, tr, "/obj", first, done)
	waitN(t, first, 1, "leader's first bytes")
	startClient(t.Context(), tr, "/obj", first, done)
	waitN(t, first, 1, "waiter's first bytes")
	cancelA()
	resA := <-done
	if resA.err == nil {
		t.Fatalf("cancelled leader got a complete body")
	}
	close(gate)
	resB := <-done
	a, b := gatedBody()
	if resB.err != nil || resB.body != string(a)+string(b) {
		t.Fatalf("waiter: err %v, %d bytes", resB.err, len(resB.body))
	}
	tr.c.Shutdown(t.Context())
	if res := tr.mustDo(t, "GET", "/obj"); cacheStatus(res)[:3] != "hit" {
		t.Errorf("not stored after the leader left: %q", cacheStatus(res))
	}
	if got := o.count.Load(); got != 1 {
		t.Errorf("origin saw %d requests, want 1", got)
	}
}

// TestCollapseLateArrival: a client arriving mid-fill gets what is stored
// so far, then follows the fill.
func TestCollapseLateArrival(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	o := newCountingOrigin(t, gatedHandler(gate, nil))
	tr := newTier(t, o, nil)
	first := make(chan struct{}, 2)
	done := make(chan result, 2)
	startClient(t.Context(), tr, "/obj", first, done)
	waitN(t, first, 1, "first client")
	// A range request from the second half waits for it.
	rangeDone := make(chan result, 1)
	go func() {
		rangeDone <- tr.do(t, "GET", "/obj", "Range", "bytes="+strconv.Itoa(chunk)+"-"+strconv.Itoa(chunk+9))
	}()
	startClient(t.Context(), tr, "/obj", first, done)
	waitN(t, first, 1, "late client's first bytes")
	close(gate)
	for i := 0; i < 2; i++ {
		if res := <-done; res.err != nil || len(res.body) != 2*chunk {
			t.Fatalf("client %d: %v, %d bytes", i, res.err, len(res.body))
		}
	}
	if res := <-rangeDone; res.status != 206 || res.body != "bbbbbbbbbb" {
		t.Errorf("range from the fill: %d %q", res.status, res.body)
	}
	if got := o.count.Load(); got != 1 {
		t.Errorf("origin saw %d requests, want 1", got)
	}
}

// TestCollapseUncacheableNotShared: a private response is given only to
// the request that fetched it; the requests collapsed on its flight go
// upstream themselves.
func TestCollapseUncacheableNotShared(t *testing.T) {
	t.Parallel()
	const n = 6
	gate := make(chan struct{})
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request, k int64) {
		if k == 1 {
			<-gate // hold the first response until every request joined its flight
		}
		w.Header().Set("Cache-Control", "private, max-age=60")
		fmt.Fprintf(w, "user%d", k)
	})
	var joined atomic.Int64
	tr := newTier(t, o, func(c *Cache) {
		c.testHookFlight = func() {
			if joined.Add(1) == n {
				close(gate)
			}
		}
	})
	var wg sync.WaitGroup
	bodies := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := tr.do(t, "GET", "/me")
			if res.err != nil || res.status != 200 {
				t.Errorf("status %d err %v", res.status, res.err)
			}
			bodies <- res.body
		}()
	}
	wg.Wait()
	close(bodies)
	seen := map[string]bool{}
	for b := range bodies {
		if seen[b] {
			t.Errorf("private body %q served to two clients", b)
		}
		seen[b] = true
	}
	if got := o.count.Load(); got != n {
		t.Errorf("origin saw %d requests, want %d", got, n)
	}
}

// TestStaleWhileRevalidateOnce: many requests on a stale entry are all
// served at once from the store, and one background revalidation runs.
func TestStaleWhileRevalidateOnce(t *testing.T) {
	t.Parallel()
	var tr *tier
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Date", tr.clock.Now().UTC().Format(http.TimeFormat))
		w.Header().Set("Cache-Control", "max-age=10, stale-while-revalidate=100")
		w.Header().Set("ETag", `"x"`)
		if r.Header.Get("If-None-Match") == `"x"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprintf(w, "v%d", n)
	})
	tr = newTier(t, o, nil)
	tr.mustDo(t, "GET", "/s")
	tr.clock.Advance(15 * time.Second)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := tr.do(t, "GET", "/s")
			if res.err != nil || res.body != "v1" {
				t.Errorf("stale request: %v %q", res.err, res.body)
			}
		}()
	}
	wg.Wait()
	if err := tr.c.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	reqs := o.requests()
	if len(reqs) != 2 {
		t.Fatalf("origin saw %d requests, want 2 (one revalidation)", len(reqs))
	}
	if reqs[1].Header.Get("If-None-Match") != `"x"` {
		t.Errorf("revalidation without If-None-Match")
	}
	if res := tr.mustDo(t, "GET", "/s"); cacheStatus(res)[:3] != "hit" || res.body != "v1" {
		t.Errorf("after revalidation: %q %q", cacheStatus(res), res.body)
	}
	if st := tr.c.Stats(); st.StaleServed == 0 || st.StaleServed > 20 {
		t.Errorf("stats %+v", st)
	}
	if o.count.Load() != 2 {
		t.Errorf("origin saw %d requests after the revalidation", o.count.Load())
	}
}

func TestStaleIfErrorUpstreamDown(t *testing.T) {
	t.Parallel()
	var tr *tier
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Date", tr.clock.Now().UTC().Format(http.TimeFormat))
		w.Header().Set("Cache-Control", "max-age=10, stale-if-error=60")
		fmt.Fprint(w, "kept")
	})
	tr = newTier(t, o, nil)
	tr.mustDo(t, "GET", "/s")
	o.Close() // upstream unreachable
	tr.clock.Advance(20 * time.Second)
	if res := tr.mustDo(t, "GET", "/s"); res.status != 200 || res.body != "kept" {
		t.Errorf("stale-if-error with upstream down: %d %q", res.status, res.body)
	}
	tr.clock.Advance(60 * time.Second)
	if res := tr.mustDo(t, "GET", "/s"); res.status != http.StatusBadGateway {
		t.Errorf("beyond stale-if-error: %d %q, want 502", res.status, res.body)
	}
}

func TestPrefetch(t *testing.T) {
	t.Parallel()
	t.Run("fills", func(t *testing.T) {
		o := newCountingOrigin(t, fixed("Cache-Control", "max-age=60"))
		tr := newTier(t, o, nil)
		req, _ := http.NewRequest("GET", tr.srv.URL+"/p?x=1", nil)
		if err := tr.c.Prefetch(t.Context(), req); err != nil {
			t.Fatal(err)
		}
		if err := tr.c.Prefetch(t.Context(), req); err != nil {
			t.Fatal(err)
		}
		if res := tr.mustDo(t, "GET", "/p?x=1"); res.body != "v1" || cacheStatus(res)[:3] != "hit" {
			t.Errorf("after prefetch: %q %q", res.body, cacheStatus(res))
		}
		recs := tr.records()
		if len(recs) < 2 || !recs[0].Prefetch || recs[0].Disposition != Miss || recs[1].Disposition != Hit {
			t.Errorf("records %+v", recs)
		}
		if recs[0].Path != "/p" {
			t.Errorf("record path %q logs the query", recs[0].Path)
		}
		if o.count.Load() != 1 {
			t.Errorf("origin saw %d requests", o.count.Load())
		}
	})
	t.Run("joins_client_fill", func(t *testing.T) {
		gate := make(chan struct{})
		o := newCountingOrigin(t, gatedHandler(gate, nil))
		tr := newTier(t, o, nil)
		first := make(chan struct{}, 1)
		done := make(chan result, 1)
		startClient(t.Context(), tr, "/obj", first, done)
		waitN(t, first, 1, "client's first bytes")
		perr := make(chan error, 1)
		req, _ := http.NewRequest("GET", tr.srv.URL+"/obj", nil)
		go func() { perr <- tr.c.Prefetch(t.Context(), req) }()
		close(gate)
		if err := <-perr; err != nil {
			t.Fatal(err)
		}
		<-done
		if o.count.Load() != 1 {
			t.Errorf("origin saw %d requests", o.count.Load())
		}
	})
	t.Run("not_storable", func(t *testing.T) {
		o := newCountingOrigin(t, fixed("Cache-Control", "no-store"))
		tr := newTier(t, o, nil)
		req, _ := http.NewRequest("GET", tr.srv.URL+"/p", nil)
		if err := tr.c.Prefetch(t.Context(), req); err == nil {
			t.Fatal("prefetch of a no-store response succeeded")
		}
		// The prefetch never went upstream a second time on its own.
		if o.count.Load() != 1 {
			t.Errorf("origin saw %d requests for one prefetch", o.count.Load())
		}
	})
	t.Run("stale_is_refreshed", func(t *testing.T) {
		o := newCountingOrigin(t, fixed("Cache-Control", "max-age=1, stale-while-revalidate=600"))
		tr := newTier(t, o, nil)
		now := time.Now()
		tr.c.Now = func() time.Time { return now }
		req, _ := http.NewRequest("GET", tr.srv.URL+"/s", nil)
		if err := tr.c.Prefetch(t.Context(), req); err != nil {
			t.Fatal(err)
		}
		now = now.Add(10 * time.Second) // stale, within stale-while-revalidate
		if err := tr.c.Prefetch(t.Context(), req); err != nil {
			t.Fatal(err)
		}
		if o.count.Load() != 2 {
			t.Errorf("origin saw %d requests: a stale object was not refreshed by the prefetch", o.count.Load())
		}
		if res := tr.mustDo(t, "GET", "/s"); cacheStatus(res)[:3] != "hit" {
			t.Errorf("after the refresh: %q, want a fresh hit", cacheStatus(res))
		}
	})
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	t.Run("miss_then_hit", func(t *testing.T) {
		o := newCountingOrigin(t, fixed("Cache-Control", "max-age=60"))
		c := &Cache{}
		client := &http.Client{Transport: c}
		for i := 0; i < 2; i++ {
			resp, err := client.Get(o.URL + "/x")
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || string(b) != "v1" || resp.Header.Get("Age") == "" {
				t.Fatalf("request %d: %v %q Age %q", i, err, b, resp.Header.Get("Age"))
			}
			c.Shutdown(t.Context())
		}
		if o.count.Load() != 1 {
			t.Errorf("origin saw %d requests", o.count.Load())
		}
		if st := c.Stats(); st.Hits != 1 || st.Misses != 1 {
			t.Errorf("stats %+v", st)
		}
	})
	t.Run("request_not_modified", func(t *testing.T) {
		o := newCountingOrigin(t, fixed("Cache-Control", "max-age=60"))
		c := &Cache{}
		req, _ := http.NewRequest("GET", o.URL+"/x", nil)
		req.Header.Set("X-Keep", "1")
		resp, err := c.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if len(req.Header) != 1 || req.URL.Host == "" {
			t.Errorf("caller's request modified: %v %v", req.Header, req.URL)
		}
	})
	t.Run("fill_failure_is_read_error", func(t *testing.T) {
		gate := make(chan struct{})
		close(gate)
		o := newCountingOrigin(t, gatedHandler(gate, func(int64) bool { return true }))
		c := &Cache{}
		resp, err := c.RoundTrip(mustRequest(t, o.URL+"/x"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Fatal("short body read without error")
		}
		c.Shutdown(t.Context())
		resp, err = c.RoundTrip(mustRequest(t, o.URL+"/x"))
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		if o.count.Load() != 2 {
			t.Errorf("origin saw %d requests, want 2", o.count.Load())
		}
	})
}

func mustRequest(t *testing.T, u string) *http.Request {
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestUpstreamUnreachable(t *testing.T) {
	t.Parallel()
	o := newCountingOrigin(t, fixed())
	o.Close()
	var got error
	tr := newTier(t, o, func(c *Cache) {
		c.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			got = err
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	res := tr.mustDo(t, "GET", "/x")
	if res.status != http.StatusServiceUnavailable || got == nil {
		t.Errorf("status %d, ErrorHandler err %v", res.status, got)
	}
	if recs := tr.records(); len(recs) != 1 || recs[0].Disposition != Error || !errors.Is(recs[0].Err, recs[0].Err) {
		t.Errorf("records %+v", recs)
	}
}

// TestStoreRefusesObject: an object the store cannot hold aborts the fill
// once; the key is then passed through uncached, and MaxObjectBytes passes
// large responses through without trying.
func TestStoreRefusesObject(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte("z"), 50000)
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		w.Header().Set("Cache-Control", "max-age=60")
		if r.URL.Path == "/big-cl" {
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
		}
		w.Write(big)
	})
	t.Run("store_bound", func(t *testing.T) {
		tr := newTier(t, o, func(c *Cache) { c.Store = &MemoryStore{MaxBytes: 20000} })
		if res := tr.do(t, "GET", "/big"); res.err == nil && res.body == string(big) {
			t.Logf("first request complete (the store refused it before the headers)")
		}
		tr.c.Shutdown(t.Context())
		for i := 0; i < 2; i++ {
			res := tr.mustDo(t, "GET", "/big")
			if res.body != string(big) {
				t.Fatalf("pass-through %d: %d bytes", i, len(res.body))
			}
		}
		if st := tr.c.Stats(); st.Uncacheable != 2 || st.Errors == 0 {
			t.Errorf("stats %+v", st)
		}
	})
	t.Run("max_object_bytes", func(t *testing.T) {
		before := o.count.Load()
		tr := newTier(t, o, func(c *Cache) { c.MaxObjectBytes = 10000 })
		for i := 0; i < 2; i++ {
			if res := tr.mustDo(t, "GET", "/big-cl"); res.body != string(big) || cacheStatus(res)[:3] == "hit" {
				t.Fatalf("request %d: %d bytes, %q", i, len(res.body), cacheStatus(res))
			}
		}
		if got := o.count.Load() - before; got != 2 {
			t.Errorf("origin saw %d requests, want 2", got)
		}
		// Without Content-Length the limit applies while filling. The
		// client of that fill is aborted; it must not retry on its own
		// (net/http retries a GET whose reused connection closed before
		// any response byte), or the origin would count its retry.
		noRetry := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		if resp, err := noRetry.Get(tr.srv.URL + "/big"); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		tr.c.Shutdown(t.Context())
		if res := tr.mustDo(t, "GET", "/big"); res.body != string(big) {
			t.Errorf("pass-through after the limit: %d bytes", len(res.body))
		}
		if got := o.count.Load() - before; got != 4 {
			t.Errorf("origin saw %d requests, want 4", got)
		}
	})
}

// TestCollapseChunked: a fill of unknown length (chunked upstream) streams
// to every waiter and ends with the upstream body.
func TestCollapseChunked(t *testing.T) {
	t.Parallel()
	const n = 5
	gate := make(chan struct{})
	first, second := gatedBody()
	o := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request, k int64) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Write(first) // no Content-Length: chunked
		http.NewResponseController(w).Flush()
		<-gate
		w.Write(second)
	})
	tr := newTier(t, o, nil)
	firstCh := make(chan struct{}, n)
	done := make(chan result, n)
	for i := 0; i < n; i++ {
		startClient(t.Context(), tr, "/chunked", firstCh, done)
	}
	waitN(t, firstCh, n, "first bytes")
	close(gate)
	for i := 0; i < n; i++ {
		if res := <-done; res.err != nil || res.body != string(first)+string(second) {
			t.Fatalf("client: %v, %d bytes", res.err, len(res.body))
		}
	}
	tr.c.Shutdown(t.Context())
	res := tr.mustDo(t, "GET", "/chunked")
	if cacheStatus(res)[:3] != "hit" || res.header.Get("Content-Length") != strconv.Itoa(2*chunk) {
		t.Errorf("stored object: %q, Content-Length %q", cacheStatus(res), res.header.Get("Content-Length"))
	}
	if o.count.Load() != 1 {
		t.Errorf("origin saw %d requests", o.count.Load())
	}
}
