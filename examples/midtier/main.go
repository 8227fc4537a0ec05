// Command midtier runs the middle tier of an onioncdn CDN: an onion
// service whose cache sits between the edges and the origin.
//
//	midtier -key midtier.key -upstream http://10.0.0.5:8000 -cache-dir /var/cache/midtier
//
// It publishes an onion service (key file created with mode 0600 if
// missing; the address is printed) through a tor it starts (-tor, -tor-data,
// -torrc-line) or a running tor (-tor-control), caches on disk (-cache-dir,
// -max-bytes) and fetches misses from the origin over a warm keep-alive
// pool (-upstream: one or more base URLs, clearnet or onion; onions are
// dialled through the same tor, each pooled connection on its own
// circuit). With -listen ADDR it serves plain TCP instead (benchmarks,
// tests, a midtier behind another front).
//
// Cache-Status is on by default: the midtier talks to edges, not users.
// -verify-key makes it verify the origin's signatures (upstream/integrity)
// and refuse altered content. -metrics 127.0.0.1:PORT serves Prometheus
// metrics on loopback. SIGINT or SIGTERM stop it gracefully: requests and
// fills in progress finish (up to -shutdown-timeout), then tor stops.
//
// A midtier is a disposable buffer: edges never hold connections to the
// origin, so an observer of an edge cannot locate it. Keep the origin's
// address, and any signing key, off the edges.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/onioncdn/onioncdn/internal/tier"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err == nil {
		var log = mustLogger(p)
		err = p.Run(ctx, os.Stdout, log, nil)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "midtier:", err)
		os.Exit(1)
	}
}

func mustLogger(p *tier.Program) *slog.Logger {
	l, _ := tier.NewLogger(os.Stderr, p.LogFormat, p.LogLevel) // validated by parseFlags
	return l
}

// parseFlags parses the midtier's flags and validates them.
func parseFlags(args []string, stderr io.Writer) (*tier.Program, error) {
	p := &tier.Program{Name: "midtier", CacheStatus: true, HLS: true}
	fs := flag.NewFlagSet("midtier", flag.ContinueOnError)
	fs.SetOutput(stderr)
	p.Register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: midtier -upstream URL[,URL] (-key FILE | -listen ADDR) [flags]\n\n"+
			"Runs the middle tier of an onioncdn CDN: onion service → disk cache → origin.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() != 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}
