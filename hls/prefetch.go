package hls

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/internal/lru"
)

// Defaults of [Prefetcher] fields.
const (
	DefaultPrefetchAhead       = 2
	DefaultPrefetchMaxAhead    = 6
	DefaultPrefetchConcurrency = 6
	DefaultPrefetchIdle        = 30 * time.Second
	DefaultPrefetchTimeout     = time.Minute
	DefaultPrefetchPlaylists   = 1000
	DefaultStartVariants       = 1
	DefaultStartSegments       = 1
	DefaultStartLease          = time.Minute
	DefaultHeadroom            = 1
	DefaultPrefetchPerSession  = 8
)

// prefetchQueue bounds the prefetches waiting for a worker; more are
// dropped (and counted), the least urgent first.
const prefetchQueue = 64

// maxIndexedSegments bounds the segment index shared by all playlists.
const maxIndexedSegments = 100_000

// maxVariants bounds the variants remembered per master playlist.
const maxVariants = 64

// Start-up of LL-HLS: the parts prefetched are the last llStartParts
// listed (a PART-HOLD-BACK of three part targets, and the part before
// it), and the preload hint.
const llStartParts = 4

// The lookahead aims to have a segment filled twice over before the player
// asks for it (see Prefetcher.Ahead); estimates are EWMAs with this weight
// of the newest sample.
const (
	aheadMargin = 2
	ewmaWeight  = 0.3
	// minThroughputSample is the smallest body whose transfer is taken
	// as a throughput sample (smaller ones measure latency).
	minThroughputSample = 64 << 10
)

// The upstream leg is taken to be shared by the fills in flight when a
// fill's rate falls below contendedRate × the best rate, or its time to
// respond grows above contendedRTT × the best one plus contendedSlack
// (Tor circuits jitter), and for stickyContention after that: then no
// headroom is fetched and at most contendedLookahead lookahead fills run
// at once.
const (
	contendedRate      = 0.75
	contendedRTT       = 1.5
	contendedSlack     = 100 * time.Millisecond
	stickyContention   = 30 * time.Second
	contendedLookahead = 2
)

// maxBackground bounds the headroom prefetches in flight.
const maxBackground = 3

// abrUpFactor is the share of a player's measured throughput a rendition
// may use for the player to switch up to it (hls.js's abrBandWidthUpFactor).
const abrUpFactor = 0.7

