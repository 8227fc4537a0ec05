package route

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultReportPath is the path of the router's report endpoint when
// [Router.ReportPath] is empty.
const DefaultReportPath = "/.well-known/onioncdn/report"

// Defaults of the zero-valued [Router] fields.
const (
	DefaultStaleAfter     = 30 * time.Second
	DefaultClockSkew      = 60 * time.Second
	DefaultMaxReportBytes = 8 << 10
	DefaultStickyTTL      = 10 * time.Minute
	DefaultMaxSticky      = 1 << 16
	DefaultRetryAfter     = 30 * time.Second
	DefaultMaxURLBytes    = 8 << 10
	DefaultActiveScale    = 100
	DefaultBandwidthScale = 1 << 20
)

// maxNoncesPerEdge bounds the replay cache of one edge. An agent reporting
// every 10 s holds about 12 nonces in a ±60 s window; an authenticated edge
// sending more is refused with 429 until old nonces expire.
const maxNoncesPerEdge = 1024

// Router is an [http.Handler] that redirects each client to the edge group
// best able to serve it, using signed load reports from the edges' agents
// (see [Agent]) that it receives on its own report endpoint.
//
// The zero value is not useful until Groups is set; every other field has a
// default. Fields must not be changed after the first call to ServeHTTP or
// Stats. Invalid configuration is detected on first use: ServeHTTP then
// answers every request through ErrorHandler (default 503), and Stats
// returns the error. A Router is safe for concurrent use.
//
// # Choosing a group
//
// A group is a candidate when at least one of its edges sent an accepted
// report within StaleAfter (measured by the router's clock when the report
// arrived) that says it is healthy. The group's load is the sum over those
// edges of their reported Active requests and BytesPerSecond, and its score
// is
//
//	score = (Active/ActiveScale + BytesPerSecond/BandwidthScale) / Weight
//
// (lower is better). The router draws two candidates at random with
// replacement, each with probability proportional to its Weight, and takes
// the one with the lower score (the first on a tie): weighted power of two
// choices. Drawing with replacement means that even the busiest group keeps
// a small share (Weight² of the total, for normalised weights), so clients
// do not stampede to one group between reports, and with two groups the
// less-loaded one gets three quarters of new clients when weights are equal.
//
// # Responses
//
// GET and HEAD requests get 302 Found, other methods 307 Temporary Redirect
// (so the body is re-sent), to Scheme://<group onion>[:Port] with the
// request's path and query unchanged, and Cache-Control: no-store. Request
// URIs longer than MaxURLBytes get 414; paths that are not absolute get
// 400. When no group is a candidate, Fallback serves the request, or the
// router answers 503 with Retry-After.
type Router struct {
	// Groups are the edge groups to route to. Required.
	Groups []Group

	// Scheme is the scheme of redirect targets. If empty, "http" (onion
	// services need no TLS: Tor authenticates and encrypts end to end).
	Scheme string

	// Port is the port of redirect targets, used for groups whose Onion has
	// no port of its own. If zero, no port is written (the scheme's
	// default).
	Port int

	// AllowNonOnion accepts any host[:port] as [Group.Onion] instead of
	// only v3 onion addresses. Meant for tests on loopback; never needed in
	// production.
	AllowNonOnion bool

	// StaleAfter is how long an edge's last accepted report counts. If
	// zero, DefaultStaleAfter (30 s). Set it to about three report
	// intervals ([Agent.Interval]).
	StaleAfter time.Duration

	// ClockSkew is the largest accepted difference between a report's
	// timestamp and the router's clock; replayed nonces are remembered for
	// as long. If zero, DefaultClockSkew (60 s).
	ClockSkew time.Duration

	// MaxReportBytes is the largest accepted report body. If zero,
	// DefaultMaxReportBytes (8 KiB).
	MaxReportBytes int64

	// ReportPath is the path of the report endpoint, served by the router
	// rather than redirected. If empty, DefaultReportPath. If "-", ServeHTTP
	// serves no report endpoint (every path is redirected); serve
	// [Router.ReportHandler] elsewhere, e.g. on an onion only the edges know.
	ReportPath string

	// StickyCookie is the name of the stickiness cookie. If empty, clients
	// are not made sticky: every request is routed afresh.
	//
	// The cookie's value is 128 random bits from crypto/rand, unrelated to
	// anything else (not derived from the client, the site, the time or
	// other cookies), so values issued by routers of different sites cannot
	// be linked. It is set with Path=/, HttpOnly, SameSite=Lax, Max-Age
	// StickyTTL and no Domain attribute, so it is sent only to the router's
	// own host. Secure is set only when the request came over TLS: .onion
	// sites are usually served over plain HTTP, whose confidentiality Tor
	// provides. The value → group mapping lives in the router's memory only,
	// is bounded by MaxSticky, expires after StickyTTL and is never logged.
	// Values the router did not issue (or has forgotten) are replaced by a
	// fresh value; a client whose group is no longer a candidate is moved
	// to another group under a fresh value.
	StickyCookie string

	// StickyTTL is the lifetime of a sticky cookie and its mapping. If
	// zero, DefaultStickyTTL (10 minutes).
	StickyTTL time.Duration

	// MaxSticky bounds the number of remembered sticky mappings; the oldest
	// are forgotten first. If zero, DefaultMaxSticky (65536).
	MaxSticky int

	// Fallback, if set, serves requests while no group is a candidate (for
	// example the router's own edge). If nil, the router answers 503 with
	// Retry-After.
	Fallback http.Handler

	// RetryAfter is the Retry-After of the no-group 503. If zero,
	// DefaultRetryAfter (30 s).
	RetryAfter time.Duration

	// MaxURLBytes is the longest accepted request URI. If zero,
	// DefaultMaxURLBytes (8 KiB).
	MaxURLBytes int

	// ActiveScale is the number of active requests per unit of weight that
	// counts as much as BandwidthScale bytes per second in the score. If
	// zero, DefaultActiveScale (100).
	ActiveScale float64

	// BandwidthScale is the rate in bytes per second per unit of weight
	// that counts as much as ActiveScale active requests. If zero,
	// DefaultBandwidthScale (1 MiB/s).
	BandwidthScale float64

	// Rand is the source of the group draws. If nil, a ChaCha8 source
	// seeded from crypto/rand. It is used under the router's lock, so it
	// need not be safe for concurrent use. Sticky cookie values always come
	// from crypto/rand.
	Rand mrand.Source

	// Now returns the current time. If nil, time.Now.
	Now func() time.Time

	// ErrorHandler answers requests when the configuration is invalid. If
	// nil, the router answers 503 Service Unavailable; the error is logged
	// either way.
	ErrorHandler func(http.ResponseWriter, *http.Request, error)

	// Logger receives configuration errors and rejected reports. Client
	// addresses, cookies and URLs are never logged. If nil, logs are
	// discarded.
	Logger *slog.Logger

	initOnce sync.Once
	initErr  error
	cfg      routerConfig

	mu     sync.Mutex // guards everything below
	groups []*groupState
	edges  map[edgeRef]*edgeState
	rng    *mrand.Rand
	sticky stickyStore

	redirects, stickyHits, moved, cookies, noHealthy, badRequests atomic.Uint64
	rep                                                           reportCounters
}

