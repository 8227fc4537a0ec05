package purge

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/upstream/integrity"
)

// Log is an origin's purge log: the purges the origin issued, each signed
// with the origin's key and numbered in order. It is an http.Handler for
// DefaultPath on the origin's server (next to, not under, the
// integrity.Signer that signs responses): a GET serves the log to the
// midtiers' Followers (a long poll), a POST takes a signed purge request
// (see Submit) and appends it.
//
// Key must be set. Its exported fields must not change after the first
// method call. A Log is safe for concurrent use.
type Log struct {
	// Key is the origin's private key, the one its integrity.Signer signs
	// responses with: tiers verify purges with the public key they
	// already verify responses with. Required.
	Key ed25519.PrivateKey

	// KeyID names the key in entries. If empty, integrity.KeyID of its
	// public key (what integrity.Keys uses).
	KeyID string

	// File, if set, keeps the log across restarts (written after every
	// append: temporary file, fsync, rename). If empty, or if the file
	// does not exist yet, a new log starts, with an id (its creation
	// time) that supersedes every earlier one: followers then do a full
	// soft purge, since purges of the lost log may not have reached
	// them.
	File string

	// MaxEntries is the number of entries kept for followers. A follower
	// further behind does a full soft purge. If zero, DefaultMaxEntries.
	MaxEntries int

	// MaxSkew bounds how far a purge request's time may be from the
	// origin's clock; requests outside are refused, and nonces are
	// remembered for twice as long, so a request cannot be replayed. If
	// zero, DefaultMaxSkew.
	MaxSkew time.Duration

	// MaxWait bounds how long a GET waits for a new entry. If zero,
	// DefaultMaxWait.
	MaxWait time.Duration

	// Now returns the current time. If nil, time.Now.
	Now func() time.Time

	// Logger receives appended purges and refused requests. If nil, logs
	// are discarded.
	Logger *slog.Logger

	once    sync.Once
	initErr error
	log     *slog.Logger
	keys    map[string]ed25519.PublicKey
	win     window
	mu      sync.Mutex // serialises appends
	id      uint64
	seq     uint64
	nonces  map[string]time.Time
	closed  chan struct{}
	closeMu sync.Once

	appended atomic.Uint64
	rejected [numReasons]atomic.Uint64 // by reasonIndex
}

// LogStats is a snapshot of a Log's state and counters.
type LogStats struct {
	Log      uint64            // the log's id
	Seq      uint64            // the last entry's sequence number
	Entries  int               // entries kept for followers
	Appended uint64            // purges appended since start
	Rejected map[Reason]uint64 // purge requests refused, by reason
	Waiting  int64             // followers waiting for an entry
}

// logFile is the Log's file.
type logFile struct {
	Log     uint64           `json:"log"`
	Seq     uint64           `json:"seq"`
	Entries []string         `json:"entries"`
	Nonces  map[string]int64 `json:"nonces,omitempty"` // nonce → request time, Unix ms
}

func (l *Log) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func (l *Log) maxSkew() time.Duration {
	if l.MaxSkew > 0 {
		return l.MaxSkew
	}
	return DefaultMaxSkew
}

func (l *Log) init() error {
	l.once.Do(func() {
		l.log = l.Logger
		if l.log == nil {
			l.log = slog.New(slog.DiscardHandler)
		}
		l.closed = make(chan struct{})
		l.win.max = l.MaxEntries
		if len(l.Key) != ed25519.PrivateKeySize {
			l.initErr = errors.New("purge: Log without a valid ed25519 Key")
			return
		}
		pub := l.Key.Public().(ed25519.PublicKey)
		if l.KeyID == "" {
			l.KeyID = integrity.KeyID(pub)
		}
		l.keys = map[string]ed25519.PublicKey{l.KeyID: pub, integrity.KeyID(pub): pub}
		l.nonces = make(map[string]time.Time)
		l.initErr = l.load()
	})
	return l.initErr
}

