package tier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/cache/heldwrite"
	"github.com/onioncdn/onioncdn/hls"
	"github.com/onioncdn/onioncdn/limit"
	"github.com/onioncdn/onioncdn/onion"
	"github.com/onioncdn/onioncdn/onion/balance"
	"github.com/onioncdn/onioncdn/purge"
	"github.com/onioncdn/onioncdn/route"
)

// Defaults of [Tier] fields, chosen for a tier whose clients arrive over
// Tor (slow, high-latency circuits) and may be hostile.
const (
	// DefaultReadHeaderTimeout bounds the wait for a request's header: a
	// Tor client needs a few round trips of 0.2–1 s at worst; a slow-loris
	// client is cut off.
	DefaultReadHeaderTimeout = 30 * time.Second
	// DefaultIdleTimeout keeps an idle keep-alive connection (a circuit's
	// stream) open for the next request of the same client.
	DefaultIdleTimeout = 5 * time.Minute
	// DefaultMaxHeaderBytes bounds a request's header (net/http allows
	// 1 MB): 32 KiB is 4 times nginx's default large buffer.
	DefaultMaxHeaderBytes = 32 << 10
	// DefaultShutdownTimeout bounds a graceful shutdown in Run.
	DefaultShutdownTimeout = 30 * time.Second
)

