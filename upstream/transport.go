package upstream

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onioncdn/onioncdn/internal/hygiene"
	"github.com/onioncdn/onioncdn/internal/rfc9111"
)

// Defaults used when the corresponding [Transport] field is zero.
const (
	DefaultMinIdle               = 2
	DefaultDialTimeout           = 60 * time.Second
	DefaultResponseHeaderTimeout = 60 * time.Second
	DefaultIdleTimeout           = 10 * time.Minute
	DefaultProbeInterval         = 30 * time.Second
	DefaultDownTime              = 2 * time.Second
	DefaultMaxSites              = 64
	DefaultTorKeepAlive          = time.Minute

	maxDownTime    = 2 * time.Minute
	minDialBackoff = 250 * time.Millisecond
	maxDialBackoff = time.Minute
	maxDrain       = 64 << 10 // bytes read from a keep-alive or probe response
)

// ErrRequestBody is wrapped by the error RoundTrip returns when reading the
// caller's request body failed while it was being sent: a malformed or
// truncated body from the client (a chunk size that overflows, a bad
// chunked framing, a body shorter than its Content-Length, a body over a
// size limit). That is the client's fault, not the upstream's: the
// upstream is not marked unhealthy, the request is not retried, and the
// error wraps the body's own error too (for example an
// [*http.MaxBytesError]). A handler should answer 400 (or 413).
var ErrRequestBody = errors.New("upstream: reading the request body failed")

