package onioncdn_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/route"
	"github.com/onioncdn/onioncdn/upstream"
)

// siteKey is the context key under which a per-site listener records its
// site, as an operator serving each site on its own onion listener would.
type siteKey struct{}

func siteConnContext(site string) func(context.Context, net.Conn) context.Context {
	return func(ctx context.Context, _ net.Conn) context.Context {
		return context.WithValue(ctx, siteKey{}, site)
	}
}

func siteFromListener(r *http.Request) string {
	s, _ := r.Context().Value(siteKey{}).(string)
	return s
}

// siteFromHost maps a fixed table of Host names to sites; any other Host
// falls in the site "" (never a client-chosen name).
func siteFromHost(table map[string]string) func(*http.Request) string {
	return func(r *http.Request) string { return table[strings.ToLower(r.Host)] }
}

// countingOrigin counts the requests it receives by Host and path.
type countingOrigin struct {
	srv     *httptest.Server
	mu      sync.Mutex
	counts  map[string]int
	handler http.HandlerFunc
}

func newCountingOrigin(t *testing.T, h http.HandlerFunc) *countingOrigin {
	t.Helper()
	o := &countingOrigin{counts: map[string]int{}, handler: h}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.counts[r.Host+r.URL.Path]++
		o.mu.Unlock()
		o.handler(w, r)
	}))
	t.Cleanup(o.srv.Close)
	return o
}

func (o *countingOrigin) total() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, c := range o.counts {
		n += c
	}
	return n
}

// newSiteTransport returns an upstream.Transport to origin with per-site
// pools and the request's Host preserved; closed when t ends.
func newSiteTransport(t *testing.T, origin string, site func(*http.Request) string) *upstream.Transport {
	t.Helper()
	up := &upstream.Transport{Upstreams: []string{origin}, Site: site, PreserveHost: true, MinIdle: -1}
	t.Cleanup(func() { up.Close() })
	return up
}

func startSiteServer(t *testing.T, h http.Handler, site string) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	if site != "" {
		s.Config.ConnContext = siteConnContext(site)
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// TestSameURLOnTwoSitesIsTwoEntries: one edge cache serving two sites
// keeps one entry per site for the same URL, so the origin sees one
// request per site; a cache without partition shares the entry.
func TestSameURLOnTwoSitesIsTwoEntries(t *testing.T) {
	cases := []struct {
		name        string
		partition   bool
		byListener  bool // site chosen by listener (same Host); else by Host table
		wantEntries int
	}{
		{name: "distinct_hosts_partitioned", partition: true, wantEntries: 2},
		{name: "same_host_partitioned_by_listener", partition: true, byListener: true, wantEntries: 2},
		// Control: without Partition, two listeners for two sites with
		// the same Host share the entry. This is what the partition is for.
		{name: "same_host_without_partition_shares", byListener: true, wantEntries: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			origin := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "public, max-age=600")
				w.Header().Set("Content-Type", "text/javascript")
				fmt.Fprintf(w, "// app for %s\n", r.Host)
			})
			site := siteFromHost(map[string]string{"a.example": "a", "b.example": "b"})
			if tc.byListener {
				site = siteFromListener
			}
			var part func(*http.Request) string
			var upSite func(*http.Request) string
			if tc.partition {
				part, upSite = site, site
			}
			store := &cache.MemoryStore{}
			c := &cache.Cache{Transport: newSiteTransport(t, origin.srv.URL, upSite), Store: store, Partition: part}
			srvA, srvB := startSiteServer(t, c, "a"), startSiteServer(t, c, "b")
			hostA, hostB := "a.example", "b.example"
			if tc.byListener {
				hostA, hostB = "cdn.example", "cdn.example"
			}
			tr := newClientTransport(t)
			for round := 1; round <= 2; round++ {
				for _, s := range []struct{ srv, host string }{{srvA.URL, hostA}, {srvB.URL, hostB}} {
					resp, body := do(t, tr, newRequest(t, http.MethodGet, s.srv+"/static/app.js", map[string]string{"Host": s.host}))
					if resp.StatusCode != http.StatusOK || string(body) != "// app for "+s.host+"\n" {
						t.Fatalf("round %d, host %s: %d %q", round, s.host, resp.StatusCode, body)
					}
				}
			}
			if got := origin.total(); got != tc.wantEntries {
				t.Errorf("origin saw %d requests for the URL on two sites, want %d", got, tc.wantEntries)
			}
			if err := c.Shutdown(t.Context()); err != nil {
				t.Fatal(err)
			}
			if got := store.Stats().Objects; got != int64(tc.wantEntries) {
				t.Errorf("store holds %d objects, want %d", got, tc.wantEntries)
			}
			// A second-round request may arrive after the client read the
			// whole body but before the fill committed: it joins the fill
			// (Collapsed) instead of hitting the stored object. Both are
			// served without going upstream.
			if s := c.Stats(); s.Hits+s.Collapsed != uint64(4-tc.wantEntries) || s.Misses != uint64(tc.wantEntries) {
				t.Errorf("cache stats %+v: want %d misses and %d hits or collapsed", s, tc.wantEntries, 4-tc.wantEntries)
			}
		})
	}
}