// Tier serves one caching tier of a CDN (an edge or a midtier) from
// components the caller has built: it wires them together, serves them
// with settings suited to Tor clients, and shuts them down in the order
// that loses nothing:
//
//  1. the router agent sends its last report, marking the edge unhealthy,
//     so the router stops sending clients here; the purge follower stops;
//  2. the group publisher, if any, stops (its standbys take over);
//  3. the listeners close and requests in progress finish
//     (http.Server.Shutdown);
//  4. the cache's fills and background revalidations finish;
//  5. the prefetcher stops;
//  6. the upstream transport closes its connections (Tor circuits);
//  7. the store closes;
//  8. tor stops (last: the drain above went through it).
//
// In front of everything, a Limiter (package limit) protects the tier from
// its clients by default: bounded requests, per-circuit rate, concurrency
// and bandwidth, and shedding of upstream work under overload.
//
// Only Cache or Handler is required; every other field's zero value is a
// sensible default or leaves that part out. Exported fields may not be
// changed after the first method call. A Tier is safe for concurrent use.
type Tier struct {
	// Name names the tier in logs. If empty, "tier".
	Name string

	// Cache is the tier's cache. Shutdown waits for its fills. If
	// Handler is nil, the Cache serves the requests.
	Cache *cache.Cache

	// Handler, if set, serves the requests instead of Cache (for example
	// Cache wrapped in middleware of the caller's own).
	Handler http.Handler

	// Prefetcher, if set, prefetches HLS segments for the Cache's
	// clients: Start attaches it to Cache (hls.Prefetcher.Attach), sets
	// its Session hook, if nil, to the client's Tor circuit (see
	// onion.CircuitID; requests on other listeners have no session), and
	// notes client requests before they reach the handler. It is closed
	// after the cache has drained.
	Prefetcher *hls.Prefetcher

	// ForwardCMCD passes the Common Media Client Data (CTA-5004) players
	// send on to the handler, the cache's log and the upstream tiers, for
	// a CDN whose origin analyses it. If false (the default), CMCD is
	// removed where requests enter the tier (hls.CMCDFilter): it
	// identifies viewing sessions. Either way the Prefetcher reads what it
	// said (the next object, the player's throughput) from the request's
	// context.
	ForwardCMCD bool

	// Agent, if set, reports the tier's load to a router: Start wraps the
	// handler with its meter, sets its Sample hook (if nil) to report the
	// Cache's hit ratio (cache.Stats.HitRatio), and runs it; Shutdown
	// stops it first, after its last report says the tier is going away.
	Agent *route.Agent

	// Limiter protects the tier from its clients (package limit): request
	// size bounds, per-client (per-circuit, with circuit-id export) rate,
	// concurrency and bandwidth, and overload shedding. Start puts it in
	// front of everything else, installs its AdmitMiss as the Cache's
	// (unless one is set) and before prefetches, and lets it configure the
	// http.Server. If nil, a Limiter with limit's defaults is used, unless
	// NoLimiter is set.
	Limiter *limit.Limiter

	// NoLimiter serves without a Limiter (for a tier behind a front that
	// limits its clients already).
	NoLimiter bool

	// Publisher, if set, publishes the group's address for this tier and
	// others (package onion/balance); Start starts it, and Shutdown closes
	// it right after the agent, before the drain: the descriptors it
	// uploaded keep listing this tier for a while, and the other
	// publishers of the group (standbys) take over.
	Publisher *balance.Publisher
	// Purge, if set, follows the purge log of the tier above and applies
	// it to Cache (see package purge): Start runs it (after setting its
	// Cache to this Tier's Cache if nil), Shutdown stops it first, with
	// the agent. Give it the Tier's upstream transport, the raw one.
	Purge *purge.Follower

	// ServePurgeLog serves the entries the Purge follower applied, at
	// purge.DefaultPath, to the tiers below: set it on a midtier. Every
	// response then also carries the follower's log position
	// (purge.PositionField, see Follower.Mark), so that a tier below
	// fetching through Follower.Guard never stores a response older than
	// a purge it has applied. If false, a Tier with a Purge follower answers 404 at that path and
	// never forwards it upstream: an edge's clients are users, and the
	// log (which lists what the origin purged) is for tiers.
	ServePurgeLog bool

	// Transport, if set, is closed after the cache has drained: typically
	// the *upstream.Transport under the Cache.
	Transport io.Closer

	// Store, if set, is closed after the Transport: typically a
	// *diskstore.Store.
	Store io.Closer

	// Tor, if set, is closed last, after everything else has drained
	// through it. onion.Server starts tor in its own process group, so a
	// Ctrl-C in a terminal reaches this program, which drains, and not
	// tor.
	Tor *onion.Server

	// ReadHeaderTimeout, IdleTimeout and MaxHeaderBytes configure the
	// http.Server. If zero, DefaultReadHeaderTimeout,
	// DefaultIdleTimeout and DefaultMaxHeaderBytes.
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int

	// ShutdownTimeout bounds the graceful shutdown that Run starts when
	// its context ends. If zero, DefaultShutdownTimeout.
	ShutdownTimeout time.Duration

	// NoHeldWrites serves without package heldwrite. If false, small
	// cached responses leave in one write and large ones corked (see
	// cache/heldwrite), which saves CPU per hit.
	NoHeldWrites bool

	// Logger receives the tier's own logs (start, shutdown, agent
	// failures) and net/http's server errors at Debug level. If nil, logs
	// are discarded.
	Logger *slog.Logger

	startOnce sync.Once
	startErr  error
	log       *slog.Logger
	handler   http.Handler
	srv       *http.Server
	agentStop context.CancelFunc
	agentDone chan struct{}
	purgeStop context.CancelFunc
	purgeDone chan struct{}
	closeOnce sync.Once
	closed    chan struct{}
}

// Start wires the components and prepares the server; Serve, Run and
// ServeHTTP call it implicitly. It returns an error, and serves nothing,
// if neither Cache nor Handler is set or the Prefetcher cannot be
// attached. Calling it again returns the first call's result.
func (t *Tier) Start() error {
	t.startOnce.Do(func() { t.startErr = t.start() })
	return t.startErr
}

func (t *Tier) name() string {
	if t.Name != "" {
		return t.Name
	}
	return "tier"
}