// Transport is an [http.RoundTripper] that sends every request to one of a
// fixed set of upstream base URLs over pooled HTTP/1.1 keep-alive
// connections, keeps a warm pool of idle connections dialled ahead of need,
// fails over between upstreams and removes identifying headers.
//
// The zero value with Upstreams set is ready to use with a plain
// [net.Dialer]. Fields must not be changed after the first call to
// RoundTrip, Warm or Stats. A Transport is safe for concurrent use. Call
// Close to stop its background goroutines and close its connections.
type Transport struct {
	// Upstreams lists the base URLs requests are sent to, such as
	// "http://xyz…xyz.onion" or "https://origin.example/prefix". Only the
	// scheme (http or https), host and optional path prefix are used; a
	// query, fragment or user info is an error. Required: an empty or
	// invalid list makes every RoundTrip fail with a clear error.
	Upstreams []string

	// DialContext dials upstreams when DialIsolated is nil.
	// If nil, a plain net.Dialer is used.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)

	// DialIsolated, if set, is used instead of DialContext and receives
	// the isolation tag of the connection (see Isolation). With
	// (*onion.Dialer).DialIsolated the tag becomes the SOCKS user name, so
	// connections with different tags use different Tor circuits.
	DialIsolated func(ctx context.Context, network, addr, isolation string) (net.Conn, error)

	// Isolation forms the isolation tag of a connection from the
	// upstream's host, the site (see Site) and the connection's slot: the
	// lowest index not used by another open connection of the same
	// upstream and site. If nil, the tag is "host/slot" for the default
	// site "" and "host/slot/site" otherwise (hashed to 64 hex digits if
	// longer than 255 bytes), so each pooled connection gets its own
	// circuit and two sites never share one. Tags returned for different
	// sites must differ: a collision fails the dial.
	Isolation func(upstreamHost, site string, slot int) string

	// Site maps a request to a site name. Connections are pooled per
	// upstream and site and are never shared between sites. If nil, every
	// request belongs to the site "". Site must return one of a small
	// fixed set of names (see MaxSites), never a client-controlled value.
	Site func(r *http.Request) string

	// Sites lists site names whose pools are created and warmed when the
	// Transport starts. If empty, only the site "" is warmed, and only
	// when Site is nil. Pools of other sites are created (and then kept
	// warm) on their first request.
	Sites []string

	// MaxSites bounds the number of sites; a request for a further site
	// fails. If zero, DefaultMaxSites (64).
	MaxSites int

	// PreserveHost sends the request's own Host instead of the upstream's
	// host. If false (the default), the Host header is the host of the
	// chosen upstream URL.
	PreserveHost bool

	// UserAgent is sent when the request has no User-Agent header.
	// If empty, no User-Agent is sent (not Go's default). A request that
	// sets User-Agent, even to "", keeps it.
	UserAgent string

	// KeepServerHeaders passes through the response headers that
	// fingerprint the upstream's software (Server, X-Powered-By,
	// X-AspNet-Version, X-Generator, Via, …). If false (the default) they
	// are removed: they would reveal the origin behind the onion service.
	KeepServerHeaders bool

	// ForwardHeaders lists trace and correlation headers to forward
	// (case-insensitive; "X-B3-*" keeps a family). If empty, none is:
	// Traceparent, Tracestate, Baggage, X-Request-Id, X-Correlation-Id,
	// X-B3-*, B3, Uber-Trace-Id, X-Amzn-Trace-Id, X-Cloud-Trace-Context,
	// Sentry-Trace, a request's Cache-Status and similar headers are
	// removed, because they link one client's requests across tiers.
	// Hop-by-hop headers and headers carrying client addresses or circuit
	// ids are removed whatever it says. A cache in front of the Transport
	// removes them first: list them there too (cache.Cache.ForwardHeaders).
	ForwardHeaders []string

	// TLSClientConfig is used for https upstreams. If nil, the default
	// configuration with the upstream's host as server name. Only
	// HTTP/1.1 is negotiated.
	TLSClientConfig *tls.Config

	// MinIdle is the number of idle connections kept open per upstream
	// and site at all times: they are dialled in the background before
	// they are needed and replaced when the far side closes them or they
	// are taken by a request. If zero, DefaultMinIdle (2). A negative
	// value disables the warm pool: connections are then dialled on
	// demand and only kept for reuse.
	MinIdle int

	// MaxIdle bounds the idle connections per upstream and site; a
	// connection returned beyond it is closed. If zero, 4 + 2×MinIdle.
	MaxIdle int

	// IdleTimeout closes idle connections beyond MinIdle that have not
	// been used for this long. If zero, DefaultIdleTimeout (10 min).
	// Connections within MinIdle are kept until the far side closes them.
	IdleTimeout time.Duration

	// KeepAliveInterval, if positive, sends a cheap request on every
	// connection that has been idle this long, so that neither the
	// upstream server's idle timeout nor Tor closes it. If zero,
	// DefaultTorKeepAlive (1 min) when connections are dialled with
	// DialIsolated (through Tor, where a closed connection costs a new
	// circuit), and none otherwise: connections closed by the far side
	// are then replaced in the background. A negative value disables
	// keep-alive requests.
	KeepAliveInterval time.Duration

	// KeepAlivePath is the target of keep-alive requests. If empty, the
	// request is "OPTIONS *" (answered 200 with no body by net/http
	// servers); otherwise it is "HEAD KeepAlivePath".
	KeepAlivePath string

	// DialTimeout bounds a dial including the Tor circuit build and a TLS
	// handshake. If zero, DefaultDialTimeout (60 s).
	DialTimeout time.Duration

	// ResponseHeaderTimeout bounds the wait for the response headers after
	// the request was written. If zero, DefaultResponseHeaderTimeout
	// (60 s). A negative value disables it.
	ResponseHeaderTimeout time.Duration

	// ProbePath, if set, makes the Transport send "GET ProbePath" to every
	// upstream each ProbeInterval; a response below 500 marks it healthy,
	// anything else unhealthy. If empty, health is passive only.
	ProbePath string

	// ProbeInterval is the period of active probes. If zero,
	// DefaultProbeInterval (30 s).
	ProbeInterval time.Duration

	// DownTime is how long an upstream is avoided after a failure (a dial
	// error, a timeout, a broken connection or a 5xx response); it doubles
	// with each consecutive failure up to 2 min and ends at the first
	// successful request or probe. When it has passed, the upstream is
	// tried again (a failure there starts a longer down time). If zero,
	// DefaultDownTime (2 s).
	DownTime time.Duration

	// Now returns the current time. If nil, time.Now.
	Now func() time.Time

	// Logger receives connection and failover events; URLs are logged as
	// host and path only, never with their query. If nil, logs are
	// discarded.
	Logger *slog.Logger

	once      sync.Once
	initErr   error
	mu        sync.Mutex // guards the fields below and every pool's maps
	closed    bool
	ups       []*upstreamState
	rr        uint64
	tags      map[string]string // isolation tag → site
	nsites    map[string]bool
	changed   chan struct{} // closed and replaced when pool state changes
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// Stats is a snapshot of a Transport's counters.
type Stats struct {
	Upstreams []UpstreamStats // in the order of Transport.Upstreams
}

// UpstreamStats are the counters of one upstream, summed over sites.
type UpstreamStats struct {
	URL          string // the base URL as configured
	Healthy      bool   // no failure since the last success
	Dials        uint64 // connections dialled successfully
	DialFailures uint64 // failed dials (including timeouts)
	Requests     uint64 // requests sent (attempts, including retries)
	Reused       uint64 // requests sent on a connection that carried an earlier request
	New          uint64 // requests that were the first on their connection
	ColdDials    uint64 // requests that found no idle connection and started a dial
	InFlight     int    // requests sent and not yet finished (body not closed)
	Failures     uint64 // failed attempts: dial, timeout, connection or 5xx
	Retries      uint64 // requests retried on another upstream after failing here
	Idle         int    // idle connections in the pool now
	Open         int    // open connections now (idle and in use)
	PeerClosed   uint64 // pooled connections found closed by the far side (and replaced)
	KeepAlives   uint64 // keep-alive requests sent
	Probes       uint64 // active probes sent
}

// upstreamState is one configured upstream.
type upstreamState struct {
	raw    string
	scheme string
	host   string // as in the URL, used for Host and TLS
	addr   string // host:port to dial
	prefix string // path prefix without trailing slash
	pools  map[string]*pool

	inFlight atomic.Int64

	// minTTFB is the shortest time from a request written to its
	// response header, in nanoseconds (0: none yet). A failure sooner
	// than that cannot be the upstream's answer to the request.
	minTTFB atomic.Int64

	// guarded by Transport.mu
	fails     int
	downUntil time.Time
	dialErr   error // last dial error, cleared by a successful dial

	dials, dialFailures, requests, reused, fresh, coldDials  atomic.Uint64
	failures, retries, peerClosed, keepAlives, probes, stale atomic.Uint64
}

func (t *Transport) logger() *slog.Logger {
	if t.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return t.Logger
}

func (t *Transport) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

func (t *Transport) minIdle() int {
	switch {
	case t.MinIdle < 0:
		return 0
	case t.MinIdle == 0:
		return DefaultMinIdle
	}
	return t.MinIdle
}

func (t *Transport) maxIdle() int {
	if t.MaxIdle > 0 {
		return max(t.MaxIdle, t.minIdle())
	}
	return 4 + 2*t.minIdle()
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func (t *Transport) downTime() time.Duration { return orDefault(t.DownTime, DefaultDownTime) }

// init validates the configuration and starts the warmers once.
// keepAlive returns the effective KeepAliveInterval (0: none).
func (t *Transport) keepAlive() time.Duration {
	switch {
	case t.KeepAliveInterval > 0:
		return t.KeepAliveInterval
	case t.KeepAliveInterval == 0 && t.DialIsolated != nil:
		return DefaultTorKeepAlive
	}
	return 0
}

func (t *Transport) init() error {
	t.once.Do(func() {
		t.mu.Lock()
		closed := t.closed
		t.mu.Unlock()
		if closed {
			t.initErr = fmt.Errorf("upstream: %w", net.ErrClosed)
			return
		}
		if len(t.Upstreams) == 0 {
			t.initErr = errors.New("upstream: no upstreams configured")
			return
		}
		ups := make([]*upstreamState, 0, len(t.Upstreams))
		for _, raw := range t.Upstreams {
			u, err := parseUpstream(raw)
			if err != nil {
				t.initErr = err
				return
			}
			ups = append(ups, u)
		}
		t.ctx, t.cancel = context.WithCancel(context.Background())
		t.mu.Lock()
		defer t.mu.Unlock()
		t.ups = ups
		t.tags = make(map[string]string)
		t.nsites = make(map[string]bool)
		t.changed = make(chan struct{})
		sites := t.Sites
		if t.Site == nil && len(sites) == 0 {
			sites = []string{""}
		}
		for _, u := range ups {
			for _, s := range sites {
				if _, err := t.poolLocked(u, s); err != nil {
					t.initErr = err
					return
				}
			}
			if t.ProbePath != "" && !t.closed {
				t.wg.Add(1)
				go t.probeLoop(u)
			}
		}
	})
	return t.initErr
}

func parseUpstream(raw string) (*upstreamState, error) {
	pu, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("upstream: invalid upstream URL: %w", err)
	}
	if pu.Scheme != "http" && pu.Scheme != "https" {
		return nil, fmt.Errorf("upstream: upstream %q: scheme must be http or https", raw)
	}
	if pu.Host == "" || pu.Hostname() == "" {
		return nil, fmt.Errorf("upstream: upstream %q: missing host", raw)
	}
	if pu.User != nil || pu.RawQuery != "" || pu.ForceQuery || pu.Fragment != "" {
		return nil, fmt.Errorf("upstream: upstream %q: user info, query and fragment are not allowed", pu.Redacted())
	}
	port := pu.Port()
	if port == "" {
		port = "80"
		if pu.Scheme == "https" {
			port = "443"
		}
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return nil, fmt.Errorf("upstream: upstream %q: invalid port", raw)
	}
	return &upstreamState{
		raw:    raw,
		scheme: pu.Scheme,
		host:   pu.Host,
		addr:   net.JoinHostPort(pu.Hostname(), port),
		prefix: strings.TrimSuffix(pu.EscapedPath(), "/"),
		pools:  make(map[string]*pool),
	}, nil
}

// poolLocked returns the pool of (u, site), creating and warming it.
// t.mu must be held.
func (t *Transport) poolLocked(u *upstreamState, site string) (*pool, error) {
	if p := u.pools[site]; p != nil {
		return p, nil
	}
	if t.closed {
		return nil, fmt.Errorf("upstream: %w", net.ErrClosed)
	}
	t.nsites[site] = true
	p := &pool{t: t, u: u, site: site, kick: make(chan struct{}, 1), slots: make(map[int]bool)}
	u.pools[site] = p
	t.wg.Add(1)
	go p.warmLoop(t.ctx)
	return p, nil
}

// notifyLocked wakes Warm callers. t.mu must be held.
func (t *Transport) notifyLocked() {
	close(t.changed)
	t.changed = make(chan struct{})
}

// isolation returns the isolation tag for a new connection and checks that
// no other site uses it. t.mu must be held.
func (t *Transport) isolationLocked(u *upstreamState, site string, slot int) (string, error) {
	var tag string
	if t.Isolation != nil {
		tag = t.Isolation(u.host, site, slot)
	} else {
		tag = u.host + "/" + strconv.Itoa(slot)
		if site != "" {
			tag += "/" + site
		}
		if len(tag) > 255 {
			sum := sha256.Sum256([]byte(tag))
			tag = hex.EncodeToString(sum[:])
		}
	}
	if other, ok := t.tags[tag]; ok && other != site {
		return "", fmt.Errorf("upstream: isolation tag of site %q collides with site %q", site, other)
	}
	t.tags[tag] = site
	return tag, nil
}

// healthyLocked reports whether u may be chosen now. t.mu must be held.
func (u *upstreamState) healthyLocked(now time.Time) bool {
	return u.fails == 0 || !now.Before(u.downUntil)
}

func (t *Transport) markFailure(u *upstreamState, what string, err error) {
	u.failures.Add(1)
	t.mu.Lock()
	u.fails++
	d := t.downTime() << min(u.fails-1, 16)
	if d > maxDownTime || d <= 0 {
		d = maxDownTime
	}
	u.downUntil = t.now().Add(d)
	t.mu.Unlock()
	t.logger().Warn("upstream failure", "upstream", u.host, "what", what, "down_for", d, "err", err)
}

func (t *Transport) markSuccess(u *upstreamState) {
	t.mu.Lock()
	if u.fails != 0 {
		u.fails = 0
		t.logger().Info("upstream healthy", "upstream", u.host)
	}
	t.mu.Unlock()
}

// pick chooses the upstream for an attempt: among healthy upstreams not
// yet tried, the one with the fewest requests in flight; ties are broken
// round robin. If none is healthy, the same rule applies to all untried
// upstreams. It returns nil when every upstream was tried.
func (t *Transport) pick(tried []bool, healthyOnly bool) *upstreamState {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	n := len(t.ups)
	start := int(t.rr % uint64(n))
	t.rr++
	var best *upstreamState
	var bestLoad int64
	for pass := 0; pass < 2 && best == nil; pass++ {
		if pass == 1 && healthyOnly {
			break
		}
		for i := range n {
			j := (start + i) % n
			u := t.ups[j]
			if tried[j] || (pass == 0 && !u.healthyLocked(now)) {
				continue
			}
			if l := u.inFlight.Load(); best == nil || l < bestLoad {
				best, bestLoad = u, l
			}
		}
	}
	if best != nil {
		best.inFlight.Add(1)
	}
	return best
}

func (t *Transport) index(u *upstreamState) int {
	for i, v := range t.ups {
		if v == u {
			return i
		}
	}
	return -1
}

// Warm starts the warm pools, if not yet started, and waits until every
// pool created so far holds MinIdle idle connections or its upstream's
// last dial failed. It returns nil when every pool is warm, the dial
// errors of the upstreams that are not, or ctx's error.
func (t *Transport) Warm(ctx context.Context) error {
	if err := t.init(); err != nil {
		return err
	}
	want := t.minIdle()
	for {
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			return fmt.Errorf("upstream: %w", net.ErrClosed)
		}
		done := true
		var errs []error
		for _, u := range t.ups {
			for _, p := range u.pools {
				if len(p.idle) >= want {
					continue
				}
				if u.dialErr != nil {
					errs = append(errs, fmt.Errorf("upstream: warm %s: %w", u.host, u.dialErr))
					continue
				}
				done = false
			}
		}
		ch := t.changed
		t.mu.Unlock()
		if done {
			return errors.Join(errs...)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("upstream: warm: %w", ctx.Err())
		}
	}
}

