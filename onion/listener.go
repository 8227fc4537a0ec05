package onion

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cretz/bine/torutil"
)

// ListenConfig describes one onion service for [Server.Listen]. The zero
// value publishes a new random key on virtual port 80 with tor's defaults.
//
// tor's ADD_ONION command (an ephemeral service, owned by the Server's
// control connection) cannot carry NumIntroPoints, IntroDoSDefense,
// ExportCircuitID or Frontend. A service using any of them is published instead as a
// configured service: the Server writes the key into a HiddenServiceDir
// under its DataDir and sends SETCONF. Because SETCONF replaces every
// HiddenService* option of that tor, the Server always sends its complete set
// of configured services, together with the services tor's own configuration
// already had (read with GETCONF HiddenServiceOptions just before). Another
// controller changing HiddenService* options of the same tor at the same
// moment can race with this; give the Server a tor of its own if that
// matters.
type ListenConfig struct {
	// Key is the service's identity. If nil, a new key is generated; get it
	// back with [Listener.Key] to publish the same address again later.
	Key *Key

	// Ports are the virtual ports clients connect to; all lead to the
	// Listener. If empty, port 80.
	Ports []int

	// NumIntroPoints is the number of introduction points (3–20). If zero,
	// tor's default (3) is used. Non-zero makes this a configured service.
	NumIntroPoints int

	// MaxStreams limits concurrent streams per rendezvous circuit. If zero,
	// there is no limit.
	MaxStreams int

	// MaxStreamsCloseCircuit makes tor close a circuit that exceeds
	// MaxStreams, instead of refusing the extra stream.
	MaxStreamsCloseCircuit bool

	// IntroDoSDefense turns on the introduction-point DoS defence
	// (HiddenServiceEnableIntroDoSDefense) with tor's default rate and burst.
	// Makes this a configured service.
	IntroDoSDefense bool

	// PoW turns on the proof-of-work defence (tor 0.4.8+), with
	// PoWQueueRate and PoWQueueBurst (if zero, tor's defaults).
	PoW           bool
	PoWQueueRate  int
	PoWQueueBurst int

	// ExportCircuitID makes tor send a PROXY header carrying the client's
	// circuit id on every connection; the Listener consumes the header and
	// exposes the id through [ConnContext] and [CircuitID]. Makes this a
	// configured service.
	ExportCircuitID bool

	// Watchdog, if not nil, probes the service's address through Tor and
	// re-publishes this service's descriptor when the address stops
	// answering (see [Watchdog]).
	Watchdog *Watchdog

	// Frontend, if set, is the onion address of a group ("frontend")
	// service whose descriptor lists this service's introduction points
	// (see package onion/balance). tor then runs this service as an
	// Onionbalance instance (HiddenServiceOnionBalanceInstance, with
	// MasterOnionAddress in the service directory's ob_config): it also
	// accepts introductions that clients make with the frontend's
	// descriptor. The service keeps its own address, where its own
	// descriptor (read by the balancer) is published. Makes this a
	// configured service.
	Frontend string
}

func (c *ListenConfig) configured() bool {
	return c.NumIntroPoints != 0 || c.IntroDoSDefense || c.ExportCircuitID || c.Frontend != ""
}

func (c *ListenConfig) validate() error {
	for _, p := range c.Ports {
		if p < 1 || p > 65535 {
			return fmt.Errorf("onion: listen: virtual port %d out of range", p)
		}
	}
	if c.NumIntroPoints != 0 && (c.NumIntroPoints < 3 || c.NumIntroPoints > 20) {
		return fmt.Errorf("onion: listen: NumIntroPoints %d out of range 3–20", c.NumIntroPoints)
	}
	if c.MaxStreams < 0 || c.MaxStreams > 65535 {
		return fmt.Errorf("onion: listen: MaxStreams %d out of range 0–65535", c.MaxStreams)
	}
	if c.PoWQueueRate < 0 || c.PoWQueueBurst < 0 {
		return errors.New("onion: listen: negative PoW queue rate or burst")
	}
	if w := c.Watchdog; w != nil && (w.Interval < 0 || w.Failures < 0 || w.Jitter < 0 || w.Timeout < 0) {
		return errors.New("onion: listen: negative Watchdog setting")
	}
	if c.Frontend != "" {
		a, err := ParseAddress(c.Frontend)
		if err != nil {
			return fmt.Errorf("onion: listen: Frontend: %w", err)
		}
		if c.Key != nil && a == c.Key.Address() {
			return errors.New("onion: listen: Frontend is the service's own address")
		}
	}
	return nil
}