func (t *Tier) start() error {
	t.closed = make(chan struct{})
	t.log = t.Logger
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	h := t.Handler
	if h == nil {
		if t.Cache == nil {
			return fmt.Errorf("tier %s: neither Cache nor Handler set", t.name())
		}
		h = t.Cache
	}
	lim := t.Limiter
	if lim == nil && !t.NoLimiter {
		lim = &limit.Limiter{Logger: t.log.With("part", "limit")}
		t.Limiter = lim
	}
	if lim != nil && t.Cache != nil && t.Cache.AdmitMiss == nil {
		t.Cache.AdmitMiss = lim.AdmitMiss
	}
	if pf := t.Prefetcher; pf != nil {
		if t.Cache == nil {
			return fmt.Errorf("tier %s: a Prefetcher needs the Cache", t.name())
		}
		if err := pf.Attach(t.Cache); err != nil {
			return fmt.Errorf("tier %s: %w", t.name(), err)
		}
		if pf.Session == nil {
			pf.Session = circuitSession
		}
		if lim != nil {
			// An overloaded tier does no speculative upstream work.
			fetch := pf.Fetch
			pf.Fetch = func(ctx context.Context, r *http.Request) error {
				if !lim.AdmitMiss(r) {
					return errShed
				}
				return fetch(ctx, r)
			}
		}
		h = pf.Wrap(h)
	}
	if a := t.Agent; a != nil {
		if a.Logger == nil {
			a.Logger = t.log.With("part", "agent")
		}
		if a.Sample == nil && t.Cache != nil {
			var mu sync.Mutex
			var last cache.Stats
			c := t.Cache
			a.Sample = func(l *route.Load) {
				mu.Lock()
				defer mu.Unlock()
				s := c.Stats()
				l.HitRatio = s.HitRatio(last)
				last = s
			}
		}
		h = a.Middleware(h)
	}
	if f := t.Purge; f != nil {
		if f.Cache == nil {
			f.Cache = t.Cache
		}
		if f.Logger == nil {
			f.Logger = t.log.With("part", "purge")
		}
		h = purgeRoute(h, f, t.ServePurgeLog)
	}
	h = &hls.CMCDFilter{Next: h, Forward: t.ForwardCMCD}
	if lim != nil {
		h = lim.Handler(h) // outermost: refused requests cost no prefetch nor load
	}
	t.handler = h
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: or(t.ReadHeaderTimeout, DefaultReadHeaderTimeout),
		IdleTimeout:       or(t.IdleTimeout, DefaultIdleTimeout),
		MaxHeaderBytes:    or(t.MaxHeaderBytes, DefaultMaxHeaderBytes),
		ConnContext:       ConnContext,
		ErrorLog:          slog.NewLogLogger(t.log.Handler(), slog.LevelDebug),
	}
	if lim != nil {
		lim.ConfigureServer(srv) // fills only the fields left zero above
	}
	if !t.NoHeldWrites {
		srv.Handler = heldwrite.Wrap(h)
	}
	t.srv = srv
	if p := t.Publisher; p != nil {
		if p.Logger == nil {
			p.Logger = t.log.With("part", "balance")
		}
		if err := p.Start(); err != nil {
			return fmt.Errorf("tier %s: %w", t.name(), err)
		}
	}
	if f := t.Purge; f != nil {
		ctx, stop := context.WithCancel(context.Background())
		t.purgeStop, t.purgeDone = stop, make(chan struct{})
		go func() {
			defer close(t.purgeDone)
			if err := f.Run(ctx); err != nil {
				t.log.Error("purge follower stopped", "tier", t.name(), "err", err)
			}
		}()
	}
	if a := t.Agent; a != nil {
		ctx, stop := context.WithCancel(context.Background())
		t.agentStop, t.agentDone = stop, make(chan struct{})
		go func() {
			defer close(t.agentDone)
			if err := a.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				t.log.Error("agent stopped", "tier", t.name(), "err", err)
			}
		}()
	}
	return nil
}

// circuitSession is a Prefetcher's Session on an onion service: the
// client's circuit.
func circuitSession(r *http.Request) string {
	if id, ok := onion.CircuitID(r.Context()); ok {
		return strconv.FormatUint(uint64(id), 10)
	}
	return ""
}

// errShed is a prefetch's error while the tier sheds upstream work.
var errShed = errors.New("tier: prefetch shed: the tier is overloaded")

