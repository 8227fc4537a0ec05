// Command edge runs a caching tier of onioncdn as a plain TCP reverse proxy:
//
//	edge -listen 127.0.0.1:19000 -upstream http://127.0.0.1:18000 -cache-dir /var/cache/edge -max-bytes 1073741824
//
// Responses are cached on disk when -cache-dir is set (cache/diskstore),
// in memory otherwise. Concurrent misses for one object cost one upstream
// request and stream to every client as the object downloads.
// SIGINT or SIGTERM stop it gracefully: no new connections, requests in
// progress and fills finish (up to -shutdown-timeout), the store is closed.
//
// Onion mode (publishing the tier as an onion service) comes later; this
// program only listens on TCP.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/cache/diskstore"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "edge:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		listen      = flag.String("listen", "127.0.0.1:8080", "TCP address to serve on")
		upstream    = flag.String("upstream", "", "upstream base URL, e.g. http://127.0.0.1:18000 (required)")
		cacheDir    = flag.String("cache-dir", "", "directory of the disk cache; empty keeps the cache in memory")
		maxBytes    = flag.Int64("max-bytes", 0, "cache size bound in bytes (0: the store's default, 1 GiB on disk, 64 MiB in memory)")
		hotBytes    = flag.Int64("hot-bytes", 64<<20, "with -cache-dir: memory for copies of small objects (0: serve everything from disk)")
		hotMax      = flag.Int64("hot-max-object", cache.DefaultTieredMaxObject, "with -cache-dir: largest body kept in memory by -hot-bytes")
		noSync      = flag.Bool("no-sync", false, "do not fsync cache entries before committing them (faster misses; a power loss may discard entries)")
		name        = flag.String("name", "edge", "this tier's name in Cache-Status")
		cacheStatus = flag.Bool("cache-status", false, "send RFC 9211 Cache-Status headers (reveals cache state: off for tiers facing users)")
		stripServer = flag.Bool("strip-server", true, "remove Server, X-Powered-By and similar headers from responses")
		logFormat   = flag.String("log", "text", "log format: text or json")
		logLevel    = flag.String("log-level", "info", "log level: debug (one line per request), info, warn, error")
		shutdownTO  = flag.Duration("shutdown-timeout", 30*time.Second, "how long a graceful shutdown waits for requests and fills")
		cpuProfile  = flag.String("cpuprofile", "", "write a CPU profile to this file until shutdown")
	)
	flag.Parse()
	if flag.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	hopts := &slog.HandlerOptions{Level: level}
	var logger *slog.Logger
	switch *logFormat {
	case "text":
		logger = slog.New(slog.NewTextHandler(os.Stderr, hopts))
	case "json":
		logger = slog.New(slog.NewJSONHandler(os.Stderr, hopts))
	default:
		return fmt.Errorf("-log: want text or json, not %q", *logFormat)
	}

	if *upstream == "" {
		return errors.New("-upstream is required")
	}
	up, err := url.Parse(*upstream)
	if err != nil {
		return fmt.Errorf("-upstream: %w", err)
	}
	if (up.Scheme != "http" && up.Scheme != "https") || up.Host == "" {
		return fmt.Errorf("-upstream: want http(s)://host[:port], not %q", *upstream)
	}

	var store cache.Store
	if *cacheDir != "" {
		ds, err := diskstore.Open(*cacheDir, diskstore.Options{MaxBytes: *maxBytes, NoSync: *noSync, Logger: logger})
		if err != nil {
			return err
		}
		defer ds.Close()
		store = ds
		if *hotBytes > 0 {
			store = &cache.TieredStore{Slow: ds, Fast: &cache.MemoryStore{MaxBytes: *hotBytes}, MaxObject: *hotMax}
		}
	} else {
		store = &cache.MemoryStore{MaxBytes: *maxBytes}
	}

	c := &cache.Cache{
		Upstream:           up,
		Store:              store,
		Name:               *name,
		CacheStatus:        *cacheStatus,
		StripServerHeaders: *stripServer,
		Logger:             logger,
	}
	srv := &http.Server{
		Handler:           c,
		ReadHeaderTimeout: 20 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	logger.Info("edge listening", "addr", ln.Addr().String(), "upstream", up.Redacted(), "cache_dir", *cacheDir)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	stop()
	logger.Info("edge shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), *shutdownTO)
	defer cancel()
	err = srv.Shutdown(sctx)
	if cerr := c.Shutdown(sctx); err == nil {
		err = cerr
	}
	st := c.Stats()
	logger.Info("edge stopped", "hits", st.Hits, "misses", st.Misses, "collapsed", st.Collapsed,
		"errors", st.Errors, "bytes_served", st.BytesServed)
	return err
}