// Watchdog keeps a shared address answering. Several publishers may serve
// one key; HSDirs keep the descriptor uploaded last, so every client follows
// that publisher, and when it dies the address is dead until some publisher
// uploads again, which tor itself does only at the next time period (24 h).
// A Watchdog on each publisher probes the address through Tor every
// Interval, each probe on a fresh circuit; after Failures consecutive failed
// probes it waits a random delay up to Jitter (so survivors do not all
// re-publish at once) and re-publishes its own descriptor
// ([Listener.Republish]).
//
// The zero value probes every 30 s and re-publishes after 3 failures.
type Watchdog struct {
	// Interval between probes. If zero, 30 s.
	Interval time.Duration
	// Failures is the number of consecutive failed probes that trigger a
	// re-publish. If zero, 3.
	Failures int
	// Jitter bounds the random delay before a re-publish. If zero,
	// Interval/2.
	Jitter time.Duration
	// Timeout bounds one probe. If zero, Interval, at most 60 s.
	Timeout time.Duration
	// Port is the virtual port probed. If zero, the Listener's first port.
	Port int
	// Dialer probes the address. If nil, the Server's Dialer is used, and
	// before each probe the Server's tor re-fetches the descriptor from the
	// HSDirs (HSFETCH): otherwise tor would keep using a descriptor it
	// cached earlier, possibly its own, and the probe would succeed while
	// clients fetching the current descriptor fail. A custom Dialer gets no
	// such refresh.
	Dialer *Dialer
}

// WatchdogStats counts a Listener's watchdog activity.
type WatchdogStats struct {
	Probes        uint64 // probes made
	ProbeFailures uint64 // probes that failed
	Republishes   uint64 // re-publications started by the watchdog
	RepublishErrs uint64 // re-publications that failed
}

// Listener is a published onion service. It is a [net.Listener]: Accept
// returns the streams clients open to any of its virtual ports. Its Addr is
// the onion address with the first virtual port ("xxx.onion:80"); Onion
// returns the bare address.
//
// With circuit-id export, accepted connections carry the client's circuit id
// (see [ConnContext]); their RemoteAddr stays tor's local address, so the id
// does not end up in logs of RemoteAddr.
type Listener struct {
	s     *Server
	cfg   ListenConfig
	key   *Key
	id    string // service id, no ".onion"
	ports []int
	ln    net.Listener // local listener tor connects to
	hsDir string       // HiddenServiceDir for configured services

	pubMu     sync.Mutex // serialises publish/unpublish
	published bool

	ctx    context.Context // ends on Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ready  chan net.Conn // accepted conns with PROXY header read (export only)
	acErr  chan error    // accept loop's terminal error (export only)

	closeOnce sync.Once
	closeErr  error

	connMu   sync.Mutex
	conns    int  // accepted connections not closed yet
	draining bool // closed with connections open: remove the service when the last closes
	rmInit   sync.Once
	removed  chan struct{} // closed once the service is removed; see removedChan
	rmOnce   sync.Once

	probes, probeFails, republishes, republishErrs atomic.Uint64
}

