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
	"github.com/onioncdn/onioncdn/metrics"
	"github.com/onioncdn/onioncdn/onion"
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

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("edge", flag.ContinueOnError)
	var torrc, verify list
	name := fs.String("name", "edge", "tier name in Cache-Status, logs and metrics")
	listen := fs.String("listen", "", "serve plain TCP on this address instead of an onion service")
	keyFile := fs.String("key", "", "onion key file, created (mode 0600) if missing; copy it to every edge of the group")
	torData := fs.String("tor-data", "", "tor data directory kept between runs (default: temporary)")
	fs.Var(&torrc, "torrc-line", "extra torrc line, e.g. to join a private network (repeatable)")
	ups := fs.String("upstream", "", "midtier base URL(s), comma-separated (required)")
	cacheDir := fs.String("cache-dir", "", "disk cache directory (default: in memory)")
	maxBytes := fs.Int64("max-bytes", 0, "cache size bound (0: 1 GiB on disk, 64 MiB in memory)")
	noSync := fs.Bool("no-sync", false, "do not fsync cache entries (faster; a power loss may drop some)")
	cacheStatus := fs.Bool("cache-status", false, "send Cache-Status (between tiers only: it reveals cache state to users)")
	fs.Var(&verify, "verify-key", "verify origin signatures with this ed25519 public key (base64 or file; repeatable)")
	prefetch := fs.Int("prefetch", 2, "HLS segments prefetched ahead of viewers (0: off)")
	watchdog := fs.Duration("watchdog", 30*time.Second, "probe the shared address this often, re-publish when it stops answering (0: off)")
	routerURL := fs.String("router", "", "report load to this router endpoint")
	group := fs.String("group", "", "with -router: this edge's group")
	edgeID := fs.String("edge-id", "", "with -router: this edge's id in its group")
	agentKey := fs.String("agent-key", "agent.pem", "with -router: report signing key, created (mode 0600) if missing")
	followPurges := fs.Bool("purge", true, "with -verify-key: follow the upstream's purge log (served on, with -cache-status)")
	metricsAddr := fs.String("metrics", "", "serve Prometheus /metrics on this loopback address")
	logLevel := fs.String("log-level", "info", "debug (a line per request), info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if *ups == "" || (*listen == "") == (*keyFile == "") || fs.NArg() > 0 {
		return errors.New("want -upstream, and either -key (onion service) or -listen (TCP); see -h")
	}
	t := &tier.Tier{Name: *name, Logger: log}
	reg := prometheus.NewRegistry()
	tr := &upstream.Transport{Upstreams: strings.Split(*ups, ","), Logger: log.With("part", "upstream")}
	t.Transport = tr
	reg.MustRegister(metrics.Upstream(*name, tr))

	// tor, if this edge is an onion service or its upstreams are onions.
	var ln net.Listener
	if *listen == "" || strings.Contains(*ups, ".onion") {
		t.Tor = &onion.Server{DataDir: *torData, ExtraTorrc: torrc, Logger: log.With("part", "tor")}
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
		lc := onion.ListenConfig{Key: key, ExportCircuitID: true}
		if *watchdog > 0 {
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

	// The cache: verifying the origin's signatures, on disk, HLS-aware.
	var rt http.RoundTripper = tr
	var pol cache.Policy = &hls.Policy{}
	var pubs []ed25519.PublicKey
	if len(verify) > 0 {
		for _, k := range verify {
			pub, err := integrity.ParsePublicKey(k)
			if err != nil {
				return err
			}
			pubs = append(pubs, pub)
		}
		v := &integrity.Transport{Base: tr, Keys: integrity.Keys(pubs...), Logger: log.With("part", "integrity")}
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
	if *followPurges && len(pubs) > 0 {
		// The origin's purges, from the midtiers, over the warm pool; and
		// never store what a midtier behind on them still serves.
		t.Purge = &purge.Follower{Transport: tr, Keys: integrity.Keys(pubs...), StateFile: purgeState}
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
	if *prefetch > 0 {
		t.Prefetcher = &hls.Prefetcher{Ahead: *prefetch, Logger: log.With("part", "prefetch")}
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
		mln, err := metrics.ListenLocal(*metricsAddr) // refuses anything but loopback
		if err != nil {
			return err
		}
		defer mln.Close()
		go http.Serve(mln, metrics.Handler(reg))
	}
	return t.Run(ctx, ln) // until SIGINT/SIGTERM, then a graceful shutdown in order
}