// routerConfig holds the defaulted configuration.
type routerConfig struct {
	scheme                string
	staleAfter, skew, ttl time.Duration
	maxReport             int64
	reportPath            string
	maxSticky, maxURL     int
	retryAfter            string
	activeScale, bwScale  float64
	log                   *slog.Logger
	now                   func() time.Time
	errorHandler          func(http.ResponseWriter, *http.Request, error)
	fallback              http.Handler
	stickyCookie          string
	hosts                 []string
	weights               []float64
	groupIDs              []string
}

type edgeRef struct{ group, edge string }

type groupState struct {
	edges     []*edgeState
	redirects uint64
}

type edgeState struct {
	group    int
	key      ed25519.PublicKey
	nonces   map[[nonceBytes]byte]time.Time // nonce → when it may be forgotten
	lastTS   int64
	received time.Time // zero: no report yet
	healthy  bool
	load     Load
}

type reportCounters struct {
	accepted, unsigned, badSignature, unknownEdge, stale, replayed, malformed, oversized, badMethod, rateLimited atomic.Uint64
}

func (rt *Router) init() error {
	rt.initOnce.Do(func() { rt.initErr = rt.doInit() })
	return rt.initErr
}

func (rt *Router) doInit() error {
	c := &rt.cfg
	c.log = rt.Logger
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.errorHandler = rt.ErrorHandler
	if c.errorHandler == nil {
		c.errorHandler = func(w http.ResponseWriter, _ *http.Request, _ error) {
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
		}
	}
	c.scheme = strings.ToLower(rt.Scheme)
	if c.scheme == "" {
		c.scheme = "http"
	}
	if c.scheme != "http" && c.scheme != "https" {
		return errors.New("route: scheme must be http or https")
	}
	hosts, err := validateGroups(rt.Groups, rt.AllowNonOnion, rt.Port)
	if err != nil {
		return err
	}
	c.hosts = hosts
	c.staleAfter = orDuration(rt.StaleAfter, DefaultStaleAfter)
	c.skew = orDuration(rt.ClockSkew, DefaultClockSkew)
	c.ttl = orDuration(rt.StickyTTL, DefaultStickyTTL)
	c.maxReport = rt.MaxReportBytes
	if c.maxReport == 0 {
		c.maxReport = DefaultMaxReportBytes
	}
	c.reportPath = rt.ReportPath
	if c.reportPath == "" {
		c.reportPath = DefaultReportPath
	}
	if c.reportPath != "-" && !strings.HasPrefix(c.reportPath, "/") {
		return errors.New("route: report path must start with /")
	}
	c.maxSticky = orInt(rt.MaxSticky, DefaultMaxSticky)
	c.maxURL = orInt(rt.MaxURLBytes, DefaultMaxURLBytes)
	ra := orDuration(rt.RetryAfter, DefaultRetryAfter)
	c.retryAfter = strconv.FormatInt(int64(math.Ceil(ra.Seconds())), 10)
	c.activeScale = orFloat(rt.ActiveScale, DefaultActiveScale)
	c.bwScale = orFloat(rt.BandwidthScale, DefaultBandwidthScale)
	if c.staleAfter < 0 || c.skew < 0 || c.ttl < 0 || ra < 0 || c.maxReport < 0 || c.maxSticky < 0 || c.maxURL < 0 ||
		!(c.activeScale > 0) || !(c.bwScale > 0) || math.IsInf(c.activeScale, 0) || math.IsInf(c.bwScale, 0) {
		return errors.New("route: negative or invalid limit")
	}
	if rt.StickyCookie != "" {
		if (&http.Cookie{Name: rt.StickyCookie, Value: "x"}).Valid() != nil {
			return errors.New("route: invalid sticky cookie name")
		}
		c.stickyCookie = rt.StickyCookie
	}
	c.now = rt.Now
	if c.now == nil {
		c.now = time.Now
	}
	c.fallback = rt.Fallback

	src := rt.Rand
	if src == nil {
		var seed [32]byte
		rand.Read(seed[:])
		src = mrand.NewChaCha8(seed)
	}
	rt.rng = mrand.New(src)
	rt.edges = make(map[edgeRef]*edgeState)
	rt.groups = make([]*groupState, len(rt.Groups))
	c.weights = make([]float64, len(rt.Groups))
	c.groupIDs = make([]string, len(rt.Groups))
	for i, g := range rt.Groups {
		gs := &groupState{}
		for _, e := range g.Edges {
			es := &edgeState{group: i, key: append(ed25519.PublicKey(nil), e.PublicKey...)}
			gs.edges = append(gs.edges, es)
			rt.edges[edgeRef{g.ID, e.ID}] = es
		}
		rt.groups[i] = gs
		c.weights[i] = orFloat(g.Weight, 1)
		c.groupIDs[i] = g.ID
	}
	return nil
}