// load reads File, or starts a new log.
func (l *Log) load() error {
	if l.File != "" {
		b, err := os.ReadFile(l.File)
		switch {
		case err == nil:
			var f logFile
			if err := json.Unmarshal(b, &f); err != nil {
				return fmt.Errorf("purge: log file %s: %w", l.File, err)
			}
			l.id, l.seq = f.Log, f.Seq
			first := f.Seq + 1 - uint64(len(f.Entries))
			if f.Log == 0 || uint64(len(f.Entries)) > f.Seq {
				return fmt.Errorf("purge: log file %s: inconsistent", l.File)
			}
			l.win.reset(f.Log, first)
			for i, raw := range f.Entries {
				e, err := ParseEntry(raw, l.keys)
				if err != nil || e.Log != f.Log || e.Seq != first+uint64(i) {
					return fmt.Errorf("purge: log file %s: entry %d: %v", l.File, first+uint64(i), err)
				}
				l.win.add(e.Seq, raw)
			}
			for n, t := range f.Nonces {
				l.nonces[n] = time.UnixMilli(t)
			}
			return nil
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("purge: log file: %w", err)
		}
	}
	l.id = uint64(l.now().UnixNano())
	l.win.reset(l.id, 1)
	l.log.Info("purge: new log", "log", l.id)
	return l.save()
}

// save writes File (l.mu held, or during init).
func (l *Log) save() error {
	if l.File == "" {
		return nil
	}
	f := logFile{Log: l.id, Seq: l.seq, Entries: []string{}, Nonces: map[string]int64{}}
	l.win.mu.Lock()
	f.Entries = append(f.Entries, l.win.raw...)
	l.win.mu.Unlock()
	for n, t := range l.nonces {
		f.Nonces[n] = t.UnixMilli()
	}
	b, err := json.Marshal(&f)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(l.File, b); err != nil {
		return fmt.Errorf("purge: saving the log: %w", err)
	}
	return nil
}

