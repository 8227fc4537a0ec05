package onion

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cretz/bine/control"
	"github.com/cretz/bine/process"
	"github.com/cretz/bine/tor"
	"github.com/cretz/bine/torutil"
	"github.com/onioncdn/onioncdn/internal/torproc"
)

// controlTimeout bounds one control port command.
const controlTimeout = 60 * time.Second

// DefaultDrainTimeout is the default of [Server.DrainTimeout].
const DefaultDrainTimeout = 30 * time.Second

// drainLinger is how long a drained service stays published after its last
// stream's data has been read by tor: tor packages that data into cells
// within the stream's flow-control window (at most about 250 KB), which
// must still cross the circuit before the service is removed (removing it
// destroys its circuits and drops queued cells).
const drainLinger = 2 * time.Second

func (s *Server) drainTimeout() time.Duration {
	if s.DrainTimeout > 0 {
		return s.DrainTimeout
	}
	return DefaultDrainTimeout
}

// DefaultStopTimeout is how long Close waits for a tor it started to exit
// after SIGTERM before it sends SIGKILL.
const DefaultStopTimeout = 5 * time.Second

// Server publishes onion services through one tor: a tor process it starts
// itself, or an existing tor it reaches through its control port
// (ControlAddr).
//
// The zero value is ready to use: it starts "tor" from PATH with a temporary
// data directory. Its exported fields may be changed until the first method
// call. Start is called implicitly by Listen, SocksAddr and Dialer.
//
// A Server is safe for concurrent use by multiple goroutines. Several Servers
// may run in one process; each owns its own tor process or control
// connections.
type Server struct {
	// TorPath is the tor binary to start. If empty, "tor" is looked up in
	// PATH. It is not used when ControlAddr is set.
	TorPath string

	// DataDir holds the state of the tor the Server starts (subdirectory
	// "tor") and the HiddenServiceDir of services that need one (see
	// ListenConfig). If empty, a temporary directory is created and removed
	// on Close. When attaching to a tor through ControlAddr, the directory
	// must be readable by that tor's user.
	DataDir string

	// ExtraTorrc are torrc lines ("Option value") for the tor the Server
	// starts, written to its torrc file; for example the lines a private
	// test network needs. Not used when ControlAddr is set.
	ExtraTorrc []string

	// ControlAddr is the host:port of an existing tor's control port. If
	// empty, the Server starts its own tor. If set, the Server attaches to
	// that tor: it adds its services there and removes them on Close, and
	// never stops that tor.
	ControlAddr string

	// ControlPassword is the control port password (HashedControlPassword)
	// for ControlAddr. If empty and ControlCookie is empty, the Server uses
	// no authentication or the cookie file tor advertises.
	ControlPassword string

	// ControlCookie is the path of the control auth cookie file for
	// ControlAddr. If empty, the path tor advertises is used when tor offers
	// cookie authentication.
	ControlCookie string

	// StopTimeout is how long Close waits for the tor it started to exit
	// after SIGTERM before killing it. If zero, DefaultStopTimeout (5 s).
	StopTimeout time.Duration

	// DrainTimeout bounds how long Close waits, before it removes the
	// services and stops tor, for the streams of listeners closed while
	// connections were open (see [Listener.Close]) to be delivered. If
	// zero, DefaultDrainTimeout (30 s).
	DrainTimeout time.Duration

	// Logger receives the Server's logs. If nil, logs are discarded. Keys,
	// circuit ids and client addresses are never logged.
	Logger *slog.Logger

	initOnce sync.Once
	initErr  error

	closeOnce    sync.Once
	shutdownOnce sync.Once
	shutdownErr  error
	closed       chan struct{} // closed when the Server shuts down
	lifeCtx      context.Context
	lifeStop     context.CancelFunc

	log      *slog.Logger
	dataDir  string
	tempDir  bool
	tor      *tor.Tor      // own tor, nil when attached
	proc     *torProcess   // own tor process, nil when attached
	ctrl     *control.Conn // command connection
	ctrlNet  net.Conn      // its network connection
	ctrlMu   sync.Mutex    // serialises commands on ctrl
	events   *control.Conn // HS_DESC event connection
	evNet    net.Conn      // its network connection
	evDone   chan struct{} // closed when the event reader ends
	evErr    error         // why the event reader ended (read after evDone)
	socks    string
	hsConfMu sync.Mutex // serialises SETCONF of configured services

	mu          sync.Mutex
	waiters     map[*eventWaiter]struct{}
	descWaiters map[*descWaiter]struct{} // FetchDescriptor and PostDescriptor
	postLocks   map[string]chan struct{} // one descriptor operation per address and HSDir
	listeners   map[*Listener]struct{}   // published, not closed
	ids         map[string]bool          // service ids published or being published
	configured  []*Listener              // services published through SETCONF, in order
	isClosed    bool
	ctrlClosed  bool // the control connections are closed: no more commands
	hsSeq       int
}