func orDuration(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func orInt(n, def int) int {
	if n == 0 {
		return def
	}
	return n
}

func orFloat(f, def float64) float64 {
	if f == 0 {
		return def
	}
	return f
}

// ServeHTTP redirects r to a group, serves the report endpoint, or answers
// as described on [Router].
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := rt.init(); err != nil {
		rt.cfg.log.Error("route: invalid configuration", "err", err)
		rt.cfg.errorHandler(w, r, err)
		return
	}
	c := &rt.cfg
	if c.reportPath != "-" && r.URL.Path == c.reportPath {
		rt.serveReport(w, r)
		return
	}
	uri := r.RequestURI
	if uri == "" {
		uri = r.URL.RequestURI()
	}
	if len(uri) > c.maxURL {
		rt.badRequests.Add(1)
		http.Error(w, http.StatusText(http.StatusRequestURITooLong), http.StatusRequestURITooLong)
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/") {
		rt.badRequests.Add(1)
		http.Error(w, http.StatusText(http.StatusBadRequest), http.StatusBadRequest)
		return
	}

	now := c.now()
	var (
		presented stickyKey
		hasCookie bool
	)
	if c.stickyCookie != "" {
		// Only the first cookie of that name counts; values we did not
		// issue are never used as keys.
		if ck, err := r.Cookie(c.stickyCookie); err == nil {
			presented, hasCookie = decodeSticky(ck.Value)
		}
	}

	rt.mu.Lock()
	cands, scores := rt.candidates(now)
	if len(cands) == 0 {
		rt.mu.Unlock()
		rt.noHealthy.Add(1)
		if c.fallback != nil {
			c.fallback.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Retry-After", c.retryAfter)
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
		return
	}
	g := -1
	if hasCookie {
		if sg, ok := rt.sticky.lookup(presented, now); ok {
			if contains(cands, sg) {
				g = sg
				rt.stickyHits.Add(1)
			} else {
				rt.sticky.remove(presented)
				rt.moved.Add(1)
			}
		}
	}
	var issued stickyKey
	issue := false
	if g < 0 {
		g = rt.pick(cands, scores)
		if c.stickyCookie != "" && c.maxSticky > 0 {
			issued = rt.sticky.issue(g, now, c.ttl, c.maxSticky)
			issue = true
		}
	}
	rt.groups[g].redirects++
	rt.mu.Unlock()
	rt.redirects.Add(1)

	if issue {
		rt.cookies.Add(1)
		http.SetCookie(w, &http.Cookie{
			Name:     c.stickyCookie,
			Value:    encodeSticky(issued),
			Path:     "/",
			MaxAge:   int(math.Ceil(c.ttl.Seconds())),
			HttpOnly: true,
			Secure:   r.TLS != nil,
			SameSite: http.SameSiteLaxMode,
		})
	}
	loc := url.URL{
		Scheme:     c.scheme,
		Host:       c.hosts[g],
		Path:       r.URL.Path,
		RawPath:    r.URL.RawPath,
		RawQuery:   r.URL.RawQuery,
		ForceQuery: r.URL.ForceQuery,
	}
	h := w.Header()
	h.Set("Location", loc.String())
	h.Set("Cache-Control", "no-store")
	code := http.StatusFound
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		code = http.StatusTemporaryRedirect
	}
	w.WriteHeader(code)
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// candidates returns the groups that may receive clients and their scores.
// rt.mu must be held.
func (rt *Router) candidates(now time.Time) ([]int, []float64) {
	c := &rt.cfg
	var cands []int
	var scores []float64
	for i, gs := range rt.groups {
		ok, active, bps := rt.groupLoad(gs, now)
		if !ok {
			continue
		}
		cands = append(cands, i)
		scores = append(scores, (active/c.activeScale+bps/c.bwScale)/c.weights[i])
	}
	return cands, scores
}

// groupLoad sums the load of the fresh, healthy edges of a group.
func (rt *Router) groupLoad(gs *groupState, now time.Time) (ok bool, active, bps float64) {
	for _, e := range gs.edges {
		if e.received.IsZero() || !e.healthy || now.Sub(e.received) > rt.cfg.staleAfter {
			continue
		}
		ok = true
		active += float64(e.load.Active)
		bps += e.load.BytesPerSecond
	}
	return ok, active, bps
}

// pick draws two candidates with replacement, weighted by capacity, and
// returns the one with the lower score. rt.mu must be held.
func (rt *Router) pick(cands []int, scores []float64) int {
	if len(cands) == 1 {
		return cands[0]
	}
	a, b := rt.draw(cands), rt.draw(cands)
	if scores[b] < scores[a] {
		return cands[b]
	}
	return cands[a]
}

// draw returns an index into cands with probability proportional to weight.
func (rt *Router) draw(cands []int) int {
	var total float64
	for _, g := range cands {
		total += rt.cfg.weights[g]
	}
	x := rt.rng.Float64() * total
	for i, g := range cands {
		x -= rt.cfg.weights[g]
		if x < 0 {
			return i
		}
	}
	return len(cands) - 1
}

// ReportHandler returns a handler for the report endpoint alone, for
// serving reports on another listener or path than the clients'. Reports
// it accepts change this router's routing.
func (rt *Router) ReportHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := rt.init(); err != nil {
			rt.cfg.log.Error("route: invalid configuration", "err", err)
			rt.cfg.errorHandler(w, r, err)
			return
		}
		rt.serveReport(w, r)
	})
}

