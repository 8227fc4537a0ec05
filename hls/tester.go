package hls

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
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
// A live stream starts three segments from the end (HOLD-BACK, three
// target durations, as the HLS specification recommends). A live LL-HLS
// stream (EXT-X-PART-INF with parts listed) is played in low-latency mode,
// as hls.js (lowLatencyMode, its default) and Safari play it, unless
// NoLowLatency is set:
//
//   - the player starts PART-HOLD-BACK (or three part targets) behind the
//     end of the last part listed, at the latest part marked INDEPENDENT
//     at or before that point (any part when none is marked); segments
//     whose parts are no longer listed are fetched whole;
//   - it then fetches parts, in order, and fetches a segment whole only
//     when its parts are not listed;
//   - when the next part is not listed yet it sends a blocking playlist
//     reload for it (_HLS_msn=M&_HLS_part=P: the part after the last one
//     listed, or part 0 of the next segment, as hls.js computes them),
//     with _HLS_skip=YES when the server advertises CAN-SKIP-UNTIL and its
//     last playlist is younger than half the skip boundary (the delta
//     update is merged with the segments it skipped), and at the same
//     time requests the EXT-X-PRELOAD-HINT part, which the server holds
//     until it exists.
//
// Any live playlist with CAN-BLOCK-RELOAD=YES is reloaded with blocking
// requests (_HLS_msn only, outside low-latency mode) instead of every half
// target duration. For live streams the report gives the latency: how far
// the playhead is behind the live edge (the end of the last playlist plus
// the time since it arrived, as hls.js computes its latency), and behind
// the wall clock according to EXT-X-PROGRAM-DATE-TIME, against the target
// (PART-HOLD-BACK in low-latency mode, else HOLD-BACK or three target
// durations).
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

	// NoLowLatency plays LL-HLS streams as a player without low-latency
	// mode does: whole segments, three target durations from the end,
	// blocking reloads without _HLS_part. If false, LL-HLS streams are
	// played from parts (see above).
	NoLowLatency bool

	// CMCD makes the players send Common Media Client Data (CTA-5004)
	// with every request, as hls.js does with its CMCD controller: a
	// session id per player, the object type, bitrate and duration, the
	// buffer length, the measured throughput, start-up urgency, and the
	// next object the player will request (nor, relative to the request).
	// If zero (CMCDOff), none is sent.
	CMCD CMCDMode

	// Now returns the current time, against which the program date-times
	// of a live stream are compared. If nil, time.Now; against an origin
	// on a scaled clock, pass that clock.
	Now func() time.Time

	// Logger receives per-player progress at Debug level. If nil, logs are
	// discarded.
	Logger *slog.Logger
}

// CMCDMode is how a [Tester]'s players send CMCD.
type CMCDMode uint8

// CMCD transmission modes of CTA-5004.
const (
	CMCDOff     CMCDMode = iota // no CMCD
	CMCDQuery                   // a CMCD query parameter
	CMCDHeaders                 // the CMCD-Object, -Request, -Session and -Status headers
)

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

	// Live streams only (see [Tester]); latencies in media seconds.
	LowLatency      bool            `json:"low_latency,omitempty"`       // played parts (LL-HLS)
	TargetLatency   float64         `json:"target_latency_s,omitempty"`  // PART-HOLD-BACK, HOLD-BACK or 3 target durations
	Latency         *Dist           `json:"latency_s,omitempty"`         // behind the live edge, sampled at every playlist and media object
	ProgramLatency  *Dist           `json:"program_latency_s,omitempty"` // Now − program date-time of the playhead
	Reloads         int             `json:"reloads,omitempty"`           // media playlist reloads (after the first load)
	BlockingReloads int             `json:"blocking_reloads,omitempty"`  // of which with _HLS_msn
	DeltaUpdates    int             `json:"delta_updates,omitempty"`     // reloads answered with EXT-X-SKIP
	Parts           int             `json:"parts,omitempty"`             // LL-HLS parts fetched, hints included
	Hints           int             `json:"hints,omitempty"`             // parts fetched from EXT-X-PRELOAD-HINT
	HintErrors      int             `json:"hint_errors,omitempty"`       // hinted parts that failed (then fetched once listed)
	LatencySamples  []LatencySample `json:"latency_samples,omitempty"`

	Segments []SegmentStat `json:"segments"`
	Err      string        `json:"error,omitempty"` // why the session ended early
}

