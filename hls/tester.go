package hls

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Defaults of [Tester] fields.
const (
	DefaultBufferAhead  = 30 * time.Second
	DefaultLiveDuration = time.Minute
)

// Tester simulates players of an HLS stream and measures how it is
// delivered. Each player fetches the master (or media) playlist, then
// segments one after another like hls.js: it starts playback after the
// first segment (or StartupBuffer), keeps at most BufferAhead of media
// buffered, reloads live playlists when it runs out of listed segments and
// stalls when playback reaches the end of its buffer.
//
// Time can be scaled with Speed for tests: media then plays Speed times
// faster than real time. Network figures (TTFB, download time, throughput)
// are measured in wall-clock time; playback figures (startup, stalls) are
// given in media time, i.e. wall time × Speed. Against a live origin the
// origin's clock must run at the same speed.
//
// The zero value plays the whole of a VOD stream (or one minute of a live
// one) with one ABR player in real time. Fields may not change while Run
// runs. A Tester is safe for concurrent use.
type Tester struct {
	// Client sends the requests. If nil, http.DefaultClient. To test
	// through Tor, use a client whose transport dials through a SOCKS5
	// proxy (onion.Dialer).
	Client *http.Client

	// ClientFor, if set, returns the client of each player (numbered from
	// 1) instead of Client: through Tor, give each player its own circuit
	// (an isolation tag per player) to simulate distinct viewers.
	ClientFor func(player int) *http.Client

	// Host, if set, is sent as the Host header of every request, and
	// absolute playlist URIs naming that host are fetched from the URL
	// given to Run instead: to test one tier of a CDN by address.
	Host string

	// Header holds extra request headers (e.g. a User-Agent).
	Header http.Header

	// Players is the number of simultaneous players. If zero, 1.
	Players int

	// StartInterval separates the players' starts (wall time). If zero,
	// they all start at once.
	StartInterval time.Duration

	// Rendition fixes the rendition of a master playlist: 1 is the lowest
	// bandwidth, len(variants) the highest (larger values mean the
	// highest). If zero, a throughput-based ABR chooses, starting low.
	Rendition int

	// Duration is how much media each player plays. If zero, the whole
	// stream for VOD and DefaultLiveDuration for live streams.
	Duration time.Duration

	// BufferAhead is the most media a player keeps buffered. If zero,
	// DefaultBufferAhead (30s).
	BufferAhead time.Duration

	// StartupBuffer is the media a player buffers before it starts
	// playing. If zero, one segment.
	StartupBuffer time.Duration

	// Speed scales time: 10 plays media ten times faster than real time.
	// If zero, 1 (real time).
	Speed float64

	// Retries is how many times a player retries a failed request before
	// giving up its session. If zero, 3.
	Retries int

	// Logger receives per-player progress at Debug level. If nil, logs are
	// discarded.
	Logger *slog.Logger
}

// Report is the result of [Tester.Run]. Durations are in seconds.
type Report struct {
	Players []PlayerReport `json:"players"`
	Summary Summary        `json:"summary"`
}

// Dist summarises a distribution.
type Dist struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	Max float64 `json:"max"`
	// Over1 is the share of values above 1.0 (for ratios).
	Over1 float64 `json:"over_1,omitempty"`
}

// PlayerReport is one player's session.
type PlayerReport struct {
	Player       int            `json:"player"`
	Startup      float64        `json:"startup_s"`       // media time until playback started
	Played       float64        `json:"played_s"`        // media time played (buffered) in all
	Stalls       int            `json:"stalls"`          // rebuffering events after startup
	StallTotal   float64        `json:"stall_total_s"`   // media time spent stalled
	StallLongest float64        `json:"stall_longest_s"` // longest stall
	StallRatio   float64        `json:"stall_ratio"`     // stalled / (played + stalled)
	TTFB         Dist           `json:"ttfb_s"`          // segment time to first byte (wall)
	Download     Dist           `json:"download_s"`      // segment download time (wall)
	Ratio        Dist           `json:"ratio"`           // download time ÷ segment duration (scaled by Speed)
	Throughput   float64        `json:"throughput_bps"`  // segment bytes × 8 ÷ download time
	Switches     int            `json:"switches"`        // rendition changes
	Errors       int            `json:"errors"`          // failed requests (transport errors and non-2xx)
	Dispositions map[string]int `json:"dispositions,omitempty"`
	Segments     []SegmentStat  `json:"segments"`
	Err          string         `json:"error,omitempty"` // why the session ended early
}

