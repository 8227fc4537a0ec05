package tier

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/cache/diskstore"
	"github.com/onioncdn/onioncdn/cache/heldwrite"
	"github.com/onioncdn/onioncdn/hls"
	"github.com/onioncdn/onioncdn/metrics"
	"github.com/onioncdn/onioncdn/route"
	"github.com/onioncdn/onioncdn/upstream"
	"github.com/onioncdn/onioncdn/upstream/integrity"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultHotBytes is the memory a disk-backed tier uses for copies of small
// objects when Config.HotBytes is zero.
const DefaultHotBytes = 64 << 20

// Config describes one caching tier. Name and Upstreams are required; every
// other field's zero value is a sensible default.
type Config struct {
	// Name identifies the tier in Cache-Status, logs and metrics (label
	// tier). Required.
	Name string

	// Upstreams are the base URLs of the next tier up (midtier onions for
	// an edge, the origin for a midtier). Required.
	Upstreams []string

	// DialIsolated dials upstreams, with an isolation tag per pooled
	// connection: (*onion.Dialer).DialIsolated reaches onions through Tor
	// with a circuit per connection. If nil, upstreams are dialled
	// directly (clearnet or loopback).
	DialIsolated func(ctx context.Context, network, addr, isolation string) (net.Conn, error)

	// MinIdle is the warm pool size per upstream (upstream.Transport). If
	// zero, upstream.DefaultMinIdle (2); negative disables the warm pool.
	MinIdle int

	// KeepAliveInterval exercises idle upstream connections so that no
	// idle timeout closes them. If zero, none are sent.
	KeepAliveInterval time.Duration

	// DialTimeout bounds one upstream dial (circuit build). If zero,
	// upstream.DefaultDialTimeout (60 s).
	DialTimeout time.Duration

	// WrapTransport, if set, wraps the upstream transport (below the
	// cache, above signature verification), e.g. to observe what the tier
	// above answers. If nil, the transport is used as is.
	WrapTransport func(http.RoundTripper) http.RoundTripper

	// Store, if set, is the cache's store; CacheDir, MaxBytes, HotBytes and
	// NoSync are then ignored, and the caller closes it.
	Store cache.Store

	// CacheDir is the directory of the disk store (cache/diskstore). If
	// empty, the cache lives in memory.
	CacheDir string

	// MaxBytes bounds the store. If zero, the store's default (1 GiB on
	// disk, 64 MiB in memory).
	MaxBytes int64

	// HotBytes is the memory for copies of small objects in front of the
	// disk store (cache.TieredStore). If zero, DefaultHotBytes (64 MiB);
	// negative serves everything from disk.
	HotBytes int64

	// NoSync skips fsync of disk entries (diskstore.Options.NoSync).
	NoSync bool

	// CacheStatus sends RFC 9211 Cache-Status headers. If false, they are
	// removed: tiers facing users should not reveal cache state. Turn it
	// on between tiers.
	CacheStatus bool

	// HLS adds the HLS cache policy (hls.Policy) and, unless
	// PrefetchAhead is negative, segment prefetch (hls.Prefetcher).
	HLS bool

	// PrefetchAhead is how many segments are prefetched past the one a
	// client asked for. If zero, hls.DefaultPrefetchAhead; negative
	// disables prefetch.
	PrefetchAhead int

	// VerifyKeys, if not empty, makes the tier verify the origin's
	// signatures (upstream/integrity) on everything it receives before
	// caching it; unsigned or altered responses get 502.
	VerifyKeys []ed25519.PublicKey

	// Agent, if set, counts the tier's requests and reports its load to a
	// router from New until Shutdown. A nil Agent.Sample is set to report
	// the cache hit ratio; a nil Agent.Logger to Logger.
	Agent *route.Agent

	// Registry, if set, receives the tier's collectors (cache, upstream,
	// prefetch, integrity; package internal/metrics) labelled with Name.
	Registry prometheus.Registerer

	// Delivery, if set, receives every request's delivery time.
	Delivery *metrics.Delivery

	// OnRecord, if set, is called for every request record of the cache
	// (after the tier's own hooks).
	OnRecord func(*http.Request, cache.Record)

	// Logger receives the tier's logs. If nil, logs are discarded.
	Logger *slog.Logger
}