// Listen publishes an onion service and returns its Listener. It starts the
// Server if needed and returns only when tor reports the service's
// descriptor uploaded to at least one HSDir (HS_DESC UPLOADED), so the
// address is reachable when Listen returns. If ctx ends first, the service
// is removed and the error wraps ctx's error.
func (s *Server) Listen(ctx context.Context, cfg ListenConfig) (*Listener, error) {
	if err := s.Start(ctx); err != nil {
		return nil, err
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	key := cfg.Key
	if key == nil {
		var err error
		if key, err = GenerateKey(); err != nil {
			return nil, err
		}
	}
	ports := append([]int(nil), cfg.Ports...)
	if len(ports) == 0 {
		ports = []int{80}
	}
	l := &Listener{s: s, cfg: cfg, key: key, id: key.ServiceID(), ports: ports}
	s.mu.Lock()
	if s.isClosed {
		s.mu.Unlock()
		return nil, fmt.Errorf("onion: %w", net.ErrClosed)
	}
	if s.ids[l.id] {
		s.mu.Unlock()
		return nil, fmt.Errorf("onion: listen: %s is already published by this Server", l.id+".onion")
	}
	// Reserve the id so a concurrent Listen of the same key fails.
	s.ids[l.id] = true
	s.hsSeq++
	seq := s.hsSeq
	s.mu.Unlock()
	ok := false
	defer func() {
		if !ok {
			s.mu.Lock()
			delete(s.ids, l.id)
			s.mu.Unlock()
		}
	}()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("onion: listen: %w", err)
	}
	l.ln = ln
	l.ctx, l.cancel = context.WithCancel(context.Background())
	if cfg.configured() {
		l.hsDir = filepath.Join(s.dataDir, "hs", strconv.Itoa(seq))
		if err := l.writeHSDir(); err != nil {
			ln.Close()
			l.cancel()
			return nil, err
		}
	}
	if err := l.publish(ctx); err != nil {
		ln.Close()
		l.cancel()
		if l.hsDir != "" {
			os.RemoveAll(l.hsDir)
		}
		return nil, err
	}
	s.mu.Lock()
	if s.isClosed {
		// Close ran while we published; it did not see this Listener.
		s.mu.Unlock()
		l.pubMu.Lock()
		l.remove()
		l.pubMu.Unlock()
		ln.Close()
		l.cancel()
		if l.hsDir != "" {
			os.RemoveAll(l.hsDir)
		}
		return nil, fmt.Errorf("onion: %w", net.ErrClosed)
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	if cfg.ExportCircuitID {
		l.ready = make(chan net.Conn)
		l.acErr = make(chan error, 1)
		l.wg.Add(1)
		go l.acceptLoop()
	}
	if cfg.Watchdog != nil {
		l.wg.Add(1)
		go l.watchdog(*cfg.Watchdog)
	}
	ok = true
	s.log.Info("onion service published", "onion", l.Onion(), "configured", cfg.configured())
	return l, nil
}

// writeHSDir creates the HiddenServiceDir with the key in tor's format.
func (l *Listener) writeHSDir() error {
	if err := os.MkdirAll(filepath.Dir(l.hsDir), 0o700); err != nil {
		return fmt.Errorf("onion: listen: %w", err)
	}
	os.RemoveAll(l.hsDir)
	if err := os.Mkdir(l.hsDir, 0o700); err != nil {
		return fmt.Errorf("onion: listen: %w", err)
	}
	if err := l.key.Save(filepath.Join(l.hsDir, "hs_ed25519_secret_key")); err != nil {
		return err
	}
	if l.cfg.Frontend != "" {
		front, _ := ParseAddress(l.cfg.Frontend) // validated by Listen
		conf := "MasterOnionAddress " + front + "\n"
		if err := os.WriteFile(filepath.Join(l.hsDir, "ob_config"), []byte(conf), 0o600); err != nil {
			return fmt.Errorf("onion: listen: %w", err)
		}
	}
	return nil
}

// publish adds the service to tor and waits for a descriptor upload. On
// failure the service is removed again. Callers hold no locks.
func (l *Listener) publish(ctx context.Context) error {
	l.pubMu.Lock()
	defer l.pubMu.Unlock()
	if l.ctx.Err() != nil {
		return fmt.Errorf("onion: %w", net.ErrClosed)
	}
	// Closing the Listener ends the wait too.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(l.ctx, cancel)()
	s := l.s
	// The event connection is subscribed to HS_DESC since Start, and the
	// waiter is registered before the service is added: the UPLOADED event
	// cannot be missed.
	w := s.addWaiter(l.id, "UPLOADED")
	defer s.removeWaiter(w)
	if err := l.add(); err != nil {
		return err
	}
	l.published = true
	if err := s.waitUploaded(ctx, w); err != nil {
		if rerr := l.remove(); rerr != nil {
			return errors.Join(err, rerr)
		}
		return err
	}
	return nil
}

// add adds the service to tor (pubMu held).
func (l *Listener) add() error {
	if l.cfg.configured() {
		s := l.s
		s.hsConfMu.Lock()
		defer s.hsConfMu.Unlock()
		s.mu.Lock()
		s.configured = append(s.configured, l)
		s.mu.Unlock()
		if err := s.applyConf(); err != nil {
			s.mu.Lock()
			s.configured = removeListener(s.configured, l)
			s.mu.Unlock()
			return err
		}
		return nil
	}
	flags := []string{"DiscardPK"}
	if l.cfg.MaxStreamsCloseCircuit {
		flags = append(flags, "MaxStreamsCloseCircuit")
	}
	var b strings.Builder
	b.WriteString(" Flags=" + strings.Join(flags, ","))
	if l.cfg.MaxStreams > 0 {
		b.WriteString(" MaxStreams=" + strconv.Itoa(l.cfg.MaxStreams))
	}
	if l.cfg.PoW {
		b.WriteString(" PoWDefensesEnabled=1")
		if l.cfg.PoWQueueRate > 0 {
			b.WriteString(" PoWQueueRate=" + strconv.Itoa(l.cfg.PoWQueueRate))
		}
		if l.cfg.PoWQueueBurst > 0 {
			b.WriteString(" PoWQueueBurst=" + strconv.Itoa(l.cfg.PoWQueueBurst))
		}
	}
	target := l.ln.Addr().String()
	for _, p := range l.ports {
		b.WriteString(" Port=" + strconv.Itoa(p) + "," + target)
	}
	// The key goes as an argument, never into a log or error string.
	resp, err := l.s.request("ADD_ONION %s%s", l.key.addOnionBlob(), b.String())
	if err != nil {
		return fmt.Errorf("onion: ADD_ONION: %w", err)
	}
	for _, d := range resp.Data {
		if id, ok := strings.CutPrefix(d, "ServiceID="); ok && id != l.id {
			return fmt.Errorf("onion: ADD_ONION: tor published %s, want %s", id, l.id)
		}
	}
	return nil
}

// remove takes the service out of tor (pubMu held).
func (l *Listener) remove() error {
	if !l.published {
		return nil
	}
	l.published = false
	s := l.s
	if l.cfg.configured() {
		s.hsConfMu.Lock()
		defer s.hsConfMu.Unlock()
		s.mu.Lock()
		s.configured = removeListener(s.configured, l)
		s.mu.Unlock()
		return s.applyConf()
	}
	if _, err := s.request("DEL_ONION %s", l.id); err != nil {
		return fmt.Errorf("onion: DEL_ONION: %w", err)
	}
	return nil
}

func removeListener(ls []*Listener, l *Listener) []*Listener {
	out := ls[:0]
	for _, o := range ls {
		if o != l {
			out = append(out, o)
		}
	}
	return out
}

// applyConf sends SETCONF with tor's own configured services (those not
// under our DataDir) followed by all of ours. Caller holds hsConfMu.
func (s *Server) applyConf() error {
	current, err := s.getConf("HiddenServiceOptions")
	if err != nil {
		return fmt.Errorf("onion: GETCONF HiddenServiceOptions: %w", err)
	}
	ours := filepath.Join(s.dataDir, "hs") + string(filepath.Separator)
	var args []string
	skip := false
	for _, kv := range current {
		if kv.Key == "HiddenServiceOptions" {
			continue // no services configured
		}
		if kv.Key == "HiddenServiceDir" {
			skip = strings.HasPrefix(kv.Val, ours)
		}
		if !skip {
			args = append(args, kv.Key+"="+torutil.EscapeSimpleQuotedStringIfNeeded(kv.Val))
		}
	}
	s.mu.Lock()
	for _, l := range s.configured {
		args = append(args, l.confArgs()...)
	}
	s.mu.Unlock()
	cmd := "SETCONF HiddenServiceOptions"
	if len(args) > 0 {
		cmd = "SETCONF " + strings.Join(args, " ")
	}
	if _, err := s.request("%s", cmd); err != nil {
		return fmt.Errorf("onion: SETCONF hidden services: %w", err)
	}
	return nil
}

func (l *Listener) confArgs() []string {
	q := torutil.EscapeSimpleQuotedStringIfNeeded
	a := []string{"HiddenServiceDir=" + q(l.hsDir)}
	target := l.ln.Addr().String()
	for _, p := range l.ports {
		a = append(a, "HiddenServicePort="+q(strconv.Itoa(p)+" "+target))
	}
	c := &l.cfg
	if c.NumIntroPoints > 0 {
		a = append(a, "HiddenServiceNumIntroductionPoints="+strconv.Itoa(c.NumIntroPoints))
	}
	if c.MaxStreams > 0 {
		a = append(a, "HiddenServiceMaxStreams="+strconv.Itoa(c.MaxStreams))
	}
	if c.MaxStreamsCloseCircuit {
		a = append(a, "HiddenServiceMaxStreamsCloseCircuit=1")
	}
	if c.IntroDoSDefense {
		a = append(a, "HiddenServiceEnableIntroDoSDefense=1")
	}
	if c.PoW {
		a = append(a, "HiddenServicePoWDefensesEnabled=1")
		if c.PoWQueueRate > 0 {
			a = append(a, "HiddenServicePoWQueueRate="+strconv.Itoa(c.PoWQueueRate))
		}
		if c.PoWQueueBurst > 0 {
			a = append(a, "HiddenServicePoWQueueBurst="+strconv.Itoa(c.PoWQueueBurst))
		}
	}
	if c.ExportCircuitID {
		a = append(a, "HiddenServiceExportCircuitID=haproxy")
	}
	if c.Frontend != "" {
		a = append(a, "HiddenServiceOnionBalanceInstance=1")
	}
	return a
}

// Republish removes the service from tor and adds it again with the same
// key, which makes tor build and upload a fresh descriptor (with a higher
// revision counter) at once. With several publishers of one key, this makes
// clients follow this publisher. It returns once the new descriptor is
// uploaded; Accept keeps working throughout. If ctx ends first, the service
// stays removed and the error says so; call Republish again to restore it.
func (l *Listener) Republish(ctx context.Context) error {
	if l.ctx.Err() != nil {
		return fmt.Errorf("onion: %w", net.ErrClosed)
	}
	l.pubMu.Lock()
	err := l.remove()
	l.pubMu.Unlock()
	if err != nil {
		return err
	}
	if err := l.publish(ctx); err != nil {
		return fmt.Errorf("onion: republish (service is not published now): %w", err)
	}
	l.s.log.Info("onion service republished", "onion", l.Onion())
	return nil
}

// Accept waits for and returns the next stream to the service. After Close
// it returns an error wrapping net.ErrClosed.
func (l *Listener) Accept() (net.Conn, error) {
	if l.ready == nil {
		c, err := l.ln.Accept()
		if err != nil {
			if l.ctx.Err() != nil {
				return nil, fmt.Errorf("onion: %w", net.ErrClosed)
			}
			return nil, fmt.Errorf("onion: accept: %w", err)
		}
		return l.track(c), nil
	}
	select {
	case c := <-l.ready:
		return l.track(c), nil
	case <-l.ctx.Done():
		return nil, fmt.Errorf("onion: %w", net.ErrClosed)
	case err := <-l.acErr:
		l.acErr <- err
		return nil, fmt.Errorf("onion: accept: %w", err)
	}
}

// acceptLoop accepts raw connections and reads each PROXY header in its own
// goroutine, so one slow connection cannot stall Accept.
func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if l.ctx.Err() == nil {
				l.acErr <- err
			}
			return
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			cc, err := readCircuitHeader(c)
			if err != nil {
				// Not from tor, or tor misbehaved; nothing identifying is logged.
				l.s.log.Debug("dropped connection without valid PROXY header", "error", err)
				c.Close()
				return
			}
			select {
			case l.ready <- cc:
			case <-l.ctx.Done():
				c.Close()
			}
		}()
	}
}

