package purge

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultPath is where a tier serves its purge log to the tiers below (and
// where the origin's Log takes purge requests).
const DefaultPath = "/.well-known/onioncdn/purge"

// Defaults of Log and Follower fields.
const (
	DefaultMaxEntries = 4096             // entries a log keeps for the tiers below
	DefaultWait       = 25 * time.Second // a follower's long poll (below upstream.Transport's 60 s header timeout)
	DefaultMaxWait    = 30 * time.Second // the longest poll a log holds
	DefaultMaxSkew    = 5 * time.Minute  // a purge request's time against the origin's clock
)

const (
	maxBatch   = 512     // entries in one feed response
	maxWaiters = 1024    // long polls held at once; more are answered at once
	maxFeed    = 8 << 20 // bytes of a feed response a follower reads
)

// feedJSON is a feed response: entries of log Log with sequence numbers
// after the one asked for, oldest first. First and Last are the window
// the server holds (unsigned: the entries' own log and sequence numbers,
// which are signed, are what a follower trusts).
type feedJSON struct {
	Log     uint64   `json:"log,omitempty"`
	First   uint64   `json:"first,omitempty"`
	Last    uint64   `json:"last,omitempty"`
	Entries []string `json:"entries"`
}

// window is the last entries of a log, served to the tiers below.
type window struct {
	max     int
	mu      sync.Mutex
	log     uint64
	first   uint64   // sequence number of raw[0]
	raw     []string // encoded entries first, first+1, ...
	wake    chan struct{}
	waiters atomic.Int64
}

func (w *window) maxEntries() int {
	if w.max > 0 {
		return w.max
	}
	return DefaultMaxEntries
}

// last returns the log and the sequence number of its newest entry.
func (w *window) last() (uint64, uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.log, w.lastLocked()
}

func (w *window) lastLocked() uint64 {
	if len(w.raw) == 0 {
		return w.first - min(w.first, 1)
	}
	return w.first + uint64(len(w.raw)) - 1
}

// reset empties the window for log (whose next entry is seq next).
func (w *window) reset(log, next uint64) {
	w.mu.Lock()
	w.log, w.first, w.raw = log, next, nil
	w.notifyLocked()
	w.mu.Unlock()
}

// add appends the entry seq of the window's log (which must follow the
// last one), dropping the oldest beyond max.
func (w *window) add(seq uint64, raw string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.raw) == 0 {
		w.first = seq
	}
	w.raw = append(w.raw, raw)
	if over := len(w.raw) - w.maxEntries(); over > 0 {
		w.raw = append(w.raw[:0:0], w.raw[over:]...)
		w.first += uint64(over)
	}
	w.notifyLocked()
}

func (w *window) notifyLocked() {
	if w.wake != nil {
		close(w.wake)
		w.wake = nil
	}
}

// since returns the feed after entry after of log (all the window if log
// is another log), and a channel closed when the window changes.
func (w *window) since(log, after uint64) (feedJSON, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f := feedJSON{Log: w.log, Entries: []string{}}
	if len(w.raw) > 0 {
		f.First, f.Last = w.first, w.lastLocked()
	}
	if log != w.log {
		after = 0
	}
	if len(w.raw) > 0 && after < f.Last {
		i := 0
		if after >= w.first {
			i = int(after - w.first + 1)
		}
		end := min(len(w.raw), i+maxBatch)
		f.Entries = append(f.Entries, w.raw[i:end]...)
	}
	if w.wake == nil {
		w.wake = make(chan struct{})
	}
	return f, w.wake
}

// serveFeed answers a GET of the feed: query parameters log, after and
// wait (seconds, at most maxWait). done ends waits early (the server
// closes).
func (w *window) serveFeed(rw http.ResponseWriter, r *http.Request, maxWait time.Duration, done <-chan struct{}) {
	q := r.URL.Query()
	log, _ := strconv.ParseUint(q.Get("log"), 10, 64)
	after, _ := strconv.ParseUint(q.Get("after"), 10, 64)
	wait := time.Duration(0)
	if s, err := strconv.ParseFloat(q.Get("wait"), 64); err == nil && s > 0 {
		wait = min(time.Duration(s*float64(time.Second)), maxWait)
	}
	f, wake := w.since(log, after)
	if len(f.Entries) == 0 && wait > 0 {
		if w.waiters.Add(1) <= maxWaiters {
			t := time.NewTimer(wait)
			select {
			case <-wake:
				f, _ = w.since(log, after)
			case <-t.C:
			case <-r.Context().Done():
			case <-done:
			}
			t.Stop()
		}
		w.waiters.Add(-1)
	}
	h := rw.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	json.NewEncoder(rw).Encode(&f)
}