// serveReport authenticates and applies one report. Status codes:
//
//	204 accepted
//	400 malformed (bad JSON, unknown field, out-of-range value, bad id)
//	401 unsigned (no signature header)
//	403 wrong signature, unknown group or edge, stale timestamp
//	405 not POST
//	409 replayed nonce
//	413 body larger than MaxReportBytes
//	429 too many nonces from one edge within the clock window
func (rt *Router) serveReport(w http.ResponseWriter, r *http.Request) {
	c := &rt.cfg
	reject := func(code int, ctr *atomic.Uint64, reason string, attrs ...any) {
		ctr.Add(1)
		// Anyone who reaches the router can cause most rejections, so they
		// are logged at debug level; the counters are the signal. Stale,
		// replayed and rate-limited reports carry a valid signature and
		// point at a clock or edge problem: warn.
		level := slog.LevelDebug
		if code == http.StatusConflict || code == http.StatusTooManyRequests || reason == "stale" {
			level = slog.LevelWarn
		}
		c.log.Log(r.Context(), level, "route: report rejected", append([]any{"reason", reason}, attrs...)...)
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "route: report rejected: "+reason, code)
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		reject(http.StatusMethodNotAllowed, &rt.rep.badMethod, "method not allowed")
		return
	}
	sigText := r.Header.Get(SignatureHeader)
	if sigText == "" {
		w.Header().Set("WWW-Authenticate", SignatureHeader)
		reject(http.StatusUnauthorized, &rt.rep.unsigned, "unsigned")
		return
	}
	if r.ContentLength > c.maxReport {
		reject(http.StatusRequestEntityTooLarge, &rt.rep.oversized, "too large")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, c.maxReport))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			reject(http.StatusRequestEntityTooLarge, &rt.rep.oversized, "too large")
			return
		}
		reject(http.StatusBadRequest, &rt.rep.malformed, "unreadable body")
		return
	}
	rep, nonce, err := decodeReport(body)
	if err != nil {
		reject(http.StatusBadRequest, &rt.rep.malformed, "malformed")
		return
	}
	es := rt.edges[edgeRef{rep.Group, rep.Edge}]
	if es == nil {
		reject(http.StatusForbidden, &rt.rep.unknownEdge, "unknown edge", "group", rep.Group, "edge", rep.Edge)
		return
	}
	sig, ok := parseSignature(sigText)
	if !ok || !verifyReport(es.key, body, sig) {
		reject(http.StatusForbidden, &rt.rep.badSignature, "bad signature", "group", rep.Group, "edge", rep.Edge)
		return
	}
	now := c.now()
	ts := time.UnixMilli(rep.TS)
	if d := now.Sub(ts); d > c.skew || d < -c.skew {
		reject(http.StatusForbidden, &rt.rep.stale, "stale", "group", rep.Group, "edge", rep.Edge)
		return
	}

	rt.mu.Lock()
	if exp, seen := es.nonces[nonce]; seen && !now.After(exp) {
		rt.mu.Unlock()
		reject(http.StatusConflict, &rt.rep.replayed, "replayed", "group", rep.Group, "edge", rep.Edge)
		return
	}
	if es.nonces == nil {
		es.nonces = make(map[[nonceBytes]byte]time.Time)
	}
	if len(es.nonces) >= maxNoncesPerEdge {
		for n, exp := range es.nonces {
			if now.After(exp) {
				delete(es.nonces, n)
			}
		}
		if len(es.nonces) >= maxNoncesPerEdge {
			rt.mu.Unlock()
			reject(http.StatusTooManyRequests, &rt.rep.rateLimited, "too many reports", "group", rep.Group, "edge", rep.Edge)
			return
		}
	}
	es.nonces[nonce] = ts.Add(c.skew)
	// A report older than one already applied (delivered out of order) is
	// accepted but does not roll the state back.
	if rep.TS >= es.lastTS {
		es.lastTS = rep.TS
		es.received = now
		es.healthy = rep.Healthy
		es.load = rep.Load
	}
	rt.mu.Unlock()
	rt.rep.accepted.Add(1)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// Stats is a snapshot of a [Router]'s counters and group states.