// Close stops accepting at once: the watchdog stops, and new streams to
// the service are refused. The service itself is removed from tor (which
// ends every stream to it) once the connections the Listener accepted
// have all been closed, so that a server draining them gracefully
// (http.Server.Shutdown) completes the requests in progress; or at once
// if none is open; or when the Server closes, whichever comes first.
// Calling it again returns an error wrapping net.ErrClosed. The error of a
// removal deferred to the last connection's Close is logged.
func (l *Listener) Close() error {
	err := fmt.Errorf("onion: %w", net.ErrClosed)
	l.closeOnce.Do(func() {
		l.cancel()
		l.ln.Close()
		l.wg.Wait()
		l.connMu.Lock()
		if n := l.conns; n > 0 {
			l.draining = true
			l.connMu.Unlock()
			l.s.log.Info("onion service draining", "onion", l.Onion(), "connections", n)
			err = nil
			return
		}
		l.connMu.Unlock()
		err = l.removeService()
	})
	return err
}

// removeService removes the service from tor and forgets it.
func (l *Listener) removeService() error {
	l.s.mu.Lock()
	gone := l.s.ctrlClosed // tor stopped (or detached): the service went with it
	l.s.mu.Unlock()
	var err error
	if !gone {
		l.pubMu.Lock()
		err = l.remove()
		l.pubMu.Unlock()
	}
	if l.hsDir != "" {
		if rerr := os.RemoveAll(l.hsDir); rerr != nil {
			err = errors.Join(err, fmt.Errorf("onion: remove service dir: %w", rerr))
		}
	}
	l.s.mu.Lock()
	delete(l.s.listeners, l)
	delete(l.s.ids, l.id)
	l.s.mu.Unlock()
	l.s.log.Info("onion service removed", "onion", l.Onion())
	l.rmOnce.Do(func() { close(l.removedChan()) })
	return err
}

