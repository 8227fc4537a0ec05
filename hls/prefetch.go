package hls

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
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
	DefaultPrefetchConcurrency = 4
	DefaultPrefetchIdle        = 30 * time.Second
	DefaultPrefetchTimeout     = time.Minute
	DefaultPrefetchPlaylists   = 1000
)

// prefetchQueue bounds the prefetches waiting for a worker; more are
// dropped (and counted).
const prefetchQueue = 64

// maxIndexedSegments bounds the segment index shared by all playlists.
const maxIndexedSegments = 100_000

// Prefetcher fetches the next segments of a rendition into a tier's cache
// while a client plays it: when a client requests segment N of a media
// playlist the Prefetcher has seen, segments N+1…N+Ahead are filled in the
// background through Fetch (the cache's own collapsing fill path, so a
// client arriving mid-prefetch joins the fill). For a live playlist,
// segments that appear later are fetched as soon as a playlist lists them,
// up to Ahead segments past the last one a client asked for.
//
// A rendition nobody requested (playlist or segment) for Idle is not
// prefetched any more. Prefetching never blocks a client request: work
// that does not fit the queue is dropped. Only complete segments are
// prefetched (not LL-HLS parts), and only from the playlist's own host.
//
// Wiring, with c the tier's *cache.Cache (whose Policy is an *hls.Policy):
//
//	pf := &hls.Prefetcher{}
//	if err := pf.Attach(c); err != nil { … } // learn playlists, fetch through c, count hits
//	handler := pf.Wrap(c)                    // trigger on client requests
//	defer pf.Close()
//
// (package tier does both when given a Prefetcher.)
//
// The zero value with Fetch set is ready to use; fields may not change
// after the first method call. A Prefetcher is safe for concurrent use.
type Prefetcher struct {
	// Fetch fills the cache with r's object, typically
	// (*cache.Cache).Prefetch. If nil, nothing is prefetched (but
	// playlists are still learned and requests counted).
	Fetch func(ctx context.Context, r *http.Request) error

	// Ahead is how many segments past the one requested are prefetched.
	// If zero, DefaultPrefetchAhead (2).
	Ahead int

	// Concurrency bounds the prefetches in flight. If zero,
	// DefaultPrefetchConcurrency (4).
	Concurrency int

	// Idle is how long after the last client request for a rendition its
	// segments are still prefetched. If zero, DefaultPrefetchIdle (30s).
	Idle time.Duration

	// Timeout bounds one prefetch. If zero, DefaultPrefetchTimeout (1m).
	Timeout time.Duration

	// MaxPlaylists bounds the media playlists remembered (least recently
	// updated are forgotten). If zero, DefaultPrefetchPlaylists (1000).
	MaxPlaylists int

	// Now returns the current time. If nil, time.Now.
	Now func() time.Time

	// Logger receives failed prefetches at Debug level. If nil, logs are
	// discarded.
	Logger *slog.Logger

	once   sync.Once
	ctx    context.Context
	cancel context.CancelFunc
	jobs   chan prefetchJob
	wg     sync.WaitGroup
	log    *slog.Logger

	mu        sync.Mutex
	closed    bool
	playlists *lru.List[string, *rendition]
	segments  *lru.List[string, segRef]
	state     *lru.List[string, uint8] // segment key → prefetch state

	// learned is set once a media playlist has been seen: until then no
	// request can be a segment to prefetch after, and the per-request
	// hooks return at once.
	learned atomic.Bool

	scheduled, prefetched, hits, failed, dropped, idle atomic.Uint64
}

// Prefetch states of a segment.
const (
	stScheduled uint8 = iota + 1
	stFetched
	stCounted // a client hit was counted
)

type rendition struct {
	tmpl        reqTemplate
	segments    []Segment
	lastWatched time.Time
	wantUpTo    int // highest MSN wanted (requested + Ahead); -1 none
}

type segRef struct {
	playlist string
	msn      int
}

// reqTemplate reproduces the form of the client requests: absolute URL
// (RoundTrip mode) or path plus Host (handler mode).
type reqTemplate struct {
	abs  bool
	host string
	tls  bool
}

type prefetchJob struct {
	playlist, key, url string
	tmpl               reqTemplate
}

// PrefetchStats counts the Prefetcher's work.
type PrefetchStats struct {
	Scheduled  uint64 // prefetches queued
	Prefetched uint64 // prefetches that stored their object
	Hits       uint64 // client requests served from (or joining) a prefetched object, once per object
	Failed     uint64 // prefetches that failed
	Dropped    uint64 // prefetches dropped because the queue was full
	Idle       uint64 // queued prefetches skipped because nobody watched the rendition any more
}

// Stats returns a snapshot of the counters.
func (p *Prefetcher) Stats() PrefetchStats {
	return PrefetchStats{
		Scheduled: p.scheduled.Load(), Prefetched: p.prefetched.Load(), Hits: p.hits.Load(),
		Failed: p.failed.Load(), Dropped: p.dropped.Load(), Idle: p.idle.Load(),
	}
}

