package tier

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/onioncdn/onioncdn/metrics"
	"github.com/onioncdn/onioncdn/onion"
	"github.com/onioncdn/onioncdn/route"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Program holds the flags of a tier program (examples/midtier, and
// examples/edge in onion mode). Set the fields to the program's defaults,
// call Register, parse, then Validate and Run.
type Program struct {
	Name            string        // -name: the tier's name in Cache-Status, logs and metrics
	Listen          string        // -listen: TCP address; empty publishes an onion service
	KeyFile         string        // -key: onion key file (created if missing)
	Port            int           // -port: onion virtual port
	TorPath         string        // -tor
	TorDataDir      string        // -tor-data
	TorrcLines      ListFlag      // -torrc-line (repeatable)
	ControlAddr     string        // -tor-control
	ControlCookie   string        // -tor-control-cookie
	ControlPassword string        // -tor-control-password (prefer the cookie)
	Upstream        string        // -upstream: comma-separated base URLs
	CacheDir        string        // -cache-dir
	MaxBytes        int64         // -max-bytes
	HotBytes        int64         // -hot-bytes
	NoSync          bool          // -no-sync
	CacheStatus     bool          // -cache-status
	HLS             bool          // -hls
	Prefetch        int           // -prefetch: segments ahead; 0 = off
	MinIdle         int           // -min-idle
	VerifyKeys      ListFlag      // -verify-key (repeatable)
	Metrics         string        // -metrics: loopback address
	LogFormat       string        // -log-format
	LogLevel        string        // -log-level
	ShutdownTimeout time.Duration // -shutdown-timeout

	// Edge-only flags, registered when Edge is true.
	Edge           bool
	Watchdog       time.Duration // -watchdog: probe interval of the shared address; 0 = off
	RouterURL      string        // -router: report endpoint URL
	Group          string        // -group
	EdgeID         string        // -edge-id
	AgentKey       string        // -agent-key: ed25519 PEM file (created if missing)
	ReportInterval time.Duration // -report-interval
}

// Register defines the program's flags on fs, with the current field
// values as defaults.
func (p *Program) Register(fs *flag.FlagSet) {
	fs.StringVar(&p.Name, "name", p.Name, "this tier's name in Cache-Status, logs and metrics")
	fs.StringVar(&p.Listen, "listen", p.Listen, "serve on this TCP address instead of an onion service (e.g. 127.0.0.1:9000)")
	fs.StringVar(&p.KeyFile, "key", p.KeyFile, "onion service key file, tor's hs_ed25519_secret_key format; created (mode 0600) if missing")
	fs.IntVar(&p.Port, "port", orInt(p.Port, 80), "virtual port of the onion service")
	fs.StringVar(&p.TorPath, "tor", p.TorPath, `tor binary to start (empty: "tor" from PATH)`)
	fs.StringVar(&p.TorDataDir, "tor-data", p.TorDataDir, "tor data directory kept between runs (empty: a temporary directory)")
	fs.Var(&p.TorrcLines, "torrc-line", "extra torrc line for the tor started, e.g. to join a private network (repeatable)")
	fs.StringVar(&p.ControlAddr, "tor-control", p.ControlAddr, "attach to a running tor's control port (host:port) instead of starting tor")
	fs.StringVar(&p.ControlCookie, "tor-control-cookie", p.ControlCookie, "control auth cookie file for -tor-control (empty: the one tor advertises)")
	fs.StringVar(&p.ControlPassword, "tor-control-password", p.ControlPassword, "control port password for -tor-control (visible in ps: prefer the cookie)")
	fs.StringVar(&p.Upstream, "upstream", p.Upstream, "upstream base URL(s), comma-separated: the origin for a midtier, midtier onions for an edge (required)")
	fs.StringVar(&p.CacheDir, "cache-dir", p.CacheDir, "disk cache directory (empty: cache in memory)")
	fs.Int64Var(&p.MaxBytes, "max-bytes", p.MaxBytes, "cache size bound in bytes (0: 1 GiB on disk, 64 MiB in memory)")
	fs.Int64Var(&p.HotBytes, "hot-bytes", p.HotBytes, "with -cache-dir: memory for copies of small objects (0: 64 MiB; negative: none)")
	fs.BoolVar(&p.NoSync, "no-sync", p.NoSync, "do not fsync cache entries (faster; a power loss may discard entries)")
	fs.BoolVar(&p.CacheStatus, "cache-status", p.CacheStatus, "send RFC 9211 Cache-Status headers (between tiers; reveals cache state to users on a tier facing them)")
	fs.BoolVar(&p.HLS, "hls", p.HLS, "apply the HLS cache policy (playlist and segment TTLs)")
	fs.IntVar(&p.Prefetch, "prefetch", p.Prefetch, "with -hls: prefetch this many segments ahead of viewers (0: off)")
	fs.IntVar(&p.MinIdle, "min-idle", p.MinIdle, "warm upstream connections kept open per upstream (0: 2; negative: no warm pool)")
	fs.Var(&p.VerifyKeys, "verify-key", "verify origin signatures with this ed25519 public key (base64, or a PEM/base64 file); repeatable")
	fs.StringVar(&p.Metrics, "metrics", p.Metrics, "serve Prometheus /metrics on this loopback address (e.g. 127.0.0.1:9100; non-loopback is refused)")
	fs.StringVar(&p.LogFormat, "log-format", orString(p.LogFormat, "text"), "log format: text or json")
	fs.StringVar(&p.LogLevel, "log-level", orString(p.LogLevel, "info"), "log level: debug (one line per request), info, warn or error")
	fs.DurationVar(&p.ShutdownTimeout, "shutdown-timeout", orDuration(p.ShutdownTimeout, 30*time.Second), "how long a graceful shutdown waits for requests and fills")
	if p.Edge {
		fs.DurationVar(&p.Watchdog, "watchdog", p.Watchdog, "probe the shared onion address this often and re-publish when it stops answering (0: off)")
		fs.StringVar(&p.RouterURL, "router", p.RouterURL, "report load to this router endpoint, e.g. http://ROUTER.onion/.well-known/onioncdn/report (empty: no reports)")
		fs.StringVar(&p.Group, "group", p.Group, "with -router: this edge's group id")
		fs.StringVar(&p.EdgeID, "edge-id", p.EdgeID, "with -router: this edge's id within its group")
		fs.StringVar(&p.AgentKey, "agent-key", p.AgentKey, "with -router: ed25519 key file signing reports (PEM, created with mode 0600 if missing)")
		fs.DurationVar(&p.ReportInterval, "report-interval", orDuration(p.ReportInterval, route.DefaultInterval), "with -router: time between load reports")
	}
}

func orInt(v, def int) int {
	if v != 0 {
		return v
	}
	return def
}

func orString(v, def string) string {
	if v != "" {
		return v
	}
	return def
}

func orDuration(v, def time.Duration) time.Duration {
	if v != 0 {
		return v
	}
	return def
}

// Validate checks the flags without side effects.
func (p *Program) Validate() error {
	if p.Name == "" {
		return errors.New("-name must not be empty")
	}
	if _, err := ParseUpstreams(p.Upstream); err != nil {
		return fmt.Errorf("-upstream: %w", err)
	}
	if p.Listen != "" {
		if _, _, err := net.SplitHostPort(p.Listen); err != nil {
			return fmt.Errorf("-listen %q: %w", p.Listen, err)
		}
	} else if p.KeyFile == "" {
		return errors.New("onion mode needs -key FILE (created if missing), or give -listen for TCP mode")
	}
	if p.Port < 1 || p.Port > 65535 {
		return fmt.Errorf("-port %d out of range", p.Port)
	}
	if p.MaxBytes < 0 {
		return fmt.Errorf("-max-bytes %d: must not be negative", p.MaxBytes)
	}
	if p.Prefetch < 0 {
		return fmt.Errorf("-prefetch %d: must not be negative", p.Prefetch)
	}
	if p.Prefetch > 0 && !p.HLS {
		return errors.New("-prefetch needs -hls")
	}
	for _, k := range p.VerifyKeys {
		if _, err := ParsePublicKey(k); err != nil {
			return fmt.Errorf("-verify-key: %w", err)
		}
	}
	if p.Metrics != "" {
		if err := metrics.CheckLocal(p.Metrics); err != nil {
			return fmt.Errorf("-metrics: %w", err)
		}
	}
	if _, err := NewLogger(io.Discard, p.LogFormat, p.LogLevel); err != nil {
		return err
	}
	if p.ShutdownTimeout <= 0 {
		return fmt.Errorf("-shutdown-timeout %v: want a positive duration", p.ShutdownTimeout)
	}
	if p.Watchdog < 0 {
		return fmt.Errorf("-watchdog %v: must not be negative", p.Watchdog)
	}
	if p.Watchdog > 0 && p.Listen != "" {
		return errors.New("-watchdog needs onion mode (no -listen)")
	}
	if p.RouterURL != "" {
		if p.Group == "" || p.EdgeID == "" || p.AgentKey == "" {
			return errors.New("-router needs -group, -edge-id and -agent-key")
		}
		if !strings.HasPrefix(p.RouterURL, "http://") && !strings.HasPrefix(p.RouterURL, "https://") {
			return fmt.Errorf("-router %q: want an http(s) URL", p.RouterURL)
		}
	}
	return nil
}

// Running is a started tier program.
type Running struct {
	Tier     *Tier
	Tor      *onion.Server   // nil when no tor is used
	Onion    *onion.Listener // nil in TCP mode
	Address  string          // http://ONION or http://HOST:PORT clients use
	Metrics  *MetricsServer  // nil without -metrics
	Registry *prometheus.Registry
}

// Run starts the tier program described by p, calls ready (if not nil)
// once it serves, and runs until ctx ends; then it shuts down in order:
// the agent's last report, the listeners drain, fills finish, the tor it
// started stops (SIGTERM, then SIGKILL), the metrics endpoint closes. It
// prints what it does to stdout and logs to log.
func (p *Program) Run(ctx context.Context, stdout io.Writer, log *slog.Logger, ready func(*Running)) (err error) {
	if err := p.Validate(); err != nil {
		return err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ups, _ := ParseUpstreams(p.Upstream)
	var keys []ed25519.PublicKey
	for _, k := range p.VerifyKeys {
		pk, _ := ParsePublicKey(k)
		keys = append(keys, pk)
	}
	r := &Running{Registry: prometheus.NewRegistry()}
	r.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var cleanups []func()
	defer func() {
		if err != nil {
			for i := len(cleanups) - 1; i >= 0; i-- {
				cleanups[i]()
			}
		}
	}()

	needTor := p.Listen == "" || AnyOnion(ups) || (p.RouterURL != "" && strings.Contains(p.RouterURL, ".onion"))
	if needTor {
		start := time.Now()
		r.Tor, err = StartTor(ctx, TorConfig{TorPath: p.TorPath, DataDir: p.TorDataDir, ExtraTorrc: p.TorrcLines,
			ControlAddr: p.ControlAddr, ControlCookie: p.ControlCookie, ControlPassword: p.ControlPassword, Logger: log.With("part", "tor")})
		if err != nil {
			return err
		}
		tor := r.Tor
		cleanups = append(cleanups, func() { tor.Close() })
		fmt.Fprintf(stdout, "%s: tor ready (%v)\n", p.Name, time.Since(start).Round(time.Millisecond))
	}

	cfg := Config{
		Name: p.Name, Upstreams: ups, MinIdle: p.MinIdle,
		CacheDir: p.CacheDir, MaxBytes: p.MaxBytes, HotBytes: p.HotBytes, NoSync: p.NoSync,
		CacheStatus: p.CacheStatus, HLS: p.HLS, PrefetchAhead: p.Prefetch, VerifyKeys: keys,
		Registry: r.Registry, Delivery: metrics.NewDelivery(), Logger: log,
	}
	if p.Prefetch == 0 {
		cfg.PrefetchAhead = -1
	}
	r.Registry.MustRegister(cfg.Delivery)
	if r.Tor != nil && AnyOnion(ups) {
		cfg.DialIsolated = r.Tor.Dialer().DialIsolated
		cfg.KeepAliveInterval = time.Minute
	}
	if p.RouterURL != "" {
		key, created, err := LoadOrCreateSigningKey(p.AgentKey)
		if err != nil {
			return fmt.Errorf("-agent-key: %w", err)
		}
		if created {
			fmt.Fprintf(stdout, "%s: created agent key %s\n", p.Name, p.AgentKey)
		}
		fmt.Fprintf(stdout, "%s: agent public key %s (put it in the router's config for group %q, edge %q)\n",
			p.Name, EncodePublicKey(key.Public().(ed25519.PublicKey)), p.Group, p.EdgeID)
		client := &http.Client{Timeout: 2 * time.Minute}
		if r.Tor != nil {
			d := r.Tor.Dialer()
			client.Transport = &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return d.DialIsolated(ctx, network, addr, "onioncdn-agent")
			}}
		}
		cfg.Agent = &route.Agent{URL: p.RouterURL, Group: p.Group, Edge: p.EdgeID, Key: key, Client: client, Interval: p.ReportInterval}
	}
	t, err := New(cfg)
	if err != nil {
		return err
	}
	r.Tier = t
	cleanups = append(cleanups, func() { t.Shutdown(context.Background()) })

	var ln net.Listener
	if p.Listen != "" {
		if ln, err = net.Listen("tcp", p.Listen); err != nil {
			return err
		}
		r.Address = "http://" + ln.Addr().String()
	} else {
		start := time.Now()
		pc := PublishConfig{KeyFile: p.KeyFile, Port: p.Port}
		if p.Watchdog > 0 {
			pc.Watchdog = &onion.Watchdog{Interval: p.Watchdog}
		}
		ol, created, err := Publish(ctx, r.Tor, pc)
		if err != nil {
			return err
		}
		if created && p.Edge {
			fmt.Fprintf(stdout, "%s: created onion key %s (mode 0600; copy it to every edge of the group)\n", p.Name, p.KeyFile)
		} else if created {
			fmt.Fprintf(stdout, "%s: created onion key %s (mode 0600)\n", p.Name, p.KeyFile)
		}
		r.Onion, ln = ol, ol
		r.Address = "http://" + ol.Onion()
		if p.Port != 80 {
			r.Address += fmt.Sprintf(":%d", p.Port)
		}
		if pc.Watchdog != nil {
			r.Registry.MustRegister(metrics.Watchdog(p.Name, ol))
		}
		fmt.Fprintf(stdout, "%s: onion service published (%v)\n", p.Name, time.Since(start).Round(time.Millisecond))
	}
	go t.Serve(ln)
	if p.Metrics != "" {
		if r.Metrics, err = ServeMetrics(p.Metrics, r.Registry, log); err != nil {
			return err
		}
		m := r.Metrics
		cleanups = append(cleanups, func() { m.Shutdown(context.Background()) })
		fmt.Fprintf(stdout, "%s: metrics on http://%s/metrics\n", p.Name, r.Metrics.Addr())
	}
	fmt.Fprintf(stdout, "%s: serving %s → %s (cache: %s)\n", p.Name, r.Address, strings.Join(ups, ", "), cacheDesc(p))
	log.Info("tier serving", "name", p.Name, "address", r.Address, "upstreams", len(ups))
	if ready != nil {
		ready(r)
	}

	<-ctx.Done()
	fmt.Fprintf(stdout, "%s: shutting down\n", p.Name)
	sctx, cancel := context.WithTimeout(context.Background(), p.ShutdownTimeout)
	defer cancel()
	var errs []error
	if err := t.Shutdown(sctx); err != nil {
		errs = append(errs, err)
	}
	if r.Tor != nil {
		pid := r.Tor.TorPID()
		if err := r.Tor.Close(); err != nil {
			errs = append(errs, err)
		}
		if pid != 0 {
			if left := WaitGone([]int{pid}, 10*time.Second); len(left) > 0 {
				errs = append(errs, fmt.Errorf("tor (pid %d) still running", pid))
			} else {
				fmt.Fprintf(stdout, "%s: tor stopped (pid %d)\n", p.Name, pid)
			}
		}
	}
	if r.Metrics != nil {
		r.Metrics.Shutdown(sctx)
	}
	s := t.Cache.Stats()
	fmt.Fprintf(stdout, "%s: stopped; hits %d, misses %d, collapsed %d, errors %d, bytes served %d\n",
		p.Name, s.Hits, s.Misses, s.Collapsed, s.Errors, s.BytesServed)
	return errors.Join(errs...)
}

func cacheDesc(p *Program) string {
	if p.CacheDir == "" {
		return "memory"
	}
	return "disk " + p.CacheDir
}
