// Command demo runs the whole onioncdn CDN in one process and measures a
// video stream through it:
//
//	go run ./examples/demo
//
// It starts an origin serving a generated HLS presentation, a midtier
// (onion service → disk cache → origin), two edges that publish the same
// onion key (each: disk cache, HLS policy and segment prefetch, a warm
// keep-alive pool of Tor circuits to the midtier, an agent reporting its
// load to the router), and a router on its own onion that redirects
// viewers to the edge group. Then it plays the stream with -players
// simulated viewers (hls.Tester) for -duration through router → edge →
// midtier → origin, and prints a report: the players' startup, stalls and
// segment delivery times, each tier's cache dispositions and delivery-time
// percentiles, which edge served what, the warm pools' reuse and the
// router's decisions.
//
// If tor and tor-gencert are installed (apt-get install -y tor), the demo
// boots a private Tor network on 127.0.0.1 (package oniontest) and
// every tier is a real onion service, every hop a Tor circuit. Without
// them (or with -no-tor) the same tiers run over loopback TCP, and the
// first line of output says so. With -failover (Tor only) the demo kills
// the tor of the edge that receives the viewers halfway through; the
// other edge's watchdog notices and re-publishes the shared address.
//
// Ctrl-C stops everything cleanly: tiers drain, then every tor process
// the demo started is stopped and checked by its PID.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/onioncdn/onioncdn/hls"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err == nil {
		err = run(ctx, o, os.Stdout, os.Stderr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

type options struct {
	duration time.Duration
	players  int
	noTor    bool
	segDur   time.Duration
	failover bool
	race     bool
	report   string
	logLevel string
	level    slog.Level
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "media time each player plays")
	fs.IntVar(&o.players, "players", 6, "simultaneous players (each on its own Tor circuit: in balance mode each lands on one edge of the group)")
	fs.BoolVar(&o.noTor, "no-tor", false, "run the tiers over loopback TCP even if tor is installed")
	fs.DurationVar(&o.segDur, "segment-duration", 2*time.Second, "duration of the generated HLS segments")
	fs.BoolVar(&o.failover, "failover", false, "halfway through, kill the tor of the edge serving the viewers (Tor mode only)")
	fs.BoolVar(&o.race, "descriptor-race", false, "publish the edge group the simple way: both edges publish the shared key and the last upload answers (one edge serves); default: a publisher merges both edges' introduction points (both serve)")
	fs.StringVar(&o.report, "report", "", "also write the stream tester's HTML report (delivery time per segment) to this file")
	fs.StringVar(&o.logLevel, "log-level", "warn", "log level of the components' logs on stderr: debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: go run ./examples/demo [flags]\n\n"+
			"Runs origin, midtier, two edges sharing one onion key and a router, then plays an HLS stream\n"+
			"through them and reports what each tier did. Over a private Tor network if tor is installed.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() != 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.duration < time.Second || o.duration > time.Hour {
		return nil, fmt.Errorf("-duration %v: want 1s to 1h", o.duration)
	}
	if o.players < 1 || o.players > 100 {
		return nil, fmt.Errorf("-players %d: want 1 to 100", o.players)
	}
	if o.segDur < 500*time.Millisecond || o.segDur > 30*time.Second {
		return nil, fmt.Errorf("-segment-duration %v: want 500ms to 30s", o.segDur)
	}
	if err := o.level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, fmt.Errorf("-log-level %q: want debug, info, warn or error", o.logLevel)
	}
	return o, nil
}

// torAvailable reports whether tor and tor-gencert are installed, and if
// not, which is missing.
func torAvailable() (bool, string) {
	for _, b := range []string{"tor", "tor-gencert"} {
		if _, err := exec.LookPath(b); err != nil {
			return false, b
		}
	}
	return true, ""
}