// LatencySample is one latency measurement of a live player.
type LatencySample struct {
	Time    float64 `json:"t_s"`                 // since the test started (wall)
	Latency float64 `json:"latency_s"`           // behind the live edge (media)
	Program float64 `json:"program_s,omitempty"` // behind the program date-time, if known
}

// SegmentStat is one segment (or LL-HLS part) download.
type SegmentStat struct {
	Player      int     `json:"player"`
	MSN         int     `json:"msn"`
	Part        int     `json:"part"`           // index of the LL-HLS part in segment MSN; -1 for a whole segment
	Hint        bool    `json:"hint,omitempty"` // a preload-hinted part: requested before it existed, so its TTFB includes the wait; left out of the TTFB, download and ratio distributions
	Rendition   int     `json:"rendition"`      // 1 = lowest bandwidth; 0 for a media playlist URL
	Path        string  `json:"path"`           // URL path, without the query
	Start       float64 `json:"start_s"`        // request time since the test started (wall)
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

	// Live streams only: over all players' samples.
	TargetLatency   float64 `json:"target_latency_s,omitempty"`
	Latency         *Dist   `json:"latency_s,omitempty"`
	ProgramLatency  *Dist   `json:"program_latency_s,omitempty"`
	BlockingReloads int     `json:"blocking_reloads,omitempty"`
	Parts           int     `json:"parts,omitempty"`
	Hints           int     `json:"hints,omitempty"`
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

func (t *Tester) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
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
	plURL    string
	inits    map[string]bool
	estimate float64 // throughput estimate, bits/s (EWMA)

	// The media playlist and the stream's timeline.
	view   *mediaView
	viewAt time.Time // when view arrived
	tl     timeline
	ll     bool // playing parts (LL-HLS low-latency mode)

	// Media positions (seconds on tl): where the buffer starts, and how
	// much of segment curMSN was buffered as parts.
	headSet       bool
	headStart     float64
	curMSN        int
	curDone       float64
	lastDirective [2]int

	// Playback model, in media seconds.
	sessionStart time.Time
	started      bool
	pos, buf     float64
	lastT        time.Time
	stalled      bool
	stallStart   time.Time
	stalls       []float64
	startup      float64
	latency      []float64
	program      []float64

	sid string // CMCD session id

	rep PlayerReport
}

// position is where a player is in the stream: a segment, and the part
// within it in low-latency mode (-1 for a whole segment).
type position struct{ msn, part int }

// mediaObject is a segment or part to fetch.
type mediaObject struct {
	uri  string
	dur  float64 // seconds of media it adds to the buffer
	at   float64 // its start on the timeline
	part int     // -1 for a whole segment
}

// maxLatencySamples bounds the samples a player keeps for the report.
const maxLatencySamples = 10_000

func (p *player) run(ctx context.Context) PlayerReport {
	p.rep = PlayerReport{Player: p.id, Dispositions: map[string]int{}}
	p.inits = map[string]bool{}
	p.sessionStart = time.Now()
	p.curMSN = -1
	if p.t.CMCD != CMCDOff {
		var b [8]byte
		rand.Read(b[:])
		p.sid = fmt.Sprintf("%x-%d", b, p.id)
	}
	if err := p.play(ctx); err != nil {
		p.rep.Err = err.Error()
	}
	p.finish(time.Now())
	return p.rep
}

