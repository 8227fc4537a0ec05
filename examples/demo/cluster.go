package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/cache/diskstore"
	"github.com/onioncdn/onioncdn/hls"
	"github.com/onioncdn/onioncdn/hls/hlstest"
	"github.com/onioncdn/onioncdn/onion"
	"github.com/onioncdn/onioncdn/onion/balance"
	"github.com/onioncdn/onioncdn/oniontest"
	"github.com/onioncdn/onioncdn/origin"
	"github.com/onioncdn/onioncdn/route"
	"github.com/onioncdn/onioncdn/tier"
	"github.com/onioncdn/onioncdn/upstream"
)

// clusterConfig says how to build the CDN.
type clusterConfig struct {
	// Tor runs every tier on onion services of a private Tor network;
	// otherwise on loopback TCP.
	Tor bool
	// Network, if set with Tor, is used instead of booting one (tests).
	Network *oniontest.Network
	// ContentDir, if set, is served by the origin as is; otherwise a
	// synthetic presentation of Segments × SegmentDuration is generated.
	ContentDir      string
	Segments        int
	SegmentDuration time.Duration
	// EdgeOnions gives each edge a second onion service of its own (in
	// addition to the shared one), so a client can reach a chosen edge.
	EdgeOnions bool
	// Watchdog is the probe interval of the edges' watchdogs (Tor, race
	// mode). If zero, 10 s.
	Watchdog time.Duration
	// Balance (Tor only) publishes the group's address with package
	// onion/balance: each edge is a backend with a key of its own, and a
	// publisher in each edge's process (edge-a primary, edge-b standby)
	// lists both edges' introduction points, so both serve at once.
	// Otherwise the edges race to publish the one shared key (the watchdog
	// re-publishes when the answering edge dies).
	Balance bool
	// ReportInterval is the agents' report interval. If zero, 2 s.
	ReportInterval time.Duration
	// ExtraGroups are added to the router's configuration after the
	// edges' group (tests: a group that never reports).
	ExtraGroups []route.Group
	// WrapEdgeTransport, if set, wraps each edge's upstream transport.
	WrapEdgeTransport func(edge string, rt http.RoundTripper) http.RoundTripper
	// Out receives the phase narrative; Log the components' logs.
	Out io.Writer
	Log *slog.Logger
}

// edgeNode is one edge: its tier, its tor (Tor mode) and its listeners.
type edgeNode struct {
	name   string
	tier   *tier.Tier
	tr     *upstream.Transport
	tor    *onion.Server
	shared *onion.Listener // the group's shared onion (race mode), or the edge's own as a backend (balance mode)
	pub    *balance.Publisher
	own    *onion.Listener // its own onion (EdgeOnions)
	tcp    net.Listener    // TCP mode
	rec    *recorder
}

// ownURL is the URL that reaches this edge only (EdgeOnions or TCP mode).
func (e *edgeNode) ownURL() string {
	if e.own != nil {
		return "http://" + e.own.Onion()
	}
	if e.tcp != nil {
		return "http://" + e.tcp.Addr().String()
	}
	return ""
}

// cluster is a running CDN: origin → midtier → two edges sharing one
// address → router.
type cluster struct {
	cfg     clusterConfig
	dir     string
	net     *oniontest.Network
	ownNet  bool
	origin  *http.Server
	originU string

	mid    *tierNode
	midRec *recorder

	edges     []*edgeNode
	sharedURL string // the group's address (onion, or the TCP front)
	front     *rrFront

	router     *route.Router
	routerTier *tier.Tier
	routerURL  string

	pids []int // tor processes started, for the final check

	closeOnce sync.Once
}

// tierNode is a tier the demo runs in this process, as the midtier and
// edge programs do in theirs.
type tierNode struct {
	Tier    *tier.Tier
	tr      *upstream.Transport
	Address string
}

func (c *cluster) say(format string, args ...any) {
	fmt.Fprintf(c.cfg.Out, "    "+format+"\n", args...)
}