// Stats returns a snapshot of the counters of every upstream. It is empty
// before the first use of the Transport.
func (t *Transport) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	var s Stats
	for _, u := range t.ups {
		us := UpstreamStats{
			URL:          u.raw,
			Healthy:      u.fails == 0,
			Dials:        u.dials.Load(),
			DialFailures: u.dialFailures.Load(),
			Requests:     u.requests.Load(),
			Reused:       u.reused.Load(),
			New:          u.fresh.Load(),
			ColdDials:    u.coldDials.Load(),
			InFlight:     int(u.inFlight.Load()),
			Failures:     u.failures.Load(),
			Retries:      u.retries.Load(),
			PeerClosed:   u.peerClosed.Load(),
			KeepAlives:   u.keepAlives.Load(),
			Probes:       u.probes.Load(),
		}
		for _, p := range u.pools {
			us.Idle += len(p.idle)
			us.Open += p.open
		}
		s.Upstreams = append(s.Upstreams, us)
	}
	return s
}

// Close stops the background warmers and probers and closes all idle
// connections. Connections in use are closed when their response body is
// closed. Later requests fail. A second Close returns an error wrapping
// net.ErrClosed.
func (t *Transport) Close() error {
	first := false
	t.closeOnce.Do(func() { first = true })
	if !first {
		return fmt.Errorf("upstream: %w", net.ErrClosed)
	}
	t.mu.Lock()
	t.closed = true
	cancel := t.cancel
	type pc struct {
		p *pool
		c *conn
	}
	var idle []pc
	for _, u := range t.ups {
		for _, p := range u.pools {
			for _, c := range p.idle {
				c.taking = true
				idle = append(idle, pc{p, c})
			}
			p.idle = nil
			for _, w := range p.waiters {
				close(w)
			}
			p.waiters = nil
		}
	}
	if t.changed != nil {
		t.notifyLocked()
	}
	t.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	for _, x := range idle {
		x.p.discard(x.c)
	}
	t.wg.Wait()
	return nil
}