func (p *player) play(ctx context.Context) error {
	pl, body, final, err := p.fetchPlaylist(ctx, p.base.String())
	if err != nil {
		return err
	}
	p.plURL = p.base.String()
	if pl.Master {
		if len(pl.Variants) == 0 {
			return errors.New("master playlist without variants")
		}
		p.variants = slices.Clone(pl.Variants)
		slices.SortStableFunc(p.variants, func(a, b Variant) int { return a.Bandwidth - b.Bandwidth })
		if r := p.t.Rendition; r > 0 {
			p.cur = min(r, len(p.variants)) - 1
		}
		p.plURL = p.variants[p.cur].URI
		if pl, body, final, err = p.fetchPlaylist(ctx, p.plURL); err != nil {
			return err
		}
		if pl.Master {
			return errors.New("variant is a master playlist")
		}
	}
	p.setView(final, body, pl)
	if len(p.view.segs) == 0 {
		return errors.New("media playlist without segments")
	}
	v := p.view
	p.ll = !p.t.NoLowLatency && v.live && v.partTarget > 0 && v.hasParts()
	p.rep.LowLatency = p.ll
	limit := p.t.Duration.Seconds()
	if limit <= 0 && v.live {
		limit = DefaultLiveDuration.Seconds()
	}
	next := p.startPosition()
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
		next = p.normalize(next)
		if next.part <= 0 {
			if err := p.adapt(ctx); err != nil {
				return err
			}
			next = p.normalize(next)
		}
		if obj, ok := p.object(next); ok {
			if err := p.fetchInit(ctx); err != nil {
				return err
			}
			if err := p.fetchMedia(ctx, next, obj); err != nil {
				return err
			}
			next = p.after(next, obj)
			continue
		}
		switch {
		case next.msn < p.view.firstMSN():
			next = position{p.view.firstMSN(), p.startPart()} // fell out of the live window: skip ahead
			continue
		case !p.view.live:
			return nil // end of the stream
		}
		var err error
		if next, err = p.reload(ctx, next); err != nil {
			return err
		}
	}
}

// startPart is the part index a segment is started at.
func (p *player) startPart() int {
	if p.ll {
		return 0
	}
	return -1
}

// startPosition applies the start rules of the Tester doc.
func (p *player) startPosition() position {
	v := p.view
	switch {
	case !v.live:
		return position{v.firstMSN(), p.startPart()}
	case !p.ll:
		p.rep.TargetLatency = v.holdBack
		if v.holdBack <= 0 {
			p.rep.TargetLatency = 3 * max(v.td, 1)
		}
		return position{v.segs[max(0, len(v.segs)-3)].msn, -1}
	}
	target := v.partHoldBack
	if target <= 0 {
		target = 3 * v.partTarget
	}
	p.rep.TargetLatency = target
	edge, _ := v.edge(&p.tl)
	want := edge - target
	// The latest independent part starting at or before want.
	marked := false
	for _, s := range v.segs {
		for _, pt := range s.parts {
			marked = marked || pt.independent
		}
	}
	for _, pt := range v.trailing {
		marked = marked || pt.independent
	}
	best, found := position{}, false
	consider := func(msn int, ps []viewPart) {
		at, ok := p.tl.start(msn)
		if !ok {
			return
		}
		for i, pt := range ps {
			if at > want+1e-9 {
				return
			}
			if pt.independent || !marked {
				best, found = position{msn, i}, true
			}
			at += pt.dur
		}
	}
	for _, s := range v.segs {
		consider(s.msn, s.parts)
	}
	consider(v.lastMSN()+1, v.trailing)
	if found {
		return best
	}
	// Before the parts listed: the segment containing want, whole.
	start := v.segs[0].msn
	for _, s := range v.segs {
		if at, ok := p.tl.start(s.msn); ok && at <= want {
			start = s.msn
		}
	}
	return position{start, 0}
}