func or[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// ConnContext is the http.Server.ConnContext of a tier: it records each
// connection for package heldwrite and, on an onion listener exporting
// circuit ids, the client's circuit (onion.CircuitID). A server of the
// caller's own that serves a tier's handler should use it too.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return heldwrite.ConnContext(onion.ConnContext(ctx, c), c)
}

// ServeHTTP serves a request with the tier's wired handler (prefetch
// notes, agent meter, cache), for a server of the caller's own; a failed
// Start answers 500.
func (t *Tier) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := t.Start(); err != nil {
		http.Error(w, "tier not configured", http.StatusInternalServerError)
		return
	}
	t.handler.ServeHTTP(w, r)
}

// Serve serves the tier on ln (a TCP or onion listener) until Shutdown;
// it may be called for several listeners at once. It returns
// http.ErrServerClosed after Shutdown.
func (t *Tier) Serve(ln net.Listener) error {
	if err := t.Start(); err != nil {
		return err
	}
	if !t.NoHeldWrites {
		ln = heldwrite.Listener(ln)
	}
	return t.srv.Serve(ln)
}

// Run serves the tier on every listener until ctx ends, then shuts it
// down gracefully within ShutdownTimeout and returns Shutdown's error (nil
// when everything stopped in time). If a listener fails first, Run shuts
// down and returns that error.
func (t *Tier) Run(ctx context.Context, lns ...net.Listener) error {
	if err := t.Start(); err != nil {
		return err
	}
	if len(lns) == 0 {
		return fmt.Errorf("tier %s: Run without a listener", t.name())
	}
	serveErr := make(chan error, len(lns))
	for _, ln := range lns {
		go func() { serveErr <- t.Serve(ln) }()
	}
	t.log.Info("tier serving", "tier", t.name(), "listeners", len(lns))
	var first error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			first = fmt.Errorf("tier %s: serve: %w", t.name(), err)
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), or(t.ShutdownTimeout, DefaultShutdownTimeout))
	defer cancel()
	return errors.Join(first, t.Shutdown(sctx))
}

// Shutdown stops the tier in the order described at [Tier]. Everything is
// bounded by ctx: work left when ctx ends is abandoned (connections
// closed) and ctx's error returned, but every component is still closed.
// A second call returns an error wrapping net.ErrClosed.
func (t *Tier) Shutdown(ctx context.Context) error {
	if err := t.Start(); err != nil {
		return err
	}
	first := false
	t.closeOnce.Do(func() { first = true; close(t.closed) })
	if !first {
		return fmt.Errorf("tier %s: %w", t.name(), net.ErrClosed)
	}
	start := time.Now()
	var errs []error
	if t.purgeStop != nil {
		t.purgeStop() // its poll in progress ends with it
	}
	if t.agentStop != nil {
		t.agentStop()
		select {
		case <-t.agentDone:
		case <-ctx.Done():
		}
	}
	if t.purgeStop != nil {
		select {
		case <-t.purgeDone:
		case <-ctx.Done():
		}
	}
	if t.Publisher != nil {
		if err := t.Publisher.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("tier %s: %w", t.name(), err))
		}
	}
	if err := t.srv.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("tier %s: drain: %w", t.name(), err))
		t.srv.Close()
	}
	if t.Cache != nil {
		if err := t.Cache.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("tier %s: %w", t.name(), err))
		}
	}
	if t.Prefetcher != nil {
		t.Prefetcher.Close()
	}
	for _, c := range []struct {
		what string
		c    io.Closer
	}{{"transport", t.Transport}, {"store", t.Store}} {
		if c.c != nil {
			if err := c.c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, fmt.Errorf("tier %s: closing the %s: %w", t.name(), c.what, err))
			}
		}
	}
	if t.Tor != nil {
		if err := t.Tor.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("tier %s: %w", t.name(), err))
		}
	}
	t.log.Info("tier stopped", "tier", t.name(), "duration", time.Since(start).Round(time.Millisecond), "clean", len(errs) == 0)
	return errors.Join(errs...)
}
