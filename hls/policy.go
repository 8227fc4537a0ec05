package hls

import (
	"bytes"
	"compress/gzip"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/internal/lru"
	"github.com/onioncdn/onioncdn/internal/rfc9111"
)

// Default values of [Policy] fields.
const (
	DefaultSegmentTTL        = 24 * time.Hour
	DefaultVODPlaylistTTL    = 24 * time.Hour
	DefaultMasterPlaylistTTL = 5 * time.Minute
	DefaultTargetDuration    = 6 * time.Second
	DefaultMaxTargetDuration = time.Minute
	DefaultMaxPlaylistBytes  = 1 << 20
	DefaultMaxRemembered     = 10000
)

// Precedence says whose freshness wins when the origin sends its own.
type Precedence uint8

const (
	// HLSFirst (the default) applies the HLS TTLs to every response the
	// policy recognises, replacing the freshness the origin's Cache-Control
	// or Expires would give. Use it when the origin's headers are absent or
	// wrong for a CDN (a live playlist with max-age=3600 is a common bug).
	HLSFirst Precedence = iota
	// OriginCacheControl lets the origin's explicit freshness win: a
	// response carrying Cache-Control s-maxage, max-age or no-cache, or a
	// valid Expires, is
	// left to the cache's RFC 9111 rules, and the HLS TTLs only fill in for
	// responses without explicit freshness.
	OriginCacheControl
)

// The LL-HLS delivery directives, in canonical key order.
var hlsParams = [...]string{"_HLS_msn", "_HLS_part", "_HLS_skip"}

// Policy is the HLS cache policy, a [cache.Policy]. Its zero value is ready
// to use; its exported fields may be changed until the first call to Key or
// Decide. A Policy must not be copied after first use. It is safe for
// concurrent use.
//
// TTLs (DESIGN §5, after draft-pantos-hls-rfc8216bis App. B.1), with TD the
// playlist's target duration:
//
//	live media playlist          TD/2       (errors 404/410/5xx: 1 TD)
//	blocking reload (_HLS_msn)   6 TD       (404: 4 TD)
//	VOD media playlist           VODPlaylistTTL
//	master playlist              MasterPlaylistTTL
//	segment, init section, part  SegmentTTL
//	key                          never stored unless Cache-Control: public,
//	                             then the origin's headers decide
//
// Playlists are recognised by Content-Type or extension and classified by
// their content; segments, init sections, parts and keys by what earlier
// playlists said about their URIs (remembered, bounded by MaxRemembered),
// then by extension and Content-Type (a .ts or .mp4 served as a page,
// script or image is left alone). Note that with HLSFirst, media files
// recognised by extension get SegmentTTL even when no playlist lists them
// (a progressive .mp4 download, say): use OriginCacheControl on sites
// whose origin sets deliberate lifetimes for such files.
type Policy struct {
	// Precedence chooses between the HLS TTLs and the origin's own
	// freshness. If zero, HLSFirst: the HLS TTLs win.
	Precedence Precedence

	// SegmentTTL is the TTL of media segments, init sections and parts.
	// If zero, DefaultSegmentTTL (24h).
	SegmentTTL time.Duration

	// VODPlaylistTTL is the TTL of media playlists that will not change
	// (EXT-X-ENDLIST or EXT-X-PLAYLIST-TYPE:VOD). If zero,
	// DefaultVODPlaylistTTL (24h).
	VODPlaylistTTL time.Duration

	// MasterPlaylistTTL is the TTL of multivariant playlists. If zero,
	// DefaultMasterPlaylistTTL (5m).
	MasterPlaylistTTL time.Duration

	// DefaultTargetDuration stands in for the target duration of a live
	// playlist the policy has not parsed (an error response, a 304, an
	// unparsable body). If zero, DefaultTargetDuration (6s).
	DefaultTargetDuration time.Duration

	// MaxTargetDuration caps the target duration used in TTL arithmetic,
	// so a hostile EXT-X-TARGETDURATION cannot pin a live playlist in the
	// cache. If zero, DefaultMaxTargetDuration (1m).
	MaxTargetDuration time.Duration

	// MaxPlaylistBytes bounds how much of a playlist body Decide reads to
	// classify it. Longer playlists pass through unclassified (the zero
	// Decision). If zero, DefaultMaxPlaylistBytes (1 MiB).
	MaxPlaylistBytes int64

	// KeepQuery, if not empty, lists the only query parameters, besides
	// the LL-HLS directives _HLS_msn, _HLS_part and _HLS_skip, that are kept
	// in the cache key. If empty, every parameter not in DropQuery is kept.
	KeepQuery []string

	// DropQuery lists query parameters left out of the cache key (when
	// KeepQuery is empty); "*" drops every parameter but the LL-HLS
	// directives. Only drop parameters that do not select content, such as
	// analytics or session tokens the origin ignores: responses to requests
	// differing only in dropped parameters share one cache entry. If nil,
	// nothing is dropped.
	DropQuery []string

	// MaxRemembered bounds the number of URIs (and playlists) the policy
	// remembers from parsed playlists, and separately the number of key
	// URIs. If zero, DefaultMaxRemembered.
	MaxRemembered int

	// OnMediaPlaylist, if not nil, is called (synchronously, from Decide)
	// with every media playlist the policy parsed from a 200 response.
	// [Prefetcher.ObservePlaylist] is meant to be wired here. It must not
	// modify pl and must return quickly.
	OnMediaPlaylist func(r *http.Request, pl *Playlist)

	// OnMasterPlaylist, if not nil, is called like OnMediaPlaylist with
	// every master (multivariant) playlist the policy parsed.
	// [Prefetcher.ObserveMaster] is meant to be wired here.
	OnMasterPlaylist func(r *http.Request, pl *Playlist)

	mu   sync.Mutex
	mem  *lru.List[string, memo]
	keys *lru.List[string, struct{}] // key URIs, apart so segments never evict them
}

