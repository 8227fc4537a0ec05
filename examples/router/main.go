// Command router runs the onioncdn router: an onion service that answers
// every request with a redirect to the onion of one group of edges, chosen
// by the load reports the edges' agents send it (package route).
//
//	router -config router.json -key router.key
//
// The configuration file is JSON (see config.example.json next to this
// file):
//
//	{
//	  "sticky_cookie": "ocdn",   // optional: stickiness cookie name; omit for none
//	  "sticky_ttl": "10m",       // optional: cookie and mapping lifetime (default 10m)
//	  "stale_after": "30s",      // optional: how long a report counts (default 30s)
//	  "scheme": "http",          // optional: scheme of redirect targets (default http)
//	  "port": 0,                 // optional: port of redirect targets (default none)
//	  "report_path": "…",        // optional (default /.well-known/onioncdn/report)
//	  "retry_after": "30s",      // optional: Retry-After of the 503 when no group is healthy
//	  "groups": [                // required
//	    {"id": "eu",             // group id, as the edges' -group
//	     "onion": "<56 chars>.onion",  // the address the group's edges share
//	     "weight": 2,            // optional capacity weight (default 1)
//	     "edges": [{"id": "eu-1", "public_key": "<base64 ed25519 public key>"}]}
//	  ]
//	}
//
// Each edge prints its agent's public key when it starts (edge -router …
// -agent-key FILE). Unknown fields are an error. The router holds only
// public keys: it cannot forge reports.
//
// The router publishes its own onion service (-key, created with mode
// 0600 if missing; several routers may share it, like edges) through a
// tor it starts or attaches to, or listens on TCP with -listen. Edges
// report to http://ROUTER.onion/.well-known/onioncdn/report. -metrics
// 127.0.0.1:PORT serves Prometheus metrics (redirects, reports by outcome,
// group health and load) on loopback. SIGINT or SIGTERM stop it
// gracefully, then its tor.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/onioncdn/onioncdn/internal/tier"
	"github.com/onioncdn/onioncdn/metrics"
	"github.com/onioncdn/onioncdn/onion"
	"github.com/onioncdn/onioncdn/route"
	"github.com/prometheus/client_golang/prometheus"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err == nil {
		err = run(ctx, o, os.Stdout, nil)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "router:", err)
		os.Exit(1)
	}
}