// removedChan returns the channel closed once the service is removed.
func (l *Listener) removedChan() chan struct{} {
	l.rmInit.Do(func() { l.removed = make(chan struct{}) })
	return l.removed
}

// track counts an accepted connection until it is closed.
func (l *Listener) track(c net.Conn) net.Conn {
	l.connMu.Lock()
	l.conns++
	l.connMu.Unlock()
	return &trackedConn{Conn: c, l: l}
}

// connClosed notes that an accepted connection closed; the last one of a
// closed Listener removes the service.
func (l *Listener) connClosed() {
	l.connMu.Lock()
	l.conns--
	last := l.draining && l.conns == 0
	l.connMu.Unlock()
	if last {
		time.Sleep(drainLinger) // the last cells cross the circuit
		if err := l.removeService(); err != nil {
			l.s.log.Warn("removing the onion service after the drain", "onion", l.Onion(), "err", err)
		}
	}
}

// trackedConn is a connection accepted by a Listener. It keeps the
// connection's ReadFrom (sendfile) and exposes it with NetConn.
//
// Its Close is graceful: it shuts down the writing side and returns; the
// connection is closed once tor has read everything sent on it (tor then
// ends its side: it reads at the pace of the client's circuit, so by then
// the client has all but the last flow-control window), or after the
// Server's DrainTimeout. A plain close could lose the data tor had not yet
// read if the service or tor stopped just after.
type trackedConn struct {
	net.Conn
	l    *Listener
	once sync.Once
}

