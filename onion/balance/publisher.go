package balance

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onioncdn/onioncdn/onion"
	"github.com/onioncdn/onioncdn/onion/hsdesc"
)

// Defaults of the Publisher's settings.
const (
	DefaultFetchInterval     = time.Minute
	DefaultProbeInterval     = 5 * time.Second
	DefaultProbeTimeout      = 15 * time.Second
	DefaultProbeFailures     = 2
	DefaultMinUploadInterval = 5 * time.Second
	DefaultRefreshInterval   = time.Hour
	DefaultObserveInterval   = 15 * time.Second
	DefaultUploadTimeout     = time.Minute
)

const (
	tickEvery          = 500 * time.Millisecond
	consensusEvery     = 10 * time.Second
	uploadRetry        = 10 * time.Second
	uploadParallel     = 8
	mdBatch            = 64
	wrongPeriodHorizon = 48 // time periods searched to tell a wrong period from a wrong key
)

// Publisher publishes one descriptor set for a group ("frontend") onion
// address that lists the introduction points of several backend
// instances, so that clients of the group address reach all of them. See
// the package documentation.
//
// The zero value is not usable: Server and Key must be set. Exported
// fields must not change after the first method call. A Publisher is safe
// for concurrent use.
type Publisher struct {
	// Server is the tor the Publisher works through: it reads the
	// consensus, fetches the backends' descriptors (HSFETCH), probes the
	// backends and uploads the group's descriptors (HSPOST). Required. A
	// backend's own Server may serve, or a Server of its own.
	Server *onion.Server

	// Key is the group's identity key. Required. Its address is what
	// clients use; the backends run with onion.ListenConfig.Frontend set to
	// it.
	Key *onion.Key

	// Backends are the onion addresses of the backend instances at start.
	// SetBackends changes the set later.
	Backends []string

	// Fetch, if set, returns a backend's current descriptor (for example
	// from an agent running next to the backend's tor, which reads it with
	// GETINFO hs/service/desc/id/…). If nil, the descriptor is fetched
	// from the HSDirs through Server. Whatever the source, descriptors are
	// verified before use.
	Fetch func(ctx context.Context, backend string) (string, error)

	// Probe, if set, reports whether a backend is serving (nil error). If
	// nil, the Publisher opens a connection to the backend's own address
	// and ProbePort through Server's tor, on a fresh circuit each time.
	Probe func(ctx context.Context, backend string) error

	// ProbePort is the virtual port the default probe connects to. If zero,
	// 80.
	ProbePort int

	// FetchInterval is how often each backend's descriptor is fetched
	// again (besides when it comes back up or first fails). If zero,
	// DefaultFetchInterval (1 min).
	FetchInterval time.Duration

	// ProbeInterval is how often each backend is probed. If zero,
	// DefaultProbeInterval (5 s). ProbeTimeout bounds one probe; if zero,
	// DefaultProbeTimeout (15 s). ProbeFailures consecutive failed probes
	// mark a backend down; if zero, DefaultProbeFailures (2). After a failed
	// probe the next one starts at once. One success marks it up.
	ProbeInterval time.Duration
	ProbeTimeout  time.Duration
	ProbeFailures int

	// MaxIntroPoints is the most introduction points one descriptor lists,
	// 1–20. If zero, 20 (tor's maximum). Lower values make more backends
	// share the per-HSDir descriptors (see the package documentation).
	MaxIntroPoints int

	// MinUploadInterval is the least time between two upload rounds: a
	// change waits for it, so that changes close together make one round.
	// If zero, DefaultMinUploadInterval (5 s).
	MinUploadInterval time.Duration

	// RefreshInterval is how often descriptors are uploaded again when
	// nothing changed. If zero, DefaultRefreshInterval (1 h); tor's own
	// services re-upload every 60–120 minutes and HSDirs drop a
	// descriptor after its lifetime (3 h).
	RefreshInterval time.Duration

	// TakeoverDelay makes the Publisher a standby. If zero, it is a
	// primary: it uploads as soon as its view of the backends changes. A
	// standby uploads only after the group's descriptor on the HSDirs has
	// stayed missing, out of date (older than the current time periods) or
	// different from what it would publish for TakeoverDelay; it then acts
	// as a primary until it sees a newer descriptor from another
	// publisher. Give one publisher of a group zero and the others
	// different delays (20 s, 40 s, …). Publishers' clocks must agree to
	// well within the delay: revision counters are Unix milliseconds.
	TakeoverDelay time.Duration

	// ObserveInterval is how often the Publisher fetches the group's own
	// descriptor from one of its HSDirs to compare it with its view (see
	// TakeoverDelay). If zero, DefaultObserveInterval (15 s).
	ObserveInterval time.Duration

	// Lifetime is the descriptor-lifetime of the group's descriptors. If
	// zero, 3 h (tor's value).
	Lifetime time.Duration

	// UploadTimeout bounds one upload to one HSDir, and one fetch of a
	// descriptor. If zero, DefaultUploadTimeout (1 min).
	UploadTimeout time.Duration

	// Logger receives the Publisher's logs. If nil, logs are discarded.
	// Keys are never logged.
	Logger *slog.Logger

	// Now returns the current time. If nil, time.Now.
	Now func() time.Time

	startOnce sync.Once
	startErr  error
	closeOnce sync.Once
	ctx       context.Context
	cancel    context.CancelFunc
	done      chan struct{}
	workers   sync.WaitGroup

	log      *slog.Logger
	tor      torAPI
	identity ed25519.PublicKey
	signer   *hsdesc.SigningKey
	address  string
	results  chan func(*state)
	cmds     chan func(*state)

	published     chan struct{}
	publishedOnce sync.Once

	st   counters
	mu   sync.Mutex // guards view
	view view
}

