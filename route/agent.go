package route

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onioncdn/onioncdn/internal/rwrec"
)

// Defaults of the zero-valued [Agent] fields.
const (
	DefaultInterval = 10 * time.Second
)

// finalReportTimeout is the least time the sign-off report gets.
const finalReportTimeout = 5 * time.Second

// Agent runs beside an edge and sends signed load reports to a [Router].
//
// Wrap the edge's handler with [Agent.Middleware] so the agent can count
// in-flight requests, response bytes and errors, then call [Agent.Run].
// Fields must not be changed after the first method call. An Agent is safe
// for concurrent use; Run must be called at most once at a time.
type Agent struct {
	// URL is the router's report endpoint, e.g.
	// "http://<router>.onion/.well-known/onioncdn/report". Required.
	URL string

	// Group and Edge identify the reporting edge ([Group.ID], [Edge.ID]).
	// Required.
	Group, Edge string

	// Key signs reports; the router holds its public half in
	// [Edge.PublicKey]. Required.
	Key ed25519.PrivateKey

	// Client sends the reports. In production it must reach the router's
	// onion through Tor (an http.Client whose transport dials with
	// onion.Dialer or upstream.Transport). If nil, a client with default
	// transport settings and a timeout of Interval is used, which can only
	// reach routers on ordinary addresses (tests).
	Client *http.Client

	// Interval is the time between reports. If zero, DefaultInterval
	// (10 s). Keep it well below [Router.StaleAfter].
	Interval time.Duration

	// MaxBackoff bounds the delay between attempts after failed reports,
	// which doubles from Interval/2 on each consecutive failure. If zero,
	// 4 × Interval.
	MaxBackoff time.Duration

	// Sample, if set, is called before each report with the load measured
	// by the middleware, and may fill in or overwrite fields; values out of
	// range are clamped (NaN to 0, ratios into [0, 1]). It is called from
	// one goroutine at a time. Use it to add the cache hit ratio:
	//
	//	var last cache.Stats
	//	agent.Sample = func(l *route.Load) {
	//		s := c.Stats() // c is the edge's *cache.Cache
	//		l.HitRatio = s.HitRatio(last)
	//		last = s
	//	}
	//
	// (package tier does this for an edge's agent.)
	Sample func(*Load)

	// Healthy, if set, is called before each report; a non-nil error marks
	// the edge unhealthy in that report (and is logged). If nil, the edge
	// reports healthy while Run runs.
	Healthy func(context.Context) error

	// Now returns the current time, used for report timestamps and rates.
	// If nil, time.Now.
	Now func() time.Time

	// Logger receives failed reports. If nil, logs are discarded.
	Logger *slog.Logger

	meter Meter

	mu       sync.Mutex // guards the sampling state below and serialises reports
	last     MeterSnapshot
	lastTime time.Time
}

// Middleware returns h wrapped so that the agent counts its in-flight
// requests, response body bytes and 5xx responses.
func (a *Agent) Middleware(h http.Handler) http.Handler { return a.meter.Middleware(h) }

// Run sends a report at once and then every Interval until ctx is done.
// After a failure it retries with exponential backoff (with jitter) up to
// MaxBackoff. When ctx is done it makes one last attempt, bounded by
// Interval or 5 s, whichever is longer, to report the edge unhealthy so the
// router stops sending clients, and returns ctx.Err(). It returns an error
// at once if the configuration is invalid.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.validate(); err != nil {
		return err
	}
	interval := a.interval()
	maxBackoff := a.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = 4 * interval
	}
	var seed [32]byte
	rand.Read(seed[:])
	rng := mrand.New(mrand.NewChaCha8(seed))
	log := a.logger()

	failures := 0
	for {
		delay := interval
		if err := a.report(ctx, true); err != nil {
			if ctx.Err() != nil {
				break
			}
			failures++
			delay = interval / 2 << min(failures-1, 16)
			if delay > maxBackoff || delay <= 0 {
				delay = maxBackoff
			}
			log.Warn("route: report failed", "group", a.Group, "edge", a.Edge, "failures", failures, "err", err)
		} else {
			failures = 0
		}
		// ±10 % jitter keeps many agents from reporting in lockstep.
		delay += time.Duration((rng.Float64()*0.2 - 0.1) * float64(delay))
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
			continue
		}
		break
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), max(interval, finalReportTimeout))
	defer cancel()
	if err := a.report(fctx, false); err != nil {
		log.Warn("route: final report failed", "group", a.Group, "edge", a.Edge, "err", err)
	}
	return ctx.Err()
}

// Report samples the load and sends one report now, marked healthy unless
// the Healthy hook fails. It is what Run calls every Interval.
func (a *Agent) Report(ctx context.Context) error {
	if err := a.validate(); err != nil {
		return err
	}
	return a.report(ctx, true)
}

