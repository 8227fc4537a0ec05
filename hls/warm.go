package hls

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// Defaults of [Warmer] fields.
const (
	DefaultWarmConcurrency = 4
	DefaultWarmRetries     = 3
	DefaultWarmBackoff     = 500 * time.Millisecond
)

// Warmer fills a CDN tier's cache with an HLS presentation before viewers
// arrive: it fetches the playlists, init sections and segments of the
// chosen renditions through the tier, with bounded concurrency, and
// retries what fails. Keys (EXT-X-KEY) are not fetched: the HLS policy
// never stores them.
//
// The zero value warms every rendition through http.DefaultClient. Fields
// may not change while Warm runs.
type Warmer struct {
	// Client sends the requests. If nil, http.DefaultClient. Use a client
	// dialing through a SOCKS5 proxy to warm an onion tier over Tor.
	Client *http.Client

	// Host, if set, is sent as the Host header of every request, and
	// absolute playlist URIs naming that host are fetched from the URL
	// given to Warm instead.
	Host string

	// Header holds extra request headers.
	Header http.Header

	// Select chooses the variants of a master playlist to warm (alternative
	// renditions, EXT-X-MEDIA, are always warmed). If nil, all.
	Select func(v Variant) bool

	// Concurrency bounds the requests in flight. If zero,
	// DefaultWarmConcurrency.
	Concurrency int

	// Retries is how many times a failed object is retried. If zero,
	// DefaultWarmRetries; a negative value means no retries.
	Retries int

	// Backoff is the wait before the first retry, doubled for each next
	// one. If zero, DefaultWarmBackoff.
	Backoff time.Duration

	// Progress, if not nil, is called after each object (successful or
	// finally failed) with the counts so far. Calls are serialised.
	Progress func(p WarmProgress)

	// Logger receives failures at Info level. If nil, logs are discarded.
	Logger *slog.Logger
}

// WarmProgress is the state of a warm-up in progress.
type WarmProgress struct {
	Done, Total int   // objects finished (either way) and known so far
	Failed      int   // objects that failed after all retries
	Bytes       int64 // body bytes received
}

// WarmReport summarises a warm-up.
type WarmReport struct {
	Objects      int            `json:"objects"` // objects fetched successfully
	Bytes        int64          `json:"bytes"`
	Dispositions map[string]int `json:"dispositions,omitempty"` // from Cache-Status
	Retried      int            `json:"retried"`                // objects that needed more than one attempt
	Failures     []WarmFailure  `json:"failures,omitempty"`
}

// WarmFailure is an object that could not be fetched.
type WarmFailure struct {
	Path     string `json:"path"` // URL path without the query
	Attempts int    `json:"attempts"`
	Err      string `json:"error"`
}

// ErrWarmIncomplete is returned (wrapped) by [Warmer.Warm] when some
// objects failed after all retries; the report lists them.
var ErrWarmIncomplete = errors.New("hls: warm: some objects failed")

// Warm fetches the presentation at each URL (master or media playlists)
// through the tier. It returns the report and ErrWarmIncomplete if any
// object failed, or the context's error if ctx ended.
func (w *Warmer) Warm(ctx context.Context, urls ...string) (*WarmReport, error) {
	rep := &WarmReport{Dispositions: map[string]int{}}
	run := &warmRun{w: w, rep: rep, seen: map[string]bool{}}
	conc := orDefault(w.Concurrency, DefaultWarmConcurrency)
	run.sem = make(chan struct{}, conc)
	for _, raw := range urls {
		base, err := url.Parse(raw)
		if err != nil || base.Host == "" {
			return rep, fmt.Errorf("hls: warm: invalid URL")
		}
		run.base = base
		run.playlist(ctx, raw, true)
	}
	run.wg.Wait()
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("hls: warm: %w", err)
	}
	if len(rep.Failures) > 0 {
		return rep, fmt.Errorf("%w: %d of %d", ErrWarmIncomplete, len(rep.Failures), len(rep.Failures)+rep.Objects)
	}
	return rep, nil
}

type warmRun struct {
	w    *Warmer
	base *url.URL
	sem  chan struct{}
	wg   sync.WaitGroup

	mu    sync.Mutex
	rep   *WarmReport
	seen  map[string]bool
	total int
	done  int
}

