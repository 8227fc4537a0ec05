// Command midtier runs the middle tier of an onioncdn CDN: an onion
// service whose disk cache sits between the edges and the origin. It is a
// recipe on the public API, to copy into a program of your own.
//
//	midtier -key midtier.key -upstream http://10.0.0.5:8000 -verify-key ORIGIN_PUB -cache-dir /var/cache/midtier
//
// A midtier is a disposable buffer: edges never hold connections to the
// origin, so an observer of an edge cannot locate it. Keep the origin's
// address, and any signing key, off the edges. It talks to edges, not
// users, so it sends Cache-Status. With -verify-key it also follows the
// origin's signed purge log and serves it to the edges (-purge=false turns
// that off). With -listen ADDR it serves plain TCP
// instead. SIGINT or SIGTERM stop it gracefully. Run it with -h for every
// flag.
package main

import (
	"context"
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

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/cache/diskstore"
	"github.com/onioncdn/onioncdn/hls"
	"github.com/onioncdn/onioncdn/metrics"
	"github.com/onioncdn/onioncdn/onion"
	"github.com/onioncdn/onioncdn/purge"
	"github.com/onioncdn/onioncdn/tier"
	"github.com/onioncdn/onioncdn/upstream"
	"github.com/onioncdn/onioncdn/upstream/integrity"
	"github.com/prometheus/client_golang/prometheus"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "midtier:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("midtier", flag.ContinueOnError)
	var torrc, verify []string
	name := fs.String("name", "midtier", "tier name in Cache-Status, logs and metrics")
	listen := fs.String("listen", "", "serve plain TCP on this address instead of an onion service")
	keyFile := fs.String("key", "", "onion key file, created (mode 0600) if missing")
	torData := fs.String("tor-data", "", "tor data directory kept between runs (default: temporary)")
	fs.Func("torrc-line", "extra torrc line, e.g. to join a private network (repeatable)", func(v string) error { torrc = append(torrc, v); return nil })
	ups := fs.String("upstream", "", "origin base URL(s), comma-separated: clearnet or onion (required)")
	cacheDir := fs.String("cache-dir", "", "disk cache directory (default: in memory)")
	maxBytes := fs.Int64("max-bytes", 0, "cache size bound (0: 1 GiB on disk, 64 MiB in memory)")
	fs.Func("verify-key", "verify origin signatures with this ed25519 public key (base64 or file; repeatable)", func(v string) error { verify = append(verify, v); return nil })
	followPurges := fs.Bool("purge", true, "with -verify-key: follow the origin's purge log and serve it to the edges")
	metricsAddr := fs.String("metrics", "", "serve Prometheus /metrics on this loopback address")
	var level slog.Level
	fs.TextVar(&level, "log-level", slog.LevelInfo, "debug (a line per request), info, warn or error")
	if err := fs.Parse(args); err != nil {
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
	if *listen == "" || strings.Contains(*ups, ".onion") {
		t.Tor = &onion.Server{DataDir: *torData, ExtraTorrc: torrc, Logger: log.With("part", "tor")}
		defer t.Tor.Close() // on early errors; Run closes it after the drain
	}
	if strings.Contains(*ups, ".onion") {
		tr.DialIsolated = t.Tor.Dialer().DialIsolated // an onion origin: a circuit per pooled connection
	}
	var ln net.Listener
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
		ol, err := t.Tor.Listen(ctx, onion.ListenConfig{Key: key})
		if err != nil {
			return err
		}
		ln = ol
		fmt.Fprintf(stdout, "%s: serving http://%s\n", *name, ol.Onion())
	}

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
		ds, err := diskstore.Open(*cacheDir, diskstore.Options{MaxBytes: *maxBytes, Logger: log.With("part", "store")})
		if err != nil {
			return err
		}
		defer ds.Close() // on early errors; Run closes it in order
		t.Store = ds
		store = &cache.TieredStore{Slow: ds, Fast: &cache.MemoryStore{MaxBytes: 64 << 20}}
	}
	t.Cache = &cache.Cache{Transport: rt, Store: store, Policy: pol, Name: *name, CacheStatus: true, ForwardTags: true,
		PurgeFile: purgeFile, Logger: log.With("part", "cache")}
	if *followPurges && len(verify) > 0 {
		// The origin's purges, verified with its keys, over the same pool;
		// re-served to the edges.
		t.Purge = &purge.Follower{Transport: tr, Keys: keys, StateFile: purgeState}
		t.ServePurgeLog = true
		reg.MustRegister(metrics.Purge(*name, t.Purge))
	}
	delivery := metrics.NewDelivery()
	t.Cache.OnRecord = append(t.Cache.OnRecord, delivery.OnRecord(*name))
	reg.MustRegister(metrics.Cache(*name, t.Cache), delivery)
	if *metricsAddr != "" {
		m, err := metrics.Serve(*metricsAddr, reg) // refuses anything but loopback
		if err != nil {
			return err
		}
		defer m.Close()
	}
	return t.Run(ctx, ln) // until SIGINT/SIGTERM, then a graceful shutdown in order
}