type options struct {
	config     string
	listen     string
	key        string
	port       int
	tor        tier.TorConfig
	torrc      tier.ListFlag
	metrics    string
	logFormat  string
	logLevel   string
	shutdown   time.Duration
	allowNonOn bool
	router     *route.Router
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("router", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	fs.StringVar(&o.config, "config", "", "JSON file with the edge groups and their edges' public keys (required; see config.example.json)")
	fs.StringVar(&o.listen, "listen", "", "serve on this TCP address instead of an onion service")
	fs.StringVar(&o.key, "key", "", "onion service key file (tor's hs_ed25519_secret_key format; created with mode 0600 if missing)")
	fs.IntVar(&o.port, "port", 80, "virtual port of the onion service")
	fs.StringVar(&o.tor.TorPath, "tor", "", `tor binary to start (empty: "tor" from PATH)`)
	fs.StringVar(&o.tor.DataDir, "tor-data", "", "tor data directory kept between runs (empty: a temporary directory)")
	fs.Var(&o.torrc, "torrc-line", "extra torrc line for the tor started, e.g. to join a private network (repeatable)")
	fs.StringVar(&o.tor.ControlAddr, "tor-control", "", "attach to a running tor's control port (host:port) instead of starting tor")
	fs.StringVar(&o.tor.ControlCookie, "tor-control-cookie", "", "control auth cookie file for -tor-control")
	fs.StringVar(&o.metrics, "metrics", "", "serve Prometheus /metrics on this loopback address (non-loopback is refused)")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.DurationVar(&o.shutdown, "shutdown-timeout", 10*time.Second, "how long a graceful shutdown waits for requests in progress")
	fs.BoolVar(&o.allowNonOn, "allow-non-onion", false, "accept host:port group addresses (tests on loopback only)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: router -config FILE (-key FILE | -listen ADDR) [flags]\n\n"+
			"Redirects clients to the least-loaded healthy edge group (see the package documentation).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	o.tor.ExtraTorrc = o.torrc
	if fs.NArg() != 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.config == "" {
		return nil, errors.New("-config is required")
	}
	if o.listen == "" && o.key == "" {
		return nil, errors.New("onion mode needs -key FILE (created if missing), or give -listen for TCP mode")
	}
	if o.listen != "" {
		if _, _, err := net.SplitHostPort(o.listen); err != nil {
			return nil, fmt.Errorf("-listen %q: %w", o.listen, err)
		}
	}
	if o.port < 1 || o.port > 65535 {
		return nil, fmt.Errorf("-port %d out of range", o.port)
	}
	if o.metrics != "" {
		if err := metrics.CheckLocal(o.metrics); err != nil {
			return nil, fmt.Errorf("-metrics: %w", err)
		}
	}
	if _, err := tier.NewLogger(io.Discard, o.logFormat, o.logLevel); err != nil {
		return nil, err
	}
	if o.shutdown <= 0 {
		return nil, fmt.Errorf("-shutdown-timeout %v: want a positive duration", o.shutdown)
	}
	data, err := os.ReadFile(o.config)
	if err != nil {
		return nil, fmt.Errorf("-config: %w", err)
	}
	o.router, err = parseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("-config %s: %w", o.config, err)
	}
	o.router.AllowNonOnion = o.allowNonOn
	if _, err := o.router.Stats(); err != nil { // validates the groups
		return nil, fmt.Errorf("-config %s: %w", o.config, err)
	}
	return o, nil
}

// duration is a time.Duration in JSON as a Go duration string ("30s").
type duration time.Duration

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`durations are strings such as "30s"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	if v < 0 {
		return fmt.Errorf("negative duration %q", s)
	}
	*d = duration(v)
	return nil
}

type config struct {
	StickyCookie string   `json:"sticky_cookie"`
	StickyTTL    duration `json:"sticky_ttl"`
	StaleAfter   duration `json:"stale_after"`
	Scheme       string   `json:"scheme"`
	Port         int      `json:"port"`
	ReportPath   string   `json:"report_path"`
	RetryAfter   duration `json:"retry_after"`
	Groups       []struct {
		ID     string  `json:"id"`
		Onion  string  `json:"onion"`
		Weight float64 `json:"weight"`
		Edges  []struct {
			ID        string `json:"id"`
			PublicKey string `json:"public_key"`
		} `json:"edges"`
	} `json:"groups"`
}

// parseConfig decodes a router configuration file (strictly: unknown
// fields and trailing data are errors).
func parseConfig(data []byte) (*route.Router, error) {
	if len(data) > 1<<20 {
		return nil, errors.New("larger than 1 MiB")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var c config
	if err := dec.Decode(&c); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after the JSON object")
	}
	rt := &route.Router{
		StickyCookie: c.StickyCookie, StickyTTL: time.Duration(c.StickyTTL), StaleAfter: time.Duration(c.StaleAfter),
		Scheme: c.Scheme, Port: c.Port, ReportPath: c.ReportPath, RetryAfter: time.Duration(c.RetryAfter),
	}
	if len(c.Groups) == 0 {
		return nil, errors.New("no groups")
	}
	for _, g := range c.Groups {
		rg := route.Group{ID: g.ID, Onion: g.Onion, Weight: g.Weight}
		if g.Weight < 0 {
			return nil, fmt.Errorf("group %q: negative weight", g.ID)
		}
		for _, e := range g.Edges {
			pub, err := tier.ParsePublicKey(e.PublicKey)
			if err != nil {
				return nil, fmt.Errorf("group %q edge %q: %w", g.ID, e.ID, err)
			}
			rg.Edges = append(rg.Edges, route.Edge{ID: e.ID, PublicKey: pub})
		}
		rt.Groups = append(rt.Groups, rg)
	}
	return rt, nil
}

// run serves the router until ctx ends; ready, if set, gets the address
// clients use.
func run(ctx context.Context, o *options, stdout io.Writer, ready func(addr string)) error {
	log, err := tier.NewLogger(os.Stderr, o.logFormat, o.logLevel)
	if err != nil {
		return err
	}
	return serve(ctx, o, stdout, log, ready)
}

func serve(ctx context.Context, o *options, stdout io.Writer, log *slog.Logger, ready func(addr string)) error {
	rt := o.router
	rt.Logger = log.With("part", "router")
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.Router(rt))
	var (
		ln   net.Listener
		srv  *onion.Server
		addr string
	)
	if o.listen != "" {
		l, err := net.Listen("tcp", o.listen)
		if err != nil {
			return err
		}
		ln, addr = l, "http://"+l.Addr().String()
	} else {
		start := time.Now()
		var err error
		o.tor.Logger = log.With("part", "tor")
		if srv, err = tier.StartTor(ctx, o.tor); err != nil {
			return err
		}
		ol, created, err := tier.Publish(ctx, srv, tier.PublishConfig{KeyFile: o.key, Port: o.port})
		if err != nil {
			srv.Close()
			return err
		}
		if created {
			fmt.Fprintf(stdout, "router: created onion key %s (mode 0600)\n", o.key)
		}
		ln, addr = ol, "http://"+ol.Onion()
		if o.port != 80 {
			addr += fmt.Sprintf(":%d", o.port)
		}
		fmt.Fprintf(stdout, "router: onion service published (%v)\n", time.Since(start).Round(time.Millisecond))
	}
	var ms *tier.MetricsServer
	if o.metrics != "" {
		var err error
		if ms, err = tier.ServeMetrics(o.metrics, reg, log); err != nil {
			ln.Close()
			if srv != nil {
				srv.Close()
			}
			return err
		}
		fmt.Fprintf(stdout, "router: metrics on http://%s/metrics\n", ms.Addr())
	}
	hs := tier.ServeHandler(ln, rt, log)
	fmt.Fprintf(stdout, "router: serving %s with %d groups; edges report to %s%s\n", addr, len(rt.Groups), addr, route.DefaultReportPath)
	if ready != nil {
		ready(addr)
	}
	<-ctx.Done()
	fmt.Fprintln(stdout, "router: shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdown)
	defer cancel()
	errs := []error{hs.Shutdown(sctx)}
	if srv != nil {
		pid := srv.TorPID()
		errs = append(errs, srv.Close())
		if left := tier.WaitGone([]int{pid}, 10*time.Second); len(left) > 0 {
			errs = append(errs, fmt.Errorf("tor (pid %d) still running", pid))
		}
	}
	if ms != nil {
		ms.Shutdown(sctx)
	}
	st, _ := rt.Stats()
	fmt.Fprintf(stdout, "router: stopped; %d redirects, %d reports accepted\n", st.Redirects, st.Reports.Accepted)
	return errors.Join(errs...)
}
