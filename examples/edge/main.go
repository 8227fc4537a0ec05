// Command edge runs the user-facing tier of an onioncdn CDN: an onion
// service, published with a key that several edge machines share, whose
// cache sits in front of one or more midtier onions.
//
//	edge -key edge.key -upstream http://MIDTIER.onion -cache-dir /var/cache/edge -watchdog 30s \
//	     -router http://ROUTER.onion/.well-known/onioncdn/report -group eu -edge-id eu-1 -agent-key agent.pem
//
// It publishes an onion service (key file in tor's hs_ed25519_secret_key
// format, created with mode 0600 if missing; copy the same file to every
// edge of a group) through a tor it starts (-tor, -tor-data, -torrc-line) or
// a running tor (-tor-control). With -watchdog it probes the shared address
// and re-publishes this edge's descriptor when the answering edge dies.
// Misses go to the midtier(s) over a warm pool of Tor circuits (-min-idle
// per upstream, failover between several -upstream URLs); the HLS policy
// (-hls, on by default) sets playlist and segment TTLs and -prefetch
// fetches segments ahead of viewers. With -router, an agent reports this
// edge's load, signed with -agent-key, to the router.
//
// Plain TCP mode, for benchmarks, tests and non-Tor use:
//
//	edge -listen 127.0.0.1:19000 -upstream http://127.0.0.1:18000 -cache-dir DIR
//
// The same binary then also serves as a midtier (add -cache-status).
//
// Cache-Status is off by default: an edge faces users, and the header would
// reveal cache state. -metrics 127.0.0.1:PORT serves Prometheus metrics on
// loopback. SIGINT or SIGTERM stop it gracefully: the agent signs off,
// requests and fills in progress finish (up to -shutdown-timeout), then tor
// stops.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/onioncdn/onioncdn/internal/tier"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "edge:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	p, cpuProfile, err := parseFlags(args, os.Stderr)
	if err != nil {
		return err
	}
	log, err := tier.NewLogger(os.Stderr, p.LogFormat, p.LogLevel)
	if err != nil {
		return err
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	return p.Run(ctx, os.Stdout, log, nil)
}

// parseFlags parses the edge's flags and validates them.
func parseFlags(args []string, stderr io.Writer) (p *tier.Program, cpuProfile string, err error) {
	p = &tier.Program{Name: "edge", Edge: true, HLS: true, Prefetch: 2}
	fs := flag.NewFlagSet("edge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	p.Register(fs)
	fs.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile to this file until the edge stops")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: edge -upstream URL[,URL] (-key FILE | -listen ADDR) [flags]\n\n"+
			"Runs the user-facing tier of an onioncdn CDN: onion service (key shared by the\n"+
			"edges of a group) → disk cache with the HLS policy → midtier onion(s).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, "", err
	}
	if fs.NArg() != 0 {
		return nil, "", fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err := p.Validate(); err != nil {
		return nil, "", err
	}
	return p, cpuProfile, nil
}