// phase prints a numbered phase, runs f and prints its duration.
func phase(out io.Writer, name string, f func() error) error {
	fmt.Fprintf(out, "==> %s\n", name)
	start := time.Now()
	err := f()
	if err != nil {
		fmt.Fprintf(out, "    FAILED after %v: %v\n", time.Since(start).Round(time.Millisecond), err)
		return err
	}
	fmt.Fprintf(out, "    done in %v\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// startCluster builds the CDN phase by phase. It always returns a
// cluster, also with an error: Close it to stop what was started.
func startCluster(ctx context.Context, cfg clusterConfig) (c *cluster, err error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	c = &cluster{cfg: cfg}
	if c.dir, err = os.MkdirTemp("", "onioncdn-demo-"); err != nil {
		return c, err
	}
	out := cfg.Out

	if err := phase(out, "origin: serve HLS content on loopback TCP", c.startOrigin); err != nil {
		return c, err
	}
	if cfg.Tor {
		if err := phase(out, "tor: boot the private Tor network (5 authorities/relays + a client)", func() error { return c.startNetwork(ctx) }); err != nil {
			return c, err
		}
	}
	mode := "onion service"
	if !cfg.Tor {
		mode = "TCP listener"
	}
	if err := phase(out, "midtier: "+mode+" → disk cache → warm pool to the origin", func() error { return c.startMidtier(ctx) }); err != nil {
		return c, err
	}
	if err := phase(out, "router: its own "+mode+", one edge group of two edges", func() error { return c.startRouter(ctx) }); err != nil {
		return c, err
	}
	for i, name := range []string{"edge-a", "edge-b"} {
		shared := "shared onion key"
		if cfg.Balance {
			shared = "own onion, a backend of the group"
		}
		if !cfg.Tor {
			shared = "TCP listener behind the front"
		}
		if err := phase(out, name+": "+shared+" → disk cache + HLS policy + prefetch → warm pool to the midtier; agent → router", func() error {
			return c.startEdge(ctx, name, i)
		}); err != nil {
			return c, err
		}
	}
	if cfg.Tor && cfg.Balance {
		if err := phase(out, "balance: the primary publisher merges both edges' introduction points into the group's descriptor", func() error {
			uctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			defer cancel()
			pub := c.edges[0].pub
			if err := pub.Up(uctx); err != nil {
				return err
			}
			// Up returns at the first upload; wait until every backend
			// is listed (each is fetched and probed first).
			st := pub.Stats()
			for st.Reached < len(c.edges) {
				select {
				case <-uctx.Done():
					return fmt.Errorf("only %d of %d edges in the group's descriptor: %w", st.Reached, len(c.edges), uctx.Err())
				case <-time.After(200 * time.Millisecond):
				}
				st = pub.Stats()
			}
			c.say("group %s published: %d backends up, %d reached, %d introduction points, %d uploads", strings.TrimPrefix(c.sharedURL, "http://"), st.BackendsUp, st.Reached, st.IntroPoints, st.Uploads)
			return nil
		}); err != nil {
			return c, err
		}
	}
	if err := phase(out, "wait for the edges' load reports to reach the router", func() error { return c.waitReports(ctx) }); err != nil {
		return c, err
	}
	return c, nil
}

func (c *cluster) startOrigin() error {
	dir := c.cfg.ContentDir
	if dir == "" {
		dir = filepath.Join(c.dir, "origin")
		o := &hlstest.Origin{Segments: c.cfg.Segments, SegmentDuration: c.cfg.SegmentDuration}
		files, size, err := o.WriteDir(dir)
		if err != nil {
			return err
		}
		c.say("generated a synthetic HLS presentation: 240p/480p/720p, %d × %v segments, %d files, %.1f MB",
			c.cfg.Segments, c.cfg.SegmentDuration, files, float64(size)/1e6)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	c.originU = "http://" + ln.Addr().String()
	c.origin = &http.Server{Handler: &origin.Handler{FS: os.DirFS(dir), Logger: c.cfg.Log.With("tier", "origin")}, ReadHeaderTimeout: 30 * time.Second}
	go c.origin.Serve(ln)
	c.say("origin at %s (not an onion: only the midtier reaches it)", c.originU)
	return nil
}

func (c *cluster) startNetwork(ctx context.Context) error {
	if c.cfg.Network != nil {
		c.net = c.cfg.Network
		c.say("using the given network, SOCKS %s", c.net.SocksAddr())
		return nil
	}
	n, err := oniontest.Start(ctx, oniontest.Config{Dir: filepath.Join(c.dir, "tornet"), Logger: c.cfg.Log.With("part", "tornet")})
	if err != nil {
		return err
	}
	c.net, c.ownNet = n, true
	c.pids = append(c.pids, n.PIDs()...)
	c.say("network up: %d tor processes (PIDs %v), client SOCKS %s", len(n.PIDs()), n.PIDs(), n.SocksAddr())
	return nil
}

func (c *cluster) torrc() []string {
	if c.net == nil {
		return nil
	}
	return c.net.TorrcLines()
}

// startTor starts the tor of one tier (Tor mode), on the private network.
func (c *cluster) startTor(ctx context.Context, name string) (*onion.Server, error) {
	start := time.Now()
	srv := &onion.Server{DataDir: filepath.Join(c.dir, name+"-tor"), ExtraTorrc: c.torrc(), Logger: c.cfg.Log.With("part", name+"-tor")}
	if err := srv.Start(ctx); err != nil {
		srv.Close()
		return nil, err
	}
	c.pids = append(c.pids, srv.TorPID())
	c.say("%s: tor up, pid %d (%v)", name, srv.TorPID(), time.Since(start).Round(time.Millisecond))
	return srv, nil
}

// startMidtier runs the midtier as examples/midtier does: onion service
// (or TCP) → disk cache with the HLS policy → the origin.
func (c *cluster) startMidtier(ctx context.Context) error {
	c.midRec = newRecorder()
	ds, err := diskstore.Open(filepath.Join(c.dir, "midtier-cache"), diskstore.Options{NoSync: true})
	if err != nil {
		return err
	}
	tr := &upstream.Transport{Upstreams: []string{c.originU}, Logger: c.cfg.Log.With("tier", "midtier", "part", "upstream")}
	cc := &cache.Cache{Transport: tr, Store: ds, Policy: &hls.Policy{}, Name: "midtier", CacheStatus: true, Logger: c.cfg.Log.With("tier", "midtier")}
	cc.OnRecord = append(cc.OnRecord, c.midRec.add)
	m := &tierNode{tr: tr, Tier: &tier.Tier{Name: "midtier", Cache: cc, Transport: tr, Store: ds, Logger: c.cfg.Log.With("tier", "midtier")}}
	c.mid = m
	var ln net.Listener
	if c.cfg.Tor {
		if m.Tier.Tor, err = c.startTor(ctx, "midtier"); err != nil {
			return err
		}
		key, _, err := onion.LoadOrCreateKey(filepath.Join(c.dir, "midtier.key"))
		if err != nil {
			return err
		}
		ol, err := m.Tier.Tor.Listen(ctx, onion.ListenConfig{Key: key})
		if err != nil {
			return err
		}
		ln, m.Address = ol, "http://"+ol.Onion()
	} else {
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return err
		}
		m.Address = "http://" + ln.Addr().String()
	}
	go m.Tier.Serve(ln)
	c.say("midtier serving %s → %s (disk cache, HLS policy, Cache-Status on)", m.Address, c.originU)
	return nil
}

// sharedKey is the group's key: both edges publish it (race mode), or
// their publishers do (balance mode).
func (c *cluster) sharedKeyFile() string { return filepath.Join(c.dir, "edge-group.key") }

// backendKey is an edge's own key in balance mode.
func (c *cluster) backendKey(name string) (*onion.Key, error) {
	k, _, err := onion.LoadOrCreateKey(filepath.Join(c.dir, name+".key"))
	return k, err
}

func (c *cluster) startRouter(ctx context.Context) error {
	// The group's address must be known before the edges start: in Tor
	// mode it is the shared key's onion, in TCP mode a local round-robin
	// front standing in for the shared onion.
	if c.cfg.Tor {
		k, _, err := onion.LoadOrCreateKey(c.sharedKeyFile())
		if err != nil {
			return err
		}
		c.sharedURL = "http://" + k.Address()
		c.say("edge group key %s → %s", filepath.Base(c.sharedKeyFile()), k.Address())
	} else {
		f, err := newRRFront()
		if err != nil {
			return err
		}
		c.front = f
		c.sharedURL = "http://" + f.Addr()
		c.say("TCP mode: the edges' shared address is a local round-robin front at %s (stands in for the shared onion key)", f.Addr())
	}
	c.router = &route.Router{
		Groups:        []route.Group{{ID: "group-1", Onion: strings.TrimPrefix(c.sharedURL, "http://")}},
		AllowNonOnion: !c.cfg.Tor,
		StaleAfter:    5 * c.reportInterval(),
		Logger:        c.cfg.Log.With("tier", "router"),
	}
	c.router.Groups = append(c.router.Groups, c.cfg.ExtraGroups...)
	// Agent keys: one per edge; the router holds the public halves.
	for _, name := range []string{"edge-a", "edge-b"} {
		key, _, err := route.LoadOrCreateAgentKey(filepath.Join(c.dir, name+"-agent.pem"))
		if err != nil {
			return err
		}
		c.router.Groups[0].Edges = append(c.router.Groups[0].Edges, route.Edge{ID: name, PublicKey: key.Public().(ed25519.PublicKey)})
	}
	c.routerTier = &tier.Tier{Name: "router", Handler: c.router, Logger: c.cfg.Log.With("tier", "router"), NoHeldWrites: true}
	var ln net.Listener
	if c.cfg.Tor {
		srv, err := c.startTor(ctx, "router")
		if err != nil {
			return err
		}
		c.routerTier.Tor = srv
		key, _, err := onion.LoadOrCreateKey(filepath.Join(c.dir, "router.key"))
		if err != nil {
			return err
		}
		ol, err := srv.Listen(ctx, onion.ListenConfig{Key: key})
		if err != nil {
			return err
		}
		ln, c.routerURL = ol, "http://"+ol.Onion()
	} else {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		ln, c.routerURL = l, "http://"+l.Addr().String()
	}
	go c.routerTier.Serve(ln)
	c.say("router at %s → group-1 at %s", c.routerURL, c.sharedURL)
	return nil
}

func (c *cluster) reportInterval() time.Duration {
	if c.cfg.ReportInterval > 0 {
		return c.cfg.ReportInterval
	}
	return 2 * time.Second
}

// startEdge runs an edge as examples/edge does: the group's shared onion
// (or TCP behind the front) → disk cache + HLS policy + prefetch → warm
// pool to the midtier, with an agent reporting to the router.
func (c *cluster) startEdge(ctx context.Context, name string, i int) error {
	e := &edgeNode{name: name, rec: newRecorder()}
	c.edges = append(c.edges, e)
	key, _, err := route.LoadOrCreateAgentKey(filepath.Join(c.dir, name+"-agent.pem"))
	if err != nil {
		return err
	}
	e.tr = &upstream.Transport{Upstreams: []string{c.mid.Address}, MinIdle: 2, Logger: c.cfg.Log.With("tier", name, "part", "upstream")}
	agent := &route.Agent{URL: c.routerURL + route.DefaultReportPath, Group: "group-1", Edge: name, Key: key, Interval: c.reportInterval()}
	if c.cfg.Tor {
		if e.tor, err = c.startTor(ctx, name); err != nil {
			return err
		}
		e.tr.DialIsolated = e.tor.Dialer().DialIsolated
		d := e.tor.Dialer()
		d.Isolation = name + "-agent"
		agent.Client = d.HTTPClient()
	}
	var rt http.RoundTripper = e.tr
	if c.cfg.WrapEdgeTransport != nil {
		rt = c.cfg.WrapEdgeTransport(name, rt)
	}
	ds, err := diskstore.Open(filepath.Join(c.dir, name+"-cache"), diskstore.Options{NoSync: true})
	if err != nil {
		return err
	}
	cc := &cache.Cache{Transport: rt, Store: ds, Policy: &hls.Policy{}, Name: name,
		CacheStatus: true, // demo only: tells which edge served a response
		Logger:      c.cfg.Log.With("tier", name)}
	cc.OnRecord = append(cc.OnRecord, e.rec.add)
	e.tier = &tier.Tier{Name: name, Cache: cc, Prefetcher: &hls.Prefetcher{}, Agent: agent, Transport: e.tr, Store: ds, Tor: e.tor,
		Logger: c.cfg.Log.With("tier", name)}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	err = e.tr.Warm(wctx)
	cancel()
	if err != nil {
		return fmt.Errorf("%s: warming the pool to the midtier: %w", name, err)
	}
	st := e.tr.Stats().Upstreams[0]
	c.say("%s: warm pool to the midtier ready: %d idle connections", name, st.Idle)
	if c.cfg.Tor {
		start := time.Now()
		wd := c.cfg.Watchdog
		if wd == 0 {
			wd = 10 * time.Second
		}
		k, _, err := onion.LoadOrCreateKey(c.sharedKeyFile())
		if err != nil {
			return err
		}
		if c.cfg.Balance {
			// A backend of the group: its own key, and a publisher for the
			// group in this process (edge-a primary, edge-b standby).
			own, err := c.backendKey(name)
			if err != nil {
				return err
			}
			ol, err := e.tor.Listen(ctx, onion.ListenConfig{Key: own, Frontend: k.Address()})
			if err != nil {
				return err
			}
			e.shared = ol
			var backends []string
			for _, n := range []string{"edge-a", "edge-b"} {
				bk, err := c.backendKey(n)
				if err != nil {
					return err
				}
				backends = append(backends, bk.Address())
			}
			e.pub = &balance.Publisher{Server: e.tor, Key: k, Backends: backends, TakeoverDelay: time.Duration(i) * 10 * time.Second,
				ProbeInterval: 2 * time.Second, MinUploadInterval: 2 * time.Second, ObserveInterval: 5 * time.Second,
				Logger: c.cfg.Log.With("tier", name, "part", "balance")}
			if err := e.pub.Start(); err != nil {
				return err
			}
			go e.tier.Serve(ol)
			role := "primary"
			if i > 0 {
				role = "standby"
			}
			c.say("%s: backend onion %s published (%v); %s publisher of the group %s", name, ol.Onion(), time.Since(start).Round(time.Millisecond), role, k.Address())
			return nil
		}
		ol, err := e.tor.Listen(ctx, onion.ListenConfig{Key: k, Watchdog: &onion.Watchdog{Interval: wd, Failures: 2, Jitter: wd / 4, Timeout: 2 * wd}})
		if err != nil {
			return err
		}
		e.shared = ol
		go e.tier.Serve(ol)
		c.say("%s: published the shared onion %s (%v); watchdog every %v", name, ol.Onion(), time.Since(start).Round(time.Millisecond), wd)
		if c.cfg.EdgeOnions {
			own, err := e.tor.Listen(ctx, onion.ListenConfig{})
			if err != nil {
				return err
			}
			e.own = own
			go e.tier.Serve(own)
			c.say("%s: own onion %s", name, own.Onion())
		}
	} else {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		e.tcp = l
		go e.tier.Serve(l)
		c.front.add(l.Addr().String())
		c.say("%s: listening on %s behind the front", name, l.Addr())
	}
	return nil
}

func (c *cluster) waitReports(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	for {
		st, err := c.router.Stats()
		if err != nil {
			return err
		}
		if st.Groups[0].Healthy && st.Reports.Accepted >= uint64(len(c.edges)) {
			c.say("router: group-1 healthy, %d reports accepted", st.Reports.Accepted)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no report reached the router: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// client returns an HTTP client for one simulated viewer: through the
// network's SOCKS port on its own circuit (Tor mode), or direct.
func (c *cluster) client(tag string) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}
	if c.net != nil {
		d := &onion.Dialer{SocksAddr: c.net.SocksAddr(), Timeout: time.Minute}
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialIsolated(ctx, network, addr, tag)
		}
	}
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}
}

// Close stops everything in order: edges (agents first), router, midtier,
// origin, then the tor processes, and returns the PIDs of tor processes
// still running afterwards (none, normally).
func (c *cluster) Close() (left []int) {
	c.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		// Each tier shuts down in order (agent, drain, fills, prefetch,
		// transport, store, its tor).
		var wg sync.WaitGroup
		for _, e := range c.edges {
			wg.Go(func() {
				if e.pub != nil {
					e.pub.Close()
				}
				if e.tier != nil {
					e.tier.Shutdown(ctx)
				} else if e.tor != nil {
					e.tor.Close()
				}
			})
		}
		wg.Wait()
		if c.front != nil {
			c.front.Close()
		}
		if c.routerTier != nil {
			c.routerTier.Shutdown(ctx)
		}
		if c.mid != nil {
			c.mid.Tier.Shutdown(ctx)
		}
		if c.origin != nil {
			c.origin.Shutdown(ctx)
		}
		if c.ownNet && c.net != nil {
			c.net.Close()
		}
		left = waitGone(c.pids, 15*time.Second)
		if c.dir != "" {
			os.RemoveAll(c.dir)
		}
	})
	return left
}