// settableClock is a clock the test moves by hand.
type settableClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *settableClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *settableClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// probeWorld builds an edge serving sites a and b (same Host, one listener
// each), optionally lets a client of site b fetch /lib.js, then runs a
// fixed sequence of probes for /lib.js as a client of site a. It returns
// what the site-a client saw, response by response (status, header
// without Date, body), and the status site b gets for only-if-cached
// after the setup.
func probeWorld(t *testing.T, bCached, partition, cacheStatus bool) (seen []string, bStatus int) {
	t.Helper()
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	clock := &settableClock{t: t0.Add(100 * time.Second)}
	origin := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Date", t0.Format(http.TimeFormat))
		h.Set("Last-Modified", t0.Add(-time.Hour).Format(http.TimeFormat))
		h.Set("ETag", `"v1"`)
		h.Set("Cache-Control", "public, max-age=600")
		h.Set("Content-Type", "text/javascript")
		io.WriteString(w, "var lib = 1;\n")
	})
	var part, upSite func(*http.Request) string
	if partition {
		part, upSite = siteFromListener, siteFromListener
	}
	c := &cache.Cache{
		Transport:   newSiteTransport(t, origin.srv.URL, upSite),
		Partition:   part,
		CacheStatus: cacheStatus,
		Name:        "edge",
		Now:         clock.Now,
	}
	srvA, srvB := startSiteServer(t, c, "a"), startSiteServer(t, c, "b")
	tr := newClientTransport(t)
	get := func(base string, hdr map[string]string) (*http.Response, []byte) {
		h := map[string]string{"Host": "cdn.example"}
		for k, v := range hdr {
			h[k] = v
		}
		method := http.MethodGet
		if m, ok := h["X-Method"]; ok {
			method = m
			delete(h, "X-Method")
		}
		return do(t, tr, newRequest(t, method, base+"/lib.js", h))
	}
	if bCached {
		if resp, _ := get(srvB.URL, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("site b fetch: %d", resp.StatusCode)
		}
	}
	resp, _ := get(srvB.URL, map[string]string{"Cache-Control": "only-if-cached"})
	bStatus = resp.StatusCode
	clock.Set(t0.Add(200 * time.Second))

	probes := []map[string]string{
		{"Cache-Control": "only-if-cached"},
		{"Cache-Control": "only-if-cached", "X-Method": http.MethodHead},
		{"Cache-Control": "max-stale=86400, only-if-cached"},
		{"Cache-Control": "only-if-cached", "If-None-Match": `"v1"`},
		{"Cache-Control": "only-if-cached", "Range": "bytes=0-2"},
		{"Cache-Control": "only-if-cached", "If-Modified-Since": t0.Format(http.TimeFormat)},
		{"X-Method": http.MethodHead},
		nil, // the fetch that fills site a
		nil, // a hit
		{"If-None-Match": `"v1"`},
		{"Range": "bytes=4-6"},
		{"Cache-Control": "only-if-cached"},
	}
	for i, p := range probes {
		resp, body := get(srvA.URL, p)
		resp.Header.Del("Date")
		var b bytes.Buffer
		fmt.Fprintf(&b, "probe %d %v: %s\n", i, p, resp.Status)
		resp.Header.Write(&b)
		fmt.Fprintf(&b, "\n%q", body)
		seen = append(seen, b.String())
		// A fill a probe started (a HEAD miss fills the GET) finishes
		// before the next probe: that one is a hit, never a request that
		// joins the fill, in both worlds.
		if err := c.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		clock.Set(clock.Now().Add(7 * time.Second))
	}
	return seen, bStatus
}