func (p *Prefetcher) init() {
	p.once.Do(func() {
		p.ctx, p.cancel = context.WithCancel(context.Background())
		p.log = p.Logger
		if p.log == nil {
			p.log = slog.New(slog.DiscardHandler)
		}
		p.playlists = &lru.List[string, *rendition]{Max: orDefault(p.MaxPlaylists, DefaultPrefetchPlaylists)}
		p.segments = &lru.List[string, segRef]{Max: maxIndexedSegments}
		p.state = &lru.List[string, uint8]{Max: maxIndexedSegments}
		p.jobs = make(chan prefetchJob, prefetchQueue)
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
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
	return nil
}

// ObservePlaylist learns a media playlist fetched with r; wire it to
// [Policy.OnMediaPlaylist]. For a watched live playlist it schedules newly
// listed segments a client is about to want.
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
	rd, ok := p.playlists.Get(key)
	if !ok {
		rd = &rendition{wantUpTo: -1}
		p.playlists.Put(key, rd)
	}
	rd.tmpl = templateOf(r)
	rd.segments = pl.Segments
	for _, s := range pl.Segments {
		if su, err := url.Parse(s.URI); err == nil {
			p.segments.Put(memKey(su), segRef{playlist: key, msn: s.MSN})
		}
	}
	if pl.Live && p.watched(rd) {
		p.scheduleLocked(key, rd, rd.wantUpTo)
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

// Observe notes a client request: it marks its rendition watched and, for
// a known segment N, schedules N+1…N+Ahead. It never blocks.
func (p *Prefetcher) Observe(r *http.Request) {
	if r.Method != http.MethodGet || !p.learned.Load() {
		return
	}
	p.init()
	key := requestKey(r)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.observeLocked(key)
}

// observeLocked notes a client request for key; p.mu is held.
func (p *Prefetcher) observeLocked(key string) {
	if p.closed {
		return
	}
	if rd, ok := p.playlists.Peek(key); ok {
		rd.lastWatched = p.now()
		return
	}
	ref, ok := p.segments.Peek(key)
	if !ok {
		return
	}
	rd, ok := p.playlists.Peek(ref.playlist)
	if !ok {
		return
	}
	rd.lastWatched = p.now()
	want := ref.msn + orDefault(p.Ahead, DefaultPrefetchAhead)
	rd.wantUpTo = max(rd.wantUpTo, want)
	p.scheduleLocked(ref.playlist, rd, want)
}

// scheduleLocked queues the listed segments of rd up to MSN upTo that are
// not prefetched yet, starting after the most recent client request.
func (p *Prefetcher) scheduleLocked(plKey string, rd *rendition, upTo int) {
	if p.Fetch == nil || upTo < 0 {
		return
	}
	from := upTo - orDefault(p.Ahead, DefaultPrefetchAhead) + 1
	for _, s := range rd.segments {
		if s.MSN < from || s.MSN > upTo {
			continue
		}
		su, err := url.Parse(s.URI)
		if err != nil || !strings.EqualFold(su.Host, rd.tmpl.host) {
			continue
		}
		sk := memKey(su)
		if _, ok := p.state.Peek(sk); ok {
			continue
		}
		job := prefetchJob{playlist: plKey, key: sk, url: s.URI, tmpl: rd.tmpl}
		select {
		case p.jobs <- job:
			p.state.Put(sk, stScheduled)
			p.scheduled.Add(1)
		default:
			p.dropped.Add(1)
		}
	}
}

func (p *Prefetcher) worker() {
	for {
		select {
		case <-p.ctx.Done():
			return
		case job := <-p.jobs:
			p.run(job)
		}
	}
}

func (p *Prefetcher) run(job prefetchJob) {
	p.mu.Lock()
	rd, ok := p.playlists.Peek(job.playlist)
	if !ok || !p.watched(rd) {
		p.state.Remove(job.key)
		p.mu.Unlock()
		p.idle.Add(1)
		return
	}
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(p.ctx, orDefault(p.Timeout, DefaultPrefetchTimeout))
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
	if st, _ := p.state.Peek(job.key); st == stScheduled {
		p.state.Put(job.key, stFetched)
	}
	p.prefetched.Add(1)
}

// OnRecord counts prefetch hits and, unless the Prefetcher sees client
// requests through Wrap (then it leaves that to Wrap), notes the request as
// Observe does; Attach appends it to cache.Cache.OnRecord.
func (p *Prefetcher) OnRecord(r *http.Request, rec cache.Record) {
	if rec.Prefetch || r.Method != http.MethodGet || !p.learned.Load() {
		return
	}
	p.init()
	key := requestKey(r)
	p.mu.Lock()
	defer p.mu.Unlock()
	st, ok := p.state.Peek(key)
	hit := rec.Disposition == cache.Hit || rec.Disposition == cache.HitStale || rec.Disposition == cache.Collapsed
	if ok && st != stCounted && hit && rec.Err == nil {
		p.state.Put(key, stCounted)
		p.hits.Add(1)
	}
	p.observeLocked(key) // a no-op for a request Wrap already saw
}

// Attach wires p to c, the cache of the tier it prefetches for, before c
// serves: p.Fetch, if nil, becomes c.Prefetch; c.Policy, which must be an
// *[Policy] (one is created if c.Policy is nil), reports every media
// playlist it classifies to p (after any OnMediaPlaylist hook already
// set; a wrapper such as integrity.BoundPolicy that has an Unwrap method
// returning the *Policy will do); and p.OnRecord is appended to
// c.OnRecord, to count prefetch hits.
// Serve the tier with p.Wrap(c) so that prefetches start while client
// requests are served.
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
	if prev := pol.OnMediaPlaylist; prev != nil {
		pol.OnMediaPlaylist = func(r *http.Request, pl *Playlist) {
			prev(r, pl)
			p.ObservePlaylist(r, pl)
		}
	} else {
		pol.OnMediaPlaylist = p.ObservePlaylist
	}
	c.OnRecord = append(c.OnRecord, p.OnRecord)
	return nil
}

// Wrap returns a handler that notes every client request (see
// [Prefetcher.Observe]) before passing it to next, so prefetches start
// while the client's own request is still being served.
func (p *Prefetcher) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.Observe(r)
		next.ServeHTTP(w, r)
	})
}