// torAPI is what the Publisher needs from tor (an *onion.Server, or a fake
// in tests).
type torAPI interface {
	FetchDescriptor(ctx context.Context, addr, hsdir string) (string, string, error)
	PostDescriptor(ctx context.Context, addr, desc, hsdir string) error
	GetInfo(ctx context.Context, keys ...string) (map[string]string, error)
	GetConf(ctx context.Context, key string) ([]string, error)
	Dial(ctx context.Context, addr string) (net.Conn, error)
}

type serverTor struct{ *onion.Server }

func (s serverTor) Dial(ctx context.Context, addr string) (net.Conn, error) {
	return s.Server.Dialer().DialIsolated(ctx, "tcp", addr, onion.NewIsolationTag())
}

// BackendStatus is the Publisher's view of one backend.
type BackendStatus struct {
	Address string
	// Up is true after a successful probe, false after ProbeFailures
	// failed ones (and before the first probe).
	Up bool
	// IntroPoints is the number of introduction points of the backend's
	// last good descriptor.
	IntroPoints int
	// Published is true if the backend is in the descriptors uploaded last.
	Published bool
	// Since is when Up last changed.
	Since time.Time
	// LastFetch is when the backend's descriptor was last fetched and
	// accepted.
	LastFetch time.Time
	// Err is the last fetch or probe error, "" if none.
	Err string
}

// Stats are the Publisher's counters and gauges, for metrics.
type Stats struct {
	// Gauges.
	BackendsUp    int  // backends whose probes succeed
	BackendsKnown int  // backends configured
	Reached       int  // backends listed in at least one published descriptor
	IntroPoints   int  // distinct introduction points in the published descriptors of the current period
	Variants      int  // distinct descriptors per period (one per HSDir clients fetch from, at most)
	Active        bool // uploading (a primary, or a standby that took over)

	// Counters.
	Fetches        uint64 // backend descriptors fetched and accepted
	FetchErrors    uint64 // fetches that failed (network, not found)
	Rejected       RejectedStats
	Probes         uint64
	ProbeFailures  uint64
	UploadRounds   uint64 // upload rounds started
	Uploads        uint64 // descriptors accepted by an HSDir
	UploadErrors   uint64 // uploads that failed without a verdict (timeouts, circuits)
	UploadRejected uint64 // descriptors refused by tor or an HSDir: should stay zero
	Observations   uint64 // fetches of the group's own descriptor
	Takeovers      uint64 // times a standby started uploading
	PoWDropped     uint64 // backend descriptors whose pow-params could not be carried (see package doc)

	LastUpload time.Time // end of the last upload round with at least one success
}