type Stats struct {
	// Redirects counts requests redirected to a group.
	Redirects uint64
	// StickyHits counts redirects that followed a sticky cookie.
	StickyHits uint64
	// StickyMoved counts sticky clients moved because their group was no
	// longer a candidate.
	StickyMoved uint64
	// CookiesIssued counts sticky cookies set.
	CookiesIssued uint64
	// StickyEntries is the number of sticky mappings held.
	StickyEntries int
	// NoHealthy counts requests that found no candidate group (served by
	// Fallback or answered 503).
	NoHealthy uint64
	// BadRequests counts requests answered 400 or 414.
	BadRequests uint64
	// Reports counts reports by outcome.
	Reports ReportStats
	// Groups holds one entry per configured group, in configuration order.
	Groups []GroupStats
}

// ReportStats counts reports received on the report endpoint by outcome.
type ReportStats struct {
	Accepted     uint64 // 204
	Unsigned     uint64 // 401: no signature header
	BadSignature uint64 // 403: signature does not verify or is not well-formed
	UnknownEdge  uint64 // 403: group or edge not configured
	Stale        uint64 // 403: timestamp outside the clock window
	Replayed     uint64 // 409: nonce already seen within the window
	Malformed    uint64 // 400: body not a valid report
	Oversized    uint64 // 413: body larger than MaxReportBytes
	BadMethod    uint64 // 405: not POST
	RateLimited  uint64 // 429: too many reports from one edge
}