// Append adds p to the log (normalized, signed, numbered) and returns its
// entry. Followers waiting on the log receive it at once.
func (l *Log) Append(ctx context.Context, p cache.Purge) (Entry, error) {
	if err := l.init(); err != nil {
		return Entry{}, err
	}
	p, err := p.Normalize()
	if err != nil {
		return Entry{}, fmt.Errorf("purge: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return Entry{}, fmt.Errorf("purge: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.appendLocked(p)
}

func (l *Log) appendLocked(p cache.Purge) (Entry, error) {
	select {
	case <-l.closed:
		return Entry{}, fmt.Errorf("purge: log: %w", net.ErrClosed)
	default:
	}
	e := Entry{Log: l.id, Seq: l.seq + 1, Time: l.now(), Purge: p, KeyID: l.KeyID}
	raw, err := SignEntry(l.Key, e)
	if err != nil {
		return Entry{}, err
	}
	l.seq = e.Seq
	l.win.add(e.Seq, raw)
	l.appended.Add(1)
	l.log.Info("purge: appended", "seq", e.Seq, "purge", p.String())
	if err := l.save(); err != nil {
		// The entry is served (followers may have it already): keep it,
		// but say the origin would lose it on a restart.
		return e, err
	}
	return e, nil
}

// ServeHTTP serves the log (GET, HEAD) and takes purge requests (POST).
// Mount it at DefaultPath on the origin's server, outside the
// integrity.Signer handler (entries are signed one by one).
func (l *Log) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := l.init(); err != nil {
		l.log.Error("purge: log unusable", "err", err)
		http.Error(w, "purge log unavailable", http.StatusServiceUnavailable)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		l.win.serveFeed(w, r, orDuration(l.MaxWait, DefaultMaxWait), l.closed)
	case http.MethodPost:
		l.serveRequest(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func orDuration(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// submitResponse is the answer to an accepted purge request.
type submitResponse struct {
	Entry string `json:"entry"`
}

func (l *Log) serveRequest(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxSigned+1))
	if err != nil {
		http.Error(w, "reading request", http.StatusBadRequest)
		return
	}
	e, err := l.submit(string(b))
	if err != nil {
		status := http.StatusInternalServerError
		switch reasonOf(err) {
		case ReasonMalformed, ReasonInvalid:
			status = http.StatusBadRequest
		case ReasonUnknownKey, ReasonBadSignature:
			status = http.StatusForbidden
		case ReasonReplay, ReasonExpired:
			status = http.StatusConflict
		}
		if e == "" {
			http.Error(w, err.Error(), status)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(submitResponse{Entry: e})
}

// submit verifies a signed request and appends it; it returns the encoded
// entry (set even if saving failed).
func (l *Log) submit(s string) (string, error) {
	if err := l.init(); err != nil {
		return "", err
	}
	req, err := parseRequest(s, l.keys)
	if err != nil {
		l.refuse(err)
		return "", err
	}
	now := l.now()
	skew := l.maxSkew()
	if d := now.Sub(req.time); d > skew || d < -skew {
		err := reject(ReasonExpired, "request time %v is %v from the origin's clock (at most %v)", req.time.UTC(), d.Round(time.Second), skew)
		l.refuse(err)
		return "", err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for n, t := range l.nonces {
		if now.Sub(t) > 2*skew || t.Sub(now) > 2*skew {
			delete(l.nonces, n)
		}
	}
	if _, seen := l.nonces[req.nonce]; seen {
		err := reject(ReasonReplay, "nonce already used")
		l.refuse(err)
		return "", err
	}
	l.nonces[req.nonce] = req.time
	e, err := l.appendLocked(req.purge)
	if e.Seq == 0 {
		return "", err
	}
	l.win.mu.Lock()
	raw := l.win.raw[len(l.win.raw)-1]
	l.win.mu.Unlock()
	return raw, err
}

func (l *Log) refuse(err error) {
	l.rejected[reasonIndex(reasonOf(err))].Add(1)
	l.log.Warn("purge: request refused", "err", err)
}

// Stats returns a snapshot of the log's state and counters.
func (l *Log) Stats() LogStats {
	l.init()
	id, seq := l.win.last()
	l.win.mu.Lock()
	n := len(l.win.raw)
	l.win.mu.Unlock()
	st := LogStats{Log: id, Seq: seq, Entries: n, Appended: l.appended.Load(), Waiting: l.win.waiters.Load(),
		Rejected: make(map[Reason]uint64, len(Reasons))}
	for i, r := range reasonNames {
		st.Rejected[r] = l.rejected[i].Load()
	}
	return st
}

// Close ends the long polls in progress; later appends fail. It returns
// an error wrapping net.ErrClosed when called again.
func (l *Log) Close() error {
	l.init()
	first := false
	l.closeMu.Do(func() { first = true; close(l.closed) })
	if !first {
		return fmt.Errorf("purge: log: %w", net.ErrClosed)
	}
	return nil
}

// Submit signs a purge request for p with key (the origin's) and posts it
// to a Log at url (the origin's DefaultPath, e.g.
// "http://127.0.0.1:8000/.well-known/onioncdn/purge"). It returns the
// entry the log appended, verified with key's public key. client is
// http.DefaultClient if nil.
func Submit(ctx context.Context, client *http.Client, url string, key ed25519.PrivateKey, p cache.Purge) (Entry, error) {
	if client == nil {
		client = http.DefaultClient
	}
	if len(key) != ed25519.PrivateKeySize {
		return Entry{}, errors.New("purge: no valid ed25519 signing key")
	}
	p, err := p.Normalize()
	if err != nil {
		return Entry{}, fmt.Errorf("purge: %w", err)
	}
	nonce := make([]byte, 18)
	if _, err := cryptoRand(nonce); err != nil {
		return Entry{}, fmt.Errorf("purge: %w", err)
	}
	body, err := signRequest(key, p, time.Now(), b64.EncodeToString(nonce))
	if err != nil {
		return Entry{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return Entry{}, fmt.Errorf("purge: %w", err)
	}
	req.Header.Set("Content-Type", "text/plain")
	resp, err := client.Do(req)
	if err != nil {
		return Entry{}, fmt.Errorf("purge: submit: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxSigned+1024))
	if err != nil {
		return Entry{}, fmt.Errorf("purge: submit: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return Entry{}, fmt.Errorf("purge: submit: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	var sr submitResponse
	if err := json.Unmarshal(b, &sr); err != nil {
		return Entry{}, fmt.Errorf("purge: submit: response: %w", err)
	}
	pub := key.Public().(ed25519.PublicKey)
	e, err := ParseEntry(sr.Entry, map[string]ed25519.PublicKey{integrity.KeyID(pub): pub})
	if err != nil {
		// A log with another KeyID setting: accept any id for our key.
		e, err = parseEntryAnyID(sr.Entry, pub)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("purge: submit: the log's entry: %w", err)
	}
	if e.Purge != p {
		return Entry{}, fmt.Errorf("purge: submit: the log appended %v, not %v", e.Purge, p)
	}
	return e, nil
}

// parseEntryAnyID verifies an entry with pub whatever key id it names.
func parseEntryAnyID(s string, pub ed25519.PublicKey) (Entry, error) {
	p, _, _ := strings.Cut(s, ".")
	payload, err := b64.DecodeString(p)
	if err != nil {
		return Entry{}, reject(ReasonMalformed, "payload: %v", err)
	}
	var j entryJSON
	if err := json.Unmarshal(payload, &j); err != nil {
		return Entry{}, reject(ReasonMalformed, "payload: %v", err)
	}
	return ParseEntry(s, map[string]ed25519.PublicKey{j.KeyID: pub})
}
