package oniontest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
)

const (
	// defaultAuthorities is the number of authorities when
	// Config.Authorities is zero.
	defaultAuthorities = 5
	// minAuthorities: with fewer relays, onion-service circuits fail
	// ("No available nodes").
	minAuthorities = 4
	// maxAttempts bounds the retries after a port collision.
	maxAttempts = 3
	// pollInterval is how often Start checks the consensus and the client.
	pollInterval = 200 * time.Millisecond
	// clientNick is the nickname and directory name of the SOCKS client.
	clientNick = "client"
)

// Config configures a private Tor network. The zero value is a valid
// configuration.
type Config struct {
	// TorPath is the tor binary. If empty, "tor" is looked up in PATH.
	TorPath string

	// GencertPath is the tor-gencert binary. If empty, "tor-gencert" is
	// looked up in PATH.
	GencertPath string

	// Authorities is the number of directory authorities, each of which is
	// also a relay, guard and HSDir. If zero, 5 are started. Values below
	// 4 are rejected: with fewer relays, onion-service circuits fail.
	Authorities int

	// Dir holds the nodes' keys, torrc files, data and notice logs (one
	// subdirectory per node). If empty, a new temporary directory is used
	// and Close removes it. A given Dir is created if needed and kept; the
	// node subdirectories in it are replaced on Start.
	Dir string

	// KeyCache is a directory in which authority keys are generated once
	// and reused by later Starts, including Starts in other processes
	// (keys are independent of ports; they are regenerated a month before
	// their certificates expire). It saves the key generation, about a
	// CPU-second per authority and 10–25 s on a loaded machine. If empty,
	// every Start generates fresh keys. Use it for tests only.
	KeyCache string

	// Logger receives boot phases (with durations) and shutdown events.
	// If nil, logs are discarded.
	Logger *slog.Logger
}

// Network is a running private Tor network on 127.0.0.1. Its methods are
// safe for concurrent use.
type Network struct {
	dir        string
	removeDir  bool
	socksAddr  string
	torrcLines []string
	procs      []*proc
	logger     *slog.Logger

	mu     sync.Mutex
	closed bool
}

// Start boots a private Tor network and returns once an authority's
// consensus lists every relay with the HSDir flag and the network's
// client has bootstrapped to 100 %. It starts the authorities first and
// the client only once the consensus exists: starting both at once makes
// the client stall for tens of seconds.
//
// Start waits as long as ctx allows (typically 20–30 s); if ctx ends, or a
// tor process fails, it stops every process it started and returns an
// error. If a tor could not bind its port (another process took it), Start
// retries with new ports, up to 3 times in all.
func Start(ctx context.Context, cfg Config) (*Network, error) {
	n := cfg.Authorities
	if n == 0 {
		n = defaultAuthorities
	}
	if n < minAuthorities {
		return nil, fmt.Errorf("oniontest: %d authorities: at least %d are needed to build onion-service circuits", n, minAuthorities)
	}
	if strings.ContainsFunc(cfg.Dir, unicode.IsSpace) {
		return nil, fmt.Errorf("oniontest: directory %q: tor cannot log to a path with white space", cfg.Dir)
	}
	torPath, err := lookBinary(cfg.TorPath, "tor")
	if err != nil {
		return nil, err
	}
	gencertPath, err := lookBinary(cfg.GencertPath, "tor-gencert")
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("oniontest: start: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	dir, removeDir := cfg.Dir, false
	fail := func(err error) (*Network, error) {
		if removeDir {
			os.RemoveAll(dir)
		}
		return nil, err
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "oniontest-"); err != nil {
			return nil, fmt.Errorf("oniontest: %w", err)
		}
		removeDir = true
	} else {
		if dir, err = filepath.Abs(dir); err != nil {
			return nil, fmt.Errorf("oniontest: %w", err)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("oniontest: %w", err)
		}
	}
	if strings.ContainsFunc(dir, unicode.IsSpace) {
		return fail(fmt.Errorf("oniontest: directory %q: tor cannot log to a path with white space", dir))
	}
	b := &booter{torPath: torPath, gencertPath: gencertPath, n: n, dir: dir, keyCache: cfg.KeyCache, logger: logger}

	// Phase 1: keys, in parallel (tor-gencert is CPU bound), or from the
	// key cache. Made once: they serve every attempt.
	t0 := time.Now()
	b.keySrcs = make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { b.keySrcs[i], errs[i] = b.keySource(ctx, "a"+strconv.Itoa(i+1)) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return fail(fmt.Errorf("oniontest: generating keys: %w", ctx.Err()))
	}
	if err := errors.Join(errs...); err != nil {
		return fail(err)
	}
	logger.Info("oniontest: keys ready", "authorities", n, "cache", cfg.KeyCache != "", "duration", time.Since(t0).Round(time.Millisecond))

	for attempt := 1; ; attempt++ {
		nw, err := b.boot(ctx)
		if err == nil {
			nw.removeDir = removeDir
			logger.Info("oniontest: network ready", "socks", nw.socksAddr, "duration", time.Since(t0).Round(time.Millisecond))
			return nw, nil
		}
		var be *bindError
		if !errors.As(err, &be) || attempt == maxAttempts {
			return fail(err)
		}
		logger.Warn("oniontest: port taken, retrying with new ports", "node", be.node, "attempt", attempt)
	}
}