// normalize moves a position past the end of a complete segment's parts
// to the next segment.
func (p *player) normalize(pos position) position {
	for pos.part > 0 {
		ps, complete := p.view.parts(pos.msn)
		if !complete || len(ps) == 0 || pos.part < len(ps) {
			break
		}
		pos = position{pos.msn + 1, p.startPart()}
	}
	return pos
}

// object returns the media object at pos, if the playlist lists it.
func (p *player) object(pos position) (mediaObject, bool) {
	v := p.view
	start, known := p.tl.start(pos.msn)
	if p.ll && pos.part >= 0 {
		ps, complete := v.parts(pos.msn)
		if pos.part < len(ps) {
			if !known {
				if pos.msn != v.lastMSN()+1 {
					return mediaObject{}, false
				}
				last, _ := v.seg(v.lastMSN())
				start = p.tl.starts[last.msn] + last.dur
			}
			for _, pt := range ps[:pos.part] {
				start += pt.dur
			}
			return mediaObject{uri: ps[pos.part].uri, dur: ps[pos.part].dur, at: start, part: pos.part}, true
		}
		if !complete || len(ps) > 0 {
			return mediaObject{}, false
		}
	}
	s, ok := v.seg(pos.msn)
	if !ok || !known {
		return mediaObject{}, false
	}
	o := mediaObject{uri: s.uri, dur: s.dur, at: start, part: -1}
	if pos.part > 0 && p.curMSN == pos.msn {
		// Parts of it were played and are no longer listed: the rest.
		o.dur, o.at = max(s.dur-p.curDone, 0), start+p.curDone
	}
	return o, true
}

// after returns the position following obj at pos.
func (p *player) after(pos position, obj mediaObject) position {
	if obj.part < 0 {
		return position{pos.msn + 1, p.startPart()}
	}
	return position{pos.msn, pos.part + 1}
}

// reload fetches the media playlist again: a blocking reload (and the
// preload hint, in low-latency mode) when the server can block, else after
// half a target duration. It returns the position to continue from (past
// the hinted part if that was fetched).
func (p *player) reload(ctx context.Context, next position) (position, error) {
	v := p.view
	u := p.plURL
	type hintResult struct {
		st  SegmentStat
		err error
	}
	var hint chan hintResult
	var hintURI string
	if v.canBlock {
		msn, part := v.directive(p.ll)
		if d := [2]int{msn, part}; d == p.lastDirective {
			// The last blocking reload did not advance the playlist: the
			// server ignores the directive; do not hammer it.
			if !sleepCtx(ctx, p.wall(p.pollInterval())) {
				return next, ctx.Err()
			}
		} else {
			p.lastDirective = d
		}
		age := time.Since(p.viewAt).Seconds() * p.speed
		skip := v.canSkipUntil > 0 && !v.incomplete && age < v.canSkipUntil/2
		u = withDirectives(u, msn, part, skip)
		p.rep.BlockingReloads++
		if p.ll && v.hint != "" && next == (position{msn, part}) {
			hintURI = v.hint
			hint = make(chan hintResult, 1)
			cm := p.cmcdMedia(hintURI, v.partTarget, "")
			go func() {
				st := SegmentStat{Player: p.id, MSN: msn, Part: part, Hint: true}
				_, _, err := p.try(ctx, hintURI, &st, cm)
				hint <- hintResult{st, err}
			}()
		}
	} else if !sleepCtx(ctx, p.wall(p.pollInterval())) {
		return next, ctx.Err()
	}
	pl, body, final, err := p.fetchPlaylist(ctx, u)
	var hr hintResult
	if hint != nil {
		hr = <-hint
	}
	if err != nil {
		return next, err
	}
	p.rep.Reloads++
	if !pl.Master {
		p.setView(final, body, pl)
	}
	if hint == nil {
		return next, nil
	}
	obj, listed := p.object(next)
	if hr.err != nil || !listed || obj.uri != hintURI {
		p.rep.HintErrors++
		if hr.err != nil && ctx.Err() == nil {
			p.t.logger().Debug("preload hint failed", "player", p.id, "path", hr.st.Path, "err", hr.err)
		}
		return next, ctx.Err()
	}
	p.recordMedia(hr.st, obj)
	return p.after(next, obj), nil
}