// Prefetcher fills a tier's cache ahead of its HLS clients, through Fetch
// (the cache's own collapsing fill path, so that a client arriving
// mid-prefetch joins the fill and reads it as it arrives):
//
//   - Start-up. When a client requests a master playlist, the media
//     playlists of its starting variants (the first StartVariants listed:
//     Safari and hls.js start with the first variant of the master
//     playlist, where Apple's authoring guidance puts the one to start
//     with) are fetched at once, and as soon as a media playlist is known,
//     its init section and the first StartSegments segments a player will
//     ask for: the first ones of a VOD playlist, those from three segments
//     before the end of a live one (HOLD-BACK), and for an LL-HLS stream
//     the last parts listed and the preload hint. The player's next
//     requests then hit the cache or join fills already under way.
//   - Lookahead. When a client requests segment N of a media playlist the
//     Prefetcher has seen, segments N+1…N+Ahead are filled, the nearest
//     first. Ahead is sized by the measured round trip and throughput of
//     the upstream leg (see Ahead). Client first: with requests coming
//     through Wrap, the lookahead for N starts when what remains of N's
//     response is what the leg brings in one round trip (at once for a
//     hit; at N's first byte until the leg is measured), so that the next
//     segment's bytes start arriving as N's last ones do instead of
//     sharing the leg with them. When fills slow each other down (a
//     shared leg, see below), at most two lookahead fills run at once.
//     For a live playlist, segments listed later are fetched as soon as a
//     playlist lists them, up to Ahead segments past the last one a
//     client asked for.
//   - ABR headroom. During a start lease (below), a client's request for
//     segment N also fills segments of the next higher variant of the
//     same master playlist (and its media playlist and init section),
//     which is where an adaptive player goes next as its buffer and
//     throughput grow: its first segment after a switch up is then no
//     miss. They are N+1 up to N+L+Headroom−1, with L the segments the
//     player goes through while the leg fills one of them (at least 1),
//     the farthest first, queued with the lookahead's N+1; at most three
//     run at once, and a newer request's headroom replaces any still
//     waiting (for segments the player has passed). None is made for a
//     player that reports a measured throughput (CMCD mtp) or top bitrate
//     (tb) too low for the next variant, for a variant the leg cannot
//     deliver in real time, nor while the leg is contended: fills slowed
//     each other down (a fill's response took more than 1.5 × the best
//     round trip + 100 ms, or its transfer ran below 3/4 of the best
//     rate) in the last 30 s. Renditions are assumed aligned by media
//     sequence number, as Apple's authoring specification requires.
//   - Hints. A player's CMCD next-object request (nor, found by
//     [CMCDFromContext] on requests that came through a [CMCDFilter]) is
//     prefetched by [Prefetcher.Hint]: only an object a playlist the
//     Prefetcher has seen lists, one per request.
//
// Bounds. A master playlist request by a client opens (or extends) the
// start lease of its presentation for StartLease; only client requests
// for master playlists extend it. Start-up and headroom prefetches happen
// during a lease only; after it, only renditions a client requested
// (playlist or segment) within Idle are prefetched, so nothing is fetched
// for a rendition nobody watches a minute after the last viewer arrived.
// Concurrency bounds the prefetches in flight (the parallel upstream
// fetches), a queue of 64 the prefetches waiting (the least urgent are
// dropped first), MaxPerSession those of one client session (see
// Session), and StartVariants × (2 + StartSegments) those one master
// playlist request starts. Prefetching never blocks a client request.
// Only objects on the playlist's own host are prefetched, and prefetch
// requests carry none of the client's headers.
//
// Wiring, with c a *cache.Cache:
//
//	pf := &hls.Prefetcher{}
//	if err := pf.Attach(c); err != nil { … } // learns playlists, fetches through c, counts hits
//	handler := &hls.CMCDFilter{Next: pf.Wrap(c)} // strips CMCD; Wrap sees client requests
//	defer pf.Close()
//
// The zero value is ready to use (with Fetch set, or after Attach);
// fields may not change after the first method call. A Prefetcher is safe
// for concurrent use.
type Prefetcher struct {
	// Fetch fills the cache with r's object, typically
	// (*cache.Cache).Prefetch. If nil, nothing is prefetched (but
	// playlists are still learned and requests counted).
	Fetch func(ctx context.Context, r *http.Request) error

	// Ahead fixes how many segments past the one requested are
	// prefetched. If zero, the count is sized for each rendition by the
	// measured upstream leg: ceil(2 × (rtt + size ÷ throughput) ÷ pace),
	// with rtt the upstream's time to respond, throughput its best recent
	// transfer rate (over the fills of this tier, from
	// cache.Record.Timing), size the rendition's segment size (measured,
	// else its BANDWIDTH × its segment duration) and pace the time between
	// players' requests for consecutive segments (the segment duration
	// for a player in real time, less for one filling its buffer, at
	// least 1/8 of it), between 1 and MaxAhead: a segment is then ready
	// twice over before the player asks for it. Until the first fill has
	// been measured it is DefaultPrefetchAhead (2).
	Ahead int

	// MaxAhead bounds the sized lookahead. If zero,
	// DefaultPrefetchMaxAhead (6).
	MaxAhead int

	// StartVariants is how many variants of a master playlist, in the
	// order listed, are prefetched when a client requests it. If zero,
	// DefaultStartVariants (1); a negative value turns start-up prefetch
	// off.
	StartVariants int

	// StartSegments is how many segments (from the start position) of
	// each starting variant are prefetched. If zero, DefaultStartSegments
	// (1): players start playing once one segment is buffered, the
	// lookahead fetches the next one as soon as the first arrives, and on
	// a leg the fills share a second segment fetched at once would slow
	// the first. A negative value prefetches only the media playlist and
	// init section.
	StartSegments int

	// StartLease is how long after a client's request for a master
	// playlist its renditions are prefetched without being watched
	// (start-up, headroom). If zero, DefaultStartLease (1m).
	StartLease time.Duration

	// Headroom is how many segments of the next higher variant are
	// prefetched per segment request during a start lease beyond those the
	// player reaches while they are filled (see ABR headroom above). If
	// zero, DefaultHeadroom (1); a negative value turns it off.
	Headroom int

	// Concurrency bounds the prefetches in flight, the upstream fetches
	// the Prefetcher makes in parallel. Prefetches beyond the idle
	// connections of the upstream transport wait for new ones (Tor
	// circuits): upstream.Transport keeps MinIdle ready and keeps those
	// opened for a burst (up to MaxIdle), so that after the first bursts
	// a Concurrency below MaxIdle finds them ready. If zero,
	// DefaultPrefetchConcurrency (6).
	Concurrency int

	// Session returns the client session a request belongs to, for
	// MaxPerSession: on an onion service, the client's circuit (see
	// onion.CircuitID; package tier wires it), never a value the client
	// chooses such as the CMCD session id. "" means no session. If nil,
	// requests have no session and only the global bounds apply.
	Session func(r *http.Request) string

	// MaxPerSession bounds the prefetches one session has queued or in
	// flight; more are refused (and counted). If zero,
	// DefaultPrefetchPerSession (8); a negative value means no bound.
	MaxPerSession int

	// Idle is how long after the last client request for a rendition its
	// segments are still prefetched. If zero, DefaultPrefetchIdle (30s).
	Idle time.Duration

	// Timeout bounds one prefetch. If zero, DefaultPrefetchTimeout (1m).
	Timeout time.Duration

	// MaxPlaylists bounds the media playlists, and separately the master
	// playlists, remembered (least recently updated are forgotten). If
	// zero, DefaultPrefetchPlaylists (1000).
	MaxPlaylists int

	// Now returns the current time. If nil, time.Now.
	Now func() time.Time

	// Logger receives failed prefetches at Debug level. If nil, logs are
	// discarded.
	Logger *slog.Logger

	once    sync.Once
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	log     *slog.Logger
	wrapped atomic.Bool // Wrap is in use: OnRecord leaves client requests to it

	mu        sync.Mutex
	work      *sync.Cond // signalled when a job is queued or the Prefetcher closes
	closed    bool
	queue     [numPrio][]prefetchJob
	queued    int
	sessions  map[string]int // jobs queued or in flight per session
	masters   *lru.List[string, *presentation]
	playlists *lru.List[string, *rendition]
	segments  *lru.List[string, segRef]
	state     *lru.List[string, uint8] // object key → prefetch state

	// The upstream leg, measured: time to response headers and transfer
	// rate of one fill (bits/s), EWMAs, and the recent best of each (what
	// a fill gets when it has the leg to itself); zero until measured.
	legRTT, legRTTMin time.Duration
	legBps, legPeak   float64
	contendedUntil    time.Time // the last contended fill was measured StickyContention before

	background  int    // headroom prefetches in flight
	headroomGen uint64 // the latest request that wanted headroom
	lookahead   int    // lookahead and headroom prefetches in flight
	running     int    // prefetches in flight

	// noContention, set by tests only, keeps the leg from being found
	// contended (loopback timings are noise).
	noContention bool

	// learned is set once a playlist has been seen: until then no request
	// can be one to prefetch after, and the per-request hooks return at
	// once.
	learned atomic.Bool

	scheduled, prefetched, hits, failed, dropped, idle atomic.Uint64
	started, headroom, hinted, limited                 atomic.Uint64
}

// Prefetch states of an object.
const (
	stScheduled uint8 = iota + 1
	stFetched
	stCounted // a client hit was counted
)

// Job priorities, most urgent first.
const (
	prioStart = iota // start-up, and the object a player announced (nor)
	prioNext         // the segment after the one requested
	prioAhead        // further lookahead, ABR headroom
	numPrio
)

// Why a job was queued, which decides whether it still runs when a worker
// takes it.
const (
	whyLookahead = iota // the rendition is watched
	whyLease            // start-up or headroom: the presentation's lease runs
	whyHint             // the client announced it
)

// presentation is what the Prefetcher knows of a master playlist.
type presentation struct {
	variants   []variantRef // as listed
	leaseUntil time.Time
}

type variantRef struct {
	key       string // memKey of the media playlist
	uri       string
	bandwidth int
}