func (c *trackedConn) Close() error {
	err := fmt.Errorf("onion: %w", net.ErrClosed)
	c.once.Do(func() {
		tc, ok := c.tcp()
		if !ok || tc.CloseWrite() != nil {
			err = c.Conn.Close()
			c.l.connClosed()
			return
		}
		err = nil
		go func() {
			tc.SetReadDeadline(time.Now().Add(c.l.s.drainTimeout()))
			io.Copy(io.Discard, tc) // until tor's EOF: what a client sends now is dropped
			c.Conn.Close()
			c.l.connClosed()
		}()
	})
	return err
}

// tcp returns the TCP connection under c.
func (c *trackedConn) tcp() (*net.TCPConn, bool) {
	var nc net.Conn = c.Conn
	for range 4 {
		switch x := nc.(type) {
		case *net.TCPConn:
			return x, true
		case interface{ NetConn() net.Conn }:
			nc = x.NetConn()
		default:
			return nil, false
		}
	}
	return nil, false
}

// NetConn returns the underlying connection, as crypto/tls does.
func (c *trackedConn) NetConn() net.Conn { return c.Conn }

// ReadFrom lets a body sent from a file use sendfile(2).
func (c *trackedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{c.Conn}, r)
}

// CloseWrite shuts down the writing side, if the connection can.
func (c *trackedConn) CloseWrite() error {
	if tc, ok := c.tcp(); ok {
		return tc.CloseWrite()
	}
	return nil
}