// RejectedStats counts backend descriptors skipped, by cause.
type RejectedStats struct {
	Malformed    uint64 // does not follow the format, or does not decrypt as expected
	Expired      uint64 // a certificate has expired
	WrongPeriod  uint64 // the backend's key, but for another time period
	WrongKey     uint64 // another key (not the backend's)
	BadSignature uint64 // a signature or certificate does not verify
}

type counters struct {
	fetches, fetchErrors, probes, probeFailures                 atomic.Uint64
	malformed, expired, wrongPeriod, wrongKey, badSignature     atomic.Uint64
	rounds, uploads, uploadErrors, uploadRejected, observations atomic.Uint64
	takeovers, powDropped                                       atomic.Uint64
}

// view is the part of the loop's state that Stats and Status report.
type view struct {
	backends                      []BackendStatus
	up, reached, intros, variants int
	active                        bool
	lastUpload                    time.Time
}

// Start validates the configuration and starts the Publisher's work in
// the background. Calling it again returns the first call's result. Up,
// SetBackends, Stats and Status call it.
func (p *Publisher) Start() error {
	p.startOnce.Do(func() { p.startErr = p.start() })
	return p.startErr
}

func (p *Publisher) start() error {
	if p.tor == nil { // tests set a fake
		if p.Server == nil {
			return errors.New("balance: Publisher.Server is nil")
		}
		p.tor = serverTor{p.Server}
	}
	if p.Key == nil {
		return errors.New("balance: Publisher.Key is nil")
	}
	if p.MaxIntroPoints < 0 || p.MaxIntroPoints > hsdesc.MaxIntroPoints {
		return fmt.Errorf("balance: MaxIntroPoints %d out of range 1–%d", p.MaxIntroPoints, hsdesc.MaxIntroPoints)
	}
	if p.ProbePort < 0 || p.ProbePort > 65535 || p.ProbeFailures < 0 || p.FetchInterval < 0 || p.ProbeInterval < 0 ||
		p.ProbeTimeout < 0 || p.MinUploadInterval < 0 || p.RefreshInterval < 0 || p.TakeoverDelay < 0 ||
		p.ObserveInterval < 0 || p.UploadTimeout < 0 {
		return errors.New("balance: negative setting")
	}
	if p.Lifetime != 0 && (p.Lifetime < time.Minute || p.Lifetime > hsdesc.MaxLifetime) {
		return fmt.Errorf("balance: Lifetime %v out of range 1 min–12 h", p.Lifetime)
	}
	// The key in tor's file format: header, then the expanded secret.
	file := p.Key.MarshalFile()
	signer, err := hsdesc.NewSigningKey(file[len(file)-64:])
	if err != nil {
		return fmt.Errorf("balance: group key: %w", err)
	}
	p.signer, p.identity, p.address = signer, signer.Public(), p.Key.Address()
	initial, err := normalize(p.Backends)
	if err != nil {
		return err
	}
	if slices.Contains(initial, p.address) {
		return errors.New("balance: the group's own address is listed as a backend")
	}
	p.log = p.Logger
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.log = p.log.With("group", p.address)
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.done = make(chan struct{})
	p.results = make(chan func(*state))
	p.cmds = make(chan func(*state))
	p.published = make(chan struct{})
	st := p.newState()
	for _, a := range initial {
		st.addBackend(a)
	}
	p.publishView(st)
	go p.run(st)
	return nil
}