type rendition struct {
	tmpl        reqTemplate
	learned     bool // a playlist was seen: the fields below are set
	live        bool
	segments    []Segment
	init        []string
	parts       []string // LL-HLS parts listed, without the preload hint
	hint        string   // LL-HLS preload hint
	segDur      time.Duration
	lastWatched time.Time
	wantUpTo    int // highest MSN wanted (requested + Ahead); -1 none

	master    string // key of the master playlist listing it ("" unknown)
	bandwidth int    // BANDWIDTH in that master playlist
	segBytes  float64

	// The pace of the players: the last segment requested, when, and
	// the moving average of the time between requests for consecutive
	// segments (players building their buffer ask faster than real time).
	lastMSN  int
	lastAt   time.Time
	interval time.Duration

	startPending     bool // start-up wanted once the playlist is known
	startSession     string
	pendFrom, pendTo int // headroom segments wanted once the playlist is known; pendTo < 0: none
	pendSession      string
}

// Kinds of indexed objects.
const (
	refSegment = iota
	refInit
	refPart
)

type segRef struct {
	playlist string
	msn      int
	kind     uint8
}

// reqTemplate reproduces the form of the client requests: absolute URL
// (RoundTrip mode) or path plus Host (handler mode).
type reqTemplate struct {
	abs  bool
	host string
	tls  bool
}

type prefetchJob struct {
	key, url string
	tmpl     reqTemplate
	prio     uint8
	why      uint8
	stat     uint8  // the counter of PrefetchStats it adds to besides Scheduled
	gen      uint64 // headroom: the request that wanted it (a newer one supersedes it)
	playlist bool   // the object is a media playlist (refetched when asked again)
	owner    string // rendition (lookahead) or master playlist (lease) key
	session  string
}

// Counters a job adds to (prefetchJob.stat).
const (
	statNone = iota
	statStarted
	statHeadroom
	statHinted
)

// PrefetchStats counts the Prefetcher's work.
type PrefetchStats struct {
	Scheduled  uint64 // prefetches queued
	Prefetched uint64 // prefetches that stored their object
	Hits       uint64 // client requests served from (or joining) a prefetched object, once per object
	Failed     uint64 // prefetches that failed
	Dropped    uint64 // prefetches dropped because the queue was full (or, for headroom, superseded by a newer one)
	Idle       uint64 // queued prefetches skipped because nobody watched the rendition any more
	Started    uint64 // of Scheduled: start-up prefetches (master playlist requests)
	Headroom   uint64 // of Scheduled: segments of the next higher variant
	Hinted     uint64 // of Scheduled: objects a player announced (CMCD nor)
	Limited    uint64 // prefetches refused by MaxPerSession
}

// Stats returns a snapshot of the counters.
func (p *Prefetcher) Stats() PrefetchStats {
	return PrefetchStats{
		Scheduled: p.scheduled.Load(), Prefetched: p.prefetched.Load(), Hits: p.hits.Load(),
		Failed: p.failed.Load(), Dropped: p.dropped.Load(), Idle: p.idle.Load(),
		Started: p.started.Load(), Headroom: p.headroom.Load(), Hinted: p.hinted.Load(), Limited: p.limited.Load(),
	}
}

func (p *Prefetcher) init() {
	p.once.Do(func() {
		p.ctx, p.cancel = context.WithCancel(context.Background())
		p.log = p.Logger
		if p.log == nil {
			p.log = slog.New(slog.DiscardHandler)
		}
		p.work = sync.NewCond(&p.mu)
		p.sessions = make(map[string]int)
		p.masters = &lru.List[string, *presentation]{Max: orDefault(p.MaxPlaylists, DefaultPrefetchPlaylists)}
		p.playlists = &lru.List[string, *rendition]{Max: orDefault(p.MaxPlaylists, DefaultPrefetchPlaylists)}
		p.segments = &lru.List[string, segRef]{Max: maxIndexedSegments}
		p.state = &lru.List[string, uint8]{Max: maxIndexedSegments}
		for range orDefault(p.Concurrency, DefaultPrefetchConcurrency) {
			p.wg.Go(p.worker)
		}
	})
}

func (p *Prefetcher) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// Close stops the background prefetches and waits for them. Later calls
// return an error wrapping net.ErrClosed.
func (p *Prefetcher) Close() error {
	p.init()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return fmt.Errorf("hls: prefetcher: %w", net.ErrClosed)
	}
	p.closed = true
	p.queue = [numPrio][]prefetchJob{}
	p.queued = 0
	p.work.Broadcast()
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
	return nil
}

// prefetchCtxKey marks the context of the Prefetcher's own requests.
type prefetchCtxKey struct{}

// isPrefetch reports whether r is one of the Prefetcher's own requests.
func isPrefetch(r *http.Request) bool {
	return r != nil && r.Context().Value(prefetchCtxKey{}) != nil
}

func (p *Prefetcher) session(r *http.Request) string {
	if p.Session == nil {
		return ""
	}
	return p.Session(r)
}

// ObserveMaster learns a master playlist fetched with r; wire it to
// [Policy.OnMasterPlaylist] (Attach does). When r is a client's request
// (not a prefetch), it starts the start-up prefetch of the presentation
// (see [Prefetcher]).
func (p *Prefetcher) ObserveMaster(r *http.Request, pl *Playlist) {
	if pl == nil || !pl.Master {
		return
	}
	p.init()
	key, tmpl := requestKey(r), templateOf(r)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.learned.Store(true)
	pres, ok := p.masters.Get(key)
	if !ok {
		pres = &presentation{}
		p.masters.Put(key, pres)
	}
	pres.variants = pres.variants[:0]
	for _, v := range pl.Variants {
		if len(pres.variants) == maxVariants {
			break
		}
		u, err := url.Parse(v.URI)
		if err != nil || !strings.EqualFold(u.Host, tmpl.host) {
			continue
		}
		vk := memKey(u)
		pres.variants = append(pres.variants, variantRef{key: vk, uri: v.URI, bandwidth: v.Bandwidth})
		rd := p.renditionLocked(vk)
		rd.master, rd.bandwidth = key, v.Bandwidth
		if !rd.learned {
			rd.tmpl = tmpl
		}
	}
	if !isPrefetch(r) {
		p.startLocked(pres, p.session(r))
	}
}

