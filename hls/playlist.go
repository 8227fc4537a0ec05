package hls

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
)

// maxURILength bounds the URIs this package remembers or returns; longer
// URIs in a playlist are ignored.
const maxURILength = 2048

// maxDuration bounds every duration read from a playlist, so hostile values
// (huge, negative, NaN) cannot overflow TTL arithmetic.
const maxDuration = 24 * time.Hour

// Playlist summarises a parsed HLS playlist: a multivariant (master)
// playlist or a media playlist. URIs are resolved against the URL the
// playlist was fetched from.
type Playlist struct {
	// Master is true for a multivariant playlist; then Variants and
	// Renditions are set and the media fields are zero.
	Master bool

	// Variants are the EXT-X-STREAM-INF entries of a master playlist.
	Variants []Variant
	// Renditions are the URIs of EXT-X-MEDIA renditions (alternative audio,
	// subtitles) of a master playlist.
	Renditions []string

	// TargetDuration is EXT-X-TARGETDURATION.
	TargetDuration time.Duration
	// Live is true unless the playlist has EXT-X-ENDLIST or
	// EXT-X-PLAYLIST-TYPE:VOD: it may still change.
	Live bool
	// MediaSequence is EXT-X-MEDIA-SEQUENCE, the media sequence number (MSN)
	// of the first segment: Segments[0], unless the playlist is a delta
	// update whose EXT-X-SKIP replaced the first segments.
	MediaSequence int
	// Segments are the complete segments, in order.
	Segments []Segment
	// Init lists the EXT-X-MAP URIs (initialisation sections).
	Init []string
	// Keys lists the EXT-X-KEY URIs.
	Keys []string
	// Parts lists the EXT-X-PART URIs (LL-HLS partial segments), including
	// the parts of the segment in progress, and the EXT-X-PRELOAD-HINT URI.
	Parts []string
	// PreloadHint is the EXT-X-PRELOAD-HINT URI of type PART (also the
	// last of Parts), empty if none.
	PreloadHint string
	// PartTarget is EXT-X-PART-INF PART-TARGET, zero without LL-HLS.
	PartTarget time.Duration
	// CanBlockReload is EXT-X-SERVER-CONTROL CAN-BLOCK-RELOAD=YES.
	CanBlockReload bool
}

// Variant is one EXT-X-STREAM-INF entry of a master playlist.
type Variant struct {
	URI        string // absolute
	Bandwidth  int    // BANDWIDTH, bits per second
	Resolution string // RESOLUTION, e.g. "1280x720", may be empty
	Codecs     []string
}

// Segment is one media segment of a media playlist.
type Segment struct {
	URI      string        // absolute
	Duration time.Duration // EXTINF
	MSN      int           // media sequence number
}

// ErrNotPlaylist is returned by [ParsePlaylist] for input that is not an
// HLS playlist at all (no #EXTM3U header).
var ErrNotPlaylist = errors.New("hls: not a playlist")

// ParsePlaylist parses an HLS playlist fetched from base (which may be nil:
// URIs are then left as written). It parses with gohlslib's playlist
// package; when that rejects a playlist which still carries the #EXTM3U
// header, a tolerant line scan recovers what matters for caching
// (master/media, target duration, live/VOD) and the error is nil. Input
// without the header returns [ErrNotPlaylist].
//
// ParsePlaylist does not bound its input; callers reading from the network
// limit it first (see [Policy.MaxPlaylistBytes]).
func ParsePlaylist(base *url.URL, body []byte) (*Playlist, error) {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")) // UTF-8 BOM
	if !bytes.HasPrefix(body, []byte("#EXTM3U")) {
		return nil, ErrNotPlaylist
	}
	pl, err := playlist.Unmarshal(body)
	if err != nil {
		return scanPlaylist(base, body)
	}
	switch pl := pl.(type) {
	case *playlist.Multivariant:
		return fromMultivariant(base, pl), nil
	case *playlist.Media:
		return fromMedia(base, pl), nil
	}
	return scanPlaylist(base, body)
}

func fromMultivariant(base *url.URL, m *playlist.Multivariant) *Playlist {
	p := &Playlist{Master: true}
	for _, v := range m.Variants {
		u, ok := resolve(base, v.URI)
		if !ok {
			continue
		}
		p.Variants = append(p.Variants, Variant{URI: u, Bandwidth: max(v.Bandwidth, 0), Resolution: v.Resolution, Codecs: v.Codecs})
	}
	for _, r := range m.Renditions {
		if r.URI == nil {
			continue
		}
		if u, ok := resolve(base, *r.URI); ok {
			p.Renditions = append(p.Renditions, u)
		}
	}
	return p
}

