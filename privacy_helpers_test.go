// The privacy tests (privacy_*_test.go) check, across the public
// packages, the privacy promises onioncdn makes to the users of the onion
// sites it serves and to operators who serve several sites from one CDN.
//
// # Overview
//
// The promises, each checked end to end over loopback HTTP with the real
// cache, upstream, route and onion types (not with mocks of them):
//
//   - Per-site cache partitions ([cache.Cache.Partition]): the same URL on
//     two sites is two cache entries, and the origin sees two requests. A
//     request for site A cannot tell whether site B's copy of an object is
//     cached: the responses a client of site A receives (status, headers
//     including Age and, when enabled, Cache-Status, and body) are byte for
//     byte the same, apart from Date, whether or not site B's object is
//     stored, with or without only-if-cached, conditionals and Cache-Status.
//     Without a partition function, sites whose requests produce the same
//     cache key share entries: the tests show that too.
//   - Per-site circuits ([upstream.Transport.Site]): every upstream
//     connection carries an isolation tag (the SOCKS user name tor uses to
//     separate circuits); a connection only ever carries requests of one
//     site, the tags of two sites never overlap, and connections open at the
//     same time have distinct tags.
//   - Per-site router cookies ([route.Router.StickyCookie]): host-only
//     cookies (no Domain), unrelated random values, and a router never
//     treats another router's value as one of its own.
//   - Header hygiene through edge → midtier → origin: no client-identifying
//     header (X-Forwarded-*, Forwarded, Via, X-Real-IP, True-Client-IP,
//     circuit-id headers…), no client address and no circuit id reaches the
//     origin, and no tier adds a forwarding header. Cookies and
//     Authorization reach the origin only on the requests that carried
//     them. The user-facing tier sends no Cache-Status by default (and
//     removes one from upstream) while Age is present on every cached
//     response.
//   - Logs leak nothing: with every logger of every tier at Debug level, no
//     log line holds a client address, a circuit id, a cookie, a credential
//     or a query string.
//
// # Usage
//
// Run the tests:
//
//	go test -race ./internal/privacy/
//
// The recipe they check, for one tier serving several onion sites, is in
// the Security sections of packages cache, upstream and route: one
// partition, one upstream site name (hence isolation tags), one onion key
// and one router per site, the site being chosen by the listener (or by a
// fixed table of Host names), never by a value the client controls.
//
// # Security
//
// What the tests cannot rule out, and the operator must know: timing. A
// client of site A can time its own requests (a hit on site A is faster
// than a miss) and can read Age, which tells how long ago the object was
// fetched by someone on site A: both reveal that some client of the same
// site requested the same object recently. Partitioning confines this to
// one site; it cannot hide a site's popularity from its own visitors.
// Cookies a site sets through the CDN (responses with Set-Cookie pass
// through uncached) come back to the CDN with the site's requests and are
// forwarded to its origin, as they must be for logins to work: the CDN does
// not add, store or log them, but it does not hide them from the origin
// either.

package onioncdn_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// hangGuard bounds waits that would otherwise hang a broken test; it is
// never used to assert on durations.
const hangGuard = 30 * time.Second

// logBuf collects the JSON log lines of one or more loggers.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// logger returns a Debug-level JSON logger writing to l.
func (l *logBuf) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// records decodes every line; it fails t on a line that is not JSON.
func (l *logBuf) records(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// hostDialer returns a DialContext that connects host names (any port) to
// fixed loopback addresses, so a client can address several test servers
// by distinct names, as Tor Browser addresses distinct onions.
func hostDialer(hosts map[string]string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		h, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if to, ok := hosts[h]; ok {
			addr = to
		}
		return d.DialContext(ctx, network, addr)
	}
}

// newClientTransport returns a transport without compression or proxy
// from the environment, closed when t ends.
func newClientTransport(t *testing.T) *http.Transport {
	t.Helper()
	tr := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// do sends req with tr and returns the response with its body read.
func do(t *testing.T, tr http.RoundTripper, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return resp, b
}

func newRequest(t *testing.T, method, url string, hdr map[string]string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	return req
}
