package purge

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onioncdn/onioncdn/cache"
)

// Defaults of Follower fields.
const (
	DefaultURL   = "http://onioncdn-upstream" + DefaultPath // the host is the Transport's to choose
	DefaultRetry = time.Second
	maxRetry     = 30 * time.Second
)

// Follower keeps a tier's cache in step with the origin's purge log: it
// follows the log of the tier above (a midtier follows the origin's Log,
// an edge a midtier's Follower) with a long poll over that tier's own
// upstream transport, verifies every entry with the origin's keys,
// applies the entries in order to its Cache, and serves the entries it
// applied to the tiers below (ServeHTTP). Tiers sign nothing: an entry is
// the origin's statement, and a tier that did not receive one cannot make
// it up.
//
// Entries are applied in the order of their sequence numbers, each once:
// an entry at or below the last applied one is refused as a replay. If
// entries are missing (the tier above no longer holds them, or its log is
// a new one after the origin lost its own), the Follower cannot know what
// they purged: it applies a soft purge of everything (each object is then
// revalidated once, which is cheap and never serves a purged object),
// then continues.
//
// Cache, Transport and Keys are required; the other fields have defaults.
// Exported fields must not change after the first method call. A Follower
// is safe for concurrent use; Run must be called once.
type Follower struct {
	// Cache receives the purges. Required.
	Cache *cache.Cache

	// Transport reaches the tier above: the tier's upstream.Transport,
	// the raw one, not the integrity.Transport that verifies responses
	// (entries are verified one by one). Required.
	Transport http.RoundTripper

	// URL is the purge log of the tier above. If empty, DefaultURL, whose
	// host a Transport that chooses the upstream itself (as
	// upstream.Transport does) replaces.
	URL string

	// Keys are the origin's public keys by key id: the integrity.Keys the
	// tier verifies responses with. Entries signed by other keys are
	// refused. Required.
	Keys map[string]ed25519.PublicKey

	// StateFile, if set, keeps the position in the log and the entries
	// served to the tiers below across restarts, so that a restarted
	// tier resumes from its last applied entry. Set it when the Cache's
	// store persists (with Cache.PurgeFile). If empty, a restarted
	// follower starts from the upstream's oldest entry (applying a soft
	// purge of everything if that is not the log's first).
	StateFile string

	// MaxEntries is the number of applied entries kept for the tiers
	// below. If zero, DefaultMaxEntries.
	MaxEntries int

	// Wait is the long poll asked of the tier above. If zero,
	// DefaultWait.
	Wait time.Duration

	// MaxWait bounds the long polls of the tiers below. If zero,
	// DefaultMaxWait.
	MaxWait time.Duration

	// Retry is the first pause after a failed poll; it doubles up to 30 s
	// while polls fail. If zero, DefaultRetry.
	Retry time.Duration

	// OnApply, if set, is called after each entry is applied, with the
	// local time it was applied at, on the follower's goroutine.
	OnApply func(e Entry, applied time.Time)

	// Now returns the current time. If nil, time.Now.
	Now func() time.Time

	// Logger receives resyncs, refused entries and poll failures. If nil,
	// logs are discarded.
	Logger *slog.Logger

	once    sync.Once
	initErr error
	log     *slog.Logger
	win     window
	running atomic.Bool
	stopped chan struct{}
	saveMu  sync.Mutex

	mu    sync.Mutex // guards logID and seq
	logID uint64
	seq   uint64

	received, applied, resyncs, polls, pollErrors atomic.Uint64
	behindRetried, behindServed                   atomic.Uint64
	rejected                                      [numReasons]atomic.Uint64
	guardPauses                                   []time.Duration // tests; nil: defaultGuardPauses
	lagMu                                         sync.Mutex
	lag                                           histogram
	lastLag                                       atomic.Int64
}

// FollowerStats is a snapshot of a Follower's state and counters.
type FollowerStats struct {
	Log        uint64            // id of the log followed
	Seq        uint64            // last entry applied
	Received   uint64            // entries received
	Applied    uint64            // entries applied
	Rejected   map[Reason]uint64 // entries refused, by reason
	Resyncs    uint64            // soft purges of everything (entries missed)
	Polls      uint64            // polls answered by the tier above
	PollErrors uint64            // polls that failed
	LastLag    time.Duration     // propagation lag of the last entry applied
	Lag        Histogram         // propagation lags: origin's append → applied here
	Waiting    int64             // tiers below waiting for an entry

	// From Guard: responses of a tier above that was behind, fetched
	// again, and used anyway after the retries.
	BehindRetried uint64
	BehindServed  uint64

	// From the Cache: objects removed by purges, lookups that found an
	// object made stale by a soft purge, rules in force.
	Objects      uint64
	StaleLookups uint64
	Rules        int
}

// Histogram counts durations in buckets.
type Histogram struct {
	Bounds []time.Duration // upper bounds, ascending; a last bucket counts the rest
	Counts []uint64        // per bucket (len(Bounds)+1), not cumulative
	Sum    time.Duration
}

// lagBounds are the buckets of the lag histogram.
var lagBounds = []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute}