// eventWaiter is notified of HS_DESC events with one of its actions for
// one service id.
type eventWaiter struct {
	id      string
	actions []string
	ch      chan string // buffered 1; receives the action
}

// Start starts (or attaches to) tor. It returns once the control connection
// is authenticated; tor may still be bootstrapping. Calling it again returns
// the first call's result. ctx bounds only the start, not the tor process.
func (s *Server) Start(ctx context.Context) error {
	s.initOnce.Do(func() {
		s.closed = make(chan struct{})
		s.initErr = s.start(ctx)
		if s.initErr != nil {
			s.shutdown()
		}
	})
	if s.initErr != nil {
		return s.initErr
	}
	select {
	case <-s.closed:
		return fmt.Errorf("onion: %w", net.ErrClosed)
	default:
	}
	return nil
}

func (s *Server) start(ctx context.Context) error {
	s.log = s.Logger
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.lifeCtx, s.lifeStop = context.WithCancel(context.Background())
	s.waiters = map[*eventWaiter]struct{}{}
	s.descWaiters = map[*descWaiter]struct{}{}
	s.postLocks = map[string]chan struct{}{}
	s.listeners = map[*Listener]struct{}{}
	s.ids = map[string]bool{}
	s.dataDir = s.DataDir
	if s.dataDir == "" {
		d, err := os.MkdirTemp("", "onion-")
		if err != nil {
			return fmt.Errorf("onion: start: %w", err)
		}
		s.dataDir, s.tempDir = d, true
	} else {
		abs, err := filepath.Abs(s.dataDir)
		if err != nil {
			return fmt.Errorf("onion: start: %w", err)
		}
		s.dataDir = abs
		if err := os.MkdirAll(s.dataDir, 0o700); err != nil {
			return fmt.Errorf("onion: start: %w", err)
		}
	}
	var err error
	if s.ControlAddr != "" {
		err = s.attach(ctx)
	} else {
		err = s.startTor(ctx)
	}
	if err != nil {
		return err
	}
	if err := s.startEvents(ctx); err != nil {
		return err
	}
	socks, err := s.getSocksAddr()
	if err != nil {
		return err
	}
	s.socks = socks
	return nil
}

func (s *Server) startTor(ctx context.Context) error {
	torPath := s.TorPath
	if torPath == "" {
		torPath = "tor"
	}
	exe, err := exec.LookPath(torPath)
	if err != nil {
		return fmt.Errorf("onion: tor binary %q not found (install tor, e.g. apt-get install -y tor, or set Server.TorPath): %w", torPath, err)
	}
	for _, l := range s.ExtraTorrc {
		if strings.ContainsAny(l, "\r\n") {
			return errors.New("onion: ExtraTorrc line contains a newline")
		}
	}
	torDir := filepath.Join(s.dataDir, "tor")
	if err := os.MkdirAll(torDir, 0o700); err != nil {
		return fmt.Errorf("onion: start: %w", err)
	}
	torrc := filepath.Join(s.dataDir, "torrc")
	var b strings.Builder
	for _, l := range s.ExtraTorrc {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(torrc, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("onion: start: %w", err)
	}
	s.proc = &torProcess{startCtx: ctx, exe: exe}
	t, err := tor.Start(s.lifeCtx, &tor.StartConf{
		ProcessCreator: s.proc,
		DataDir:        torDir,
		TorrcFile:      torrc,
		EnableNetwork:  true,
		ExtraArgs: []string{
			// tor exits when this process dies, so a crash never leaks it.
			"__OwningControllerProcess", strconv.Itoa(os.Getpid()),
			"--Log", "notice file " + filepath.Join(torDir, "notice.log"),
		},
	})
	if err != nil {
		s.proc.kill()
		if out := s.proc.output(); out != "" {
			return fmt.Errorf("onion: start tor: %w; tor said: %s", err, out)
		}
		return fmt.Errorf("onion: start tor: %w", err)
	}
	s.tor = t
	// bine's own control connection is not used further: the Server's
	// connections are closed at the network level, which never blocks on
	// a hung tor.
	t.Control.Close()
	t.Control = nil
	c, nc, err := s.dialControl(ctx)
	if err != nil {
		return err
	}
	s.ctrl, s.ctrlNet = c, nc
	// Also tie tor's life to the command connection.
	if _, err := s.request("TAKEOWNERSHIP"); err != nil {
		return fmt.Errorf("onion: start tor: take ownership: %w", err)
	}
	s.log.Info("tor started", "pid", s.proc.pid(), "data_dir", torDir)
	return nil
}

func (s *Server) attach(ctx context.Context) error {
	c, nc, err := s.dialControl(ctx)
	if err != nil {
		return err
	}
	s.ctrl, s.ctrlNet = c, nc
	s.log.Info("attached to tor", "control_addr", s.ControlAddr)
	return nil
}

// dialControl opens an authenticated control connection to ControlAddr (or,
// for an own tor, its control port).
func (s *Server) dialControl(ctx context.Context) (*control.Conn, net.Conn, error) {
	addr := s.ControlAddr
	if s.tor != nil {
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.tor.ControlPort))
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("onion: connect to tor control port: %w", err)
	}
	// Authentication is a few round trips; bound it by ctx.
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	c := control.NewConn(textproto.NewConn(nc))
	err = s.authenticate(c)
	if !stop() {
		nc.Close()
		return nil, nil, fmt.Errorf("onion: authenticate to tor control port: %w", ctx.Err())
	}
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("onion: authenticate to tor control port: %w", err)
	}
	return c, nc, nil
}