// waitGone waits up to d until no process of pids exists any more, and
// returns those still running. (onion.Server.Close already waits for its
// tor to exit; this is the demo's independent check.)
func waitGone(pids []int, d time.Duration) []int {
	deadline := time.Now().Add(d)
	for {
		var left []int
		for _, pid := range pids {
			if pid > 0 && syscall.Kill(pid, 0) == nil && !zombie(pid) {
				left = append(left, pid)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// zombie reports whether pid has exited but not been reaped.
func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'Z'
}

// recorder keeps the delivery times of a tier's client requests.
type recorder struct {
	mu   sync.Mutex
	byD  map[string][]time.Duration
	all  []time.Duration
	segs int
}

func newRecorder() *recorder { return &recorder{byD: map[string][]time.Duration{}} }

func (r *recorder) add(_ *http.Request, rec cache.Record) {
	if rec.Prefetch {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	d := string(rec.Disposition)
	r.byD[d] = append(r.byD[d], rec.Delivery)
	r.all = append(r.all, rec.Delivery)
}

// count returns the number of client requests recorded with disposition d.
func (r *recorder) count(d string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.byD[d])
}

// percentiles returns p50, p95 and max of ds.
func percentiles(ds []time.Duration) (p50, p95, mx time.Duration) {
	if len(ds) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return at(0.5), at(0.95), s[len(s)-1]
}

func (r *recorder) summary() (total int, byD map[string]int, p50, p95, mx time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	byD = map[string]int{}
	for k, v := range r.byD {
		byD[k] = len(v)
	}
	p50, p95, mx = percentiles(r.all)
	return len(r.all), byD, p50, p95, mx
}

func sortedKeys(m map[string]int) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// indent prefixes every line written through it.
type indent struct{ w io.Writer }

func (i indent) Write(p []byte) (int, error) {
	s := strings.TrimRight(string(p), "\n")
	for _, line := range strings.Split(s, "\n") {
		fmt.Fprintf(i.w, "    %s\n", line)
	}
	return len(p), nil
}

// rrFront is the TCP-mode stand-in for a shared onion address: it passes
// each connection to the next edge in turn.
type rrFront struct {
	ln    net.Listener
	mu    sync.Mutex
	backs []string
	next  int
	wg    sync.WaitGroup
	conns map[net.Conn]struct{}
}

func newRRFront() (*rrFront, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &rrFront{ln: ln, conns: map[net.Conn]struct{}{}}
	f.wg.Go(f.loop)
	return f, nil
}

func (f *rrFront) Addr() string { return f.ln.Addr().String() }

func (f *rrFront) add(addr string) {
	f.mu.Lock()
	f.backs = append(f.backs, addr)
	f.mu.Unlock()
}

func (f *rrFront) track(c net.Conn, on bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if on {
		if f.conns == nil {
			return false
		}
		f.conns[c] = struct{}{}
	} else if f.conns != nil {
		delete(f.conns, c)
	}
	return true
}

func (f *rrFront) loop() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		if len(f.backs) == 0 {
			f.mu.Unlock()
			c.Close()
			continue
		}
		back := f.backs[f.next%len(f.backs)]
		f.next++
		f.mu.Unlock()
		f.wg.Go(func() { f.pipe(c, back) })
	}
}

func (f *rrFront) pipe(c net.Conn, back string) {
	defer c.Close()
	b, err := net.DialTimeout("tcp", back, 10*time.Second)
	if err != nil {
		return
	}
	defer b.Close()
	if !f.track(c, true) || !f.track(b, true) {
		return
	}
	defer f.track(c, false)
	defer f.track(b, false)
	done := make(chan struct{}, 2)
	go func() { io.Copy(b, c); b.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() { io.Copy(c, b); c.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	<-done
	<-done
}

func (f *rrFront) Close() error {
	err := f.ln.Close()
	f.mu.Lock()
	for c := range f.conns {
		c.Close()
	}
	f.conns = nil
	f.mu.Unlock()
	f.wg.Wait()
	return err
}