// renditionLocked returns the rendition of the media playlist key,
// creating it.
func (p *Prefetcher) renditionLocked(key string) *rendition {
	rd, ok := p.playlists.Get(key)
	if !ok {
		rd = &rendition{wantUpTo: -1, pendTo: -1, lastMSN: -2}
		p.playlists.Put(key, rd)
	}
	return rd
}

// startLocked opens (or extends) pres's start lease and prefetches its
// starting variants.
func (p *Prefetcher) startLocked(pres *presentation, sess string) {
	now := p.now()
	pres.leaseUntil = now.Add(orDefault(p.StartLease, DefaultStartLease))
	n := orDefault(p.StartVariants, DefaultStartVariants)
	if p.StartVariants < 0 {
		n = 0
	}
	for _, v := range pres.variants[:min(n, len(pres.variants))] {
		rd, ok := p.playlists.Peek(v.key)
		if !ok {
			continue
		}
		if rd.learned {
			p.scheduleStartLocked(rd, sess)
			if !rd.live {
				continue // a VOD playlist does not change: the one seen will do
			}
		}
		rd.startPending, rd.startSession = true, sess
		p.enqueueLocked(prefetchJob{url: v.uri, tmpl: rd.tmpl, prio: prioStart, why: whyLease, stat: statStarted, playlist: true, owner: rd.master, session: sess})
	}
}

// leaseActive reports whether the master playlist key's start lease runs.
func (p *Prefetcher) leaseActive(master string) bool {
	if master == "" {
		return false
	}
	pres, ok := p.masters.Peek(master)
	return ok && p.now().Before(pres.leaseUntil)
}

// scheduleStartLocked queues the objects a player starting rd fetches
// first (see [Prefetcher]).
func (p *Prefetcher) scheduleStartLocked(rd *rendition, sess string) {
	rd.startPending = false
	job := func(uri string) {
		p.enqueueLocked(prefetchJob{url: uri, tmpl: rd.tmpl, prio: prioStart, why: whyLease, stat: statStarted, owner: rd.master, session: sess})
	}
	if init := rd.initFor(); init != "" {
		job(init)
	}
	if rd.live && len(rd.parts) > 0 {
		for _, u := range rd.parts[max(0, len(rd.parts)-llStartParts):] {
			job(u)
		}
		if rd.hint != "" {
			job(rd.hint)
		}
		return
	}
	if len(rd.segments) == 0 {
		return
	}
	from := 0
	if rd.live {
		from = max(0, len(rd.segments)-3)
	}
	n := orDefault(p.StartSegments, DefaultStartSegments)
	if p.StartSegments < 0 {
		n = 0
	}
	for _, s := range rd.segments[from:min(from+n, len(rd.segments))] {
		job(s.URI)
	}
}

// ObservePlaylist learns a media playlist fetched with r; wire it to
// [Policy.OnMediaPlaylist] (Attach does). It schedules the start-up
// prefetch or headroom segments waiting for this playlist, and for a
// watched live playlist the newly listed segments a client is about to
// want.
func (p *Prefetcher) ObservePlaylist(r *http.Request, pl *Playlist) {
	if pl == nil || pl.Master {
		return
	}
	p.init()
	key := requestKey(r)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.learned.Store(true)
	rd := p.renditionLocked(key)
	rd.tmpl = templateOf(r)
	rd.learned, rd.live = true, pl.Live
	rd.segments, rd.init = pl.Segments, pl.Init
	rd.hint = pl.PreloadHint
	rd.parts = pl.Parts
	if rd.hint != "" && len(rd.parts) > 0 && rd.parts[len(rd.parts)-1] == rd.hint {
		rd.parts = rd.parts[:len(rd.parts)-1]
	}
	rd.segDur = pl.TargetDuration
	if n := len(pl.Segments); n > 0 {
		var sum time.Duration
		for _, s := range pl.Segments {
			sum += s.Duration
		}
		if sum > 0 {
			rd.segDur = sum / time.Duration(n)
		}
	}
	for _, s := range pl.Segments {
		p.indexLocked(s.URI, segRef{playlist: key, msn: s.MSN, kind: refSegment})
	}
	for _, u := range pl.Init {
		p.indexLocked(u, segRef{playlist: key, msn: -1, kind: refInit})
	}
	for _, u := range pl.Parts {
		p.indexLocked(u, segRef{playlist: key, msn: -1, kind: refPart})
	}
	lease := p.leaseActive(rd.master)
	if rd.startPending {
		if lease {
			p.scheduleStartLocked(rd, rd.startSession)
		}
		rd.startPending = false
	}
	var jobs []prefetchJob
	if rd.pendTo >= 0 {
		if lease && !p.contendedLocked() {
			if init := rd.initFor(); init != "" {
				jobs = append(jobs, prefetchJob{url: init, tmpl: rd.tmpl, prio: prioAhead, why: whyLease, owner: rd.master, session: rd.pendSession})
			}
			p.headroomGen++
			k := len(jobs)
			jobs = p.rangeLocked(rd, rd.pendFrom, rd.pendTo, prefetchJob{prio: prioNext, why: whyLease, stat: statHeadroom, gen: p.headroomGen, owner: rd.master, session: rd.pendSession}, jobs)
			slices.Reverse(jobs[k:])
		}
		rd.pendTo = -1
	}
	if pl.Live && p.watched(rd) {
		jobs = p.rangeLocked(rd, rd.wantUpTo-p.aheadLocked(rd)+1, rd.wantUpTo, prefetchJob{prio: prioAhead, why: whyLookahead, owner: key}, jobs)
	}
	for _, job := range jobs {
		p.enqueueLocked(job)
	}
}

// initFor returns the init section a player starting rd fetches: the
// first of a VOD playlist, the last of a live one; "" if none.
func (rd *rendition) initFor() string {
	switch {
	case len(rd.init) == 0:
		return ""
	case rd.live:
		return rd.init[len(rd.init)-1]
	}
	return rd.init[0]
}

func (p *Prefetcher) indexLocked(uri string, ref segRef) {
	if u, err := url.Parse(uri); err == nil {
		p.segments.Put(memKey(u), ref)
	}
}

func templateOf(r *http.Request) reqTemplate {
	t := reqTemplate{abs: r.URL.IsAbs(), host: r.Host, tls: r.TLS != nil}
	if t.host == "" {
		t.host = r.URL.Host
	}
	return t
}