// pollInterval is the media time between reloads of a live playlist that
// cannot block: half a target duration (half a part target in
// low-latency mode).
func (p *player) pollInterval() float64 {
	if p.ll && p.view.partTarget > 0 {
		return p.view.partTarget / 2
	}
	if td := p.view.td; td > 0 {
		return td / 2
	}
	return 1
}

// withDirectives adds the LL-HLS delivery directives to a playlist URL,
// after its own query, in hls.js's order.
func withDirectives(u string, msn, part int, skip bool) string {
	q := "_HLS_msn=" + strconv.Itoa(msn)
	if part >= 0 {
		q += "&_HLS_part=" + strconv.Itoa(part)
	}
	if skip {
		q += "&_HLS_skip=YES"
	}
	base, frag, _ := strings.Cut(u, "#")
	_ = frag
	if strings.Contains(base, "?") {
		return base + "&" + q
	}
	return base + "?" + q
}

// setView makes body (fetched from final) the player's media playlist.
func (p *player) setView(final *url.URL, body []byte, pl *Playlist) {
	v := parseView(final, body, pl)
	v.merge(p.view)
	if v.skipped > 0 {
		p.rep.DeltaUpdates++
	}
	p.view, p.viewAt = v, time.Now()
	p.tl.learn(v)
	p.sampleLatency(p.viewAt)
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
	if want > p.cur && p.buf-p.pos < p.view.td {
		return nil
	}
	if want == p.cur {
		return nil
	}
	pl, body, final, err := p.fetchPlaylist(ctx, p.variants[want].URI)
	if err != nil {
		return err
	}
	if pl.Master || len(pl.Segments) == 0 {
		return nil
	}
	p.cur, p.plURL = want, p.variants[want].URI
	p.view = nil // a new rendition: no delta merge with the old one
	p.setView(final, body, pl)
	p.rep.Switches++
	p.t.logger().Debug("rendition switch", "player", p.id, "rendition", want+1)
	return nil
}

func (p *player) fetchInit(ctx context.Context) error {
	for _, u := range p.view.init {
		if p.inits[u] {
			continue
		}
		cm := p.cmcdBase("i")
		if _, _, err := p.get(ctx, u, nil, cm); err != nil {
			return err
		}
		p.inits[u] = true
	}
	return nil
}

// fetchPlaylist fetches and parses a playlist; it returns the body and
// the URL it came from (after redirects) too.
func (p *player) fetchPlaylist(ctx context.Context, u string) (*Playlist, []byte, *url.URL, error) {
	body, final, err := p.get(ctx, u, nil, p.cmcdBase("m"))
	if err != nil {
		return nil, nil, nil, err
	}
	pl, err := ParsePlaylist(final, body)
	if err != nil {
		return nil, nil, nil, err
	}
	return pl, body, final, nil
}

// fetchMedia fetches obj, the segment or part at pos, and buffers it.
func (p *player) fetchMedia(ctx context.Context, pos position, obj mediaObject) error {
	st := SegmentStat{Player: p.id, MSN: pos.msn, Part: obj.part}
	if _, _, err := p.get(ctx, obj.uri, &st, p.cmcdMedia(obj.uri, obj.dur, p.nextURI(p.after(pos, obj)))); err != nil {
		return err
	}
	if st.Download > 0 && !(p.ll && obj.part >= 0 && p.started) {
		// Parts near the live edge measure round trips, not throughput.
		bps := float64(st.Bytes*8) / st.Download
		if p.estimate == 0 {
			p.estimate = bps
		} else {
			p.estimate = 0.7*p.estimate + 0.3*bps
		}
	}
	p.recordMedia(st, obj)
	return nil
}

