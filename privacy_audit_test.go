package onioncdn_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/onion"
	"github.com/onioncdn/onioncdn/upstream"
)

// Secrets the audit client sends; none may reach a log line, and the
// identifying ones may not reach the origin.
const (
	circuitID    = 0x7a69f00d // tor circuit id of the client's connection at the edge
	cookieSecret = "c00kiesecret"
	authSecret   = "auth5ecret"
	querySecret  = "qs3cret"
	bodySecret   = "b0dysecret"
)

// identifyingHeaders are request headers that name a client, a proxy or a
// circuit. No tier may forward or add them.
var identifyingHeaders = []string{
	"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Forwarded-Port", "X-Forwarded-Server",
	"Forwarded", "Via", "X-Real-Ip", "X-Client-Ip", "Client-Ip", "True-Client-Ip", "Cf-Connecting-Ip",
	"X-Tor-Circuit-Id",
}

// clientHeaders are what the audit client sends with most requests.
func clientHeaders() map[string]string {
	return map[string]string{
		"X-Forwarded-For":   "203.0.113.7, 198.51.100.1",
		"X-Forwarded-Host":  "leak.example",
		"X-Forwarded-Proto": "https",
		"X-Forwarded-Port":  "8443",
		"Forwarded":         "for=203.0.113.7;proto=https;by=198.51.100.1",
		"Via":               "1.1 clientproxy",
		"X-Real-IP":         "203.0.113.8",
		"X-Client-IP":       "203.0.113.9",
		"Client-IP":         "203.0.113.10",
		"True-Client-IP":    "203.0.113.11",
		"CF-Connecting-IP":  "203.0.113.12",
		"X-Tor-Circuit-Id":  fmt.Sprint(circuitID),
		"Cookie":            "session=" + cookieSecret,
		"User-Agent":        "Mozilla/5.0 (Windows NT 10.0; rv:128.0) Gecko/20100101 Firefox/128.0",
		"Accept":            "*/*",
	}
}

// capture records the requests a server receives.
type capture struct {
	mu   sync.Mutex
	reqs []captured
}

type captured struct {
	path   string
	header http.Header
	dump   string // the whole request as received, plus its remote address
}

func (c *capture) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dump, _ := httputil.DumpRequest(r, true)
		c.mu.Lock()
		c.reqs = append(c.reqs, captured{path: r.URL.Path, header: r.Header.Clone(), dump: string(dump) + "\nRemoteAddr: " + r.RemoteAddr})
		c.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (c *capture) all() []captured {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.reqs)
}

func (c *capture) byPath(p string) []captured {
	var out []captured
	for _, r := range c.all() {
		if r.path == p {
			out = append(out, r)
		}
	}
	return out
}

// auditChain is client → edge → midtier → origin over loopback TCP, every
// tier a cache.Cache over an upstream.Transport, every logger at Debug.
type auditChain struct {
	origin, midIn  *capture // what the origin and the midtier received
	edgeLogs       *logBuf
	midLogs        *logBuf
	edge, mid      *cache.Cache
	edgeSrv        *httptest.Server
	clientTr       *http.Transport
	mu             sync.Mutex
	clientAddrs    []string // local addresses of the client's connections
	originRequests int
}