func (p *Prefetcher) watched(rd *rendition) bool {
	return p.now().Sub(rd.lastWatched) <= orDefault(p.Idle, DefaultPrefetchIdle)
}

// Observe notes a client request and queues the prefetches it calls for
// (see [Prefetcher]): the start-up of a master playlist, the lookahead and
// headroom of a segment, the object its CMCD announces. It never blocks.
// Wrap calls it for every request (and holds a segment's lookahead until
// the segment's response has started).
func (p *Prefetcher) Observe(r *http.Request) {
	held, _ := p.observe(r)
	p.release(held)
}

// observe is Observe, returning the jobs to queue when r's response has
// no more than tail bytes to go (what the leg brings in one round trip;
// 0: when the response starts) instead of queueing them.
func (p *Prefetcher) observe(r *http.Request) (held []prefetchJob, tail int64) {
	if r.Method != http.MethodGet || !p.learned.Load() || isPrefetch(r) {
		return nil, 0
	}
	p.init()
	key := requestKey(r)
	sess := p.session(r)
	cm, _ := CMCDFromContext(r.Context())
	var next []string
	if len(cm.Next) > 0 {
		next = cm.NextURLs(r)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	held = p.observeLocked(key, sess, cm)
	if len(next) > 0 {
		held = p.hintLocked(next[0], sess, held)
	}
	if len(held) > 0 && p.legPeak > 0 {
		tail = max(1, int64(p.legRTTMin.Seconds()*p.legPeak/8))
	}
	return held, tail
}

// observeLocked notes a client request for key and returns the jobs it
// calls for that wait for the response to start; p.mu is held.
func (p *Prefetcher) observeLocked(key, sess string, cm CMCD) []prefetchJob {
	if p.closed {
		return nil
	}
	if pres, ok := p.masters.Peek(key); ok {
		p.startLocked(pres, sess)
		return nil
	}
	if rd, ok := p.playlists.Peek(key); ok {
		rd.lastWatched = p.now()
		return nil
	}
	ref, ok := p.segments.Peek(key)
	if !ok {
		return nil
	}
	rd, ok := p.playlists.Peek(ref.playlist)
	if !ok {
		return nil
	}
	now := p.now()
	rd.lastWatched = now
	if ref.kind != refSegment {
		return nil
	}
	if ref.msn == rd.lastMSN+1 && !rd.lastAt.IsZero() {
		rd.interval = ewmaDuration(rd.interval, now.Sub(rd.lastAt))
	}
	rd.lastMSN, rd.lastAt = ref.msn, now
	var held []prefetchJob
	ahead := p.aheadLocked(rd)
	want := ref.msn + ahead
	rd.wantUpTo = max(rd.wantUpTo, want)
	held = p.rangeLocked(rd, ref.msn+1, want, prefetchJob{prio: prioNext, why: whyLookahead, owner: ref.playlist, session: sess}, held)
	return p.headroomLocked(rd, ref.msn, sess, cm, held)
}

// headroomLocked adds the headroom jobs of a request for segment msn of
// rd (see [Prefetcher]).
func (p *Prefetcher) headroomLocked(rd *rendition, msn int, sess string, cm CMCD, held []prefetchJob) []prefetchJob {
	n := orDefault(p.Headroom, DefaultHeadroom)
	if p.Headroom < 0 || rd.bandwidth <= 0 || !p.leaseActive(rd.master) {
		return held
	}
	pres, _ := p.masters.Peek(rd.master)
	var up *variantRef
	for i, v := range pres.variants {
		if v.bandwidth > rd.bandwidth && (up == nil || v.bandwidth < up.bandwidth) {
			up = &pres.variants[i]
		}
	}
	if up == nil {
		return held
	}
	if mtp := cm.MeasuredThroughput; mtp > 0 && abrUpFactor*float64(mtp)*1000 < float64(up.bandwidth) {
		return held // the player says it cannot afford it
	}
	if tb := cm.TopBitrate; tb > 0 && tb*1000 < up.bandwidth {
		return held // nor may it use it
	}
	if p.legBps > 0 && abrUpFactor*p.legBps < float64(up.bandwidth) || p.contendedLocked() {
		// A fill gets less than the variant needs (the leg is slow), or
		// the fills in flight share the leg: a player fed through it could
		// not switch up, and these segments would slow the ones it needs.
		return held
	}
	urd, ok := p.playlists.Peek(up.key)
	if !ok {
		return held
	}
	// Up to the segment a fill started now has ready when the player gets
	// there at its pace: a player switching later finds its segment
	// stored, one switching sooner a fill under way.
	lead := 1
	if fill, ok := p.fillTimeLocked(urd, rd.segDur); ok {
		lead = max(1, min(int(math.Ceil(fill.Seconds()/pace(rd).Seconds())), orDefault(p.MaxAhead, DefaultPrefetchMaxAhead)))
	}
	from, to := msn+1, msn+lead+n-1
	if urd.learned {
		if init := urd.initFor(); init != "" {
			// A player switching to fMP4 segments needs their init section.
			job := prefetchJob{url: init, tmpl: urd.tmpl, prio: prioAhead, why: whyLease, owner: rd.master, session: sess}
			if job, ok := p.jobLocked(job); ok {
				held = append(held, job)
			}
		}
		p.headroomGen++
		k := len(held)
		held = p.rangeLocked(urd, from, to, prefetchJob{prio: prioNext, why: whyLease, stat: statHeadroom, gen: p.headroomGen, owner: rd.master, session: sess}, held)
		slices.Reverse(held[k:]) // the farthest first: the nearest would be late anyway
		return held
	}
	// Learn its playlist first; the segments follow (ObservePlaylist).
	urd.pendFrom, urd.pendTo, urd.pendSession = from, to, sess
	job := prefetchJob{url: up.uri, tmpl: urd.tmpl, prio: prioNext, why: whyLease, playlist: true, owner: rd.master, session: sess}
	if job, ok := p.jobLocked(job); ok {
		held = append(held, job)
	}
	return held
}

// contendedLocked reports whether the fills in flight slowed each other
// down on the upstream leg lately (see measureLocked).
func (p *Prefetcher) contendedLocked() bool {
	return !p.noContention && p.now().Before(p.contendedUntil)
}

// aheadLocked returns the lookahead of rd (see Prefetcher.Ahead).
func (p *Prefetcher) aheadLocked(rd *rendition) int {
	if p.Ahead > 0 {
		return p.Ahead
	}
	most := orDefault(p.MaxAhead, DefaultPrefetchMaxAhead)
	fill, ok := p.fillTimeLocked(rd, rd.segDur)
	if !ok {
		return min(DefaultPrefetchAhead, most)
	}
	n := int(math.Ceil(aheadMargin * fill.Seconds() / pace(rd).Seconds()))
	return max(1, min(n, most))
}

// fillTimeLocked returns how long the measured leg takes to fill one of
// rd's segments (of duration dur if rd's is not known yet), and false
// before the leg is measured.
func (p *Prefetcher) fillTimeLocked(rd *rendition, dur time.Duration) (time.Duration, bool) {
	if rd.segDur > 0 {
		dur = rd.segDur
	}
	bytes := rd.segBytes
	if bytes == 0 && rd.bandwidth > 0 {
		bytes = float64(rd.bandwidth) / 8 * dur.Seconds()
	}
	if p.legRTT <= 0 || p.legPeak <= 0 || bytes <= 0 {
		return 0, false
	}
	// The peak rate, not the average: fills in parallel on a shared leg
	// are each slower, and more of them would not help.
	return p.legRTT + time.Duration(bytes*8/p.legPeak*float64(time.Second)), true
}

// pace returns the time between players' requests for consecutive
// segments of rd: its segment duration for players in real time, less
// for players filling their buffer, bounded below so that a burst of
// requests cannot inflate the lookahead.
func pace(rd *rendition) time.Duration {
	d := rd.segDur
	if d <= 0 {
		d = DefaultTargetDuration
	}
	if rd.interval > 0 {
		d = max(min(d, rd.interval), d/8)
	}
	return d
}

// rangeLocked appends to jobs those for the listed segments of rd with
// MSN in [from, to] that are not prefetched yet, as copies of tmpl: the
// first with tmpl's priority, the others with prioAhead.
func (p *Prefetcher) rangeLocked(rd *rendition, from, to int, tmpl prefetchJob, jobs []prefetchJob) []prefetchJob {
	if p.Fetch == nil || to < 0 || to < from || len(rd.segments) == 0 {
		return jobs
	}
	segs := rd.segments
	if i := from - segs[0].MSN; i > 0 && i < len(segs) && segs[i].MSN == from {
		segs = segs[i:] // MSNs are consecutive: no need to scan a long VOD playlist
	}
	for _, s := range segs {
		if s.MSN > to {
			break
		}
		if s.MSN < from {
			continue
		}
		job := tmpl
		job.url, job.tmpl = s.URI, rd.tmpl
		if s.MSN > from {
			job.prio = max(job.prio, prioAhead)
		}
		if job, ok := p.jobLocked(job); ok {
			jobs = append(jobs, job)
		}
	}
	return jobs
}

// jobLocked completes job (its key) and reports whether it should be
// queued: an object on the template's host, not queued, in flight or
// prefetched already.
func (p *Prefetcher) jobLocked(job prefetchJob) (prefetchJob, bool) {
	u, err := url.Parse(job.url)
	if err != nil || !strings.EqualFold(u.Host, job.tmpl.host) {
		return job, false
	}
	job.key = memKey(u)
	if _, ok := p.state.Peek(job.key); ok {
		return job, false
	}
	return job, true
}

// enqueueLocked queues job and reports whether it did: not if the
// object is queued, in flight or prefetched already, nor beyond the
// bounds.
func (p *Prefetcher) enqueueLocked(job prefetchJob) bool {
	if job.key == "" {
		var ok bool
		if job, ok = p.jobLocked(job); !ok {
			return false
		}
	} else if _, ok := p.state.Peek(job.key); ok {
		return false
	}
	if p.closed || p.Fetch == nil {
		return false
	}
	if job.session != "" && p.MaxPerSession >= 0 && p.sessions[job.session] >= orDefault(p.MaxPerSession, DefaultPrefetchPerSession) {
		p.limited.Add(1)
		return false
	}
	if job.stat == statHeadroom {
		// Headroom still waiting is for segments the player has passed
		// since: only the newest request's is worth fetching.
		for q := range p.queue {
			p.queue[q] = slices.DeleteFunc(p.queue[q], func(old prefetchJob) bool {
				if old.stat != statHeadroom || old.gen >= job.gen {
					return false
				}
				p.state.Remove(old.key)
				p.doneSessionLocked(old.session)
				p.queued--
				p.dropped.Add(1)
				return true
			})
		}
	}
	if p.queued >= prefetchQueue && !p.dropLessUrgentLocked(job.prio) {
		p.dropped.Add(1)
		return false
	}
	p.queue[job.prio] = append(p.queue[job.prio], job)
	p.queued++
	p.state.Put(job.key, stScheduled)
	if job.session != "" {
		p.sessions[job.session]++
	}
	p.scheduled.Add(1)
	switch job.stat {
	case statStarted:
		p.started.Add(1)
	case statHeadroom:
		p.headroom.Add(1)
	case statHinted:
		p.hinted.Add(1)
	}
	p.work.Signal()
	return true
}

// dropLessUrgentLocked drops the newest queued job less urgent than prio,
// if any.
func (p *Prefetcher) dropLessUrgentLocked(prio uint8) bool {
	for q := numPrio - 1; q > int(prio); q-- {
		if n := len(p.queue[q]); n > 0 {
			job := p.queue[q][n-1]
			p.queue[q] = p.queue[q][:n-1]
			p.queued--
			p.state.Remove(job.key)
			p.doneSessionLocked(job.session)
			p.dropped.Add(1)
			return true
		}
	}
	return false
}

func (p *Prefetcher) doneSessionLocked(sess string) {
	if sess == "" {
		return
	}
	if p.sessions[sess]--; p.sessions[sess] <= 0 {
		delete(p.sessions, sess)
	}
}

// release queues jobs that waited for a response to start.
func (p *Prefetcher) release(jobs []prefetchJob) {
	if len(jobs) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, job := range jobs {
		p.enqueueLocked(job)
	}
}

// Hint prefetches target, the absolute URL of an object the client of r
// announced as its next request (CMCD nor, see [CMCD.NextURLs]), if a
// playlist the Prefetcher has seen lists it (a segment, init section or
// part) or a master playlist it has seen lists it (a media playlist);
// anything else is ignored, so that a client cannot make the tier fetch
// arbitrary paths. It reports whether the prefetch was queued; it is
// bounded like every other (MaxPerSession, the queue). Wrap calls it for
// the first nor of every request that came through a [CMCDFilter].
func (p *Prefetcher) Hint(r *http.Request, target string) bool {
	if !p.learned.Load() {
		return false
	}
	p.init()
	sess := p.session(r)
	p.mu.Lock()
	defer p.mu.Unlock()
	queued := false
	for _, job := range p.hintLocked(target, sess, nil) {
		queued = p.enqueueLocked(job) || queued
	}
	return queued
}

// hintLocked adds the job of a hint for target to held, if target is
// known.
func (p *Prefetcher) hintLocked(target, sess string, held []prefetchJob) []prefetchJob {
	if p.closed {
		return held
	}
	u, err := url.Parse(target)
	if err != nil {
		return held
	}
	key := memKey(u)
	var tmpl reqTemplate
	playlist := false
	if ref, ok := p.segments.Peek(key); ok {
		rd, ok := p.playlists.Peek(ref.playlist)
		if !ok {
			return held
		}
		tmpl = rd.tmpl
	} else if rd, ok := p.playlists.Peek(key); ok {
		tmpl, playlist = rd.tmpl, true
	} else {
		return held
	}
	job, ok := p.jobLocked(prefetchJob{url: target, tmpl: tmpl, prio: prioStart, why: whyHint, stat: statHinted, playlist: playlist, session: sess})
	if !ok {
		return held
	}
	return append(held, job)
}

func (p *Prefetcher) worker() {
	for {
		p.mu.Lock()
		job, ok := p.nextLocked()
		for !ok && !p.closed {
			p.work.Wait()
			job, ok = p.nextLocked()
		}
		if p.closed {
			p.mu.Unlock()
			return
		}
		if job.stat == statHeadroom {
			p.background++
		}
		if job.prio >= prioNext {
			p.lookahead++
		}
		p.running++
		p.mu.Unlock()
		p.run(job)
		p.mu.Lock()
		p.running--
		if job.prio >= prioNext {
			p.lookahead--
			if job.stat == statHeadroom {
				p.background--
			}
			p.work.Broadcast() // a worker may wait for this one to end
		}
		p.mu.Unlock()
	}
}

// nextLocked takes the most urgent job that may run now: at most
// maxBackground headroom jobs at once, and on a contended leg only
// contendedLookahead lookahead jobs.
func (p *Prefetcher) nextLocked() (prefetchJob, bool) {
	contended := p.contendedLocked()
	for q := range p.queue {
		if q >= prioNext && contended && p.lookahead >= contendedLookahead {
			break
		}
		for i, job := range p.queue[q] {
			if job.stat == statHeadroom && p.background >= maxBackground {
				continue
			}
			p.queue[q] = slices.Delete(p.queue[q], i, i+1)
			p.queued--
			return job, true
		}
	}
	return prefetchJob{}, false
}

// stillWantedLocked reports whether job should still run.
func (p *Prefetcher) stillWantedLocked(job prefetchJob) bool {
	switch job.why {
	case whyHint:
		return true
	case whyLease:
		if job.stat == statHeadroom && p.contendedLocked() {
			return false // the leg has no room left for it
		}
		if p.leaseActive(job.owner) {
			return true
		}
	}
	// A lookahead, or a lease that ran out: is the rendition watched?
	owner := job.owner
	if job.why == whyLease {
		ref, ok := p.segments.Peek(job.key)
		if !ok {
			return false
		}
		owner = ref.playlist
	}
	rd, ok := p.playlists.Peek(owner)
	return ok && p.watched(rd)
}

func (p *Prefetcher) run(job prefetchJob) {
	p.mu.Lock()
	if !p.stillWantedLocked(job) {
		p.state.Remove(job.key)
		p.doneSessionLocked(job.session)
		p.mu.Unlock()
		p.idle.Add(1)
		return
	}
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithValue(p.ctx, prefetchCtxKey{}, true), orDefault(p.Timeout, DefaultPrefetchTimeout))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, job.url, nil)
	if err == nil {
		if !job.tmpl.abs {
			req.URL.Scheme, req.URL.Host = "", ""
		}
		req.Host = job.tmpl.host
		if job.tmpl.tls {
			req.TLS = &tls.ConnectionState{}
		}
		err = p.Fetch(ctx, req)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.doneSessionLocked(job.session)
	if err != nil {
		p.state.Remove(job.key)
		p.failed.Add(1)
		path := ""
		if u, perr := url.Parse(job.url); perr == nil {
			path = u.Path
		}
		p.log.Debug("prefetch failed", "path", path, "err", err)
		return
	}
	p.prefetched.Add(1)
	if job.playlist {
		p.state.Remove(job.key) // a playlist may change: fetch it again when asked
		return
	}
	if st, _ := p.state.Peek(job.key); st == stScheduled {
		p.state.Put(job.key, stFetched)
	}
}