func (a *Agent) validate() error {
	switch {
	case a.URL == "":
		return errors.New("route: agent URL not set")
	case !validID(a.Group) || !validID(a.Edge):
		return errors.New("route: agent group or edge id invalid")
	case len(a.Key) != ed25519.PrivateKeySize:
		return errors.New("route: agent key not set")
	case a.Interval < 0:
		return errors.New("route: negative agent interval")
	}
	return nil
}

func (a *Agent) interval() time.Duration {
	if a.Interval > 0 {
		return a.Interval
	}
	return DefaultInterval
}

func (a *Agent) logger() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (a *Agent) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// report samples, signs and posts one report. healthy false forces an
// unhealthy report (used when the agent stops).
func (a *Agent) report(ctx context.Context, healthy bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if healthy && a.Healthy != nil {
		if err := a.Healthy(ctx); err != nil {
			a.logger().Warn("route: edge unhealthy", "group", a.Group, "edge", a.Edge, "err", err)
			healthy = false
		}
	}
	now := a.now()
	load := a.sample(now)
	if a.Sample != nil {
		a.Sample(&load)
		load.clamp()
	}
	var nonce [nonceBytes]byte
	rand.Read(nonce[:])
	body, err := json.Marshal(report{
		V:       reportVersion,
		Group:   a.Group,
		Edge:    a.Edge,
		TS:      now.UnixMilli(),
		Nonce:   base64.RawURLEncoding.EncodeToString(nonce[:]),
		Healthy: healthy,
		Load:    load,
	})
	if err != nil {
		return fmt.Errorf("route: encode report: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("route: report request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(SignatureHeader, signReport(a.Key, body))
	req.Header.Set("User-Agent", "")
	client := a.Client
	if client == nil {
		client = &http.Client{Timeout: a.interval()}
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("route: send report: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("route: report refused: %s", resp.Status)
	}
	return nil
}

// clamp forces a Load into the ranges the router accepts (NaN → 0,
// ratios into [0, 1], rates into [0, 1e15]), so that a faulty Sample hook
// cannot stop the edge from reporting at all.
func (l *Load) clamp() {
	l.Active = min(max(l.Active, 0), maxActive)
	fix := func(v *float64, hi float64) {
		if math.IsNaN(*v) || *v < 0 {
			*v = 0
		}
		*v = min(*v, hi)
	}
	fix(&l.RequestsPerSecond, maxRate)
	fix(&l.BytesPerSecond, maxRate)
	fix(&l.ErrorRatio, 1)
	fix(&l.HitRatio, 1)
}

// sample turns the meter's counters into a Load. a.mu must be held.
func (a *Agent) sample(now time.Time) Load {
	s := a.meter.Snapshot()
	l := Load{Active: max(s.Active, 0)}
	if !a.lastTime.IsZero() {
		if secs := now.Sub(a.lastTime).Seconds(); secs > 0 {
			reqs := s.Requests - a.last.Requests
			l.RequestsPerSecond = float64(reqs) / secs
			l.BytesPerSecond = float64(s.Bytes-a.last.Bytes) / secs
			if reqs > 0 {
				l.ErrorRatio = min(float64(s.Errors-a.last.Errors)/float64(reqs), 1)
			}
		}
	}
	a.last, a.lastTime = s, now
	return l
}

// Meter counts in-flight requests, finished requests, response body bytes
// and 5xx responses of the handlers it wraps. The zero value is ready; a
// Meter is safe for concurrent use. [Agent] embeds one.
type Meter struct {
	active                atomic.Int64
	requests, bytes, errs atomic.Uint64
}

// MeterSnapshot is a point-in-time copy of a [Meter]'s counters. All but
// Active are cumulative.
type MeterSnapshot struct {
	Active   int64
	Requests uint64
	Bytes    uint64
	Errors   uint64
}

// Snapshot returns the current counters.
func (m *Meter) Snapshot() MeterSnapshot {
	return MeterSnapshot{
		Active:   m.active.Load(),
		Requests: m.requests.Load(),
		Bytes:    m.bytes.Load(),
		Errors:   m.errs.Load(),
	}
}

// Middleware returns h wrapped so that m counts its requests. A request that
// panics is counted as an error.
func (m *Meter) Middleware(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.active.Add(1)
		mw := &rwrec.Writer{ResponseWriter: w, OnWrite: func(n int64) { m.bytes.Add(uint64(n)) }}
		returned := false
		defer func() {
			m.active.Add(-1)
			m.requests.Add(1)
			if !returned || mw.Status >= 500 { // !returned: h panicked
				m.errs.Add(1)
			}
		}()
		h.ServeHTTP(mw, r)
		returned = true
	})
}