func (s *Server) authenticate(c *control.Conn) error {
	if s.tor == nil && s.ControlCookie != "" {
		cookie, err := os.ReadFile(s.ControlCookie)
		if err != nil {
			return fmt.Errorf("read cookie file: %w", err)
		}
		if _, err := c.SendRequest("AUTHENTICATE %s", hex.EncodeToString(cookie)); err != nil {
			return err
		}
		c.Authenticated = true
		return nil
	}
	if s.tor == nil && s.ControlPassword != "" {
		// Sent hex-encoded, as tor accepts; never logged.
		if _, err := c.SendRequest("AUTHENTICATE %s", hex.EncodeToString([]byte(s.ControlPassword))); err != nil {
			return err
		}
		c.Authenticated = true
		return nil
	}
	// NULL or SAFECOOKIE with the cookie file tor advertises.
	return c.Authenticate("")
}

// startEvents opens the second control connection, subscribed to HS_DESC
// before any service is added, and starts the goroutine that reads it.
func (s *Server) startEvents(ctx context.Context) error {
	c, nc, err := s.dialControl(ctx)
	if err != nil {
		return err
	}
	if _, err := c.SendRequest("SETEVENTS HS_DESC HS_DESC_CONTENT"); err != nil {
		nc.Close()
		return fmt.Errorf("onion: subscribe to HS_DESC events: %w", err)
	}
	s.events, s.evNet = c, nc
	s.evDone = make(chan struct{})
	go s.readEvents(c)
	return nil
}

func (s *Server) readEvents(c *control.Conn) {
	defer close(s.evDone)
	for {
		resp, err := c.ReadResponse()
		if err != nil {
			s.evErr = err
			return
		}
		if !resp.IsAsync() {
			continue
		}
		line := resp.Reply
		if len(resp.Data) > 0 {
			line = resp.Data[0]
		}
		if strings.HasPrefix(line, "HS_DESC_CONTENT ") {
			s.descContent(line)
			continue
		}
		f := strings.Fields(line)
		// HS_DESC Action HSAddress AuthType HsDir ...
		if len(f) < 3 || f[0] != "HS_DESC" {
			continue
		}
		if f[1] == "FAILED" && len(f) >= 5 {
			s.log.Debug("descriptor upload or fetch failed", "hsdir", f[4])
		}
		s.mu.Lock()
		for w := range s.waiters {
			if w.id == f[2] && slices.Contains(w.actions, f[1]) {
				select {
				case w.ch <- f[1]:
				default:
				}
			}
		}
		s.mu.Unlock()
		s.descEvent(f)
	}
}

// addWaiter registers interest in HS_DESC events for id with one of
// actions (e.g. "UPLOADED"). Register before causing the event.
func (s *Server) addWaiter(id string, actions ...string) *eventWaiter {
	w := &eventWaiter{id: id, actions: actions, ch: make(chan string, 1)}
	s.mu.Lock()
	s.waiters[w] = struct{}{}
	s.mu.Unlock()
	return w
}

func (s *Server) removeWaiter(w *eventWaiter) {
	s.mu.Lock()
	delete(s.waiters, w)
	s.mu.Unlock()
}