// OnRecord measures the upstream leg and segment sizes from the cache's
// records (see Prefetcher.Ahead), counts prefetch hits and, unless the
// Prefetcher sees client requests through Wrap, notes client requests as
// Observe does; Attach appends it to cache.Cache.OnRecord.
func (p *Prefetcher) OnRecord(r *http.Request, rec cache.Record) {
	if r.Method != http.MethodGet || !p.learned.Load() {
		return
	}
	p.init()
	key := requestKey(r)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.measureLocked(key, rec)
	if rec.Prefetch {
		return
	}
	st, ok := p.state.Peek(key)
	hit := rec.Disposition == cache.Hit || rec.Disposition == cache.HitStale || rec.Disposition == cache.Collapsed
	if ok && st != stCounted && hit && rec.Err == nil {
		p.state.Put(key, stCounted)
		p.hits.Add(1)
	}
	if !p.wrapped.Load() && !isPrefetch(r) {
		cm, _ := CMCDFromContext(r.Context())
		for _, job := range p.observeLocked(key, p.session(r), cm) {
			p.enqueueLocked(job)
		}
	}
}

// measureLocked updates the leg and segment size estimates from rec.
func (p *Prefetcher) measureLocked(key string, rec cache.Record) {
	t := rec.Timing
	if !t.Joined && t.UpstreamHeaders > 0 && t.UpstreamLastByte > 0 && rec.Err == nil {
		contended := false
		rtt := t.UpstreamHeaders - t.UpstreamStart - t.ConnWait
		if rtt > 0 {
			p.legRTT = ewmaDuration(p.legRTT, rtt)
			if p.legRTTMin == 0 {
				p.legRTTMin = rtt
			}
			p.legRTTMin = min(rtt, p.legRTTMin+p.legRTTMin/50) // drifts up slowly
			contended = rtt.Seconds() > contendedRTT*p.legRTTMin.Seconds()+contendedSlack.Seconds()
		}
		if xfer := t.UpstreamLastByte - t.UpstreamFirstByte; t.UpstreamBytes >= minThroughputSample && xfer > 0 {
			bps := float64(t.UpstreamBytes*8) / xfer.Seconds()
			p.legBps = ewma(p.legBps, bps)
			p.legPeak = max(bps, ewma(p.legPeak, bps)*(1-ewmaWeight/4)) // decays slowly
			contended = contended || bps < contendedRate*p.legPeak
		}
		// A leg that fills in less than contendedSlack has room to spare
		// whatever its figures (loopback, a LAN).
		if contended && t.UpstreamLastByte-t.UpstreamStart-t.ConnWait > contendedSlack {
			p.contendedUntil = p.now().Add(stickyContention)
		}
	}
	ref, ok := p.segments.Peek(key)
	if !ok || ref.kind != refSegment {
		return
	}
	rd, ok := p.playlists.Peek(ref.playlist)
	if !ok {
		return
	}
	size := t.UpstreamBytes
	if size == 0 && !rec.Prefetch && rec.Status == http.StatusOK && rec.Err == nil {
		size = rec.Bytes
	}
	if size > 0 {
		rd.segBytes = ewma(rd.segBytes, float64(size))
	}
}