func run(ctx context.Context, o *options, out, logOut io.Writer) error {
	begin := time.Now()
	useTor, missing := torAvailable()
	switch {
	case o.noTor:
		useTor = false
		fmt.Fprintln(out, "onioncdn demo: NO TOR (-no-tor): every tier runs over loopback TCP; the shared onion address is simulated by a local round-robin front.")
	case !useTor:
		fmt.Fprintf(out, "onioncdn demo: NO TOR (%s not found; apt-get install -y tor): every tier runs over loopback TCP; the shared onion address is simulated by a local round-robin front.\n", missing)
	default:
		fmt.Fprintln(out, "onioncdn demo: over a private Tor network on 127.0.0.1: every tier is an onion service, every hop a Tor circuit.")
	}
	if o.failover && !useTor {
		fmt.Fprintln(out, "    (-failover needs Tor: ignored)")
		o.failover = false
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: o.level}))
	segments := int((o.duration+o.segDur-1)/o.segDur) + 4
	c, err := startCluster(ctx, clusterConfig{
		Tor: useTor, Segments: segments, SegmentDuration: o.segDur,
		Watchdog: 5 * time.Second, Balance: !o.race,
		Out: out, Log: log,
	})
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		var err error
		phase(out, "shutdown: agents report unhealthy, tiers drain, tor processes stop", func() error {
			pids := c.pids
			left := c.Close()
			if len(left) > 0 {
				err = fmt.Errorf("tor processes still running: %v", left)
				return err
			}
			if len(pids) > 0 {
				fmt.Fprintf(out, "    all %d tor processes stopped (checked by PID: %v)\n", len(pids), pids)
			}
			return nil
		})
		return err
	}
	defer stop()
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(out, "interrupted: stopping")
			return stop()
		}
		return errors.Join(err, stop())
	}
	fmt.Fprintf(out, "    CDN ready in %v\n", time.Since(begin).Round(time.Millisecond))

	var rep *hls.Report
	err = phase(out, fmt.Sprintf("play: %d players × %v of media via the router (%s) → edge group → midtier → origin", o.players, o.duration, c.routerURL), func() error {
		tester := &hls.Tester{
			Players:       o.players,
			Duration:      o.duration,
			StartInterval: 500 * time.Millisecond,
			// A short buffer keeps players fetching in step with playback
			// for most of the session (a player stops fetching once it has
			// buffered Duration of media).
			BufferAhead: 2 * o.segDur,
			ClientFor:   func(p int) *http.Client { return c.client(fmt.Sprintf("viewer-%d", p)) },
			Logger:      log.With("part", "tester"),
		}
		if o.failover {
			// Players keep retrying through the gap (up to about 3 min)
			// instead of giving up after a few attempts.
			tester.Retries = 100
			go c.failoverAfter(ctx, o.duration/2)
		}
		// Each viewer first asks the router where to watch (302 to its
		// group's onion), then plays from there.
		target, err := c.askRouter(ctx, o.players)
		if err != nil {
			return err
		}
		rep, err = tester.Run(ctx, target)
		return err
	})
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(out, "interrupted: stopping")
			return stop()
		}
		return errors.Join(err, stop())
	}
	c.printReport(out, rep)
	if o.report != "" {
		if err := writeHTML(o.report, rep); err != nil {
			return errors.Join(err, stop())
		}
		fmt.Fprintf(out, "HTML report written to %s\n", o.report)
	}
	if err := stop(); err != nil {
		return err
	}
	fmt.Fprintf(out, "demo finished in %v\n", time.Since(begin).Round(time.Millisecond))
	return nil
}

func writeHTML(path string, rep *hls.Report) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := rep.WriteHTML(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// failoverAfter kills the tor of the edge that currently serves the
// shared address after d, so that the other edge's watchdog takes over.
func (c *cluster) failoverAfter(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
		return
	case <-time.After(d):
	}
	e := c.servingEdge()
	if e == nil || e.tor == nil {
		return
	}
	pid := e.tor.TorPID()
	if c.cfg.Balance {
		fmt.Fprintf(c.cfg.Out, "    !! failover: killing %s's tor (pid %d); clients fall back to the other edge's introduction points, and the publishers drop it from the descriptor\n", e.name, pid)
	} else {
		fmt.Fprintf(c.cfg.Out, "    !! failover: killing %s's tor (pid %d); the other edge's watchdog must re-publish the shared address\n", e.name, pid)
	}
	syscall.Kill(pid, syscall.SIGKILL)
}

// askRouter sends each viewer's first request to the router, without
// following the redirect, and returns the URL the router sent them to.
func (c *cluster) askRouter(ctx context.Context, players int) (string, error) {
	var target string
	for p := 1; p <= players; p++ {
		cl := c.client(fmt.Sprintf("viewer-%d", p))
		cl.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		var loc string
		var err error
		for attempt := 0; attempt < 3; attempt++ {
			if loc, err = redirectOf(ctx, cl, c.routerURL+"/master.m3u8"); err == nil {
				break
			}
		}
		if err != nil {
			return "", fmt.Errorf("asking the router: %w", err)
		}
		fmt.Fprintf(c.cfg.Out, "    viewer-%d: router → 302 %s\n", p, loc)
		if target == "" {
			target = loc
		}
	}
	return target, nil
}

func redirectOf(ctx context.Context, cl *http.Client, u string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := cl.Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		return "", fmt.Errorf("router answered %s", resp.Status)
	}
	return resp.Header.Get("Location"), nil
}