type histogram struct {
	counts [12]uint64
	sum    time.Duration
}

func (h *histogram) observe(d time.Duration) {
	i := 0
	for i < len(lagBounds) && d > lagBounds[i] {
		i++
	}
	h.counts[i]++
	h.sum += d
}

// stateFile is the Follower's StateFile.
type stateFile struct {
	Log     uint64   `json:"log"`
	Seq     uint64   `json:"seq"`
	Entries []string `json:"entries"`
}

func (f *Follower) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

func (f *Follower) init() error {
	f.once.Do(func() {
		f.log = f.Logger
		if f.log == nil {
			f.log = slog.New(slog.DiscardHandler)
		}
		f.stopped = make(chan struct{})
		f.win.max = f.MaxEntries
		switch {
		case f.Cache == nil:
			f.initErr = errors.New("purge: Follower without a Cache")
		case f.Transport == nil:
			f.initErr = errors.New("purge: Follower without a Transport")
		case len(f.Keys) == 0:
			f.initErr = errors.New("purge: Follower without Keys (the origin's, as integrity.Keys returns them)")
		}
		if f.initErr == nil {
			f.loadState()
		}
	})
	return f.initErr
}

// loadState reads StateFile. A missing, unreadable or inconsistent file
// starts the follower afresh (which the gap check turns into a resync
// unless the upstream still holds the log from its first entry).
func (f *Follower) loadState() {
	if f.StateFile == "" {
		return
	}
	b, err := os.ReadFile(f.StateFile)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			f.log.Warn("purge: cannot read the state file; starting afresh", "err", err)
		}
		return
	}
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil || st.Log == 0 || uint64(len(st.Entries)) > st.Seq {
		f.log.Warn("purge: invalid state file; starting afresh", "err", err)
		return
	}
	first := st.Seq + 1 - uint64(len(st.Entries))
	for i, raw := range st.Entries {
		e, err := ParseEntry(raw, f.Keys)
		if err != nil || e.Log != st.Log || e.Seq != first+uint64(i) {
			f.log.Warn("purge: invalid entry in the state file; starting afresh", "err", err)
			return
		}
	}
	f.win.reset(st.Log, first)
	for i, raw := range st.Entries {
		f.win.add(first+uint64(i), raw)
	}
	f.logID, f.seq = st.Log, st.Seq
	f.log.Info("purge: resuming", "log", st.Log, "seq", st.Seq)
}

func (f *Follower) saveState() error {
	if f.StateFile == "" {
		return nil
	}
	f.saveMu.Lock()
	defer f.saveMu.Unlock()
	log, seq := f.Position()
	st := stateFile{Log: log, Seq: seq, Entries: []string{}}
	f.win.mu.Lock()
	if f.win.log == log && f.win.lastLocked() == seq {
		st.Entries = append(st.Entries, f.win.raw...)
	}
	f.win.mu.Unlock()
	b, err := json.Marshal(&st)
	if err != nil {
		return err
	}
	return writeFileAtomic(f.StateFile, b)
}

// Position returns the log followed and the last entry applied (0, 0
// before the first).
func (f *Follower) Position() (log, seq uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.logID, f.seq
}

// Run follows the log until ctx ends, then returns nil. It returns an
// error at once if the Follower is not configured, or if Run was called
// before.
func (f *Follower) Run(ctx context.Context) error {
	if err := f.init(); err != nil {
		return err
	}
	if !f.running.CompareAndSwap(false, true) {
		return errors.New("purge: Follower.Run called twice")
	}
	defer close(f.stopped)
	retry := orDuration(f.Retry, DefaultRetry)
	pause := time.Duration(0)
	for {
		if pause > 0 {
			t := time.NewTimer(pause)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		err := f.poll(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			f.pollErrors.Add(1)
			pause = min(max(2*pause, retry), maxRetry)
			f.log.Warn("purge: poll failed", "err", err, "retry_in", pause)
		default:
			pause = 0
		}
	}
}

// poll asks the tier above for the entries after the last applied one and
// applies them.
func (f *Follower) poll(ctx context.Context) error {
	log, seq := f.Position()
	wait := orDuration(f.Wait, DefaultWait)
	u := f.URL
	if u == "" {
		u = DefaultURL
	}
	q := url.Values{}
	q.Set("log", strconv.FormatUint(log, 10))
	q.Set("after", strconv.FormatUint(seq, 10))
	q.Set("wait", strconv.FormatFloat(wait.Seconds(), 'f', -1, 64))
	rctx, cancel := context.WithTimeout(ctx, wait+30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u+"?"+q.Encode(), nil)
	if err != nil {
		return fmt.Errorf("purge: %w", err)
	}
	req.Header.Set("User-Agent", "")
	resp, err := f.Transport.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("purge: poll: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("purge: poll: %s", resp.Status)
	}
	var feed feedJSON
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxFeed)).Decode(&feed); err != nil {
		return fmt.Errorf("purge: poll: feed: %w", err)
	}
	f.polls.Add(1)
	return f.apply(ctx, feed.Entries)
}