func fromMedia(base *url.URL, m *playlist.Media) *Playlist {
	p := &Playlist{
		TargetDuration: clampDuration(time.Duration(m.TargetDuration) * time.Second),
		MediaSequence:  max(m.MediaSequence, 0),
	}
	p.Live = !m.Endlist && (m.PlaylistType == nil || *m.PlaylistType != playlist.MediaPlaylistTypeVOD)
	if m.ServerControl != nil {
		p.CanBlockReload = m.ServerControl.CanBlockReload
	}
	if m.PartInf != nil {
		p.PartTarget = clampDuration(m.PartInf.PartTarget)
	}
	if m.Map != nil {
		if u, ok := resolve(base, m.Map.URI); ok {
			p.Init = append(p.Init, u)
		}
	}
	skipped := 0 // a delta update (EXT-X-SKIP) lists its segments after the skipped ones
	if m.Skip != nil {
		skipped = max(m.Skip.SkippedSegments, 0)
	}
	var lastKey string
	addParts := func(parts []*playlist.MediaPart) {
		for _, pt := range parts {
			if u, ok := resolve(base, pt.URI); ok {
				p.Parts = append(p.Parts, u)
			}
		}
	}
	for i, s := range m.Segments {
		if s.Key != nil && s.Key.URI != "" && s.Key.Method != playlist.MediaKeyMethodNone {
			if u, ok := resolve(base, s.Key.URI); ok && u != lastKey {
				p.Keys = append(p.Keys, u)
				lastKey = u
			}
		}
		addParts(s.Parts)
		u, ok := resolve(base, s.URI)
		if !ok {
			continue
		}
		msn := p.MediaSequence + skipped + i
		if msn < p.MediaSequence { // overflow
			break
		}
		p.Segments = append(p.Segments, Segment{URI: u, Duration: clampDuration(s.Duration), MSN: msn})
	}
	addParts(m.Parts)
	if m.PreloadHint != nil {
		if u, ok := resolve(base, m.PreloadHint.URI); ok {
			p.Parts = append(p.Parts, u)
			p.PreloadHint = u
		}
	}
	return p
}

// scanPlaylist is the tolerant fallback: it recognises the tags that decide
// caching and ignores everything else.
func scanPlaylist(base *url.URL, body []byte) (*Playlist, error) {
	p := &Playlist{Live: true}
	media := false
	for line := range strings.Lines(string(body)) {
		line = strings.TrimRight(line, "\r\n")
		switch {
		case strings.HasPrefix(line, "#EXT-X-STREAM-INF:"):
			p.Master = true
		case strings.HasPrefix(line, "#EXT-X-TARGETDURATION:"):
			media = true
			v := strings.TrimSpace(line[len("#EXT-X-TARGETDURATION:"):])
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				p.TargetDuration = secondsDuration(f)
			}
		case strings.HasPrefix(line, "#EXTINF:"):
			media = true
		case line == "#EXT-X-ENDLIST", line == "#EXT-X-PLAYLIST-TYPE:VOD":
			media = true
			p.Live = false
		case strings.HasPrefix(line, "#EXT-X-SERVER-CONTROL:") && strings.Contains(line, "CAN-BLOCK-RELOAD=YES"):
			p.CanBlockReload = true
		}
	}
	switch {
	case p.Master && !media:
		p.Live = false
		return p, nil
	case media:
		p.Master = false
		return p, nil
	}
	return nil, fmt.Errorf("hls: playlist without variants or segments")
}

// resolve resolves ref against base and returns the absolute URI; URIs that
// are empty, too long or unparsable are dropped.
func resolve(base *url.URL, ref string) (string, bool) {
	ref = strings.TrimSpace(ref)
	if ref == "" || len(ref) > maxURILength {
		return "", false
	}
	if base == nil {
		return ref, true
	}
	u, err := base.Parse(ref)
	if err != nil {
		return "", false
	}
	s := u.String()
	return s, len(s) <= maxURILength
}

func clampDuration(d time.Duration) time.Duration {
	if d < 0 {
		return 0
	}
	return min(d, maxDuration)
}

func secondsDuration(f float64) time.Duration {
	if math.IsNaN(f) || f <= 0 {
		return 0
	}
	if f >= maxDuration.Seconds() {
		return maxDuration
	}
	return time.Duration(f * float64(time.Second))
}