// recordMedia reports a fetched object and adds it to the buffer.
func (p *player) recordMedia(st SegmentStat, obj mediaObject) {
	now := time.Now()
	st.Duration = obj.dur
	if p.variants != nil {
		st.Rendition = p.cur + 1
	}
	if st.Duration > 0 {
		st.Ratio = st.Download * p.speed / st.Duration
	}
	if obj.part >= 0 {
		p.rep.Parts++
		if st.Hint {
			p.rep.Hints++
		}
		if st.MSN != p.curMSN {
			p.curMSN, p.curDone = st.MSN, 0
		}
		p.curDone += obj.dur
	}
	p.rep.Segments = append(p.rep.Segments, st)
	if st.Disposition != "" {
		p.rep.Dispositions[st.Disposition]++
	}
	// Keep the buffer on the timeline: a jump (after falling out of the
	// live window) moves the playhead with it.
	if !p.headSet {
		p.headStart, p.headSet = obj.at, true
	} else if gap := obj.at - (p.headStart + p.buf); math.Abs(gap) > 1e-6 {
		p.headStart += gap
	}
	p.addBuffer(now, st.Duration)
	p.sampleLatency(now)
}

// sampleLatency records the latency of a live player that is playing.
func (p *player) sampleLatency(now time.Time) {
	if !p.started || p.view == nil || !p.view.live || !p.headSet {
		return
	}
	p.advance(now)
	edge, ok := p.view.edge(&p.tl)
	if !ok {
		return
	}
	head := p.headStart + p.pos
	s := LatencySample{Time: now.Sub(p.begin).Seconds(), Latency: edge + now.Sub(p.viewAt).Seconds()*p.speed - head}
	p.latency = append(p.latency, s.Latency)
	if !p.tl.pdtBase.IsZero() {
		s.Program = p.t.now().Sub(p.tl.pdtBase).Seconds() - head
		p.program = append(p.program, s.Program)
	}
	if len(p.rep.LatencySamples) < maxLatencySamples {
		p.rep.LatencySamples = append(p.rep.LatencySamples, s)
	}
}