// servingEdge returns the edge that served the most recent client request
// (the publisher clients currently follow).
func (c *cluster) servingEdge() *edgeNode {
	var best *edgeNode
	var bestN uint64
	for _, e := range c.edges {
		s := e.tier.Cache.Stats()
		n := s.Hits + s.Misses + s.Collapsed + s.Revalidated + s.StaleServed
		if best == nil || n > bestN {
			best, bestN = e, n
		}
	}
	return best
}

func (c *cluster) printReport(out io.Writer, rep *hls.Report) {
	fmt.Fprintln(out, "\n======== report ========")
	fmt.Fprintln(out, "-- players (hls.Tester; media time for startup and stalls) --")
	rep.WriteText(indent{out})

	// Which edge served what, from the Cache-Status each response carried
	// (the last member names the edge).
	served := map[string]int{}
	for _, p := range rep.Players {
		for _, s := range p.Segments {
			served[edgeOf(s.CacheStatus)]++
		}
	}
	fmt.Fprintln(out, "-- which edge served the segments (from Cache-Status) --")
	for _, k := range sortedKeys(served) {
		fmt.Fprintf(out, "    %-8s %d segments\n", k, served[k])
	}

	fmt.Fprintln(out, "-- tiers: client requests by disposition; delivery time (request received → last byte) --")
	fmt.Fprintf(out, "    %-8s %6s  %-44s %9s %9s %9s\n", "tier", "reqs", "dispositions", "p50", "p95", "max")
	row := func(name string, r *recorder) {
		n, byD, p50, p95, mx := r.summary()
		var parts []string
		for _, k := range sortedKeys(byD) {
			parts = append(parts, fmt.Sprintf("%s=%d", k, byD[k]))
		}
		fmt.Fprintf(out, "    %-8s %6d  %-44s %9v %9v %9v\n", name, n, strings.Join(parts, " "), round(p50), round(p95), round(mx))
	}
	for _, e := range c.edges {
		row(e.name, e.rec)
	}
	row("midtier", c.midRec)

	fmt.Fprintln(out, "-- cache counters (cache.Stats) and prefetch (hls.Prefetcher) --")
	for _, e := range c.edges {
		s := e.tier.Cache.Stats()
		pf := e.tier.Prefetcher.Stats()
		fmt.Fprintf(out, "    %-8s hits %d, misses %d, collapsed %d, errors %d, served %.1f MB; prefetched %d, prefetch hits %d\n",
			e.name, s.Hits, s.Misses, s.Collapsed, s.Errors, float64(s.BytesServed)/1e6, pf.Prefetched, pf.Hits)
	}
	ms := c.mid.Tier.Cache.Stats()
	fmt.Fprintf(out, "    %-8s hits %d, misses %d, collapsed %d, errors %d, served %.1f MB\n",
		"midtier", ms.Hits, ms.Misses, ms.Collapsed, ms.Errors, float64(ms.BytesServed)/1e6)

	fmt.Fprintln(out, "-- upstream pools (upstream.Stats): requests on warm (reused) vs new connections --")
	for _, e := range c.edges {
		for _, u := range e.tr.Stats().Upstreams {
			fmt.Fprintf(out, "    %-8s → midtier: %d requests, %d reused, %d new, %d had to dial, %d dials, %d failures\n",
				e.name, u.Requests, u.Reused, u.New, u.ColdDials, u.Dials, u.Failures)
		}
		if e.pub != nil {
			b := e.pub.Stats()
			fmt.Fprintf(out, "    %-8s publisher: active %v, %d of %d backends up, %d reached, %d uploads (%d rejected by tor), %d takeovers\n",
				e.name, b.Active, b.BackendsUp, b.BackendsKnown, b.Reached, b.Uploads, b.UploadRejected, b.Takeovers)
		} else if e.shared != nil {
			w := e.shared.WatchdogStats()
			fmt.Fprintf(out, "    %-8s watchdog: %d probes, %d failed, %d re-publications\n", e.name, w.Probes, w.ProbeFailures, w.Republishes)
		}
	}
	for _, u := range c.mid.tr.Stats().Upstreams {
		fmt.Fprintf(out, "    %-8s → origin:  %d requests, %d reused, %d new\n", "midtier", u.Requests, u.Reused, u.New)
	}
	if st, err := c.router.Stats(); err == nil {
		fmt.Fprintf(out, "-- router: %d redirects (%d to group-1), %d load reports accepted --\n",
			st.Redirects, st.Groups[0].Redirects, st.Reports.Accepted)
	}
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond)
	}
	return d
}

// edgeOf returns the name of the cache nearest the client in a
// Cache-Status value ("edge-a; hit" → "edge-a"), or "unknown".
func edgeOf(cs string) string {
	if cs == "" {
		return "unknown"
	}
	members := strings.Split(cs, ",")
	last := strings.TrimSpace(members[len(members)-1])
	name, _, _ := strings.Cut(last, ";")
	return strings.TrimSpace(name)
}