// SegmentStat is one segment download.
type SegmentStat struct {
	Player      int     `json:"player"`
	MSN         int     `json:"msn"`
	Rendition   int     `json:"rendition"` // 1 = lowest bandwidth; 0 for a media playlist URL
	Path        string  `json:"path"`      // URL path, without the query
	Start       float64 `json:"start_s"`   // request time since the test started (wall)
	Duration    float64 `json:"duration_s"`
	TTFB        float64 `json:"ttfb_s"`
	Download    float64 `json:"download_s"`
	Ratio       float64 `json:"ratio"` // Download × Speed ÷ Duration
	Bytes       int64   `json:"bytes"`
	Status      int     `json:"status"`
	Disposition string  `json:"disposition,omitempty"` // from the last Cache-Status member
	CacheStatus string  `json:"cache_status,omitempty"`
}

// Summary aggregates all players.
type Summary struct {
	Players      int            `json:"players"`
	Segments     int            `json:"segments"`
	Startup      Dist           `json:"startup_s"`
	Stalls       int            `json:"stalls"`
	StallTotal   float64        `json:"stall_total_s"`
	StallLongest float64        `json:"stall_longest_s"`
	StallRatio   float64        `json:"stall_ratio"`
	TTFB         Dist           `json:"ttfb_s"`
	Download     Dist           `json:"download_s"`
	Ratio        Dist           `json:"ratio"`
	Throughput   float64        `json:"throughput_bps"` // mean of the players'
	Switches     int            `json:"switches"`
	Errors       int            `json:"errors"`
	Failed       int            `json:"failed_sessions"`
	Dispositions map[string]int `json:"dispositions,omitempty"`
}

// Run plays the stream at rawURL (a master or media playlist) with
// t.Players players and returns their report. It returns an error if every
// player failed without a segment, or if ctx ended (with the partial
// report); players that fail are reported with Err set.
func (t *Tester) Run(ctx context.Context, rawURL string) (*Report, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("hls: tester: invalid URL")
	}
	n := max(t.Players, 1)
	begin := time.Now()
	reports := make([]PlayerReport, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if i > 0 && t.StartInterval > 0 && !sleepCtx(ctx, time.Duration(i)*t.StartInterval) {
				reports[i] = PlayerReport{Player: i + 1, Err: ctx.Err().Error()}
				return
			}
			p := &player{t: t, id: i + 1, base: u, begin: begin, speed: t.speed(), client: t.client(i + 1)}
			reports[i] = p.run(ctx)
		})
	}
	wg.Wait()
	rep := &Report{Players: reports}
	rep.Summary = summarize(reports)
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("hls: tester: %w", err)
	}
	if rep.Summary.Segments == 0 && rep.Summary.Failed == n {
		return rep, fmt.Errorf("hls: tester: every player failed: %s", reports[0].Err)
	}
	return rep, nil
}

func (t *Tester) speed() float64 {
	if t.Speed <= 0 || math.IsNaN(t.Speed) || math.IsInf(t.Speed, 0) {
		return 1
	}
	return t.Speed
}

func (t *Tester) client(player int) *http.Client {
	if t.ClientFor != nil {
		if c := t.ClientFor(player); c != nil {
			return c
		}
	}
	if t.Client != nil {
		return t.Client
	}
	return http.DefaultClient
}