func newAuditChain(t *testing.T) *auditChain {
	t.Helper()
	a := &auditChain{origin: &capture{}, midIn: &capture{}, edgeLogs: &logBuf{}, midLogs: &logBuf{}}

	originMux := http.NewServeMux()
	originMux.HandleFunc("GET /page", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=600")
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<p>page</p>")
	})
	originMux.HandleFunc("GET /clean", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=600")
		io.WriteString(w, "clean")
	})
	originMux.HandleFunc("GET /account", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "private, no-store")
		io.WriteString(w, "your account")
	})
	originMux.HandleFunc("POST /clean-form", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "posted")
	})
	originMux.HandleFunc("POST /form", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, "posted")
	})
	originMux.HandleFunc("GET /broken", func(w http.ResponseWriter, r *http.Request) {
		// The connection dies before a response: an upstream error at the
		// midtier, which must log it without the query.
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	originSrv := httptest.NewServer(a.origin.wrap(originMux))
	t.Cleanup(originSrv.Close)

	midUp := &upstream.Transport{Upstreams: []string{originSrv.URL}, Logger: a.midLogs.logger()}
	t.Cleanup(func() { midUp.Close() })
	// The midtier faces no users: its operator may turn Cache-Status on
	// for diagnostics. The edge must not pass it on.
	a.mid = &cache.Cache{Transport: midUp, Name: "midtier", CacheStatus: true, Logger: a.midLogs.logger()}
	midSrv := httptest.NewUnstartedServer(a.midIn.wrap(a.mid))
	midSrv.Config.ErrorLog = slog.NewLogLogger(a.midLogs.logger().Handler(), slog.LevelError)
	midSrv.Start()
	t.Cleanup(midSrv.Close)

	edgeUp := &upstream.Transport{Upstreams: []string{midSrv.URL}, Logger: a.edgeLogs.logger()}
	t.Cleanup(func() { edgeUp.Close() })
	a.edge = &cache.Cache{Transport: edgeUp, Name: "edge", Logger: a.edgeLogs.logger()}
	a.edgeSrv = httptest.NewUnstartedServer(a.edge)
	// As on an onion listener with circuit-id export (onion.ConnContext):
	// every request's context carries the client's circuit id.
	a.edgeSrv.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
		return onion.WithCircuitID(ctx, circuitID)
	}
	a.edgeSrv.Config.ErrorLog = slog.NewLogLogger(a.edgeLogs.logger().Handler(), slog.LevelError)
	a.edgeSrv.Start()
	t.Cleanup(a.edgeSrv.Close)

	var d net.Dialer
	a.clientTr = &http.Transport{
		DisableCompression: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err == nil {
				a.mu.Lock()
				a.clientAddrs = append(a.clientAddrs, c.LocalAddr().String())
				a.mu.Unlock()
			}
			return c, err
		},
	}
	t.Cleanup(a.clientTr.CloseIdleConnections)
	return a
}

func (a *auditChain) send(t *testing.T, method, target string, hdr map[string]string, body string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, a.edgeSrv.URL+target, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if _, ok := hdr["User-Agent"]; !ok {
		req.Header.Set("User-Agent", "") // the client itself sends none
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := a.clientTr.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: body: %v", method, target, err)
	}
	return resp, b
}