func ewma(old, sample float64) float64 {
	if old == 0 {
		return sample
	}
	return (1-ewmaWeight)*old + ewmaWeight*sample
}

func ewmaDuration(old, sample time.Duration) time.Duration {
	return time.Duration(ewma(float64(old), float64(sample)))
}

// Attach wires p to c, the cache of the tier it prefetches for, before c
// serves: p.Fetch, if nil, becomes c.Prefetch; c.Policy, which must be an
// *[Policy] (one is created if c.Policy is nil), reports every master and
// media playlist it classifies to p (after any OnMasterPlaylist or
// OnMediaPlaylist hook already set; a wrapper such as
// integrity.BoundPolicy that has an Unwrap method returning the *Policy
// will do); and p.OnRecord is appended to c.OnRecord, to measure the
// upstream leg and count prefetch hits. Serve the tier with p.Wrap(c) so
// that prefetches start while client requests are served.
func (p *Prefetcher) Attach(c *cache.Cache) error {
	if c == nil {
		return errors.New("hls: prefetcher: Attach to a nil cache")
	}
	var pol *Policy
	if c.Policy == nil {
		pol = &Policy{}
		c.Policy = pol
	}
	// Look through wrappers (integrity.BoundPolicy) that expose theirs.
	for p := c.Policy; pol == nil && p != nil; {
		switch x := p.(type) {
		case *Policy:
			pol = x
		case interface{ Unwrap() cache.Policy }:
			p = x.Unwrap()
		default:
			p = nil
		}
	}
	if pol == nil {
		return fmt.Errorf("hls: prefetcher: cache policy is %T, not an *hls.Policy (or one wrapping it): playlists could not be learned", c.Policy)
	}
	if p.Fetch == nil {
		p.Fetch = c.Prefetch
	}
	pol.OnMediaPlaylist = chain(pol.OnMediaPlaylist, p.ObservePlaylist)
	pol.OnMasterPlaylist = chain(pol.OnMasterPlaylist, p.ObserveMaster)
	c.OnRecord = append(c.OnRecord, p.OnRecord)
	return nil
}