// Tier is a running caching tier. Its exported fields are the parts it was
// built from, for statistics; do not change them.
type Tier struct {
	Name       string
	Cache      *cache.Cache
	Transport  *upstream.Transport
	Verifier   *integrity.Transport // nil without VerifyKeys
	Prefetcher *hls.Prefetcher      // nil without HLS prefetch
	Agent      *route.Agent         // nil without an agent
	Disk       *diskstore.Store     // nil for a memory or caller-provided store

	// Handler is the tier's HTTP handler (agent metering, prefetch
	// triggering, cache).
	Handler http.Handler

	log       *slog.Logger
	srv       *http.Server
	agentStop context.CancelFunc
	agentDone chan struct{}
	closeOnce sync.Once
}

// New builds a tier from cfg. Its agent, if any, starts reporting at once;
// call Serve to serve it and Shutdown to stop it.
func New(cfg Config) (*Tier, error) {
	if cfg.Name == "" {
		return nil, errors.New("tier: no name")
	}
	if len(cfg.Upstreams) == 0 {
		return nil, fmt.Errorf("tier %s: no upstream", cfg.Name)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Tier{Name: cfg.Name, log: log}
	t.Transport = &upstream.Transport{
		Upstreams:         cfg.Upstreams,
		DialIsolated:      cfg.DialIsolated,
		MinIdle:           cfg.MinIdle,
		KeepAliveInterval: cfg.KeepAliveInterval,
		DialTimeout:       cfg.DialTimeout,
		Logger:            log.With("part", "upstream"),
	}
	var rt http.RoundTripper = t.Transport
	if len(cfg.VerifyKeys) > 0 {
		keys := make(map[string]ed25519.PublicKey, len(cfg.VerifyKeys))
		for _, k := range cfg.VerifyKeys {
			keys[integrity.KeyID(k)] = k
		}
		t.Verifier = &integrity.Transport{Base: t.Transport, Keys: keys, Logger: log.With("part", "integrity")}
		rt = t.Verifier
	}
	if cfg.WrapTransport != nil {
		rt = cfg.WrapTransport(rt)
	}

	store := cfg.Store
	if store == nil {
		if cfg.CacheDir != "" {
			ds, err := diskstore.Open(cfg.CacheDir, diskstore.Options{MaxBytes: cfg.MaxBytes, NoSync: cfg.NoSync, Logger: log.With("part", "store")})
			if err != nil {
				t.Transport.Close()
				return nil, fmt.Errorf("tier %s: %w", cfg.Name, err)
			}
			t.Disk = ds
			store = ds
			hot := cfg.HotBytes
			if hot == 0 {
				hot = DefaultHotBytes
			}
			if hot > 0 {
				store = &cache.TieredStore{Slow: ds, Fast: &cache.MemoryStore{MaxBytes: hot}}
			}
		} else {
			store = &cache.MemoryStore{MaxBytes: cfg.MaxBytes}
		}
	}

	t.Cache = &cache.Cache{
		Transport:   rt,
		Store:       store,
		Name:        cfg.Name,
		CacheStatus: cfg.CacheStatus,
		Logger:      log.With("part", "cache"),
	}
	var hooks []func(*http.Request, cache.Record)
	var h http.Handler = t.Cache
	if cfg.HLS {
		pol := &hls.Policy{}
		t.Cache.Policy = pol
		if cfg.PrefetchAhead >= 0 {
			pf := &hls.Prefetcher{Fetch: t.Cache.Prefetch, Ahead: cfg.PrefetchAhead, Logger: log.With("part", "prefetch")}
			pol.OnMediaPlaylist = pf.ObservePlaylist
			hooks = append(hooks, pf.OnRecord)
			t.Prefetcher = pf
			h = pf.Wrap(h)
		}
	}
	if cfg.Delivery != nil {
		hooks = append(hooks, cfg.Delivery.OnRecord(cfg.Name))
	}
	if cfg.OnRecord != nil {
		hooks = append(hooks, cfg.OnRecord)
	}
	if len(hooks) > 0 {
		t.Cache.OnRecord = hooks
	}

	if r := cfg.Registry; r != nil {
		cs := []prometheus.Collector{metrics.Cache(cfg.Name, t.Cache), metrics.Upstream(cfg.Name, t.Transport)}
		if t.Prefetcher != nil {
			cs = append(cs, metrics.Prefetch(cfg.Name, t.Prefetcher))
		}
		if t.Verifier != nil {
			cs = append(cs, metrics.Integrity(cfg.Name, t.Verifier))
		}
		for _, c := range cs {
			if err := r.Register(c); err != nil {
				t.closeParts()
				return nil, fmt.Errorf("tier %s: metrics: %w", cfg.Name, err)
			}
		}
	}

	if a := cfg.Agent; a != nil {
		t.Agent = a
		if a.Logger == nil {
			a.Logger = log.With("part", "agent")
		}
		if a.Sample == nil {
			var mu sync.Mutex
			var last cache.Stats
			a.Sample = func(l *route.Load) {
				mu.Lock()
				defer mu.Unlock()
				s := t.Cache.Stats()
				hits := (s.Hits - last.Hits) + (s.Collapsed - last.Collapsed)
				misses := s.Misses - last.Misses
				last = s
				if hits+misses > 0 {
					l.HitRatio = float64(hits) / float64(hits+misses)
				}
			}
		}
		h = a.Middleware(h)
		ctx, stop := context.WithCancel(context.Background())
		t.agentStop, t.agentDone = stop, make(chan struct{})
		go func() {
			defer close(t.agentDone)
			if err := a.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				log.Error("agent stopped", "err", err)
			}
		}()
	}
	t.Handler = h
	t.srv = &http.Server{
		Handler:           heldwrite.Wrap(h),
		ConnContext:       heldwrite.ConnContext, // with heldwrite.Listener in Serve: small hits in one write, large ones corked
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       5 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return t, nil
}

// Warm waits until the upstream warm pool is ready or ctx ends (see
// upstream.Transport.Warm).
func (t *Tier) Warm(ctx context.Context) error { return t.Transport.Warm(ctx) }

// Serve serves the tier on ln until Shutdown; it may be called for several
// listeners at once. It returns http.ErrServerClosed after Shutdown.
func (t *Tier) Serve(ln net.Listener) error { return t.srv.Serve(heldwrite.Listener(ln)) }

// Shutdown stops the tier: the agent sends its last (unhealthy) report,
// the listeners close and requests in progress finish, the cache's fills
// finish, then the prefetcher, the upstream pool and the store close.
// Everything is bounded by ctx; work left when ctx ends is abandoned and
// ctx's error returned. A second call returns an error wrapping
// net.ErrClosed.
func (t *Tier) Shutdown(ctx context.Context) error {
	first := false
	t.closeOnce.Do(func() { first = true })
	if !first {
		return fmt.Errorf("tier: %w", net.ErrClosed)
	}
	var errs []error
	if t.agentStop != nil {
		t.agentStop()
		select {
		case <-t.agentDone:
		case <-ctx.Done():
		}
	}
	if err := t.srv.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("tier %s: drain: %w", t.Name, err))
		t.srv.Close()
	}
	if err := t.Cache.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("tier %s: %w", t.Name, err))
	}
	t.closeParts()
	return errors.Join(errs...)
}

// closeParts closes the prefetcher, the upstream transport and the store.
func (t *Tier) closeParts() {
	if t.Prefetcher != nil {
		t.Prefetcher.Close()
	}
	t.Transport.Close()
	if t.Disk != nil {
		if err := t.Disk.Close(); err != nil {
			t.log.Warn("closing the store", "err", err)
		}
	}
}