// TestSiteCannotProbeAnotherSitesCache: everything a client of site a can
// observe (apart from timing and Date) is byte-identical whether or not
// site b's copy of the same URL is cached: only-if-cached, HEAD,
// conditionals, ranges, Age and, even when enabled, Cache-Status.
func TestSiteCannotProbeAnotherSitesCache(t *testing.T) {
	for _, cacheStatus := range []bool{false, true} {
		name := "cache_status_off"
		if cacheStatus {
			name = "cache_status_on"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			withB, bStatusWith := probeWorld(t, true, true, cacheStatus)
			withoutB, bStatusWithout := probeWorld(t, false, true, cacheStatus)
			// The two worlds really differ for site b.
			if bStatusWith != http.StatusOK || bStatusWithout != http.StatusGatewayTimeout {
				t.Fatalf("site b only-if-cached: %d with b cached, %d without; want 200 and 504", bStatusWith, bStatusWithout)
			}
			if len(withB) != len(withoutB) {
				t.Fatalf("probe counts differ: %d vs %d", len(withB), len(withoutB))
			}
			for i := range withB {
				if withB[i] != withoutB[i] {
					t.Errorf("site a can tell whether site b's object is cached:\n--- b cached:\n%s\n--- b not cached:\n%s", withB[i], withoutB[i])
				}
			}
			// Sanity: the probes saw what a partitioned cache must show: a miss
			// for only-if-cached, then a hit whose Age counts from the
			// origin's Date (t0) to the probe (t0+200s+8×7s).
			if !strings.Contains(withB[0], "504") || !strings.Contains(withB[8], "200 OK") || !strings.Contains(withB[8], "Age: 256") {
				t.Errorf("unexpected probe results: first %q, hit %q", withB[0], withB[8])
			}
			if hasCS := strings.Contains(strings.Join(withB, ""), "Cache-Status:"); hasCS != cacheStatus {
				t.Errorf("Cache-Status present = %v, want %v", hasCS, cacheStatus)
			}
		})
	}
	// Control: without a partition the same probes do tell, which is what
	// the partition prevents.
	t.Run("control_without_partition_leaks", func(t *testing.T) {
		t.Parallel()
		withB, _ := probeWorld(t, true, false, false)
		withoutB, _ := probeWorld(t, false, false, false)
		if withB[0] == withoutB[0] {
			t.Errorf("without a partition, only-if-cached should reveal the shared entry; both worlds gave:\n%s", withB[0])
		}
	})
}

// connRecord is what the recording dialer saw on one upstream connection.
type connRecord struct {
	tag string
	mu  sync.Mutex
	buf []byte   // bytes written, until parsed
	req []string // "Host path" of each request written
}