func chain(prev, next func(*http.Request, *Playlist)) func(*http.Request, *Playlist) {
	if prev == nil {
		return next
	}
	return func(r *http.Request, pl *Playlist) {
		prev(r, pl)
		next(r, pl)
	}
}

// Wrap returns a handler that notes every client request (see
// [Prefetcher.Observe]) before passing it to next, so that start-up
// prefetches start while the client's own request is still being served;
// the lookahead a segment request calls for is queued when next writes
// the first byte of its body (or returns).
func (p *Prefetcher) Wrap(next http.Handler) http.Handler {
	p.wrapped.Store(true)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		held, tail := p.observe(r)
		if len(held) == 0 {
			next.ServeHTTP(w, r)
			return
		}
		fw := &firstWrite{ResponseWriter: w, p: p, jobs: held, tail: tail}
		defer fw.fire()
		next.ServeHTTP(fw, r)
	})
}

// firstWrite queues held prefetches when the response's body starts or,
// with tail set, when no more than tail bytes of it remain.
type firstWrite struct {
	http.ResponseWriter
	p    *Prefetcher
	jobs []prefetchJob
	tail int64 // 0: at the first byte
	at   int64 // written bytes that release the jobs; -1 until known
	n    int64
}

func (w *firstWrite) fire() {
	if jobs := w.jobs; jobs != nil {
		w.jobs = nil
		w.p.release(jobs)
	}
}

func (w *firstWrite) Write(b []byte) (int, error) {
	if w.jobs != nil && len(b) > 0 {
		if w.n == 0 {
			w.at = 0
			if cl, err := strconv.ParseInt(w.Header().Get("Content-Length"), 10, 64); err == nil && w.tail > 0 {
				w.at = cl - w.tail
			}
		}
		if w.n += int64(len(b)); w.n >= w.at {
			w.fire()
		}
	}
	return w.ResponseWriter.Write(b)
}

// ReadFrom keeps the ResponseWriter's own ReadFrom (sendfile for a body
// from a file) in use.
func (w *firstWrite) ReadFrom(r io.Reader) (int64, error) {
	w.fire()
	return io.Copy(w.ResponseWriter, r)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *firstWrite) Unwrap() http.ResponseWriter { return w.ResponseWriter }