// isIdempotent reports whether r may be sent twice: GET, HEAD, OPTIONS and
// TRACE, or any request carrying an Idempotency-Key header.
func isIdempotent(r *http.Request) bool {
	switch r.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, a := r.Header["Idempotency-Key"]
	_, b := r.Header["X-Idempotency-Key"]
	return a || b
}

// RoundTrip sends r to one of the upstreams. The request is not modified;
// its body is always closed. See the package documentation for routing,
// retries and failover. If r's context carries an httptrace.ClientTrace,
// its GetConn and GotConn hooks are called around taking each connection
// (WasIdle for one from the pool, Reused for one that carried requests
// before), as http.Transport calls them.
func (t *Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	body := &onceCloser{rc: r.Body}
	defer body.Close()
	if r.URL == nil {
		return nil, errors.New("upstream: nil request URL")
	}
	if err := t.init(); err != nil {
		return nil, err
	}
	if t.isClosed() {
		return nil, fmt.Errorf("upstream: %w", net.ErrClosed)
	}
	ctx := r.Context()
	site := ""
	if t.Site != nil {
		site = t.Site(r)
	}
	if err := t.checkSite(site); err != nil {
		return nil, err
	}
	replayable := r.Body == nil || r.Body == http.NoBody || r.GetBody != nil
	retryable := replayable && isIdempotent(r)
	tried := make([]bool, len(t.ups))
	log := t.logger()

	// A request reaches at most two upstream attempts that may have been
	// acted on (this one and one retry), whatever goes wrong: a client must
	// not be able to multiply upstream work. A new connection in place of
	// a pooled one that was dead before the request reached it does not
	// count (see attempt).
	var lastErr error
	for attempt := 0; attempt < 2; attempt++ {
		u := t.pick(tried, attempt > 0)
		if u == nil {
			break
		}
		tried[t.index(u)] = true
		var rb io.ReadCloser
		if r.Body != nil && r.Body != http.NoBody {
			rb = body
		}
		if attempt > 0 && rb != nil {
			nb, err := r.GetBody()
			if err != nil {
				u.inFlight.Add(-1)
				return nil, fmt.Errorf("upstream: get body for retry: %w", err)
			}
			rb = nb
		}
		resp, started, err := t.attempt(ctx, r, u, site, rb, retryable)
		if err != nil {
			u.inFlight.Add(-1)
			lastErr = err
			if ctx.Err() != nil {
				return nil, err
			}
			if errors.Is(err, ErrRequestBody) {
				// The client's fault: no health change, no retry.
				log.Debug("upstream request body failed", "upstream", u.host, "method", r.Method, "path", r.URL.Path, "err", err)
				return nil, err
			}
			t.markFailure(u, "request", err)
			if !retryable || started || attempt > 0 {
				return nil, err
			}
			if !t.hasOther(tried) {
				return nil, err
			}
			u.retries.Add(1)
			log.Info("upstream retry", "upstream", u.host, "method", r.Method, "path", r.URL.Path, "err", err)
			continue
		}
		if resp.StatusCode >= 500 {
			t.markFailure(u, "status", fmt.Errorf("status %d", resp.StatusCode))
			if retryable && attempt == 0 && t.hasOther(tried) {
				u.retries.Add(1)
				log.Info("upstream retry", "upstream", u.host, "method", r.Method, "path", r.URL.Path, "status", resp.StatusCode)
				resp.Body.Close()
				continue
			}
		} else {
			t.markSuccess(u)
		}
		return resp, nil
	}
	if lastErr == nil {
		lastErr = errors.New("upstream: no upstream available")
	}
	return nil, lastErr
}