func (t *Tester) logger() *slog.Logger {
	if t.Logger != nil {
		return t.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// player is one simulated session.
type player struct {
	t      *Tester
	id     int
	base   *url.URL
	begin  time.Time
	speed  float64
	client *http.Client

	variants []Variant // sorted by bandwidth; nil for a media playlist URL
	cur      int       // index into variants
	pl       *Playlist
	plURL    string
	inits    map[string]bool
	estimate float64 // throughput estimate, bits/s (EWMA)

	// Playback model, in media seconds.
	sessionStart time.Time
	started      bool
	pos, buf     float64
	lastT        time.Time
	stalled      bool
	stallStart   time.Time
	stalls       []float64
	startup      float64

	rep PlayerReport
}

func (p *player) run(ctx context.Context) PlayerReport {
	p.rep = PlayerReport{Player: p.id, Dispositions: map[string]int{}}
	p.inits = map[string]bool{}
	p.sessionStart = time.Now()
	if err := p.play(ctx); err != nil {
		p.rep.Err = err.Error()
	}
	p.finish(time.Now())
	return p.rep
}

func (p *player) play(ctx context.Context) error {
	pl, err := p.fetchPlaylist(ctx, p.base.String())
	if err != nil {
		return err
	}
	if pl.Master {
		if len(pl.Variants) == 0 {
			return errors.New("master playlist without variants")
		}
		p.variants = slices.Clone(pl.Variants)
		slices.SortStableFunc(p.variants, func(a, b Variant) int { return a.Bandwidth - b.Bandwidth })
		if r := p.t.Rendition; r > 0 {
			p.cur = min(r, len(p.variants)) - 1
		}
		if pl, err = p.fetchPlaylist(ctx, p.variants[p.cur].URI); err != nil {
			return err
		}
		if pl.Master {
			return errors.New("variant is a master playlist")
		}
		p.plURL = p.variants[p.cur].URI
	} else {
		p.plURL = p.base.String()
	}
	p.pl = pl
	if len(pl.Segments) == 0 {
		return errors.New("media playlist without segments")
	}
	limit := p.t.Duration.Seconds()
	if limit <= 0 && pl.Live {
		limit = DefaultLiveDuration.Seconds()
	}
	next := pl.Segments[0].MSN
	if pl.Live {
		next = pl.Segments[max(0, len(pl.Segments)-3)].MSN // three segments from the end
	}
	ahead := orDefault(p.t.BufferAhead, DefaultBufferAhead).Seconds()
	for {
		if limit > 0 && p.buf >= limit {
			return nil
		}
		now := time.Now()
		p.advance(now)
		if p.started && p.buf-p.pos > ahead {
			if !sleepCtx(ctx, p.wall(p.buf-p.pos-ahead)) {
				return ctx.Err()
			}
			continue
		}
		if err := p.adapt(ctx); err != nil {
			return err
		}
		seg, ok := p.segment(next)
		if !ok {
			first := p.pl.Segments[0].MSN
			switch {
			case next < first:
				next = first // fell out of the live window: skip ahead
				continue
			case !p.pl.Live:
				return nil // end of the stream
			}
			td := p.pl.TargetDuration.Seconds()
			if td <= 0 {
				td = 2
			}
			if !sleepCtx(ctx, p.wall(td/2)) {
				return ctx.Err()
			}
			pl, err := p.fetchPlaylist(ctx, p.plURL)
			if err != nil {
				return err
			}
			if !pl.Master && len(pl.Segments) > 0 {
				p.pl = pl
			}
			continue
		}
		if err := p.fetchInit(ctx); err != nil {
			return err
		}
		if err := p.fetchSegment(ctx, seg); err != nil {
			return err
		}
		next++
	}
}

func (p *player) segment(msn int) (Segment, bool) {
	for _, s := range p.pl.Segments {
		if s.MSN == msn {
			return s, true
		}
	}
	return Segment{}, false
}

// adapt switches rendition when the throughput estimate says so: the
// highest variant whose bandwidth (× Speed) fits in 70% of the estimate,
// and never up while less than one segment is buffered.
func (p *player) adapt(ctx context.Context) error {
	if p.variants == nil || p.t.Rendition > 0 || p.estimate == 0 {
		return nil
	}
	want := 0
	for i, v := range p.variants {
		if float64(v.Bandwidth)*p.speed <= 0.7*p.estimate {
			want = i
		}
	}
	if want > p.cur && p.buf-p.pos < p.pl.TargetDuration.Seconds() {
		return nil
	}
	if want == p.cur {
		return nil
	}
	pl, err := p.fetchPlaylist(ctx, p.variants[want].URI)
	if err != nil {
		return err
	}
	if pl.Master || len(pl.Segments) == 0 {
		return nil
	}
	p.cur, p.pl, p.plURL = want, pl, p.variants[want].URI
	p.rep.Switches++
	p.t.logger().Debug("rendition switch", "player", p.id, "rendition", want+1)
	return nil
}

func (p *player) fetchInit(ctx context.Context) error {
	for _, u := range p.pl.Init {
		if p.inits[u] {
			continue
		}
		if _, _, err := p.get(ctx, u, nil); err != nil {
			return err
		}
		p.inits[u] = true
	}
	return nil
}

func (p *player) fetchPlaylist(ctx context.Context, u string) (*Playlist, error) {
	body, final, err := p.get(ctx, u, nil)
	if err != nil {
		return nil, err
	}
	pl, err := ParsePlaylist(final, body)
	if err != nil {
		return nil, err
	}
	return pl, nil
}

func (p *player) fetchSegment(ctx context.Context, s Segment) error {
	st := SegmentStat{Player: p.id, MSN: s.MSN, Duration: s.Duration.Seconds()}
	if p.variants != nil {
		st.Rendition = p.cur + 1
	}
	if _, _, err := p.get(ctx, s.URI, &st); err != nil {
		return err
	}
	now := time.Now()
	if st.Download > 0 {
		bps := float64(st.Bytes*8) / st.Download
		if p.estimate == 0 {
			p.estimate = bps
		} else {
			p.estimate = 0.7*p.estimate + 0.3*bps
		}
	}
	if st.Duration > 0 {
		st.Ratio = st.Download * p.speed / st.Duration
	}
	p.rep.Segments = append(p.rep.Segments, st)
	if st.Disposition != "" {
		p.rep.Dispositions[st.Disposition]++
	}
	p.addBuffer(now, st.Duration)
	return nil
}

// get fetches u, retrying failures, and returns the body (nil when st is
// set: segment bodies are counted, not kept) and the final URL.
func (p *player) get(ctx context.Context, u string, st *SegmentStat) ([]byte, *url.URL, error) {
	var lastErr error
	for attempt := 0; attempt <= orDefault(p.t.Retries, 3); attempt++ {
		if attempt > 0 && !sleepCtx(ctx, min(time.Duration(attempt)*250*time.Millisecond, 2*time.Second)) {
			return nil, nil, ctx.Err()
		}
		body, final, err := p.try(ctx, u, st)
		if err == nil {
			return body, final, nil
		}
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		p.rep.Errors++
		lastErr = err
	}
	return nil, nil, lastErr
}

func (p *player) try(ctx context.Context, u string, st *SegmentStat) ([]byte, *url.URL, error) {
	req, err := newRequest(ctx, u, p.base, p.t.Host, p.t.Header)
	if err != nil {
		return nil, nil, err
	}
	start := time.Now()
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("fetch %s: %w", req.URL.Path, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	ttfb := time.Since(start)
	var body []byte
	var n int64
	if st == nil {
		body, err = io.ReadAll(io.LimitReader(resp.Body, DefaultMaxPlaylistBytes+1))
		n = int64(len(body))
	} else {
		n, err = io.Copy(io.Discard, resp.Body)
	}
	if err == nil && resp.StatusCode/100 != 2 {
		err = fmt.Errorf("fetch %s: status %d", req.URL.Path, resp.StatusCode)
	}
	if st != nil {
		st.Path = req.URL.Path
		st.Start = start.Sub(p.begin).Seconds()
		st.TTFB = ttfb.Seconds()
		st.Download = time.Since(start).Seconds()
		st.Bytes, st.Status = n, resp.StatusCode
		st.CacheStatus = strings.Join(resp.Header.Values("Cache-Status"), ", ")
		st.Disposition = Disposition(st.CacheStatus)
	}
	if err != nil {
		return nil, nil, err
	}
	return body, resp.Request.URL, nil
}

// newRequest builds a GET for u; with a Host override, absolute URIs naming
// that host are redirected to base's scheme and host.
func newRequest(ctx context.Context, u string, base *url.URL, host string, h http.Header) (*http.Request, error) {
	target, err := url.Parse(u)
	if err != nil {
		return nil, fmt.Errorf("invalid URI: %w", err)
	}
	if host != "" && strings.EqualFold(target.Host, host) {
		target.Scheme, target.Host = base.Scheme, base.Host
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		return nil, err
	}
	for k, v := range h {
		req.Header[k] = slices.Clone(v)
	}
	if host != "" {
		req.Host = host
	}
	return req, nil
}

// Disposition returns the disposition reported by the last member of a
// Cache-Status header value (the cache nearest the client): "hit",
// "collapsed", "miss" (fwd=uri-miss or miss), "stale" or another fwd
// reason. It returns "" when there is no member.
func Disposition(cacheStatus string) string {
	if cacheStatus == "" {
		return ""
	}
	members := strings.Split(cacheStatus, ",")
	params := strings.Split(members[len(members)-1], ";")
	fwd := ""
	for _, prm := range params[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(prm), "=")
		switch strings.ToLower(k) {
		case "hit":
			return "hit"
		case "collapsed":
			return "collapsed"
		case "fwd":
			fwd = strings.Trim(v, `"`)
		}
	}
	switch fwd {
	case "uri-miss", "miss":
		return "miss"
	case "":
		return "unknown"
	}
	return fwd
}

// Playback model.

func (p *player) wall(media float64) time.Duration {
	return time.Duration(media / p.speed * float64(time.Second))
}

func (p *player) advance(now time.Time) {
	if !p.started {
		return
	}
	dt := now.Sub(p.lastT).Seconds() * p.speed
	p.lastT = now
	if p.stalled {
		return
	}
	if p.pos+dt >= p.buf {
		p.stalled = true
		p.stallStart = now.Add(-p.wall(p.pos + dt - p.buf))
		p.pos = p.buf
		return
	}
	p.pos += dt
}

func (p *player) addBuffer(now time.Time, d float64) {
	p.advance(now)
	p.buf += d
	startup := p.t.StartupBuffer.Seconds()
	switch {
	case !p.started && p.buf >= startup:
		p.started = true
		p.startup = now.Sub(p.sessionStart).Seconds() * p.speed
		p.lastT = now
	case p.stalled:
		p.stalls = append(p.stalls, now.Sub(p.stallStart).Seconds()*p.speed)
		p.stalled = false
	}
}

func (p *player) finish(now time.Time) {
	p.advance(now)
	if p.stalled && p.rep.Err != "" {
		p.stalls = append(p.stalls, now.Sub(p.stallStart).Seconds()*p.speed)
	}
	r := &p.rep
	r.Startup = p.startup
	r.Played = p.buf
	r.Stalls = len(p.stalls)
	for _, s := range p.stalls {
		r.StallTotal += s
		r.StallLongest = max(r.StallLongest, s)
	}
	if p.buf+r.StallTotal > 0 {
		r.StallRatio = r.StallTotal / (p.buf + r.StallTotal)
	}
	var ttfb, dl, ratio []float64
	var bytes int64
	var secs float64
	for _, s := range r.Segments {
		ttfb, dl, ratio = append(ttfb, s.TTFB), append(dl, s.Download), append(ratio, s.Ratio)
		bytes += s.Bytes
		secs += s.Download
	}
	r.TTFB, r.Download, r.Ratio = dist(ttfb), dist(dl), dist(ratio)
	if secs > 0 {
		r.Throughput = float64(bytes*8) / secs
	}
}

func summarize(ps []PlayerReport) Summary {
	s := Summary{Players: len(ps), Dispositions: map[string]int{}}
	var startup, ttfb, dl, ratio []float64
	var played float64
	for _, p := range ps {
		if p.Err != "" {
			s.Failed++
		}
		if len(p.Segments) > 0 {
			startup = append(startup, p.Startup)
		}
		s.Segments += len(p.Segments)
		s.Stalls += p.Stalls
		s.StallTotal += p.StallTotal
		s.StallLongest = max(s.StallLongest, p.StallLongest)
		played += p.Played
		s.Throughput += p.Throughput / float64(len(ps))
		s.Switches += p.Switches
		s.Errors += p.Errors
		for k, v := range p.Dispositions {
			s.Dispositions[k] += v
		}
		for _, seg := range p.Segments {
			ttfb, dl, ratio = append(ttfb, seg.TTFB), append(dl, seg.Download), append(ratio, seg.Ratio)
		}
	}
	if played+s.StallTotal > 0 {
		s.StallRatio = s.StallTotal / (played + s.StallTotal)
	}
	s.Startup, s.TTFB, s.Download, s.Ratio = dist(startup), dist(ttfb), dist(dl), dist(ratio)
	return s
}

func dist(v []float64) Dist {
	if len(v) == 0 {
		return Dist{}
	}
	v = slices.Clone(v)
	slices.Sort(v)
	q := func(f float64) float64 { return v[min(len(v)-1, int(math.Ceil(f*float64(len(v))))-1)] }
	d := Dist{P50: q(0.5), P95: q(0.95), Max: v[len(v)-1]}
	over := 0
	for _, x := range v {
		if x > 1 {
			over++
		}
	}
	d.Over1 = float64(over) / float64(len(v))
	return d
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