// playlist fetches a playlist (synchronously) and schedules what it lists.
func (r *warmRun) playlist(ctx context.Context, u string, top bool) {
	if !r.claim(u) {
		return
	}
	r.sem <- struct{}{}
	body, final, ok := r.fetch(ctx, u, true)
	<-r.sem
	if !ok {
		return
	}
	pl, err := ParsePlaylist(final, body)
	if err != nil {
		r.fail(final.Path, 1, err)
		return
	}
	if pl.Master {
		for _, v := range pl.Variants {
			if r.w.Select == nil || r.w.Select(v) {
				r.playlist(ctx, v.URI, false)
			}
		}
		for _, u := range pl.Renditions {
			r.playlist(ctx, u, false)
		}
		return
	}
	objs := append(append([]string{}, pl.Init...), pl.Parts...)
	for _, s := range pl.Segments {
		objs = append(objs, s.URI)
	}
	for _, o := range objs {
		if !r.claim(o) {
			continue
		}
		select {
		case r.sem <- struct{}{}:
		case <-ctx.Done():
			r.finish()
			continue
		}
		r.wg.Go(func() {
			defer func() { <-r.sem }()
			r.fetch(ctx, o, false)
		})
	}
}

// claim registers u as an object to fetch, once.
func (r *warmRun) claim(u string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen[u] {
		return false
	}
	r.seen[u] = true
	r.total++
	return true
}

// fetch gets u with retries, records the outcome, and returns the body
// when keep is set.
func (r *warmRun) fetch(ctx context.Context, u string, keep bool) ([]byte, *url.URL, bool) {
	retries := r.w.Retries
	if retries == 0 {
		retries = DefaultWarmRetries
	}
	retries = max(retries, 0)
	backoff := orDefault(r.w.Backoff, DefaultWarmBackoff)
	path := u
	if pu, err := url.Parse(u); err == nil {
		path = pu.Path
	}
	var lastErr error
	for attempt := 1; attempt <= retries+1; attempt++ {
		if attempt > 1 && !sleepCtx(ctx, backoff<<(attempt-2)) {
			break
		}
		body, final, n, disp, err := r.try(ctx, u, keep)
		if err == nil {
			r.mu.Lock()
			r.rep.Objects++
			r.rep.Bytes += n
			if disp != "" {
				r.rep.Dispositions[disp]++
			}
			if attempt > 1 {
				r.rep.Retried++
			}
			r.mu.Unlock()
			r.finish()
			return body, final, true
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	if ctx.Err() == nil {
		r.fail(path, retries+1, lastErr)
	} else {
		r.finish()
	}
	return nil, nil, false
}

func (r *warmRun) try(ctx context.Context, u string, keep bool) ([]byte, *url.URL, int64, string, error) {
	req, err := newRequest(ctx, u, r.base, r.w.Host, r.w.Header)
	if err != nil {
		return nil, nil, 0, "", err
	}
	client := r.w.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, 0, "", errors.Unwrap(err)
	}
	defer resp.Body.Close()
	var body []byte
	var n int64
	if keep {
		body, err = io.ReadAll(io.LimitReader(resp.Body, DefaultMaxPlaylistBytes+1))
		n = int64(len(body))
	} else {
		n, err = io.Copy(io.Discard, resp.Body)
	}
	if err != nil {
		return nil, nil, 0, "", err
	}
	if resp.StatusCode/100 != 2 {
		return nil, nil, 0, "", fmt.Errorf("status %d", resp.StatusCode)
	}
	return body, req.URL, n, Disposition(joinValues(resp.Header.Values("Cache-Status"))), nil
}

func joinValues(v []string) string {
	switch len(v) {
	case 0:
		return ""
	case 1:
		return v[0]
	}
	s := v[0]
	for _, x := range v[1:] {
		s += ", " + x
	}
	return s
}

func (r *warmRun) fail(path string, attempts int, err error) {
	r.mu.Lock()
	r.rep.Failures = append(r.rep.Failures, WarmFailure{Path: path, Attempts: attempts, Err: err.Error()})
	r.mu.Unlock()
	r.w.logger().Info("warm failed", "path", path, "attempts", attempts, "err", err)
	r.finish()
}

func (r *warmRun) finish() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done++
	if r.w.Progress != nil {
		r.w.Progress(WarmProgress{Done: r.done, Total: r.total, Failed: len(r.rep.Failures), Bytes: r.rep.Bytes})
	}
}

func (w *Warmer) logger() *slog.Logger {
	if w.Logger != nil {
		return w.Logger
	}
	return slog.New(slog.DiscardHandler)
}