// apply verifies and applies entries in order, in one cache.PurgeBatch
// (one save of the Cache's PurgeFile). It stops at the first entry it
// refuses (the rest would follow a hole) and returns an error; the entries
// before it are applied.
func (f *Follower) apply(ctx context.Context, entries []string) error {
	type accepted struct {
		e     Entry
		raw   string
		reset bool // the window starts again at this entry
	}
	var (
		batch   []cache.Purge
		ok      []accepted
		refusal error
	)
	log, seq := f.Position()
	resyncAll := cache.Purge{Kind: cache.PurgeAll, Soft: true}
loop:
	for _, raw := range entries {
		f.received.Add(1)
		e, err := ParseEntry(raw, f.Keys)
		if err != nil {
			refusal = f.refuse(err)
			break
		}
		reset, resynced := false, false
		switch {
		case e.Log < log:
			refusal = f.refuse(reject(ReasonStaleLog, "entry of log %d, following %d", e.Log, log))
			break loop
		case e.Log > log:
			if log != 0 {
				f.resync("the origin started a new log")
				batch = append(batch, resyncAll)
				resynced = true
			}
			log, seq, reset = e.Log, 0, true
		}
		if e.Seq <= seq {
			f.refuse(reject(ReasonReplay, "entry %d, at %d already", e.Seq, seq))
			continue
		}
		if e.Seq > seq+1 {
			if !resynced {
				// The entries in between are gone: what they purged is
				// unknown.
				f.resync("entries missed")
				batch = append(batch, resyncAll)
			}
			reset = true
		}
		batch = append(batch, e.Purge)
		ok = append(ok, accepted{e, raw, reset})
		seq = e.Seq
	}
	if len(batch) == 0 {
		return refusal
	}
	if _, err := f.Cache.PurgeBatch(ctx, batch); err != nil {
		if ctx.Err() != nil {
			return err
		}
		// Applied, but not saved (Cache.PurgeFile): the cache logged it.
		f.log.Error("purge: applying entries", "err", err)
	}
	applied := f.now()
	for _, a := range ok {
		if a.reset {
			f.win.reset(a.e.Log, a.e.Seq)
		}
		f.setPosition(a.e.Log, a.e.Seq)
		f.win.add(a.e.Seq, a.raw)
		f.applied.Add(1)
		lag := max(applied.Sub(a.e.Time), 0)
		f.lastLag.Store(int64(lag))
		f.lagMu.Lock()
		f.lag.observe(lag)
		f.lagMu.Unlock()
		f.log.Debug("purge: applied", "seq", a.e.Seq, "purge", a.e.Purge.String(), "lag", lag)
		if f.OnApply != nil {
			f.OnApply(a.e, applied)
		}
	}
	if len(ok) > 0 {
		if err := f.saveState(); err != nil {
			f.log.Error("purge: cannot save the state file", "err", err)
		}
	}
	return refusal
}

func (f *Follower) setPosition(log, seq uint64) {
	f.mu.Lock()
	f.logID, f.seq = log, seq
	f.mu.Unlock()
}

// resync counts and logs a soft purge of everything (entries were missed);
// apply adds the purge to its batch.
func (f *Follower) resync(why string) {
	f.resyncs.Add(1)
	f.log.Warn("purge: resync: soft purge of everything", "why", why)
}

func (f *Follower) refuse(err error) error {
	f.rejected[reasonIndex(reasonOf(err))].Add(1)
	f.log.Warn("purge: entry refused", "err", err)
	return err
}

// ServeHTTP serves the entries applied here to the tiers below (GET,
// long poll); a tier serves it at DefaultPath (see tier.Tier). It answers
// 503 if the Follower is not configured.
func (f *Follower) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := f.init(); err != nil {
		http.Error(w, "purge log unavailable", http.StatusServiceUnavailable)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	f.win.serveFeed(w, r, orDuration(f.MaxWait, DefaultMaxWait), f.stopped)
}

// Stats returns a snapshot of the follower's state and counters.
func (f *Follower) Stats() FollowerStats {
	f.init()
	log, seq := f.Position()
	st := FollowerStats{
		Log: log, Seq: seq,
		Received: f.received.Load(), Applied: f.applied.Load(), Resyncs: f.resyncs.Load(),
		Polls: f.polls.Load(), PollErrors: f.pollErrors.Load(),
		LastLag: time.Duration(f.lastLag.Load()), Waiting: f.win.waiters.Load(),
		BehindRetried: f.behindRetried.Load(), BehindServed: f.behindServed.Load(),
		Rejected: make(map[Reason]uint64, numReasons),
	}
	for i, r := range reasonNames {
		st.Rejected[r] = f.rejected[i].Load()
	}
	f.lagMu.Lock()
	st.Lag = Histogram{Bounds: lagBounds, Counts: append([]uint64(nil), f.lag.counts[:]...), Sum: f.lag.sum}
	f.lagMu.Unlock()
	if f.Cache != nil {
		cs := f.Cache.Stats()
		st.Objects, st.StaleLookups, st.Rules = cs.PurgedObjects, cs.PurgeStale, cs.PurgeRules
	}
	return st
}