func (t *Transport) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// hasOther reports whether a healthy upstream has not been tried.
func (t *Transport) hasOther(tried []bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for i, u := range t.ups {
		if !tried[i] && u.healthyLocked(now) {
			return true
		}
	}
	return false
}

// outgoing builds the request sent to u: a clone of r with its URL rewritten
// and its headers cleaned.
func (t *Transport) outgoing(ctx context.Context, r *http.Request, u *upstreamState, body io.ReadCloser) *http.Request {
	out := r.Clone(ctx)
	out.Body = body
	if body == nil {
		out.Body = http.NoBody
	}
	out.URL.Scheme = u.scheme
	out.URL.Host = u.host
	out.URL.User = nil
	out.URL.Fragment = ""
	out.URL.RawFragment = ""
	if out.URL.Opaque != "*" { // "OPTIONS *" is passed as is
		out.URL.Opaque = ""
		p := r.URL.Path
		if p == "" {
			p = "/"
		}
		if u.prefix == "" {
			out.URL.Path, out.URL.RawPath = p, r.URL.RawPath
		} else {
			pp, err := url.PathUnescape(u.prefix)
			if err != nil {
				pp = u.prefix
			}
			out.URL.Path = pp + "/" + strings.TrimPrefix(p, "/")
			out.URL.RawPath = u.prefix + "/" + strings.TrimPrefix(r.URL.EscapedPath(), "/")
		}
	}
	if t.PreserveHost {
		if out.Host == "" {
			out.Host = r.URL.Host
		}
	} else {
		out.Host = ""
	}
	out.Close = false
	out.RequestURI = ""
	if out.Header == nil {
		out.Header = make(http.Header)
	}
	hygiene.CleanRequestExcept(out.Header, t.ForwardHeaders)
	if v, ok := out.Header["Range"]; ok {
		// No Range field that makes the upstream send many times an
		// object's size (see rfc9111.ForwardRange).
		f, ok := "", false
		if len(v) == 1 && (out.Method == http.MethodGet || out.Method == http.MethodHead || out.Method == "") {
			f, ok = rfc9111.ForwardRange(v[0])
		}
		if ok {
			out.Header["Range"] = []string{f}
		} else {
			delete(out.Header, "Range")
			delete(out.Header, "If-Range")
		}
	}
	out.Header.Del("Expect") // 100-continue is not implemented: the body is sent at once
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header["User-Agent"] = []string{t.UserAgent}
	}
	out.Trailer = nil
	out.TransferEncoding = nil
	return out
}