// get fetches u, retrying failures, and returns the body (nil when st is
// set: segment bodies are counted, not kept) and the final URL.
func (p *player) get(ctx context.Context, u string, st *SegmentStat, cm *CMCD) ([]byte, *url.URL, error) {
	var lastErr error
	for attempt := 0; attempt <= orDefault(p.t.Retries, 3); attempt++ {
		if attempt > 0 && !sleepCtx(ctx, min(time.Duration(attempt)*250*time.Millisecond, 2*time.Second)) {
			return nil, nil, ctx.Err()
		}
		body, final, err := p.try(ctx, u, st, cm)
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

func (p *player) try(ctx context.Context, u string, st *SegmentStat, cm *CMCD) ([]byte, *url.URL, error) {
	req, err := newRequest(ctx, u, p.base, p.t.Host, p.t.Header)
	if err != nil {
		return nil, nil, err
	}
	if cm != nil {
		switch p.t.CMCD {
		case CMCDQuery:
			if req.URL.RawQuery != "" {
				req.URL.RawQuery += "&"
			}
			req.URL.RawQuery += cm.Query()
		case CMCDHeaders:
			for k, v := range cm.headers() {
				req.Header[k] = v
			}
		}
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
		if s.Hint {
			continue
		}
		ttfb, dl, ratio = append(ttfb, s.TTFB), append(dl, s.Download), append(ratio, s.Ratio)
		bytes += s.Bytes
		secs += s.Download
	}
	r.TTFB, r.Download, r.Ratio = dist(ttfb), dist(dl), dist(ratio)
	if secs > 0 {
		r.Throughput = float64(bytes*8) / secs
	}
	r.Latency, r.ProgramLatency = distOrNil(p.latency), distOrNil(p.program)
}

// distOrNil is dist(v), or nil without values.
func distOrNil(v []float64) *Dist {
	if len(v) == 0 {
		return nil
	}
	d := dist(v)
	return &d
}

func summarize(ps []PlayerReport) Summary {
	s := Summary{Players: len(ps), Dispositions: map[string]int{}}
	var startup, ttfb, dl, ratio, latency, program []float64
	var played float64
	for _, p := range ps {
		s.TargetLatency = max(s.TargetLatency, p.TargetLatency)
		s.BlockingReloads += p.BlockingReloads
		s.Parts += p.Parts
		s.Hints += p.Hints
		for _, l := range p.LatencySamples {
			latency = append(latency, l.Latency)
			if l.Program != 0 {
				program = append(program, l.Program)
			}
		}
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
			if !seg.Hint {
				ttfb, dl, ratio = append(ttfb, seg.TTFB), append(dl, seg.Download), append(ratio, seg.Ratio)
			}
		}
	}
	if played+s.StallTotal > 0 {
		s.StallRatio = s.StallTotal / (played + s.StallTotal)
	}
	s.Startup, s.TTFB, s.Download, s.Ratio = dist(startup), dist(ttfb), dist(dl), dist(ratio)
	s.Latency, s.ProgramLatency = distOrNil(latency), distOrNil(program)
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

// cmcdBase returns the CMCD every request of p carries, with object type
// ot, or nil when the Tester sends none.
func (p *player) cmcdBase(ot string) *CMCD {
	if p.t.CMCD == CMCDOff {
		return nil
	}
	c := &CMCD{SessionID: p.sid, StreamingFormat: "h", ObjectType: ot, Startup: !p.started}
	if p.view != nil {
		c.StreamType = "v"
		if p.view.live {
			c.StreamType = "l"
		}
	}
	return c
}

// cmcdMedia returns the CMCD of a request for a media object of dur
// seconds at uri, announcing next (the next object's URI, or "").
func (p *player) cmcdMedia(uri string, dur float64, next string) *CMCD {
	c := p.cmcdBase("av")
	if c == nil {
		return nil
	}
	c.Duration = roundMillis(dur, 1)
	c.BufferLength = roundMillis(max(p.buf-p.pos, 0), 100)
	c.MeasuredThroughput = int(p.estimate/100_000) * 100 // kbit/s, to 100
	if p.variants != nil {
		c.Bitrate = p.variants[p.cur].Bandwidth / 1000
		c.TopBitrate = p.variants[len(p.variants)-1].Bandwidth / 1000
	}
	if next != "" {
		c.Next = []string{relativeRef(uri, next)}
	}
	return c
}

// nextURI is the URI of the object at pos, if the playlist lists it (or,
// in low-latency mode, hints it).
func (p *player) nextURI(pos position) string {
	pos = p.normalize(pos)
	if o, ok := p.object(pos); ok {
		return o.uri
	}
	if d := (position{}); p.ll && p.view.hint != "" {
		d.msn, d.part = p.view.directive(true)
		if d == pos {
			return p.view.hint
		}
	}
	return ""
}

func roundMillis(sec float64, step int64) time.Duration {
	ms := int64(sec*1000+float64(step)/2) / step * step
	return time.Duration(ms) * time.Millisecond
}

// relativeRef returns target relative to base (both absolute URLs), URL
// encoded as CTA-5004 asks of nor (like encodeURIComponent).
func relativeRef(base, target string) string {
	b, err1 := url.Parse(base)
	t, err2 := url.Parse(target)
	if err1 != nil || err2 != nil || b.Scheme != t.Scheme || b.Host != t.Host {
		return strings.ReplaceAll(url.QueryEscape(target), "+", "%20")
	}
	ref := t.EscapedPath()
	dir := b.EscapedPath()[:strings.LastIndex(b.EscapedPath(), "/")+1]
	if rest, ok := strings.CutPrefix(ref, dir); ok {
		ref = rest
	}
	if t.RawQuery != "" {
		ref += "?" + t.RawQuery
	}
	return strings.ReplaceAll(url.QueryEscape(ref), "+", "%20")
}