// recordingConn parses the requests written on it (request line and Host).
type recordingConn struct {
	net.Conn
	rec *connRecord
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.rec.mu.Lock()
	c.rec.buf = append(c.rec.buf, p...)
	for {
		i := bytes.Index(c.rec.buf, []byte("\r\n\r\n"))
		if i < 0 {
			break
		}
		head := c.rec.buf[:i+4]
		c.rec.buf = c.rec.buf[i+4:] // GET requests carry no body
		if r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head))); err == nil {
			c.rec.req = append(c.rec.req, r.Host+" "+r.URL.Path)
		}
	}
	c.rec.mu.Unlock()
	return c.Conn.Write(p)
}

type recordingDialer struct {
	mu    sync.Mutex
	conns []*connRecord
}

func (d *recordingDialer) DialIsolated(ctx context.Context, network, addr, isolation string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	rec := &connRecord{tag: isolation}
	d.mu.Lock()
	d.conns = append(d.conns, rec)
	d.mu.Unlock()
	return &recordingConn{Conn: c, rec: rec}, nil
}

// TestUpstreamCircuitsPerSite: the upstream Transport of a tier serving
// two sites dials every connection with an isolation tag; a connection
// carries requests of one site only, the two sites' tags never overlap,
// and connections open at the same time have distinct tags (distinct
// circuits).
func TestUpstreamCircuitsPerSite(t *testing.T) {
	const perSite = 4
	var inFlight atomic.Int32
	release := make(chan struct{})
	var releaseOnce sync.Once
	origin := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/concurrent/") {
			// Hold every request until all of them are in flight at once,
			// so each needs its own connection.
			if inFlight.Add(1) == 2*perSite {
				releaseOnce.Do(func() { close(release) })
			}
			select {
			case <-release:
			case <-time.After(hangGuard):
			}
		}
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, "ok")
	})
	hosts := map[string]string{"a.example": "a", "b.example": "b"}
	dialer := &recordingDialer{}
	up := &upstream.Transport{
		Upstreams:    []string{origin.srv.URL},
		Site:         siteFromHost(hosts),
		Sites:        []string{"a", "b"},
		PreserveHost: true,
		DialIsolated: dialer.DialIsolated,
		MinIdle:      1,
	}
	t.Cleanup(func() { up.Close() })
	edge := startSiteServer(t, &cache.Cache{Transport: up, Partition: siteFromHost(hosts)}, "")
	tr := newClientTransport(t)

	var wg sync.WaitGroup
	errs := make(chan error, 4*perSite)
	for _, host := range []string{"a.example", "b.example"} {
		for i := range perSite {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req := newRequest(t, http.MethodGet, fmt.Sprintf("%s/concurrent/%d", edge.URL, i), map[string]string{"Host": host})
				resp, err := tr.RoundTrip(req)
				if err != nil {
					errs <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("%s: status %d", host, resp.StatusCode)
				}
			}()
		}
	}
	wg.Wait()
	// Then sequential requests that reuse pooled connections.
	for i := range perSite {
		for _, host := range []string{"a.example", "b.example"} {
			resp, _ := do(t, tr, newRequest(t, http.MethodGet, fmt.Sprintf("%s/seq/%d", edge.URL, i), map[string]string{"Host": host}))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s /seq/%d: %d", host, i, resp.StatusCode)
			}
		}
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	dialer.mu.Lock()
	defer dialer.mu.Unlock()
	tagSite := map[string]string{}
	concurrentTags := map[string]bool{}
	concurrentConns := 0
	carried := 0
	for _, c := range dialer.conns {
		c.mu.Lock()
		reqs := append([]string(nil), c.req...)
		c.mu.Unlock()
		if c.tag == "" {
			t.Errorf("connection dialled without an isolation tag")
		}
		site := ""
		for _, r := range reqs {
			host, path, _ := strings.Cut(r, " ")
			s, ok := hosts[host]
			if !ok {
				t.Errorf("connection %q carried a request for unknown host %q", c.tag, host)
				continue
			}
			if site != "" && s != site {
				t.Errorf("connection %q carried requests of sites %q and %q: %v", c.tag, site, s, reqs)
			}
			site = s
			carried++
			if strings.HasPrefix(path, "/concurrent/") {
				concurrentConns++
				if concurrentTags[c.tag] {
					t.Errorf("two connections open at the same time share the isolation tag %q", c.tag)
				}
				concurrentTags[c.tag] = true
			}
		}
		if site == "" {
			continue // a warm connection that carried nothing
		}
		if other, ok := tagSite[c.tag]; ok && other != site {
			t.Errorf("isolation tag %q used for sites %q and %q", c.tag, other, site)
		}
		tagSite[c.tag] = site
	}
	if carried != 4*perSite {
		t.Errorf("recorded %d upstream requests, want %d", carried, 4*perSite)
	}
	if concurrentConns != 2*perSite {
		t.Errorf("%d connections carried the %d concurrent requests, want one each", concurrentConns, 2*perSite)
	}
	perSiteTags := map[string]int{}
	for _, s := range tagSite {
		perSiteTags[s]++
	}
	if perSiteTags["a"] < perSite || perSiteTags["b"] < perSite {
		t.Errorf("tags per site %v, want at least %d each", perSiteTags, perSite)
	}
}