// lookBinary resolves path (or name in PATH if path is empty).
func lookBinary(path, name string) (string, error) {
	if path == "" {
		path = name
	}
	p, err := exec.LookPath(path)
	if err != nil {
		return "", fmt.Errorf("oniontest: %s binary not found (install the tor package, e.g. apt-get install -y tor): %w", name, err)
	}
	return p, nil
}

// bindError marks a failure caused by a port another process took between
// our choice of free ports and tor's bind; Start retries on it.
type bindError struct {
	node string
	err  error
}

func (e *bindError) Error() string { return e.err.Error() }
func (e *bindError) Unwrap() error { return e.err }

// booter holds what one attempt to boot the network needs.
type booter struct {
	torPath, gencertPath string
	n                    int
	dir                  string
	keyCache             string
	keySrcs              []string // per authority: directory holding its keys
	logger               *slog.Logger
}

// boot makes one attempt to start the network; on error it has stopped
// everything it started.
func (b *booter) boot(ctx context.Context) (nw *Network, err error) {
	var procs []*proc
	defer func() {
		if err != nil {
			if serr := stopAll(procs, failGrace); serr != nil {
				b.logger.Warn("oniontest: stop after failed start", "err", serr)
			}
		}
	}()

	// Phase 2: authorities, with ports chosen just now (the keys do not
	// depend on them), until a consensus lists all of them as HSDirs.
	ports, err := freePorts(2 * b.n)
	if err != nil {
		return nil, err
	}
	auths := make([]*authority, b.n)
	dirAuths := make([]string, b.n)
	for i := range auths {
		nick := "a" + strconv.Itoa(i+1)
		a := &authority{nick: nick, dataDir: filepath.Join(b.dir, nick), orPort: ports[2*i], dirPort: ports[2*i+1]}
		if err := a.installKeys(b.keySrcs[i]); err != nil {
			return nil, err
		}
		auths[i] = a
		dirAuths[i] = a.dirAuthorityLine()
	}
	if err := freshDir(filepath.Join(b.dir, clientNick)); err != nil {
		return nil, err
	}
	t1 := time.Now()
	for _, a := range auths {
		torrc, err := writeAuthorityTorrc(a, dirAuths)
		if err != nil {
			return nil, err
		}
		p, err := startTor(b.torPath, a.nick, a.dataDir, torrc)
		if err != nil {
			return nil, err
		}
		procs = append(procs, p)
		b.logger.Debug("oniontest: tor started", "node", a.nick, "pid", p.pid())
	}
	// No proxy from the environment, and no "Accept-Encoding: gzip": tor
	// would answer it with deflate, which net/http does not decode.
	hc := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true, DisableCompression: true}}
	defer hc.CloseIdleConnections()
	var last int
	err = poll(ctx, "waiting for consensus", procs, func() bool {
		// The first authority that serves a consensus decides (a1,
		// unless it is slow to start).
		for _, a := range auths {
			if c := fetchHSDirCount(ctx, hc, a.dirPort); c >= 0 {
				if c != last {
					b.logger.Debug("oniontest: consensus", "hsdirs", c, "want", b.n)
					last = c
				}
				return c >= b.n
			}
		}
		return false
	})
	if err != nil {
		return nil, err
	}
	b.logger.Info("oniontest: consensus ready", "hsdirs", b.n, "duration", time.Since(t1).Round(time.Millisecond))

	// Phase 3: the SOCKS client, until bootstrapped.
	t2 := time.Now()
	clientDir := filepath.Join(b.dir, clientNick)
	torrc, err := writeClientTorrc(clientNick, clientDir, dirAuths)
	if err != nil {
		return nil, err
	}
	client, err := startTor(b.torPath, clientNick, clientDir, torrc)
	if err != nil {
		return nil, err
	}
	procs = append(procs, client)
	b.logger.Debug("oniontest: tor started", "node", clientNick, "pid", client.pid())
	socks, err := waitClient(ctx, b.logger, newClientFiles(clientDir), procs)
	if err != nil {
		return nil, err
	}
	b.logger.Info("oniontest: client bootstrapped", "duration", time.Since(t2).Round(time.Millisecond))

	return &Network{
		dir:        b.dir,
		socksAddr:  socks,
		torrcLines: append(slices.Clone(joinLines[:]), dirAuths...),
		procs:      procs,
		logger:     b.logger,
	}, nil
}

// freshDir (re)creates an empty node directory with the mode tor requires.
func freshDir(path string) error {
	if err := os.RemoveAll(path); err != nil {
		return fmt.Errorf("oniontest: %w", err)
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		return fmt.Errorf("oniontest: %w", err)
	}
	return nil
}

