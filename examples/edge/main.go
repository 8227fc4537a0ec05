// Command edge runs the user-facing tier of an onioncdn CDN: an onion
// service, published with a key that several edge machines share, whose
// disk cache sits in front of one or more midtier onions. It is a recipe:
// everything below is public API, to copy into a program of your own.
//
//	edge -key group.key -upstream http://MIDTIER.onion -cache-dir /var/cache/edge \
//	     -verify-key ORIGIN_PUB -router http://ROUTER.onion/.well-known/onioncdn/report \
//	     -group eu -edge-id eu-1 -agent-key agent.pem
//
// With -listen ADDR it serves plain TCP instead (benchmarks, tests), and
// with -cache-status it serves as a midtier. With -verify-key it follows
// the midtier's purge log (the origin's signed purges) over its upstream
// pool (-purge=false turns that off). SIGINT or SIGTERM stop it
// gracefully: the agent signs off, requests and fills finish, then tor
// stops. Run it with -h for every flag.
package main

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
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/cache/diskstore"
	"github.com/onioncdn/onioncdn/hls"
	"github.com/onioncdn/onioncdn/limit"
	"github.com/onioncdn/onioncdn/metrics"
	"github.com/onioncdn/onioncdn/onion"
	"github.com/onioncdn/onioncdn/onion/balance"
	"github.com/onioncdn/onioncdn/purge"
	"github.com/onioncdn/onioncdn/route"
	"github.com/onioncdn/onioncdn/tier"
	"github.com/onioncdn/onioncdn/upstream"
	"github.com/onioncdn/onioncdn/upstream/integrity"
	"github.com/prometheus/client_golang/prometheus"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "edge:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("edge", flag.ContinueOnError)
	var torrc, verify []string
	name := fs.String("name", "edge", "tier name in Cache-Status, logs and metrics")
	listen := fs.String("listen", "", "serve plain TCP on this address instead of an onion service")
	keyFile := fs.String("key", "", "onion key file, created (mode 0600) if missing; copy it to every edge of the group")
	torData := fs.String("tor-data", "", "tor data directory kept between runs (default: temporary)")
	fs.Func("torrc-line", "extra torrc line, e.g. to join a private network (repeatable)", func(v string) error { torrc = append(torrc, v); return nil })
	ups := fs.String("upstream", "", "midtier base URL(s), comma-separated (required)")
	cacheDir := fs.String("cache-dir", "", "disk cache directory (default: in memory)")
	maxBytes := fs.Int64("max-bytes", 0, "cache size bound (0: 1 GiB on disk, 64 MiB in memory)")
	noSync := fs.Bool("no-sync", false, "do not fsync cache entries (faster; a power loss may drop some)")
	cacheStatus := fs.Bool("cache-status", false, "send Cache-Status (between tiers only: it reveals cache state to users)")
	fs.Func("verify-key", "verify origin signatures with this ed25519 public key (base64 or file; repeatable)", func(v string) error { verify = append(verify, v); return nil })
	prefetch := fs.Int("prefetch", 0, "HLS segments prefetched ahead of viewers (0: sized by the upstream's measured throughput, -1: no prefetch)")
	startVariants := fs.Int("start-variants", 1, "variants of a master playlist prefetched when a viewer requests it (-1: none)")
	forwardCMCD := fs.Bool("forward-cmcd", false, "pass players' CMCD data upstream (it identifies viewing sessions; default: stripped)")
	watchdog := fs.Duration("watchdog", 30*time.Second, "race mode: probe the shared address this often, re-publish when it stops answering (0: off)")
	frontend := fs.String("frontend", "", "balance mode: serve as a backend of this group address (-key is then this edge's own key)")
	groupKey := fs.String("group-key", "", "balance mode: also publish the group's descriptor with this key, listing -backends")
	backends := fs.String("backends", "", "with -group-key: the backend edges' onion addresses, comma-separated")
	takeover := fs.Duration("takeover-delay", 0, "with -group-key: stand by for this long before taking over from the primary publisher (0: primary)")
	routerURL := fs.String("router", "", "report load to this router endpoint")
	group := fs.String("group", "", "with -router: this edge's group")
	edgeID := fs.String("edge-id", "", "with -router: this edge's id in its group")
	agentKey := fs.String("agent-key", "agent.pem", "with -router: report signing key, created (mode 0600) if missing")
	followPurges := fs.Bool("purge", true, "with -verify-key: follow the upstream's purge log (served on, with -cache-status)")
	metricsAddr := fs.String("metrics", "", "serve Prometheus /metrics on this loopback address")
	stopWait := fs.Duration("shutdown-timeout", 0, "on SIGINT/SIGTERM, how long requests in flight may take to finish (0: 30 s)")
	var level slog.Level
	fs.TextVar(&level, "log-level", slog.LevelInfo, "debug (a line per request), info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if *ups == "" || (*listen == "") == (*keyFile == "") || fs.NArg() > 0 {
		return errors.New("want -upstream, and either -key (onion service) or -listen (TCP); see -h")
	}
	t := &tier.Tier{Name: *name, Logger: log, Limiter: &limit.Limiter{}, ShutdownTimeout: *stopWait} // limit's defaults: 20 req/s per circuit…
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.Limit(*name, t.Limiter))
	tr := &upstream.Transport{Upstreams: strings.Split(*ups, ","), Logger: log.With("part", "upstream")}
	t.Transport = tr
	reg.MustRegister(metrics.Upstream(*name, tr))

	// tor, if this edge is an onion service or its upstreams are onions.
	var ln net.Listener
	if *listen == "" || strings.Contains(*ups, ".onion") {
		t.Tor = &onion.Server{DataDir: *torData, ExtraTorrc: torrc, Logger: log.With("part", "tor"), DrainTimeout: *stopWait}
		defer t.Tor.Close() // on early errors; Run closes it after the drain
	}
	if strings.Contains(*ups, ".onion") {
		tr.DialIsolated = t.Tor.Dialer().DialIsolated // a circuit per pooled connection
	}
	if *listen != "" {
		var err error
		if ln, err = net.Listen("tcp", *listen); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: serving http://%s\n", *name, ln.Addr())
	} else {
		key, _, err := onion.LoadOrCreateKey(*keyFile)
		if err != nil {
			return err
		}
		// Circuit ids let the limiter treat each circuit as a client; tor's
		// own levers (proof of work, intro-point DoS defence, streams per
		// circuit) stop what a circuit limit cannot.
		lc := onion.ListenConfig{Key: key, ExportCircuitID: true, PoW: true, IntroDoSDefense: true, MaxStreams: 32, Frontend: *frontend}
		if *frontend != "" {
			lc.PoW = false // a group descriptor cannot carry a backend's PoW (package onion/balance)
		} else if *watchdog > 0 {
			lc.Watchdog = &onion.Watchdog{Interval: *watchdog}
		}
		ol, err := t.Tor.Listen(ctx, lc)
		if err != nil {
			return err
		}
		reg.MustRegister(metrics.Watchdog(*name, ol))
		ln = ol
		fmt.Fprintf(stdout, "%s: serving http://%s (tor pid %d)\n", *name, ol.Onion(), t.Tor.TorPID())
	}

	// Balance mode: every backend edge serves at once; the publisher(s)
	// merge their introduction points into the group's descriptor.
	if *groupKey != "" {
		gk, _, err := onion.LoadOrCreateKey(*groupKey)
		if err != nil {
			return err
		}
		t.Publisher = &balance.Publisher{Server: t.Tor, Key: gk, Backends: strings.Split(*backends, ","), TakeoverDelay: *takeover}
		reg.MustRegister(metrics.Balance(*name, t.Publisher))
	}

	// The cache: verifying the origin's signatures, on disk, HLS-aware.
	var rt http.RoundTripper = tr
	var pol cache.Policy = &hls.Policy{}
	keys, err := integrity.ParseKeys(verify...)
	if err != nil {
		return err
	}
	if len(verify) > 0 {
		v := &integrity.Transport{Base: tr, Keys: keys, Logger: log.With("part", "integrity")}
		reg.MustRegister(metrics.Integrity(*name, v))
		rt = v
		pol = &integrity.BoundPolicy{Policy: pol} // never fresh past the origin's signature
	}
	var purgeFile, purgeState string
	var store cache.Store = &cache.MemoryStore{MaxBytes: *maxBytes}
	if *cacheDir != "" {
		purgeFile, purgeState = filepath.Join(*cacheDir, "purge-rules"), filepath.Join(*cacheDir, "purge-state")
		ds, err := diskstore.Open(*cacheDir, diskstore.Options{MaxBytes: *maxBytes, NoSync: *noSync, Logger: log.With("part", "store")})
		if err != nil {
			return err
		}
		defer ds.Close() // on early errors; Run closes it in order
		t.Store = ds
		store = &cache.TieredStore{Slow: ds, Fast: &cache.MemoryStore{MaxBytes: 64 << 20}} // small hot objects in memory
	}
	if *followPurges && len(verify) > 0 {
		// The origin's purges, from the midtiers, over the warm pool; and
		// never store what a midtier behind on them still serves.
		t.Purge = &purge.Follower{Transport: tr, Keys: keys, StateFile: purgeState}
		rt = t.Purge.Guard(rt)
	}
	t.Cache = &cache.Cache{Transport: rt, Store: store, Policy: pol, Name: *name, CacheStatus: *cacheStatus,
		ForwardTags: *cacheStatus, PurgeFile: purgeFile, Logger: log.With("part", "cache")}
	if t.Purge != nil {
		t.ServePurgeLog = *cacheStatus // as a midtier
		reg.MustRegister(metrics.Purge(*name, t.Purge))
	}
	delivery := metrics.NewDelivery()
	t.Cache.OnRecord = append(t.Cache.OnRecord, delivery.OnRecord(*name))
	reg.MustRegister(metrics.Cache(*name, t.Cache), delivery)
	t.ForwardCMCD = *forwardCMCD
	if *prefetch >= 0 { // start-up, lookahead, ABR headroom and CMCD hints (see hls.Prefetcher)
		t.Prefetcher = &hls.Prefetcher{Ahead: *prefetch, StartVariants: *startVariants, Logger: log.With("part", "prefetch")}
		reg.MustRegister(metrics.Prefetch(*name, t.Prefetcher))
	}

	// Load reports to the router, signed with this edge's own key.
	if *routerURL != "" {
		key, _, err := route.LoadOrCreateAgentKey(*agentKey)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: agent public key (for the router's config): %s\n", *name, route.EncodePublicKey(key.Public().(ed25519.PublicKey)))
		t.Agent = &route.Agent{URL: *routerURL, Group: *group, Edge: *edgeID, Key: key}
		if strings.Contains(*routerURL, ".onion") {
			d := t.Tor.Dialer()
			d.Isolation = "agent" // its own circuit, apart from the upstream pool's
			t.Agent.Client = d.HTTPClient()
		}
	}
	if *metricsAddr != "" {
		m, err := metrics.Serve(*metricsAddr, reg) // refuses anything but loopback
		if err != nil {
			return err
		}
		defer m.Close()
	}
	return t.Run(ctx, ln) // until SIGINT/SIGTERM, then a graceful shutdown in order
}