// onceCloser closes the caller's body at most once.
type onceCloser struct {
	rc   io.ReadCloser
	once sync.Once
	err  error
}

func (o *onceCloser) Read(p []byte) (int, error) {
	if o.rc == nil {
		return 0, io.EOF
	}
	return o.rc.Read(p)
}

func (o *onceCloser) Close() error {
	o.once.Do(func() {
		if o.rc != nil {
			o.err = o.rc.Close()
		}
	})
	return o.err
}

// checkSite registers site, enforcing MaxSites.
func (t *Transport) checkSite(site string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.nsites[site] {
		return nil
	}
	maxSites := t.MaxSites
	if maxSites <= 0 {
		maxSites = DefaultMaxSites
	}
	if len(t.nsites) >= maxSites {
		return fmt.Errorf("upstream: more than %d sites", maxSites)
	}
	t.nsites[site] = true
	return nil
}

// attempt sends r to u once, and once more on a new connection if a
// connection taken from the idle pool turns out to have been dead before
// the request reached the upstream (only for retryable requests). Either
// way, at most one send per attempt can have been acted on upstream. On
// success the response body's close or EOF ends the request's in-flight
// count.
func (t *Transport) attempt(ctx context.Context, r *http.Request, u *upstreamState, site string, body io.ReadCloser, retryable bool) (*http.Response, bool, error) {
	t.mu.Lock()
	p, err := t.poolLocked(u, site)
	t.mu.Unlock()
	if err != nil {
		return nil, false, err
	}
	skipIdle := false
	for {
		trace := httptrace.ContextClientTrace(ctx)
		if trace != nil && trace.GetConn != nil {
			trace.GetConn(u.host)
		}
		c, fromIdle, dialed, err := p.get(ctx, skipIdle)
		if dialed {
			u.coldDials.Add(1)
		}
		if err != nil {
			return nil, false, err
		}
		if trace != nil && trace.GotConn != nil {
			trace.GotConn(httptrace.GotConnInfo{Conn: c.nc, Reused: c.uses > 0, WasIdle: fromIdle})
		}
		u.requests.Add(1)
		if c.uses > 0 {
			u.reused.Add(1)
		} else {
			u.fresh.Add(1)
		}
		var tb *trackedBody
		var ob io.ReadCloser
		if body != nil {
			tb = &trackedBody{rc: body}
			ob = tb
		}
		out := t.outgoing(ctx, r, u, ob)
		resp, stop, started, early, err := t.exchange(ctx, p, c, out)
		if err != nil {
			if tb != nil && tb.err != nil {
				// Reading the client's body failed: its fault, not
				// the upstream's (the connection has been discarded).
				return nil, false, fmt.Errorf("%w: %w", ErrRequestBody, tb.err)
			}
			// A pooled connection the far side had closed before our
			// request reached it (an upstream restart closes them all;
			// an idle timeout races with our write): send it once more
			// on a new connection. A failure that may have come after
			// the upstream acted on the request is never resent here:
			// a request that makes its upstream abort must not cost
			// one upstream request per pooled connection.
			if !started && early && fromIdle && retryable && !skipIdle && ctx.Err() == nil {
				u.stale.Add(1)
				u.peerClosed.Add(1)
				t.logger().Debug("upstream retry on new connection", "upstream", u.host, "err", err)
				if body != nil {
					if body, err = r.GetBody(); err != nil {
						return nil, false, fmt.Errorf("upstream: get body for retry: %w", err)
					}
				}
				skipIdle = true
				continue
			}
			return nil, started, err
		}
		resp.Request = r
		keep := !resp.Close
		if resp.Body == http.NoBody {
			if stop() && keep {
				p.put(c)
			} else {
				p.discard(c)
			}
			u.inFlight.Add(-1)
			return resp, true, nil
		}
		resp.Body = &respBody{t: t, ctx: ctx, p: p, c: c, rc: resp.Body, stop: stop, keep: keep}
		return resp, true, nil
	}
}