// waitEvent waits for one of w's events.
func (s *Server) waitEvent(ctx context.Context, w *eventWaiter) (string, error) {
	select {
	case a := <-w.ch:
		return a, nil
	case <-ctx.Done():
		return "", context.Cause(ctx)
	case <-s.evDone:
		return "", fmt.Errorf("lost tor control connection: %w", s.evErr)
	case <-s.closed:
		return "", net.ErrClosed
	}
}

// waitUploaded waits for w's HS_DESC UPLOADED event.
func (s *Server) waitUploaded(ctx context.Context, w *eventWaiter) error {
	if _, err := s.waitEvent(ctx, w); err != nil {
		return fmt.Errorf("onion: descriptor not uploaded: %w", err)
	}
	return nil
}

// fetchDescriptor makes tor fetch the service's current descriptor from
// the HSDirs (HSFETCH) into its client cache, replacing an older cached
// one, and waits for the result. A probe after it sees what clients see,
// not a descriptor tor cached long ago (possibly its own).
func (s *Server) fetchDescriptor(ctx context.Context, id string) error {
	w := s.addWaiter(id, "RECEIVED", "FAILED")
	defer s.removeWaiter(w)
	if _, err := s.request("HSFETCH %s", id); err != nil {
		return fmt.Errorf("onion: HSFETCH: %w", err)
	}
	a, err := s.waitEvent(ctx, w)
	if err != nil {
		return fmt.Errorf("onion: HSFETCH: %w", err)
	}
	if a != "RECEIVED" {
		return errors.New("onion: HSFETCH: descriptor fetch failed")
	}
	return nil
}

// request sends one control command and returns its response.
func (s *Server) request(format string, args ...any) (*control.Response, error) {
	s.ctrlMu.Lock()
	defer s.ctrlMu.Unlock()
	// A hung tor must not hang the caller forever.
	s.ctrlNet.SetDeadline(time.Now().Add(controlTimeout))
	defer s.ctrlNet.SetDeadline(time.Time{})
	return s.ctrl.SendRequest(format, args...)
}

// getConf runs GETCONF for one key.
func (s *Server) getConf(key string) ([]*control.KeyVal, error) {
	s.ctrlMu.Lock()
	defer s.ctrlMu.Unlock()
	s.ctrlNet.SetDeadline(time.Now().Add(controlTimeout))
	defer s.ctrlNet.SetDeadline(time.Time{})
	return s.ctrl.GetConf(key)
}

func (s *Server) getSocksAddr() (string, error) {
	resp, err := s.request("GETINFO net/listeners/socks")
	if err != nil {
		return "", fmt.Errorf("onion: GETINFO net/listeners/socks: %w", err)
	}
	for _, d := range resp.Data {
		_, v, ok := strings.Cut(d, "=")
		if !ok {
			continue
		}
		for _, a := range strings.Fields(v) {
			if u, err := torutil.UnescapeSimpleQuotedStringIfNeeded(a); err == nil && u != "" {
				return u, nil
			}
		}
	}
	return "", nil
}

// SocksAddr returns the host:port of the SOCKS port of the tor the Server
// uses, starting the Server if needed. It is empty if the Server could not
// start or that tor has no SOCKS port.
func (s *Server) SocksAddr() string {
	if err := s.Start(context.Background()); err != nil {
		return ""
	}
	return s.socks
}

// Dialer returns a Dialer on the Server's tor SOCKS port (see SocksAddr).
func (s *Server) Dialer() *Dialer {
	return &Dialer{SocksAddr: s.SocksAddr()}
}

// TorPID returns the process id of the tor the Server started, or 0 when it
// did not start one (not started yet, failed, or attached to an existing
// tor).
func (s *Server) TorPID() int {
	if s.proc == nil {
		return 0
	}
	return s.proc.pid()
}

// Close removes the Server's services, closes its listeners and stops the
// tor it started (SIGTERM, then SIGKILL after StopTimeout: tor can hang on
// shutdown). A tor it attached to keeps running without the Server's
// services. Close waits for the Server's goroutines. Calling it again
// returns an error wrapping net.ErrClosed.
func (s *Server) Close() error {
	s.initOnce.Do(func() {
		s.closed = make(chan struct{})
		s.initErr = fmt.Errorf("onion: %w", net.ErrClosed)
	})
	err := fmt.Errorf("onion: %w", net.ErrClosed)
	s.closeOnce.Do(func() { err = s.shutdown() })
	return err
}

// shutdown releases everything; it runs once, from Close or a failed Start.
func (s *Server) shutdown() error {
	s.shutdownOnce.Do(func() { s.shutdownErr = s.doShutdown() })
	return s.shutdownErr
}