var _ cache.Policy = (*Policy)(nil)

// memo is what the policy remembers about one URI (host + path).
type memo struct {
	kind Kind
	live bool
	td   time.Duration
}

// Object describes one upstream response for [Policy.TTLFor].
type Object struct {
	Kind           Kind
	Status         int
	Live           bool          // media playlist that may still change
	TargetDuration time.Duration // of the (media) playlist; zero if unknown
	Blocking       bool          // request carried _HLS_msn (LL-HLS blocking reload)
	Public         bool          // response Cache-Control has "public" (keys)
}

// TTLFor returns the decision for o from the TTL table alone; it reads no
// headers besides what o says and does not look at Precedence. It is a pure
// function of o and p's configuration.
func (p *Policy) TTLFor(o Object) cache.Decision {
	switch o.Kind {
	case KindKey:
		if o.Public {
			return cache.Decision{}
		}
		return cache.Decision{NoStore: true}
	case KindSegment, KindInit, KindPart:
		if okStatus(o.Status) {
			return cache.Decision{TTL: orDefault(p.SegmentTTL, DefaultSegmentTTL)}
		}
		return cache.Decision{}
	case KindMaster:
		if okStatus(o.Status) {
			return cache.Decision{TTL: orDefault(p.MasterPlaylistTTL, DefaultMasterPlaylistTTL)}
		}
	case KindMedia:
		if okStatus(o.Status) && !o.Live && !o.Blocking {
			return cache.Decision{TTL: orDefault(p.VODPlaylistTTL, DefaultVODPlaylistTTL)}
		}
	default:
		return cache.Decision{}
	}
	// Playlists that may change, and playlist errors.
	td := p.targetDuration(o.TargetDuration)
	switch {
	case okStatus(o.Status) && o.Blocking:
		return cache.Decision{TTL: 6 * td}
	case okStatus(o.Status):
		return cache.Decision{TTL: td / 2}
	case o.Status == http.StatusNotFound && o.Blocking:
		return cache.Decision{TTL: 4 * td}
	case errorStatus(o.Status):
		return cache.Decision{TTL: td}
	}
	return cache.Decision{}
}

func (p *Policy) targetDuration(td time.Duration) time.Duration {
	if td <= 0 {
		td = orDefault(p.DefaultTargetDuration, DefaultTargetDuration)
	}
	return min(td, orDefault(p.MaxTargetDuration, DefaultMaxTargetDuration))
}

func okStatus(s int) bool {
	return s == http.StatusOK || s == http.StatusNotModified || s == http.StatusPartialContent
}

func errorStatus(s int) bool {
	return s == http.StatusNotFound || s == http.StatusGone || s >= 500 && s <= 599
}