// freePorts returns n distinct TCP ports that were free on 127.0.0.1. All
// are held open until all are chosen, so they differ from each other.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("oniontest: finding a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// poll calls ready every pollInterval until it returns true. It fails if
// ctx ends or one of procs exits.
func poll(ctx context.Context, what string, procs []*proc, ready func() bool) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		for _, p := range procs {
			if p.exited() {
				err := p.exitError("while " + what)
				if p.bindFailed() {
					return &bindError{node: p.name, err: err}
				}
				return err
			}
		}
		if ready() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("oniontest: %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
}

// fetchHSDirCount returns how many relays the authority's current
// microdescriptor consensus lists with the HSDir flag, or -1 if it has
// none yet (or cannot be reached).
func fetchHSDirCount(ctx context.Context, hc *http.Client, dirPort int) int {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	url := "http://127.0.0.1:" + strconv.Itoa(dirPort) + "/tor/status-vote/current/consensus-microdesc"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return -1
	}
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := hc.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return -1
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return -1
	}
	return countHSDirs(body)
}

// countHSDirs counts the router status entries of a consensus document
// whose flags ("s" line) include HSDir.
func countHSDirs(consensus []byte) int {
	c := 0
	for line := range bytes.Lines(consensus) {
		f := strings.Fields(string(line))
		if len(f) > 0 && f[0] == "s" && slices.Contains(f[1:], "HSDir") {
			c++
		}
	}
	return c
}

// waitClient waits until the client has bootstrapped to 100 % and returns
// its SOCKS address.
func waitClient(ctx context.Context, logger *slog.Logger, f clientFiles, procs []*proc) (string, error) {
	var cc *controlConn
	defer func() {
		if cc != nil {
			cc.Close()
		}
	}()
	var phase string
	err := poll(ctx, "waiting for client bootstrap", procs, func() bool {
		if cc == nil {
			addr := readControlAddr(f.controlPortFile)
			if addr == "" {
				return false
			}
			var err error
			if cc, err = dialControl(ctx, addr, f.cookieFile); err != nil {
				logger.Debug("oniontest: control port not ready", "err", err)
				cc = nil
				return false
			}
		}
		p, err := cc.getInfo(ctx, "status/bootstrap-phase")
		if err != nil {
			logger.Debug("oniontest: bootstrap phase", "err", err)
			cc.Close()
			cc = nil
			return false
		}
		if p != phase {
			logger.Debug("oniontest: client bootstrap", "phase", p)
			phase = p
		}
		return slices.Contains(strings.Fields(p), "PROGRESS=100")
	})
	if err != nil {
		return "", err
	}
	ls, err := cc.getInfo(ctx, "net/listeners/socks")
	if err != nil {
		return "", err
	}
	f0 := strings.Fields(ls)
	if len(f0) == 0 {
		return "", errors.New("oniontest: client has no SOCKS listener")
	}
	if u, err := strconv.Unquote(f0[0]); err == nil {
		return u, nil
	}
	return f0[0], nil
}

// SocksAddr returns the address ("127.0.0.1:PORT") of the network's
// client SOCKS5 port. Distinct SOCKS usernames/passwords get distinct
// circuits (IsolateSOCKSAuth).
func (n *Network) SocksAddr() string { return n.socksAddr }

// TorrcLines returns the torrc lines another tor process needs to join the
// network as a client or onion service: TestingTorNetwork, the
// DirAuthority lines and a few settings shared by every node. Add a
// DataDirectory, ports and services of your own. The slice is a copy.
func (n *Network) TorrcLines() []string { return slices.Clone(n.torrcLines) }

// PIDs returns the process ids of the tor processes the network started
// (authorities first, then the client). They remain valid after Close, so
// callers can check that the processes are gone.
func (n *Network) PIDs() []int {
	pids := make([]int, len(n.procs))
	for i, p := range n.procs {
		pids[i] = p.pid()
	}
	return pids
}

// Close stops every tor process of the network (SIGTERM, then SIGKILL for
// any still running after 5 s), waits for them to exit and removes the
// network's directory if Start created it. Later calls return an error
// wrapping net.ErrClosed.
func (n *Network) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return fmt.Errorf("oniontest: %w", net.ErrClosed)
	}
	n.closed = true
	t := time.Now()
	if err := stopAll(n.procs, stopGrace); err != nil {
		// A tor that deadlocked in shutdown was killed: it is gone, which
		// is all Close promises.
		n.logger.Warn("oniontest: tor killed", "err", err)
	}
	var err error
	if n.removeDir {
		if rerr := os.RemoveAll(n.dir); rerr != nil {
			err = fmt.Errorf("oniontest: removing network directory: %w", rerr)
		}
	}
	n.logger.Info("oniontest: network stopped", "duration", time.Since(t).Round(time.Millisecond))
	return err
}
