// Command router runs the onioncdn router: an onion service that answers
// every request with a redirect to the onion of one group of edges, chosen
// by the load reports the edges' agents send it (package route). It is a
// recipe on the public API.
//
//	router -config router.json -key router.key
//
// The configuration file is JSON (see config.example.json next to this
// file, and route.ParseConfig for every field). Each edge prints its
// agent's public key when it starts (edge -router … -agent-key FILE); the
// router holds only public keys, so it cannot forge reports.
//
// The router publishes its own onion service (-key, created with mode
// 0600 if missing; several routers may share it, like edges), or listens
// on TCP with -listen. Edges report to
// http://ROUTER.onion/.well-known/onioncdn/report. -metrics 127.0.0.1:PORT
// serves Prometheus metrics (redirects, reports by outcome, group health
// and load) on loopback. SIGINT or SIGTERM stop it gracefully, then its
// tor.
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
	"syscall"

	"github.com/onioncdn/onioncdn/metrics"
	"github.com/onioncdn/onioncdn/onion"
	"github.com/onioncdn/onioncdn/route"
	"github.com/onioncdn/onioncdn/tier"
	"github.com/prometheus/client_golang/prometheus"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "router:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("router", flag.ContinueOnError)
	var torrc []string
	config := fs.String("config", "", "JSON file with the edge groups and their edges' public keys (required; see config.example.json)")
	listen := fs.String("listen", "", "serve plain TCP on this address instead of an onion service")
	keyFile := fs.String("key", "", "onion key file, created (mode 0600) if missing")
	torData := fs.String("tor-data", "", "tor data directory kept between runs (default: temporary)")
	fs.Func("torrc-line", "extra torrc line, e.g. to join a private network (repeatable)", func(v string) error { torrc = append(torrc, v); return nil })
	metricsAddr := fs.String("metrics", "", "serve Prometheus /metrics on this loopback address")
	var level slog.Level
	fs.TextVar(&level, "log-level", slog.LevelInfo, "debug, info, warn or error")
	allowNonOnion := fs.Bool("allow-non-onion", false, "accept host:port group addresses (tests on loopback only)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if *config == "" || (*listen == "") == (*keyFile == "") || fs.NArg() > 0 {
		return errors.New("want -config, and either -key (onion service) or -listen (TCP); see -h")
	}
	data, err := os.ReadFile(*config)
	if err != nil {
		return err
	}
	rt, err := route.ParseConfig(data, *allowNonOnion)
	if err != nil {
		return fmt.Errorf("%s: %w", *config, err)
	}
	rt.Logger = log.With("part", "router")
	t := &tier.Tier{Name: "router", Handler: rt, Logger: log, NoHeldWrites: true}
	var ln net.Listener
	if *listen != "" {
		if ln, err = net.Listen("tcp", *listen); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "router: serving http://%s\n", ln.Addr())
	} else {
		t.Tor = &onion.Server{DataDir: *torData, ExtraTorrc: torrc, Logger: log.With("part", "tor")}
		defer t.Tor.Close() // on early errors; Run closes it after the drain
		key, _, err := onion.LoadOrCreateKey(*keyFile)
		if err != nil {
			return err
		}
		ol, err := t.Tor.Listen(ctx, onion.ListenConfig{Key: key})
		if err != nil {
			return err
		}
		ln = ol
		fmt.Fprintf(stdout, "router: serving http://%s; edges report to http://%s%s\n", ol.Onion(), ol.Onion(), route.DefaultReportPath)
	}
	if *metricsAddr != "" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(metrics.Router(rt))
		mln, err := metrics.ListenLocal(*metricsAddr) // refuses anything but loopback
		if err != nil {
			return err
		}
		defer mln.Close()
		go http.Serve(mln, metrics.Handler(reg))
	}
	err = t.Run(ctx, ln)
	st, _ := rt.Stats()
	fmt.Fprintf(stdout, "router: stopped; %d redirects, %d reports accepted\n", st.Redirects, st.Reports.Accepted)
	return err
}
