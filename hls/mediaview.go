package hls

import (
	"bytes"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
)

// mediaView is what a Tester player knows of a media playlist: its
// segments with their LL-HLS parts and program date-times, the parts of
// the segment in progress, the preload hint and the server's LL-HLS
// controls. Durations are in seconds.
type mediaView struct {
	live         bool
	td           float64 // EXT-X-TARGETDURATION
	segs         []viewSeg
	trailing     []viewPart // parts of segment lastMSN()+1, in progress
	hint         string     // EXT-X-PRELOAD-HINT TYPE=PART URI, without byte range; "" if none
	init         []string
	partTarget   float64 // EXT-X-PART-INF PART-TARGET; 0 without LL-HLS
	partHoldBack float64 // EXT-X-SERVER-CONTROL PART-HOLD-BACK
	holdBack     float64 // EXT-X-SERVER-CONTROL HOLD-BACK
	canBlock     bool    // CAN-BLOCK-RELOAD=YES
	canSkipUntil float64 // CAN-SKIP-UNTIL
	skipped      int     // EXT-X-SKIP SKIPPED-SEGMENTS of this (delta) playlist
	incomplete   bool    // a delta update whose skipped segments were not all known
}

type viewSeg struct {
	msn   int
	uri   string
	dur   float64
	parts []viewPart
	pdt   time.Time // program date-time of its start; zero if unknown
}

type viewPart struct {
	uri         string
	dur         float64
	independent bool
}

// parseView builds the view of the media playlist body fetched from base;
// pl is the same body parsed by ParsePlaylist. Playlists gohlslib rejects
// are viewed through pl: whole segments only.
func parseView(base *url.URL, body []byte, pl *Playlist) *mediaView {
	v := &mediaView{live: pl.Live, td: pl.TargetDuration.Seconds(), init: pl.Init}
	m := &playlist.Media{}
	if err := m.Unmarshal(bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))); err != nil {
		for _, s := range pl.Segments {
			v.segs = append(v.segs, viewSeg{msn: s.MSN, uri: s.URI, dur: s.Duration.Seconds()})
		}
		return v
	}
	if sc := m.ServerControl; sc != nil {
		v.canBlock = sc.CanBlockReload
		if sc.PartHoldBack != nil {
			v.partHoldBack = clampDuration(*sc.PartHoldBack).Seconds()
		}
		if sc.CanSkipUntil != nil {
			v.canSkipUntil = clampDuration(*sc.CanSkipUntil).Seconds()
		}
	}
	v.holdBack = holdBack(body)
	v.partTarget = pl.PartTarget.Seconds()
	if m.Skip != nil {
		v.skipped = max(m.Skip.SkippedSegments, 0)
	}
	parts := func(ps []*playlist.MediaPart) []viewPart {
		var out []viewPart
		for _, pt := range ps {
			u, ok := resolve(base, pt.URI)
			if !ok || pt.ByteRangeLength != nil {
				return nil // byte-range parts are not played as parts
			}
			out = append(out, viewPart{uri: u, dur: clampDuration(pt.Duration).Seconds(), independent: pt.Independent})
		}
		return out
	}
	first := max(m.MediaSequence, 0) + v.skipped
	var pdt time.Time
	for i, s := range m.Segments {
		seg := viewSeg{msn: first + i, dur: clampDuration(s.Duration).Seconds(), parts: parts(s.Parts)}
		switch {
		case s.DateTime != nil:
			seg.pdt = *s.DateTime
		case !pdt.IsZero():
			seg.pdt = pdt
		}
		if !seg.pdt.IsZero() {
			pdt = seg.pdt.Add(time.Duration(seg.dur * float64(time.Second)))
		}
		u, ok := resolve(base, s.URI)
		if !ok || seg.msn < first {
			continue
		}
		seg.uri = u
		v.segs = append(v.segs, seg)
	}
	v.trailing = parts(m.Parts)
	if h := m.PreloadHint; h != nil && h.ByteRangeLength == nil && h.ByteRangeStart == 0 {
		v.hint, _ = resolve(base, h.URI)
	}
	return v
}

// holdBack returns the HOLD-BACK attribute of EXT-X-SERVER-CONTROL, which
// gohlslib does not parse.
func holdBack(body []byte) float64 {
	for line := range strings.Lines(string(body)) {
		attrs, ok := strings.CutPrefix(strings.TrimRight(line, "\r\n"), "#EXT-X-SERVER-CONTROL:")
		if !ok {
			continue
		}
		for a := range strings.SplitSeq(attrs, ",") {
			if k, val, _ := strings.Cut(a, "="); strings.TrimSpace(k) == "HOLD-BACK" {
				f, err := strconv.ParseFloat(val, 64)
				if err == nil {
					return min(secondsDuration(f), maxDuration).Seconds()
				}
			}
		}
	}
	return 0
}