func orDefault[T int | int64 | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Key returns the resource part of r's cache key: [cache.DefaultKey] (path
// and query; the cache adds the host part) with the query
// normalised. The LL-HLS directives _HLS_msn, _HLS_part and _HLS_skip come
// first in that order; the other parameters kept (see KeepQuery and
// DropQuery) follow, sorted by name, repeated names keeping their order.
// The CMCD parameter (CTA-5004 client data, see [StripCMCD]) is always
// left out unless KeepQuery names it. A query that does not parse is kept
// verbatim.
func (p *Policy) Key(r *http.Request) string {
	if r.URL.RawQuery == "" {
		return cache.DefaultKey(r)
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return cache.DefaultKey(r)
	}
	var b strings.Builder
	for _, name := range hlsParams {
		for _, v := range q[name] {
			addParam(&b, name, v)
		}
	}
	names := make([]string, 0, len(q))
	for name := range q {
		if !slices.Contains(hlsParams[:], name) && p.keepParam(name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		for _, v := range q[name] {
			addParam(&b, name, v)
		}
	}
	r2 := *r
	u := *r.URL
	u.RawQuery = b.String()
	r2.URL = &u
	return cache.DefaultKey(&r2)
}

func addParam(b *strings.Builder, name, v string) {
	if b.Len() > 0 {
		b.WriteByte('&')
	}
	b.WriteString(url.QueryEscape(name))
	b.WriteByte('=')
	b.WriteString(url.QueryEscape(v))
}

func (p *Policy) keepParam(name string) bool {
	if strings.EqualFold(name, "CMCD") && !slices.Contains(p.KeepQuery, name) {
		return false // per-session client data (CTA-5004): never splits keys
	}
	if len(p.KeepQuery) > 0 {
		return slices.Contains(p.KeepQuery, name)
	}
	return !slices.Contains(p.DropQuery, name) && !slices.Contains(p.DropQuery, "*")
}

// Decide classifies resp and returns its TTL decision (see [Policy]). For a
// playlist it reads up to MaxPlaylistBytes of the body and replaces
// resp.Body with a reader of the identical bytes; the status and headers are
// never changed.
func (p *Policy) Decide(r *http.Request, resp *http.Response) cache.Decision {
	base := requestURL(r)
	mk := memKey(base)
	m, remembered := p.recall(mk)
	kind := m.kind
	if !remembered {
		ct := resp.Header.Get("Content-Type")
		kind = ClassifyPath(base.Path)
		switch ctKind := ClassifyContentType(ct); {
		case ctKind == kindPlaylist || kind == KindUnknown:
			kind = ctKind
		case kind != kindPlaylist && notMedia(ct):
			// A web page or script that happens to end in .ts or .mp4.
			kind = KindUnknown
		}
	}
	o := Object{Kind: kind, Status: resp.StatusCode, Live: true}
	if kind == KindMedia || kind == KindMaster {
		o.Blocking = r.URL.Query().Has("_HLS_msn")
		if remembered {
			o.Live, o.TargetDuration = m.live, m.td
		}
		if resp.StatusCode == http.StatusOK && r.Method != http.MethodHead {
			pl, ok := p.readPlaylist(base, resp)
			switch {
			case !ok:
				return cache.Decision{} // too large or unreadable: pass through
			case pl != nil:
				pl = p.learn(r, base, mk, pl)
				o.Kind, o.Live, o.TargetDuration = KindMedia, pl.Live, pl.TargetDuration
				if pl.Master {
					o.Kind = KindMaster
				}
			}
		}
	}
	if kind == KindKey {
		o.Public = rfc9111.ParseCacheControl(resp.Header["Cache-Control"]).Has("public")
		return p.TTLFor(o)
	}
	if p.Precedence == OriginCacheControl && rfc9111.ExplicitLifetime(resp.Header, cdnTargeted) {
		return cache.Decision{}
	}
	return p.TTLFor(o)
}

// readPlaylist reads and parses a playlist body, restoring resp.Body. ok is
// false when the body is over the limit (or failed to read); pl is nil when
// it is not a playlist.
func (p *Policy) readPlaylist(base *url.URL, resp *http.Response) (pl *Playlist, ok bool) {
	limit := orDefault(p.MaxPlaylistBytes, DefaultMaxPlaylistBytes)
	orig := resp.Body
	if orig == nil || orig == http.NoBody {
		return nil, true
	}
	buf, err := io.ReadAll(io.LimitReader(orig, limit+1))
	switch {
	case err != nil:
		resp.Body = replayBody{io.MultiReader(bytes.NewReader(buf), errReader{err}), orig}
		return nil, false
	case int64(len(buf)) > limit:
		resp.Body = replayBody{io.MultiReader(bytes.NewReader(buf), orig), orig}
		return nil, false
	}
	resp.Body = replayBody{bytes.NewReader(buf), orig}
	text := buf
	if strings.EqualFold(resp.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(bytes.NewReader(buf))
		if err != nil {
			return nil, true
		}
		text, err = io.ReadAll(io.LimitReader(zr, limit+1))
		if err != nil || int64(len(text)) > limit {
			return nil, false
		}
	} else if ce := resp.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return nil, true
	}
	pl, err = ParsePlaylist(base, text)
	if err != nil {
		return nil, true
	}
	return pl, true
}

// learn remembers what pl says about its own URI and the URIs it lists, and
// calls OnMediaPlaylist or OnMasterPlaylist. It returns pl with its target duration clamped.
func (p *Policy) learn(r *http.Request, base *url.URL, mk string, pl *Playlist) *Playlist {
	pl.TargetDuration = min(pl.TargetDuration, orDefault(p.MaxTargetDuration, DefaultMaxTargetDuration))
	p.mu.Lock()
	if p.mem == nil {
		p.mem = &lru.List[string, memo]{Max: orDefault(p.MaxRemembered, DefaultMaxRemembered)}
		p.keys = &lru.List[string, struct{}]{Max: orDefault(p.MaxRemembered, DefaultMaxRemembered)}
	}
	if pl.Master {
		p.mem.Put(mk, memo{kind: KindMaster})
		for _, v := range pl.Variants {
			p.rememberLocked(v.URI, KindMedia)
		}
		for _, u := range pl.Renditions {
			p.rememberLocked(u, KindMedia)
		}
	} else {
		p.mem.Put(mk, memo{kind: KindMedia, live: pl.Live, td: pl.TargetDuration})
		for _, u := range pl.Keys {
			p.rememberLocked(u, KindKey)
		}
		for _, u := range pl.Init {
			p.rememberLocked(u, KindInit)
		}
		for _, u := range pl.Parts {
			p.rememberLocked(u, KindPart)
		}
		for _, s := range pl.Segments {
			p.rememberLocked(s.URI, KindSegment)
		}
	}
	p.mu.Unlock()
	switch {
	case !pl.Master && p.OnMediaPlaylist != nil:
		p.OnMediaPlaylist(r, pl)
	case pl.Master && p.OnMasterPlaylist != nil:
		p.OnMasterPlaylist(r, pl)
	}
	return pl
}

// rememberLocked records kind for the URI u.
func (p *Policy) rememberLocked(u string, kind Kind) {
	pu, err := url.Parse(u)
	if err != nil {
		return
	}
	if kind == KindKey {
		p.keys.Put(memKey(pu), struct{}{})
		return
	}
	p.mem.Put(memKey(pu), memo{kind: kind})
}

func (p *Policy) recall(mk string) (memo, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mem == nil {
		return memo{}, false
	}
	if _, ok := p.keys.Get(mk); ok {
		return memo{kind: KindKey}, true
	}
	return p.mem.Get(mk)
}

// requestURL returns r's URL in absolute form (scheme and host filled in
// from r.Host and r.TLS as cache.DefaultKey does).
func requestURL(r *http.Request) *url.URL {
	if r == nil || r.URL == nil {
		return &url.URL{Scheme: "http", Path: "/"}
	}
	u := *r.URL
	if u.Scheme == "" {
		u.Scheme = "http"
		if r.TLS != nil {
			u.Scheme = "https"
		}
	}
	if r.Host != "" {
		u.Host = r.Host
	}
	u.User = nil
	return &u
}

// requestKey is memKey(requestURL(r)) without copying the URL.
func requestKey(r *http.Request) string {
	if r == nil || r.URL == nil {
		return "/"
	}
	host := r.Host
	if host == "" {
		host = r.URL.Host
	}
	return memKeyOf(host, r.URL)
}

// memKey identifies a URI in the policy's memory: lower-cased host and
// escaped path, without the query.
func memKey(u *url.URL) string { return memKeyOf(u.Host, u) }

// memKeyOf is memKey of u with host in place of u.Host.
func memKeyOf(host string, u *url.URL) string {
	return strings.ToLower(host) + u.EscapedPath()
}

// notMedia reports whether the content type is clearly not an HLS object
// (pages, scripts, styles, data, images).
func notMedia(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	switch mt {
	case "text/html", "text/css", "text/javascript", "application/javascript", "application/json",
		"application/xml", "text/xml", "application/typescript", "text/typescript", "text/x-typescript":
		return true
	}
	return strings.HasPrefix(mt, "image/")
}

// replayBody replays bytes already read, then the rest of the original
// body; Close closes the original.
type replayBody struct {
	io.Reader
	orig io.Closer
}

func (b replayBody) Close() error { return b.orig.Close() }

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// cdnTargeted makes the policy see what every tier honours: the
// CDN-Cache-Control field (RFC 9213) in place of Cache-Control.
var cdnTargeted = rfc9111.Options{TargetedFields: []string{rfc9111.CDNCacheControl}}