// TestIsolationCollisionFailsClosed: an operator's Isolation function that
// gives two sites the same tag makes the second site's dial fail instead
// of silently sharing circuits.
func TestIsolationCollisionFailsClosed(t *testing.T) {
	origin := newCountingOrigin(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	hosts := map[string]string{"a.example": "a", "b.example": "b"}
	dialer := &recordingDialer{}
	up := &upstream.Transport{
		Upstreams:    []string{origin.srv.URL},
		Site:         siteFromHost(hosts),
		PreserveHost: true,
		DialIsolated: dialer.DialIsolated,
		Isolation:    func(host, site string, slot int) string { return fmt.Sprintf("%s/%d", host, slot) }, // ignores site
		MinIdle:      -1,
		DownTime:     time.Millisecond,
	}
	t.Cleanup(func() { up.Close() })
	edge := startSiteServer(t, &cache.Cache{Transport: up, Partition: siteFromHost(hosts)}, "")
	tr := newClientTransport(t)
	resp, _ := do(t, tr, newRequest(t, http.MethodGet, edge.URL+"/x", map[string]string{"Host": "a.example"}))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("site a: %d", resp.StatusCode)
	}
	resp, _ = do(t, tr, newRequest(t, http.MethodGet, edge.URL+"/x", map[string]string{"Host": "b.example"}))
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("site b with a colliding isolation tag: status %d, want 502", resp.StatusCode)
	}
	dialer.mu.Lock()
	defer dialer.mu.Unlock()
	for _, c := range dialer.conns {
		for _, r := range c.req {
			if strings.HasPrefix(r, "b.example ") {
				t.Errorf("site b's request went out on connection %q", c.tag)
			}
		}
	}
}