func (s *Server) doShutdown() error {
	var errs []error
	s.mu.Lock()
	s.isClosed = true
	ls := make([]*Listener, 0, len(s.listeners))
	for l := range s.listeners {
		ls = append(ls, l)
	}
	s.mu.Unlock()
	for _, l := range ls {
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	// Listeners closed with connections open keep their services until
	// those streams are delivered (bounded): stopping tor now would drop
	// the data tor still holds for them.
	deadline := time.NewTimer(s.drainTimeout())
	defer deadline.Stop()
	for _, l := range ls {
		select {
		case <-l.removedChan():
		case <-deadline.C:
			s.log.Warn("onion service not drained in time; stopping tor", "onion", l.Onion(), "timeout", s.drainTimeout())
		}
	}
	close(s.closed)
	s.mu.Lock()
	s.ctrlClosed = true
	s.mu.Unlock()
	if s.evNet != nil {
		s.evNet.Close()
		<-s.evDone
	}
	if s.ctrlNet != nil {
		// Not under ctrlMu: this also unblocks a request stuck on a hung tor.
		s.ctrlNet.Close()
	}
	if s.proc != nil {
		timeout := s.StopTimeout
		if timeout <= 0 {
			timeout = DefaultStopTimeout
		}
		if err := s.proc.stop(timeout); err != nil {
			errs = append(errs, err)
		} else {
			s.log.Info("tor stopped", "pid", s.proc.pid())
		}
	}
	if s.lifeStop != nil {
		s.lifeStop()
	}
	if s.tempDir {
		if err := os.RemoveAll(s.dataDir); err != nil {
			errs = append(errs, fmt.Errorf("onion: remove data dir: %w", err))
		}
	}
	return errors.Join(errs...)
}

// torProcess implements bine's process.Creator and process.Process for the
// tor the Server starts. Its Start returns only once tor has written its
// control port file (bine itself polls for two seconds only, too short on a
// loaded machine), and it lets the Server stop tor with SIGTERM then
// SIGKILL. tor runs in its own process group (internal/torproc), so that a
// Ctrl-C or a signal to the program's process group reaches only the
// program, which drains, then stops tor.
type torProcess struct {
	startCtx context.Context
	exe      string

	args     []string
	portFile string
	p        *torproc.Proc
}

func (p *torProcess) New(ctx context.Context, args ...string) (process.Process, error) {
	for i, a := range args {
		if a == "--ControlPortWriteToFile" && i+1 < len(args) {
			p.portFile = args[i+1]
		}
	}
	// bine's ctx is the Server's life: Close stops tor itself (SIGTERM,
	// then SIGKILL), so it is not tied to exec's cancellation.
	p.args = args
	return p, nil
}

func (p *torProcess) Start() error {
	tp, err := torproc.Start(torproc.Command(p.exe, p.args...), tailMax)
	if err != nil {
		return err
	}
	p.p = tp
	if p.portFile == "" {
		return nil
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(p.portFile); err == nil && bytes.HasPrefix(bytes.TrimSpace(b), []byte("PORT=")) && bytes.HasSuffix(b, []byte("\n")) {
			return nil
		}
		select {
		case <-tp.Done():
			return fmt.Errorf("tor exited during startup (%v)", tp.Err())
		case <-p.startCtx.Done():
			return fmt.Errorf("waiting for tor's control port: %w", p.startCtx.Err())
		case <-tick.C:
		}
	}
}

func (p *torProcess) Wait() error {
	if p.p == nil {
		return errors.New("tor not started")
	}
	return p.p.Err()
}

func (p *torProcess) EmbeddedControlConn() (net.Conn, error) {
	return nil, process.ErrControlConnUnsupported
}

func (p *torProcess) pid() int {
	if p.p == nil {
		return 0
	}
	return p.p.PID()
}

func (p *torProcess) output() string {
	if p.p == nil {
		return ""
	}
	return p.p.Output()
}

// kill ends a started process at once and waits for it.
func (p *torProcess) kill() {
	if p.p != nil {
		p.p.Kill()
	}
}

// stop sends SIGTERM, waits up to timeout, then SIGKILL.
func (p *torProcess) stop(timeout time.Duration) error {
	if p.p == nil {
		return nil
	}
	if err := p.p.Stop(timeout); err != nil && !errors.Is(err, torproc.ErrKilled) {
		return fmt.Errorf("onion: %w", err)
	}
	return nil
}

// tailMax is how much of tor's console output is kept for error messages.
const tailMax = 2048