// merge completes a delta update with the skipped segments of old (the
// view it updates). It marks v incomplete when old lacked some of them.
func (v *mediaView) merge(old *mediaView) {
	if v.skipped == 0 || len(v.segs) == 0 {
		return
	}
	from, to := v.segs[0].msn-v.skipped, v.segs[0].msn
	var kept []viewSeg
	if old != nil {
		for _, s := range old.segs {
			if s.msn >= from && s.msn < to {
				kept = append(kept, s)
			}
		}
	}
	v.incomplete = len(kept) != v.skipped
	v.segs = append(kept, v.segs...)
}

func (v *mediaView) firstMSN() int {
	if len(v.segs) == 0 {
		return 0
	}
	return v.segs[0].msn
}

// lastMSN returns the MSN of the last complete segment, or -1.
func (v *mediaView) lastMSN() int {
	if len(v.segs) == 0 {
		return -1
	}
	return v.segs[len(v.segs)-1].msn
}

func (v *mediaView) seg(msn int) (viewSeg, bool) {
	if i := msn - v.firstMSN(); len(v.segs) > 0 && i >= 0 && i < len(v.segs) && v.segs[i].msn == msn {
		return v.segs[i], true
	}
	for _, s := range v.segs {
		if s.msn == msn {
			return s, true
		}
	}
	return viewSeg{}, false
}

// hasParts reports whether the playlist lists LL-HLS parts.
func (v *mediaView) hasParts() bool {
	if len(v.trailing) > 0 {
		return true
	}
	for _, s := range v.segs {
		if len(s.parts) > 0 {
			return true
		}
	}
	return false
}

// parts returns the listed parts of segment msn: those of a complete
// segment, or of the segment in progress.
func (v *mediaView) parts(msn int) (ps []viewPart, complete bool) {
	if s, ok := v.seg(msn); ok {
		return s.parts, true
	}
	if msn == v.lastMSN()+1 {
		return v.trailing, false
	}
	return nil, false
}

// edge returns the media position of the end of the playlist (the last
// part listed, or the last segment), on the timeline tl.
func (v *mediaView) edge(tl *timeline) (float64, bool) {
	last := v.lastMSN()
	start, ok := tl.start(last)
	if !ok {
		return 0, false
	}
	s, _ := v.seg(last)
	e := start + s.dur
	for _, p := range v.trailing {
		e += p.dur
	}
	return e, true
}

// directive returns the delivery directives of the blocking reload for
// the next update, as hls.js forms them: the part after the last part
// listed when the playlist has parts (and parts are wanted), else the
// segment after the last one.
func (v *mediaView) directive(withParts bool) (msn, part int) {
	last := v.lastMSN()
	switch {
	case withParts && len(v.trailing) > 0:
		return last + 1, len(v.trailing)
	case withParts && v.hasParts():
		return last + 1, 0
	}
	return last + 1, -1
}

// timeline maps MSNs to media positions (seconds) consistently across
// playlist reloads and renditions: the first segment seen starts at 0.
type timeline struct {
	starts  map[int]float64
	pdtBase time.Time // program date-time of position 0; zero if unknown
}

func (tl *timeline) start(msn int) (float64, bool) {
	s, ok := tl.starts[msn]
	return s, ok
}

// learn adds the segments of v, anchored on a segment already known (or
// at 0 for the first view), and the program date-time base.
func (tl *timeline) learn(v *mediaView) {
	if len(v.segs) == 0 {
		return
	}
	if tl.starts == nil {
		tl.starts = map[int]float64{v.segs[0].msn: 0}
	}
	anchor := -1
	for i, s := range v.segs {
		if _, ok := tl.starts[s.msn]; ok {
			anchor = i
			break
		}
	}
	if anchor < 0 {
		// No overlap (a gap after a long stall): continue after the
		// latest known segment as if the gap were of target durations.
		latest, at := -1, 0.0
		for msn, st := range tl.starts {
			if msn > latest {
				latest, at = msn, st
			}
		}
		tl.starts[v.segs[0].msn] = at + float64(v.segs[0].msn-latest)*v.td
		anchor = 0
	}
	for i := anchor + 1; i < len(v.segs); i++ {
		tl.starts[v.segs[i].msn] = tl.starts[v.segs[i-1].msn] + v.segs[i-1].dur
	}
	for i := anchor - 1; i >= 0; i-- {
		tl.starts[v.segs[i].msn] = tl.starts[v.segs[i+1].msn] - v.segs[i].dur
	}
	if tl.pdtBase.IsZero() {
		for _, s := range v.segs {
			if !s.pdt.IsZero() {
				tl.pdtBase = s.pdt.Add(-time.Duration(tl.starts[s.msn] * float64(time.Second)))
				break
			}
		}
	}
	// Bound the map: forget segments far behind this playlist.
	if len(tl.starts) > 4*len(v.segs)+64 {
		for msn := range tl.starts {
			if msn < v.segs[0].msn-len(v.segs) {
				delete(tl.starts, msn)
			}
		}
	}
}