// TestRouterCookiesPerSite: two routers for two sites, visited by one
// browser-like client with a cookie jar. Each sets a host-only cookie
// (no Domain) with its own random value; the jar never sends one router's
// cookie to the other, and a router given the other router's value treats
// it as unknown and issues a fresh one. No value appears in the logs.
func TestRouterCookiesPerSite(t *testing.T) {
	const cookie = "ocdn"
	logs := &logBuf{}
	type site struct {
		name, host string
		rt         *route.Router
		srv        *httptest.Server
		mu         sync.Mutex
		cookies    []string // Cookie headers the router received
	}
	sites := []*site{{name: "a", host: "router-a.example"}, {name: "b", host: "router-b.example"}}
	addrs := map[string]string{}
	for _, s := range sites {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		s.rt = &route.Router{
			Groups:        []route.Group{{ID: "g", Onion: "edges-" + s.name + ".example:80", Edges: []route.Edge{{ID: "e1", PublicKey: pub}}}},
			AllowNonOnion: true,
			StickyCookie:  cookie,
			Logger:        logs.logger(),
		}
		s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.mu.Lock()
			s.cookies = append(s.cookies, r.Header.Values("Cookie")...)
			s.mu.Unlock()
			s.rt.ServeHTTP(w, r)
		}))
		t.Cleanup(s.srv.Close)
		addrs[s.host] = s.srv.Listener.Addr().String()
		// The site's edge reports itself healthy, so the router routes.
		agent := &route.Agent{
			URL: "http://" + s.host + route.DefaultReportPath, Group: "g", Edge: "e1", Key: priv,
			Client: &http.Client{Transport: &http.Transport{DialContext: hostDialer(addrs)}},
		}
		defer agent.Client.CloseIdleConnections()
		if err := agent.Report(t.Context()); err != nil {
			t.Fatalf("site %s: report: %v", s.name, err)
		}
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	ctr := &http.Transport{DialContext: hostDialer(addrs)}
	t.Cleanup(ctr.CloseIdleConnections)
	client := &http.Client{
		Transport:     ctr,
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	visit := func(s *site, extraCookie string) *http.Response {
		t.Helper()
		req := newRequest(t, http.MethodGet, "http://"+s.host+"/watch/index.m3u8?q=1", nil)
		if extraCookie != "" {
			req.Header.Set("Cookie", extraCookie)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("router %s: status %d, want 302", s.name, resp.StatusCode)
		}
		return resp
	}
	setCookie := func(resp *http.Response) *http.Cookie {
		for _, c := range resp.Cookies() {
			if c.Name == cookie {
				return c
			}
		}
		return nil
	}

	ca := setCookie(visit(sites[0], ""))
	cb := setCookie(visit(sites[1], ""))
	if ca == nil || cb == nil {
		t.Fatalf("routers set no sticky cookie: %v %v", ca, cb)
	}
	for _, c := range []*http.Cookie{ca, cb} {
		if c.Domain != "" || c.Path != "/" || !c.HttpOnly {
			t.Errorf("cookie %+v: want host-only (no Domain), Path=/, HttpOnly", c)
		}
	}
	if ca.Value == cb.Value {
		t.Fatalf("both routers issued the value %q", ca.Value)
	}
	sites[1].mu.Lock()
	gotB := strings.Join(sites[1].cookies, "; ")
	sites[1].mu.Unlock()
	if strings.Contains(gotB, ca.Value) {
		t.Errorf("router b received router a's cookie: %q", gotB)
	}
	// Returning to a: the jar sends a's cookie, a follows it.
	if c := setCookie(visit(sites[0], "")); c != nil {
		t.Errorf("router a replaced its own live cookie with %q", c.Value)
	}
	// A client (or a colluding page) hands a's value to b: b ignores it.
	forged := visit(sites[1], cookie+"="+ca.Value)
	fc := setCookie(forged)
	if fc == nil || fc.Value == ca.Value || fc.Value == cb.Value {
		t.Errorf("router b given router a's value: Set-Cookie %v, want a fresh value", fc)
	}
	sa, err := sites[0].rt.Stats()
	if err != nil {
		t.Fatal(err)
	}
	sb, err := sites[1].rt.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if sa.StickyHits != 1 {
		t.Errorf("router a StickyHits = %d, want 1 (its own cookie)", sa.StickyHits)
	}
	if sb.StickyHits != 0 || sb.CookiesIssued != 2 {
		t.Errorf("router b StickyHits = %d, CookiesIssued = %d; want 0 and 2 (a's value never accepted)", sb.StickyHits, sb.CookiesIssued)
	}
	all := logs.String()
	for _, v := range []string{ca.Value, cb.Value, fc.Value, "index.m3u8", "q=1"} {
		if strings.Contains(all, v) {
			t.Errorf("router logs contain %q:\n%s", v, all)
		}
	}
}