// trackedBody records the first error reading the caller's request body
// (other than EOF), so that a failure of the client's body is told apart
// from a failure of the upstream connection.
type trackedBody struct {
	rc  io.ReadCloser
	err error
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

func (b *trackedBody) Close() error { return b.rc.Close() }

// respBody returns the connection to the pool at EOF and discards it when
// closed early or broken.
type respBody struct {
	t      *Transport
	ctx    context.Context
	p      *pool
	c      *conn
	rc     io.ReadCloser
	stop   func() bool
	keep   bool
	once   sync.Once
	closed atomic.Bool
}

func (b *respBody) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, errors.New("upstream: read on closed response body")
	}
	n, err := b.rc.Read(p)
	switch {
	case err == io.EOF:
		b.finish(true)
	case err != nil:
		if b.closed.Load() {
			err = errors.New("upstream: read on closed response body")
		} else if b.ctx.Err() != nil {
			err = fmt.Errorf("upstream: read body from %s: %w", b.p.u.host, context.Cause(b.ctx))
		} else {
			b.t.markFailure(b.p.u, "body", err)
			err = fmt.Errorf("upstream: read body from %s: %w", b.p.u.host, err)
		}
		b.finish(false)
	}
	return n, err
}

func (b *respBody) Close() error {
	b.closed.Store(true)
	b.finish(false)
	return nil
}

func (b *respBody) finish(ok bool) {
	b.once.Do(func() {
		if b.stop() && ok && b.keep {
			b.p.put(b.c)
		} else {
			b.p.discard(b.c)
		}
		b.p.u.inFlight.Add(-1)
	})
}