// normalize validates onion addresses and returns them normalized,
// sorted and without duplicates.
func normalize(addrs []string) ([]string, error) {
	var out []string
	for _, a := range addrs {
		n, err := onion.ParseAddress(a)
		if err != nil {
			return nil, fmt.Errorf("balance: backend: %w", err)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// SetBackends replaces the set of backends. New backends are fetched and
// probed at once and appear in the next upload; removed ones leave it.
func (p *Publisher) SetBackends(addrs ...string) error {
	if err := p.Start(); err != nil {
		return err
	}
	set, err := normalize(addrs)
	if err != nil {
		return err
	}
	if slices.Contains(set, p.address) {
		return errors.New("balance: the group's own address is listed as a backend")
	}
	f := func(st *state) {
		for a := range st.backends {
			if !slices.Contains(set, a) {
				delete(st.backends, a)
				p.log.Info("backend removed", "backend", a)
			}
		}
		for _, a := range set {
			if st.backends[a] == nil {
				st.addBackend(a)
				p.log.Info("backend added", "backend", a)
			}
		}
		p.publishView(st)
	}
	select {
	case p.cmds <- f:
		return nil
	case <-p.done:
		return fmt.Errorf("balance: %w", net.ErrClosed)
	}
}

// Up waits until the group is published: this Publisher's descriptor for
// the current time period was accepted by at least one HSDir, or (for a
// standby) a valid descriptor of the group was found on an HSDir.
func (p *Publisher) Up(ctx context.Context) error {
	if err := p.Start(); err != nil {
		return err
	}
	select {
	case <-p.published:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("balance: not published: %w", context.Cause(ctx))
	case <-p.done:
		return fmt.Errorf("balance: %w", net.ErrClosed)
	}
}

// Stats returns a snapshot of the Publisher's counters and gauges.
func (p *Publisher) Stats() Stats {
	if p.Start() != nil {
		return Stats{}
	}
	p.mu.Lock()
	v := p.view
	p.mu.Unlock()
	c := &p.st
	return Stats{
		BackendsUp: v.up, BackendsKnown: len(v.backends), Reached: v.reached, IntroPoints: v.intros,
		Variants: v.variants, Active: v.active, LastUpload: v.lastUpload,
		Fetches: c.fetches.Load(), FetchErrors: c.fetchErrors.Load(),
		Rejected: RejectedStats{
			Malformed: c.malformed.Load(), Expired: c.expired.Load(), WrongPeriod: c.wrongPeriod.Load(),
			WrongKey: c.wrongKey.Load(), BadSignature: c.badSignature.Load(),
		},
		Probes: c.probes.Load(), ProbeFailures: c.probeFailures.Load(),
		UploadRounds: c.rounds.Load(), Uploads: c.uploads.Load(), UploadErrors: c.uploadErrors.Load(),
		UploadRejected: c.uploadRejected.Load(), Observations: c.observations.Load(),
		Takeovers: c.takeovers.Load(), PoWDropped: c.powDropped.Load(),
	}
}

// Status returns the Publisher's view of each backend, sorted by address.
func (p *Publisher) Status() []BackendStatus {
	if p.Start() != nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.view.backends)
}

// Address returns the group's onion address.
func (p *Publisher) Address() string { return p.Key.Address() }

// Close stops the Publisher and waits for its goroutines. The descriptors
// it uploaded stay on the HSDirs until they expire or another publisher
// replaces them. Calling it again returns an error wrapping net.ErrClosed.
func (p *Publisher) Close() error {
	err := fmt.Errorf("balance: %w", net.ErrClosed)
	p.closeOnce.Do(func() {
		err = nil
		p.startOnce.Do(func() { p.startErr = fmt.Errorf("balance: %w", net.ErrClosed) })
		if p.cancel == nil {
			return
		}
		p.cancel()
		<-p.done
	})
	return err
}

func (p *Publisher) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func (p *Publisher) setting(v, d time.Duration) time.Duration {
	if v > 0 {
		return v
	}
	return d
}

func (p *Publisher) maxIntros() int {
	if p.MaxIntroPoints > 0 {
		return p.MaxIntroPoints
	}
	return hsdesc.MaxIntroPoints
}

// ---- loop state ----

type backend struct {
	addr string
	id   ed25519.PublicKey

	intros      []hsdesc.IntroPoint
	flowControl string
	lastFetch   time.Time // last attempt
	goodFetch   time.Time
	fetching    bool
	refetch     bool
	fetchIdx    int

	fetched   bool // a fetch has completed (with or without success)
	probed    bool // a probe has completed
	probing   bool
	lastProbe time.Time
	failures  int
	up        bool
	since     time.Time
	err       string
}

type slotDir struct {
	tp    uint64
	hsdir string
}

type attempt struct {
	key string
	at  time.Time
}

type state struct {
	p        *Publisher
	backends map[string]*backend

	ring           *hsdesc.Ring
	slots          []slotPlan // ring-derived part of the plan
	va             string
	testing        *bool
	mdIDs          map[string]ed25519.PublicKey
	consensusBusy  bool
	lastConsensus  time.Time
	slotsKey       string
	slotsChangedAt time.Time

	uploaded   map[slotDir]string  // content key we last uploaded
	failed     map[slotDir]attempt // last failed upload, for the retry delay
	published  map[string]bool     // backends in what we last uploaded
	lastRev    uint64
	uploading  bool
	lastRound  time.Time
	lastFull   time.Time // last round that uploaded to every HSDir
	active     bool
	lastUpload time.Time
	reached    int
	intros     int
	variants   int
	powWarned  bool
	noneWarned bool

	observing     bool
	lastObserve   time.Time
	observeIdx    int
	mismatchSince time.Time
	mismatchView  string // the plan the mismatch was seen with
}

// viewComplete reports whether every backend has been probed and fetched
// at least once: before that, a standby's view is not worth comparing.
func (st *state) viewComplete() bool {
	for _, b := range st.backends {
		if !b.probed || !b.fetched {
			return false
		}
	}
	return true
}

func (p *Publisher) newState() *state {
	return &state{
		p: p, backends: map[string]*backend{}, mdIDs: map[string]ed25519.PublicKey{},
		uploaded: map[slotDir]string{}, failed: map[slotDir]attempt{}, published: map[string]bool{},
		active: p.TakeoverDelay == 0,
	}
}

func (st *state) addBackend(addr string) {
	id, err := hsdesc.ParseAddress(addr)
	if err != nil {
		return // normalize validated it
	}
	st.backends[addr] = &backend{addr: addr, id: id}
}

// publishView copies the loop's state for Stats and Status.
func (p *Publisher) publishView(st *state) {
	v := view{reached: st.reached, intros: st.intros, variants: st.variants, active: st.active, lastUpload: st.lastUpload}
	for _, b := range st.backends {
		if b.up {
			v.up++
		}
		v.backends = append(v.backends, BackendStatus{
			Address: b.addr, Up: b.up, IntroPoints: len(b.intros), Published: st.published[b.addr],
			Since: b.since, LastFetch: b.goodFetch, Err: b.err,
		})
	}
	slices.SortFunc(v.backends, func(a, b BackendStatus) int { return strings.Compare(a.Address, b.Address) })
	p.mu.Lock()
	p.view = v
	p.mu.Unlock()
}

// run is the Publisher's loop: it owns the state; workers report back
// through p.results.
func (p *Publisher) run(st *state) {
	defer close(p.done)
	tick := time.NewTicker(tickEvery)
	defer tick.Stop()
	for {
		p.step(st)
		select {
		case <-p.ctx.Done():
			// Drain workers' results until they have all returned.
			fin := make(chan struct{})
			go func() { p.workers.Wait(); close(fin) }()
			for {
				select {
				case <-p.results:
				case <-fin:
					return
				}
			}
		case f := <-p.results:
			f(st)
		case f := <-p.cmds:
			f(st)
		case <-tick.C:
		}
	}
}

// spawn runs work in a worker goroutine; its result function runs in the
// loop.
func (p *Publisher) spawn(work func(ctx context.Context) func(*state)) {
	p.workers.Add(1)
	go func() {
		defer p.workers.Done()
		f := work(p.ctx)
		if f == nil {
			return
		}
		select {
		case p.results <- f:
		case <-p.ctx.Done():
		}
	}()
}

func (p *Publisher) step(st *state) {
	now := p.now()
	if !st.consensusBusy && now.Sub(st.lastConsensus) >= consensusEvery {
		st.consensusBusy = true
		st.lastConsensus = now
		p.spawnConsensus(st)
	}
	for _, b := range st.backends {
		// Descriptors are checked against the time periods of the
		// consensus: no fetch before there is one.
		if st.ring != nil && !b.fetching && (b.lastFetch.IsZero() || b.refetch || now.Sub(b.lastFetch) >= p.setting(p.FetchInterval, DefaultFetchInterval)) {
			b.fetching, b.refetch, b.lastFetch = true, false, now
			p.spawnFetch(st, b)
		}
		if !b.probing && now.Sub(b.lastProbe) >= p.setting(p.ProbeInterval, DefaultProbeInterval) {
			b.probing, b.lastProbe = true, now
			p.spawnProbe(b.addr)
		}
	}
	if st.ring == nil {
		return
	}
	pl := p.plan(st)
	p.maybeUpload(st, pl, now)
	if !st.observing && now.Sub(st.lastObserve) >= p.setting(p.ObserveInterval, DefaultObserveInterval) {
		st.observing, st.lastObserve = true, now
		p.spawnObserve(st, pl)
	}
}

// ---- consensus ----

func (p *Publisher) spawnConsensus(st *state) {
	va, ids, testing := st.va, st.mdIDs, st.testing
	p.spawn(func(ctx context.Context) func(*state) {
		ring, newVA, newIDs, newTesting, err := p.readConsensus(ctx, va, ids, testing)
		return func(st *state) {
			st.consensusBusy = false
			if err != nil {
				p.log.Warn("cannot read the consensus", "error", err)
				return
			}
			if ring == nil {
				return // unchanged
			}
			st.va, st.mdIDs, st.testing, st.ring = newVA, newIDs, newTesting, ring
			st.slots = p.slotsOf(ring)
			first, second := ring.ServicePeriods()
			key := strconv.FormatUint(first, 10) + "/" + strconv.FormatUint(second, 10)
			if key != st.slotsKey {
				if st.slotsKey != "" {
					p.log.Info("time periods changed", "first", first, "second", second)
				}
				st.slotsKey, st.slotsChangedAt = key, p.now()
				for _, b := range st.backends {
					b.refetch = true // their descriptors change with the period too
				}
			}
		}
	})
}

// readConsensus returns a new ring if the consensus changed since va.
func (p *Publisher) readConsensus(ctx context.Context, va string, ids map[string]ed25519.PublicKey, testing *bool) (*hsdesc.Ring, string, map[string]ed25519.PublicKey, *bool, error) {
	info, err := p.tor.GetInfo(ctx, "consensus/valid-after")
	if err != nil {
		return nil, "", nil, nil, err
	}
	newVA := info["consensus/valid-after"]
	if newVA == "" {
		return nil, "", nil, nil, errors.New("tor has no consensus yet")
	}
	if newVA == va {
		return nil, "", nil, nil, nil
	}
	if testing == nil {
		v, err := p.tor.GetConf(ctx, "TestingTorNetwork")
		if err != nil {
			return nil, "", nil, nil, err
		}
		t := len(v) > 0 && v[0] == "1"
		testing = &t
	}
	info, err = p.tor.GetInfo(ctx, "dir/status-vote/current/consensus-microdesc")
	if err != nil {
		return nil, "", nil, nil, err
	}
	c, err := parseConsensus(info["dir/status-vote/current/consensus-microdesc"])
	if err != nil {
		return nil, "", nil, nil, err
	}
	next := map[string]ed25519.PublicKey{}
	var missing []relay
	for _, r := range c.relays {
		if !r.hsdir {
			continue
		}
		if id, ok := ids[r.mdDigest]; ok {
			next[r.mdDigest] = id
		} else {
			missing = append(missing, r)
		}
	}
	for len(missing) > 0 {
		batch := missing[:min(mdBatch, len(missing))]
		missing = missing[len(batch):]
		keys := make([]string, len(batch))
		for i, r := range batch {
			keys[i] = "md/id/" + r.fingerprint
		}
		mds, err := p.tor.GetInfo(ctx, keys...)
		if err != nil {
			// One relay without a microdescriptor fails the batch: ask one
			// by one.
			mds = map[string]string{}
			for _, k := range keys {
				if one, err := p.tor.GetInfo(ctx, k); err == nil {
					mds[k] = one[k]
				}
			}
		}
		for i, r := range batch {
			if id, ok := parseMicrodescEd25519(mds[keys[i]]); ok {
				next[r.mdDigest] = id
			}
		}
	}
	return c.ring(next, *testing), newVA, next, testing, nil
}

// ---- backends ----

func (p *Publisher) spawnFetch(st *state, b *backend) {
	addr, id := b.addr, b.id
	var hsdir string
	var sched hsdesc.Period
	var tp uint64
	haveRing := st.ring != nil
	if haveRing {
		sched, tp = st.ring.Schedule, st.ring.TimePeriod()
		if blinded, err := hsdesc.BlindPublicKey(id, tp, sched); err == nil {
			if dirs := st.ring.Fetch(blinded); len(dirs) > 0 {
				hsdir = dirs[b.fetchIdx%len(dirs)].Fingerprint
				b.fetchIdx++
			}
		}
	}
	p.spawn(func(ctx context.Context) func(*state) {
		ctx, cancel := context.WithTimeout(ctx, p.setting(p.UploadTimeout, DefaultUploadTimeout))
		defer cancel()
		var text string
		var err error
		if p.Fetch != nil {
			text, err = p.Fetch(ctx, addr)
		} else {
			text, _, err = p.tor.FetchDescriptor(ctx, addr, hsdir)
		}
		if ctx.Err() != nil && p.ctx.Err() != nil {
			return nil
		}
		now := p.now()
		var c *hsdesc.Content
		var cause string
		if err == nil {
			c, cause, err = p.verify(text, id, now, haveRing, sched, tp)
		}
		return func(st *state) {
			b := st.backends[addr]
			if b == nil {
				return // removed meanwhile
			}
			b.fetching, b.fetched = false, true
			if err != nil {
				b.err = err.Error()
				if cause == "" {
					p.st.fetchErrors.Add(1)
					p.log.Warn("backend descriptor fetch failed", "backend", addr, "error", err)
				} else {
					p.countRejected(cause)
					p.log.Warn("backend descriptor skipped", "backend", addr, "cause", cause, "error", err)
				}
				p.publishView(st)
				return
			}
			p.st.fetches.Add(1)
			b.err = ""
			ips := slices.DeleteFunc(slices.Clone(c.IntroPoints), func(ip hsdesc.IntroPoint) bool { return ip.Legacy })
			sortIntros(ips)
			if contentKey(ips) != contentKey(b.intros) {
				p.log.Info("backend introduction points", "backend", addr, "count", len(ips))
			}
			b.intros, b.flowControl, b.goodFetch = ips, c.FlowControl, now
			if c.PoW != nil {
				p.st.powDropped.Add(1)
				if !st.powWarned {
					st.powWarned = true
					p.log.Warn("backend runs the proof-of-work defence; its pow-params cannot be carried into the group's descriptor (tor 0.4.9 binds PoW solutions to the instance's own blinded key and seed), so the group is published without them",
						"backend", addr)
				}
			}
			p.publishView(st)
		}
	})
}

// verify checks a backend descriptor and returns its content, or the
// cause it is refused for ("" for no descriptor-level cause).
func (p *Publisher) verify(text string, id ed25519.PublicKey, now time.Time, haveRing bool, sched hsdesc.Period, tp uint64) (*hsdesc.Content, string, error) {
	d, err := hsdesc.Parse(text, now)
	if err != nil {
		return nil, cause(err), err
	}
	var periods []uint64
	if haveRing {
		periods = []uint64{tp - 1, tp, tp + 1}
	}
	c, err := d.Decrypt(id, now, sched, periods...)
	if err != nil {
		ca := cause(err)
		if errors.Is(err, hsdesc.ErrWrongKey) {
			ca = "wrong_key"
			for delta := uint64(2); delta <= wrongPeriodHorizon && tp > delta; delta++ {
				for _, q := range []uint64{tp - delta, tp + delta} {
					if bk, e := hsdesc.BlindPublicKey(id, q, sched); e == nil && bk.Equal(d.BlindedKey) {
						ca = "wrong_period"
					}
				}
			}
		}
		return nil, ca, err
	}
	if len(c.IntroPoints) == 0 {
		return nil, "malformed", fmt.Errorf("balance: descriptor lists no usable introduction point (%d skipped: %v)", c.Skipped, c.SkipErrors)
	}
	return c, "", nil
}

func cause(err error) string {
	switch {
	case errors.Is(err, hsdesc.ErrExpired):
		return "expired"
	case errors.Is(err, hsdesc.ErrBadSignature):
		return "bad_signature"
	case errors.Is(err, hsdesc.ErrWrongKey), errors.Is(err, hsdesc.ErrDecrypt):
		return "wrong_key"
	default:
		return "malformed"
	}
}

func (p *Publisher) countRejected(cause string) {
	switch cause {
	case "expired":
		p.st.expired.Add(1)
	case "bad_signature":
		p.st.badSignature.Add(1)
	case "wrong_period":
		p.st.wrongPeriod.Add(1)
	case "wrong_key":
		p.st.wrongKey.Add(1)
	default:
		p.st.malformed.Add(1)
	}
}

func (p *Publisher) spawnProbe(addr string) {
	p.spawn(func(ctx context.Context) func(*state) {
		ctx, cancel := context.WithTimeout(ctx, p.setting(p.ProbeTimeout, DefaultProbeTimeout))
		defer cancel()
		var err error
		if p.Probe != nil {
			err = p.Probe(ctx, addr)
		} else {
			port := p.ProbePort
			if port == 0 {
				port = 80
			}
			var c net.Conn
			if c, err = p.tor.Dial(ctx, net.JoinHostPort(addr, strconv.Itoa(port))); err == nil {
				c.Close()
			}
		}
		if p.ctx.Err() != nil {
			return nil
		}
		return func(st *state) {
			b := st.backends[addr]
			if b == nil {
				return
			}
			b.probing, b.probed = false, true
			b.lastProbe = p.now() // the next probe starts an interval after this one ended
			p.st.probes.Add(1)
			if err == nil {
				b.failures = 0
				if !b.up {
					b.up, b.since = true, p.now()
					b.refetch = true // it may have restarted with new introduction points
					p.log.Info("backend up", "backend", addr)
				}
				if b.err != "" && strings.HasPrefix(b.err, "probe:") {
					b.err = ""
				}
				p.publishView(st)
				return
			}
			p.st.probeFailures.Add(1)
			b.failures++
			b.err = "probe: " + err.Error()
			threshold := p.ProbeFailures
			if threshold == 0 {
				threshold = DefaultProbeFailures
			}
			if b.up && b.failures >= threshold {
				b.up, b.since = false, p.now()
				b.refetch = true
				p.log.Warn("backend down", "backend", addr, "failures", b.failures, "error", err)
			} else if b.up {
				b.lastProbe = time.Time{} // confirm at once rather than after an interval
			}
			p.publishView(st)
		}
	})
}