// TestHeaderAndLogAudit drives requests carrying every kind of identifying
// data through edge → midtier → origin and audits what the origin and the
// midtier received, what the client got back, and every log line of every
// tier (caches, upstream transports, HTTP servers) at Debug level.
func TestHeaderAndLogAudit(t *testing.T) {
	a := newAuditChain(t)

	// 1. A cacheable page with a secret in the query, twice (miss, hit).
	for round := 1; round <= 2; round++ {
		resp, body := a.send(t, http.MethodGet, "/page?token="+querySecret, clientHeaders(), "")
		if resp.StatusCode != http.StatusOK || string(body) != "<p>page</p>" {
			t.Fatalf("/page round %d: %d %q", round, resp.StatusCode, body)
		}
		checkClientResponse(t, "/page", resp)
		if resp.Header.Get("Age") == "" {
			t.Errorf("/page round %d: no Age on a cached response", round)
		}
	}
	// 2. Authorization, private response.
	h := clientHeaders()
	h["Authorization"] = "Bearer " + authSecret
	resp, _ := a.send(t, http.MethodGet, "/account?token="+querySecret, h, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/account: %d", resp.StatusCode)
	}
	checkClientResponse(t, "/account", resp)
	// 3. A POST with a secret body (proxied, not cached).
	resp, _ = a.send(t, http.MethodPost, "/form?token="+querySecret, clientHeaders(), "field="+bodySecret)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/form: %d", resp.StatusCode)
	}
	checkClientResponse(t, "/form", resp)
	// 4. An upstream failure: error paths log too.
	resp, _ = a.send(t, http.MethodGet, "/broken?token="+querySecret, clientHeaders(), "")
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("/broken: %d, want 502", resp.StatusCode)
	}
	checkClientResponse(t, "/broken", resp)
	// 5. A request without any client header: nothing may be added.
	resp, _ = a.send(t, http.MethodGet, "/clean", nil, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/clean: %d", resp.StatusCode)
	}
	checkClientResponse(t, "/clean", resp)
	resp, _ = a.send(t, http.MethodPost, "/clean-form", nil, "x=1")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/clean-form: %d", resp.StatusCode)
	}
	checkClientResponse(t, "/clean-form", resp)
	for _, c := range []*cache.Cache{a.edge, a.mid} {
		if err := c.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
	}

	a.mu.Lock()
	clientAddrs := slices.Clone(a.clientAddrs)
	a.mu.Unlock()
	if len(clientAddrs) == 0 {
		t.Fatal("no client connection recorded")
	}
	// Strings that identify the client or its secrets.
	identifying := append([]string{
		fmt.Sprint(circuitID), fmt.Sprintf("%x", circuitID), fmt.Sprintf("%X", circuitID), fmt.Sprintf("%#x", circuitID),
		"203.0.113.", "198.51.100.", "clientproxy", "leak.example",
	}, clientAddrs...)
	secrets := []string{cookieSecret, authSecret, querySecret, "token=", bodySecret}

	// What reached the origin and the midtier.
	for _, hop := range []struct {
		name string
		c    *capture
	}{{"origin", a.origin}, {"midtier", a.midIn}} {
		reqs := hop.c.all()
		if len(reqs) == 0 {
			t.Fatalf("%s received no request", hop.name)
		}
		for _, r := range reqs {
			for _, k := range identifyingHeaders {
				if v, ok := r.header[k]; ok {
					t.Errorf("%s received %s: %q on %s", hop.name, k, v, r.path)
				}
			}
			for _, s := range identifying {
				if strings.Contains(r.dump, s) {
					t.Errorf("%s received %q in request %s:\n%s", hop.name, s, r.path, r.dump)
				}
			}
		}
		// Nothing added: a request with no client headers arrives with
		// none but framing (and the POST's own Content-Type), through the
		// cache path (GET) and the proxy path (POST) alike.
		for _, p := range []string{"/clean", "/clean-form"} {
			got := hop.c.byPath(p)
			if len(got) != 1 {
				t.Errorf("%s received %s %d times, want once", hop.name, p, len(got))
			}
			for _, r := range got {
				for k := range r.header {
					if k != "Content-Length" && (p != "/clean-form" || k != "Content-Type") {
						t.Errorf("%s received header %s on %s, which the client did not send", hop.name, k, p)
					}
				}
			}
		}
		// Credentials go only with the request that carried them.
		for _, r := range reqs {
			if r.path == "/clean" && (r.header.Get("Cookie") != "" || r.header.Get("Authorization") != "") {
				t.Errorf("%s received credentials on /clean: %v", hop.name, r.header)
			}
			if r.path != "/account" && r.header.Get("Authorization") != "" {
				t.Errorf("%s received Authorization on %s", hop.name, r.path)
			}
		}
	}
	if n := len(a.origin.byPath("/page")); n != 1 {
		t.Errorf("origin saw /page %d times, want 1 (the second was a hit)", n)
	}

	// Every log line of every tier.
	for _, tier := range []struct {
		name string
		logs *logBuf
	}{{"edge", a.edgeLogs}, {"midtier", a.midLogs}} {
		recs := tier.logs.records(t)
		requests := 0
		for _, r := range recs {
			if r["msg"] == "request" {
				requests++
			}
		}
		if requests < 5 {
			t.Errorf("%s logged %d request records, want at least 5 (is the audit capturing the logs?)", tier.name, requests)
		}
		all := tier.logs.String()
		for _, s := range append(slices.Clone(identifying), secrets...) {
			if strings.Contains(all, s) {
				t.Errorf("%s logs contain %q:\n%s", tier.name, s, all)
			}
		}
	}
	if !strings.Contains(a.midLogs.String(), `"path":"/broken"`) {
		t.Errorf("midtier logs have no record of the failed /broken request:\n%s", a.midLogs.String())
	}
}

// checkClientResponse: what the user-facing tier returns carries no cache
// state beyond Age, no forwarding header and no cookie (the audit origin
// sets none, so any would be the tiers' own).
func checkClientResponse(t *testing.T, what string, resp *http.Response) {
	t.Helper()
	for _, k := range []string{"Cache-Status", "Via", "Forwarded", "X-Forwarded-For", "X-Cache", "X-Cache-Status", "X-Served-By", "Set-Cookie"} {
		if v, ok := resp.Header[k]; ok {
			t.Errorf("%s: client received %s: %q", what, k, v)
		}
	}
}