type writerOnly struct{ io.Writer }

// Addr returns the onion address with the first virtual port.
func (l *Listener) Addr() net.Addr { return onionAddr{id: l.id, port: l.ports[0]} }

// Onion returns the service's address, "xxx.onion".
func (l *Listener) Onion() string { return l.id + ".onion" }

// Key returns the service's key.
func (l *Listener) Key() *Key { return l.key }

// LocalAddr returns the address of the local TCP listener tor forwards the
// service's streams to.
func (l *Listener) LocalAddr() net.Addr { return l.ln.Addr() }

// WatchdogStats returns a snapshot of the watchdog's counters.
func (l *Listener) WatchdogStats() WatchdogStats {
	return WatchdogStats{
		Probes:        l.probes.Load(),
		ProbeFailures: l.probeFails.Load(),
		Republishes:   l.republishes.Load(),
		RepublishErrs: l.republishErrs.Load(),
	}
}

type onionAddr struct {
	id   string
	port int
}

func (a onionAddr) Network() string { return "onion" }
func (a onionAddr) String() string {
	return net.JoinHostPort(a.id+".onion", strconv.Itoa(a.port))
}

func (l *Listener) watchdog(w Watchdog) {
	defer l.wg.Done()
	if w.Interval == 0 {
		w.Interval = 30 * time.Second
	}
	if w.Failures == 0 {
		w.Failures = 3
	}
	if w.Jitter == 0 {
		w.Jitter = w.Interval / 2
	}
	if w.Timeout == 0 {
		w.Timeout = min(w.Interval, 60*time.Second)
	}
	port := w.Port
	if port == 0 {
		port = l.ports[0]
	}
	d := w.Dialer
	if d == nil {
		d = l.s.Dialer()
	}
	target := net.JoinHostPort(l.Onion(), strconv.Itoa(port))
	log := l.s.log.With("onion", l.Onion())
	// The next probe starts Interval after the previous one ended, so a
	// probe that hangs until its timeout is not followed by an immediate
	// second one.
	next := time.NewTimer(w.Interval)
	defer next.Stop()
	failures := 0
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-next.C:
		}
		l.probes.Add(1)
		ctx, cancel := context.WithTimeout(l.ctx, w.Timeout)
		if w.Dialer == nil {
			// Refresh the client cache of the Server's tor first, so the
			// probe follows the descriptor the HSDirs serve now. A failed
			// fetch is not a failed probe: the dial decides.
			if err := l.s.fetchDescriptor(ctx, l.id); err != nil {
				log.Debug("watchdog descriptor fetch failed", "error", err)
			}
		}
		c, err := d.DialIsolated(ctx, "tcp", target, NewIsolationTag())
		cancel()
		next.Reset(w.Interval)
		if err == nil {
			c.Close()
			failures = 0
			continue
		}
		if l.ctx.Err() != nil {
			return
		}
		l.probeFails.Add(1)
		failures++
		log.Warn("watchdog probe failed", "failures", failures, "error", err)
		if failures < w.Failures {
			continue
		}
		failures = 0
		delay := time.Duration(rand.Int64N(int64(w.Jitter) + 1))
		select {
		case <-l.ctx.Done():
			return
		case <-time.After(delay):
		}
		l.republishes.Add(1)
		log.Warn("watchdog republishing descriptor")
		ctx, cancel = context.WithTimeout(l.ctx, 2*time.Minute)
		err = l.Republish(ctx)
		cancel()
		if err != nil {
			if l.ctx.Err() != nil {
				return
			}
			l.republishErrs.Add(1)
			log.Error("watchdog republish failed", "error", err)
		}
		next.Reset(w.Interval)
	}
}