// GroupStats describes one group as the router sees it now.
type GroupStats struct {
	ID string
	// Healthy reports whether the group is a routing candidate: it has a
	// fresh report from a healthy edge.
	Healthy bool
	// Score is the group's load score (see [Router]); zero unless Healthy.
	Score float64
	// Load sums the last reports of the group's fresh, healthy edges.
	Load Load
	// LastReport is when the router last applied a report for the group;
	// zero if never.
	LastReport time.Time
	// Redirects counts clients sent to the group.
	Redirects uint64
}

// Stats returns a snapshot of the router's counters and group states, or
// the configuration error.
func (rt *Router) Stats() (Stats, error) {
	if err := rt.init(); err != nil {
		return Stats{}, err
	}
	c := &rt.cfg
	s := Stats{
		Redirects:     rt.redirects.Load(),
		StickyHits:    rt.stickyHits.Load(),
		StickyMoved:   rt.moved.Load(),
		CookiesIssued: rt.cookies.Load(),
		NoHealthy:     rt.noHealthy.Load(),
		BadRequests:   rt.badRequests.Load(),
		Reports: ReportStats{
			Accepted:     rt.rep.accepted.Load(),
			Unsigned:     rt.rep.unsigned.Load(),
			BadSignature: rt.rep.badSignature.Load(),
			UnknownEdge:  rt.rep.unknownEdge.Load(),
			Stale:        rt.rep.stale.Load(),
			Replayed:     rt.rep.replayed.Load(),
			Malformed:    rt.rep.malformed.Load(),
			Oversized:    rt.rep.oversized.Load(),
			BadMethod:    rt.rep.badMethod.Load(),
			RateLimited:  rt.rep.rateLimited.Load(),
		},
	}
	now := c.now()
	rt.mu.Lock()
	defer rt.mu.Unlock()
	s.StickyEntries = rt.sticky.len()
	for i, gs := range rt.groups {
		st := GroupStats{ID: c.groupIDs[i], Redirects: gs.redirects}
		var n int
		for _, e := range gs.edges {
			if e.received.After(st.LastReport) {
				st.LastReport = e.received
			}
			if e.received.IsZero() || !e.healthy || now.Sub(e.received) > c.staleAfter {
				continue
			}
			n++
			st.Load.Active += e.load.Active
			st.Load.RequestsPerSecond += e.load.RequestsPerSecond
			st.Load.BytesPerSecond += e.load.BytesPerSecond
			st.Load.ErrorRatio += e.load.ErrorRatio
			st.Load.HitRatio += e.load.HitRatio
		}
		if n > 0 {
			st.Healthy = true
			st.Load.ErrorRatio /= float64(n)
			st.Load.HitRatio /= float64(n)
			st.Score = (float64(st.Load.Active)/c.activeScale + st.Load.BytesPerSecond/c.bwScale) / c.weights[i]
		}
		s.Groups = append(s.Groups, st)
	}
	return s, nil
}
