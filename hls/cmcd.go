package hls

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// cmcdParam is the query parameter that carries CMCD (CTA-5004).
const cmcdParam = "CMCD"

// cmcdHeaders are the request headers that carry CMCD, in canonical form:
// CMCD-Object, CMCD-Request, CMCD-Session and CMCD-Status.
var cmcdHeaders = [...]string{"Cmcd-Object", "Cmcd-Request", "Cmcd-Session", "Cmcd-Status"}

// Bounds on what ParseCMCD accepts from a client.
const (
	maxCMCDBytes = 8 << 10 // a whole payload (all headers and parameters together)
	maxCMCDNext  = 8       // nor entries kept
)

// ErrCMCD is wrapped by the errors of [ParseCMCD].
var ErrCMCD = errors.New("hls: invalid CMCD")

// CMCD is the Common Media Client Data (CTA-5004) a player sent with a
// request: what it is asking for, how its buffer is doing and what it will
// ask for next. Durations are whole milliseconds on the wire, bitrates
// whole kbit/s. The zero value means "nothing sent"; keys a player did not
// send, or sent with a value of the wrong type, stay zero. Custom
// (hyphenated) and unknown keys are ignored.
//
// CMCD identifies sessions (sid, cid) and describes a viewer's playback:
// treat it as personal data. See [StripCMCD].
type CMCD struct {
	// Request keys (CMCD-Request).
	BufferLength       time.Duration // bl: media buffered ahead of the playhead
	Deadline           time.Duration // dl: until the buffer runs dry at the current rate
	MeasuredThroughput int           // mtp: kbit/s the player measured
	Next               []string      // nor: next objects, URL-encoded and relative to this request, as sent
	NextRange          string        // nrr: byte range of the next request, "start-end"
	Startup            bool          // su: needed urgently (start-up, seek, recovery)

	// Object keys (CMCD-Object).
	Bitrate    int           // br: kbit/s of the object requested
	Duration   time.Duration // d: media duration of the object requested
	ObjectType string        // ot: m (playlist), a, v, av, i (init), c, tt, k (key), o
	TopBitrate int           // tb: kbit/s of the highest rendition the player may use

	// Session keys (CMCD-Session).
	ContentID       string  // cid
	PlaybackRate    float64 // pr: 1 for real time, 0 when not playing (if sent)
	StreamingFormat string  // sf: h for HLS, d for DASH
	SessionID       string  // sid
	StreamType      string  // st: v (VOD) or l (live)
	Version         int     // v: 0 when not sent, meaning version 1

	// Status keys (CMCD-Status).
	BufferStarvation    bool // bs: the buffer ran dry since the last request
	RequestedThroughput int  // rtp: kbit/s the player asks the CDN to deliver at most
}

// ParseCMCD parses a CMCD payload: comma-separated key=value pairs (a
// boolean true is the bare key), with strings in double quotes, as sent in
// one CMCD-* header or in the (URL-decoded) CMCD query parameter. Several
// headers' payloads may be joined with commas. Version 2 inner lists
// "(a b)" are accepted: bl, mtp, br and tb keep their smallest element, nor
// all of them. It returns an error wrapping [ErrCMCD] for a payload that is
// not well formed or longer than 8 KiB; the CMCD returned then holds the
// keys parsed before the error.
func ParseCMCD(payload string) (CMCD, error) {
	var c CMCD
	if len(payload) > maxCMCDBytes {
		return c, fmt.Errorf("%w: payload over %d bytes", ErrCMCD, maxCMCDBytes)
	}
	p := sfParser{s: payload}
	for {
		p.skipSpace()
		if p.done() {
			return c, nil
		}
		key := p.key()
		if key == "" {
			return c, fmt.Errorf("%w: key expected at offset %d", ErrCMCD, p.i)
		}
		v := sfValue{kind: sfBool, b: true}
		if p.peek() == '=' {
			p.i++
			var err error
			if v, err = p.value(); err != nil {
				return c, err
			}
		} else if err := p.params(); err != nil {
			return c, err
		}
		c.set(key, v)
		p.skipSpace()
		if p.done() {
			return c, nil
		}
		if p.peek() != ',' {
			return c, fmt.Errorf("%w: comma expected at offset %d", ErrCMCD, p.i)
		}
		p.i++
	}
}

// set stores one key's value; values of the wrong type are ignored.
func (c *CMCD) set(key string, v sfValue) {
	switch key {
	case "bl":
		c.BufferLength, _ = v.millis()
	case "dl":
		c.Deadline, _ = v.millis()
	case "mtp":
		c.MeasuredThroughput, _ = v.int()
	case "nor":
		c.Next = nil
		for _, s := range v.strings() {
			if len(c.Next) < maxCMCDNext && s != "" && len(s) <= maxURILength {
				c.Next = append(c.Next, s)
			}
		}
	case "nrr":
		c.NextRange, _ = v.str()
	case "su":
		c.Startup, _ = v.bool()
	case "br":
		c.Bitrate, _ = v.int()
	case "d":
		c.Duration, _ = v.millis()
	case "ot":
		c.ObjectType, _ = v.token()
	case "tb":
		c.TopBitrate, _ = v.int()
	case "cid":
		c.ContentID, _ = v.str()
	case "pr":
		c.PlaybackRate, _ = v.float()
	case "sf":
		c.StreamingFormat, _ = v.token()
	case "sid":
		c.SessionID, _ = v.str()
	case "st":
		c.StreamType, _ = v.token()
	case "v":
		c.Version, _ = v.int()
	case "bs":
		c.BufferStarvation, _ = v.bool()
	case "rtp":
		c.RequestedThroughput, _ = v.int()
	}
}

// String returns c as a CMCD payload, keys in alphabetical order as
// CTA-5004 recommends, zero fields left out: ParseCMCD(c.String()) gives c
// back. It is not URL-encoded (see [CMCD.Query]).
func (c CMCD) String() string {
	var kv []string
	add := func(k, v string) { kv = append(kv, k+"="+v) }
	flag := func(k string, b bool) {
		if b {
			kv = append(kv, k)
		}
	}
	num := func(k string, n int) {
		if n > 0 {
			add(k, strconv.Itoa(n))
		}
	}
	ms := func(k string, d time.Duration) {
		if d > 0 {
			add(k, strconv.FormatInt(d.Milliseconds(), 10))
		}
	}
	str := func(k, s string) {
		if s != "" {
			add(k, quoteSF(s))
		}
	}
	tok := func(k, s string) {
		if s != "" && isToken(s) {
			add(k, s)
		}
	}
	ms("bl", c.BufferLength)
	num("br", c.Bitrate)
	flag("bs", c.BufferStarvation)
	str("cid", c.ContentID)
	ms("d", c.Duration)
	ms("dl", c.Deadline)
	num("mtp", c.MeasuredThroughput)
	switch len(c.Next) {
	case 0:
	case 1:
		str("nor", c.Next[0])
	default:
		q := make([]string, len(c.Next))
		for i, s := range c.Next {
			q[i] = quoteSF(s)
		}
		add("nor", "("+strings.Join(q, " ")+")")
	}
	str("nrr", c.NextRange)
	tok("ot", c.ObjectType)
	if c.PlaybackRate > 0 && c.PlaybackRate <= maxPlaybackRate {
		add("pr", strconv.FormatFloat(c.PlaybackRate, 'f', -1, 64))
	}
	num("rtp", c.RequestedThroughput)
	tok("sf", c.StreamingFormat)
	str("sid", c.SessionID)
	tok("st", c.StreamType)
	flag("su", c.Startup)
	num("tb", c.TopBitrate)
	num("v", c.Version)
	return strings.Join(kv, ",")
}

// Query returns c as the value of a CMCD query parameter, "CMCD=…" with
// the payload URL-encoded, ready to append to a URL's query.
func (c CMCD) Query() string {
	return cmcdParam + "=" + url.QueryEscape(c.String())
}

// headers returns c split into the four CMCD headers by key, as
// CTA-5004 assigns them; empty headers are left out.
func (c CMCD) headers() http.Header {
	h := http.Header{}
	split := map[string]string{
		"br": "Cmcd-Object", "d": "Cmcd-Object", "ot": "Cmcd-Object", "tb": "Cmcd-Object",
		"bl": "Cmcd-Request", "dl": "Cmcd-Request", "mtp": "Cmcd-Request", "nor": "Cmcd-Request", "nrr": "Cmcd-Request", "su": "Cmcd-Request",
		"cid": "Cmcd-Session", "pr": "Cmcd-Session", "sf": "Cmcd-Session", "sid": "Cmcd-Session", "st": "Cmcd-Session", "v": "Cmcd-Session",
		"bs": "Cmcd-Status", "rtp": "Cmcd-Status",
	}
	parts := map[string][]string{}
	for _, kv := range splitPairs(c.String()) {
		k, _, _ := strings.Cut(kv, "=")
		parts[split[k]] = append(parts[split[k]], kv)
	}
	for name, kvs := range parts {
		h[name] = []string{strings.Join(kvs, ",")}
	}
	return h
}

// splitPairs splits a payload produced by String at the commas between
// pairs (not those inside quoted strings).
func splitPairs(s string) []string {
	var out []string
	start, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// NextURLs returns the absolute URLs of the objects c names as the next
// the player will request (nor), resolved against the URL of r, the request
// that carried c. Only http and https URLs on r's own host are returned,
// without query or fragment, so a client can never point a tier at another
// site or smuggle parameters into a fetch; nor values are URL-decoded once
// before they are resolved, as CTA-5004 has players encode them.
func (c CMCD) NextURLs(r *http.Request) []string {
	if len(c.Next) == 0 || r == nil || r.URL == nil {
		return nil
	}
	base := requestURL(r)
	var out []string
	for _, n := range c.Next {
		ref, err := url.PathUnescape(n)
		if err != nil {
			continue
		}
		u, err := base.Parse(ref)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !strings.EqualFold(u.Host, base.Host) || u.User != nil {
			continue
		}
		u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = "", false, "", ""
		if s := u.String(); len(s) <= maxURILength && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// RequestCMCD returns the CMCD r carries in its CMCD query parameter and
// CMCD-* headers, and whether it carries any. r is not modified. A payload
// that does not parse gives the keys parsed before the error.
func RequestCMCD(r *http.Request) (CMCD, bool) {
	payloads, found := cmcdPayloads(r)
	if !found {
		return CMCD{}, false
	}
	c, _ := ParseCMCD(strings.Join(payloads, ","))
	return c, true
}

// cmcdPayloads collects the CMCD payloads of r: the URL-decoded values of
// every CMCD query parameter (name matched without regard to case), then
// the CMCD-* header values.
func cmcdPayloads(r *http.Request) (payloads []string, found bool) {
	if r.URL != nil && hasCMCDParam(r.URL.RawQuery) {
		for part := range strings.SplitSeq(r.URL.RawQuery, "&") {
			name, value, _ := strings.Cut(part, "=")
			if !isCMCDName(name) {
				continue
			}
			found = true
			if v, err := url.QueryUnescape(value); err == nil && v != "" {
				payloads = append(payloads, v)
			}
		}
	}
	for _, h := range cmcdHeaders {
		if vs, ok := r.Header[h]; ok {
			found = true
			for _, v := range vs {
				if v = strings.TrimSpace(v); v != "" {
					payloads = append(payloads, v)
				}
			}
		}
	}
	return payloads, found
}

// hasCMCDParam is the allocation-free test for a CMCD parameter in a raw
// query (the name written plainly, as players write it).
func hasCMCDParam(rawQuery string) bool {
	n := len(cmcdParam)
	for i := 0; i+n <= len(rawQuery); i++ {
		if (i == 0 || rawQuery[i-1] == '&') && strings.EqualFold(rawQuery[i:i+n], cmcdParam) &&
			(i+n == len(rawQuery) || rawQuery[i+n] == '=' || rawQuery[i+n] == '&') {
			return true
		}
	}
	return false
}

// isCMCDName reports whether a raw query parameter name is CMCD.
func isCMCDName(raw string) bool { return strings.EqualFold(raw, cmcdParam) }

// StripCMCD removes all CMCD from r, the CMCD query parameter (whatever
// its case) and the CMCD-Object, CMCD-Request, CMCD-Session and
// CMCD-Status headers, and returns the data parsed from them and whether
// there was any. The rest of the query is kept byte for byte, in order.
//
// CMCD identifies a viewer's session: a tier must strip it where requests
// enter, so that it is neither forwarded upstream, nor logged, nor part of
// a cache key (which would also give every session its own copy of every
// object). StripCMCD modifies r: call it on a request the caller owns
// (a handler clones the request first; [CMCDFilter] does).
func StripCMCD(r *http.Request) (CMCD, bool) {
	c, found := RequestCMCD(r)
	if !found {
		return c, false
	}
	for _, h := range cmcdHeaders {
		r.Header.Del(h)
	}
	if r.URL != nil && hasCMCDParam(r.URL.RawQuery) {
		var kept []string
		for part := range strings.SplitSeq(r.URL.RawQuery, "&") {
			name, _, _ := strings.Cut(part, "=")
			if !isCMCDName(name) {
				kept = append(kept, part)
			}
		}
		r.URL.RawQuery = strings.Join(kept, "&")
		r.URL.ForceQuery = false
		if r.RequestURI != "" {
			before, _, _ := strings.Cut(r.RequestURI, "?")
			r.RequestURI = before
			if r.URL.RawQuery != "" {
				r.RequestURI += "?" + r.URL.RawQuery
			}
		}
	}
	return c, true
}

// CMCDFilter is middleware for the entrance of a tier: it removes CMCD
// from every request before Next sees it (see [StripCMCD]) and hands what
// it parsed to OnCMCD, e.g. to prefetch the objects a player announced.
// Requests without CMCD pass through untouched and without allocation.
//
// The zero value with Next set strips CMCD. Fields may not change while it
// serves. It is safe for concurrent use.
type CMCDFilter struct {
	// Next serves the requests. Required.
	Next http.Handler

	// Forward passes CMCD on to Next unchanged, so that it reaches the
	// cache, its log (with cache.Cache.LogQuery) and the upstream tiers:
	// an operator's opt-in, for a CDN whose next tier or origin analyses
	// CMCD. Use it only with a cache key that leaves the CMCD parameter
	// out (as [Policy.Key] does). If false, CMCD is removed.
	Forward bool

	// OnCMCD, if set, is called before Next with every request that
	// carried CMCD (as Next will see it) and the data parsed from it. It
	// must not modify r and must return quickly; with [CMCD.NextURLs] it is
	// the hook for prefetching exactly the object a player announced (nor).
	OnCMCD func(r *http.Request, c CMCD)
}

// ServeHTTP strips CMCD from r (unless Forward), calls OnCMCD and serves
// the request with Next, with the CMCD in its context (see
// [CMCDFromContext]).
func (f *CMCDFilter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !carriesCMCD(r) {
		f.Next.ServeHTTP(w, r)
		return
	}
	var c CMCD
	if f.Forward {
		c, _ = RequestCMCD(r)
	} else {
		r = r.Clone(r.Context())
		c, _ = StripCMCD(r)
	}
	r = r.WithContext(context.WithValue(r.Context(), cmcdCtxKey{}, c))
	if f.OnCMCD != nil {
		f.OnCMCD(r, c)
	}
	f.Next.ServeHTTP(w, r)
}

// cmcdCtxKey is the context key of the CMCD a CMCDFilter parsed.
type cmcdCtxKey struct{}

// CMCDFromContext returns the CMCD that a [CMCDFilter] parsed from the
// request whose context is ctx (and stripped from it, unless Forward),
// and whether it carried any. [Prefetcher.Wrap] uses it for the player's
// next-object request (nor) and measured throughput (mtp). It stays in
// the process: nothing in this module logs or forwards a context's values.
func CMCDFromContext(ctx context.Context) (CMCD, bool) {
	c, ok := ctx.Value(cmcdCtxKey{}).(CMCD)
	return c, ok
}

// carriesCMCD is the allocation-free test for CMCD in r.
func carriesCMCD(r *http.Request) bool {
	if r.URL != nil && hasCMCDParam(r.URL.RawQuery) {
		return true
	}
	for _, h := range cmcdHeaders {
		if _, ok := r.Header[h]; ok {
			return true
		}
	}
	return false
}

// A lenient parser of Structured Field dictionaries (RFC 8941) as CMCD
// uses them: keys are not restricted to lower case (CMCD custom keys are
// often camelCase), tokens may hold any character but the delimiters, and
// parameters are skipped.

type sfKind uint8

const (
	sfBool sfKind = iota
	sfInt
	sfDecimal
	sfString
	sfToken
	sfList
)

type sfValue struct {
	kind sfKind
	b    bool
	n    int64
	f    float64
	s    string
	list []sfValue
}

func (v sfValue) bool() (bool, bool) { return v.b, v.kind == sfBool }

func (v sfValue) int() (int, bool) {
	switch v.kind {
	case sfInt:
		if v.n >= 0 && v.n <= math.MaxInt32 {
			return int(v.n), true
		}
	case sfList: // version 2: per-type values; keep the smallest
		least, ok := 0, false
		for _, e := range v.list {
			if n, eok := e.int(); eok && (!ok || n < least) {
				least, ok = n, true
			}
		}
		return least, ok
	}
	return 0, false
}

func (v sfValue) millis() (time.Duration, bool) {
	n, ok := v.int()
	if !ok {
		return 0, false
	}
	return min(time.Duration(n)*time.Millisecond, maxDuration.Truncate(time.Millisecond)), true
}

func (v sfValue) float() (float64, bool) {
	switch v.kind {
	case sfInt:
		if v.n >= 0 && v.n <= maxPlaybackRate {
			return float64(v.n), true
		}
	case sfDecimal:
		if v.f >= 0 && v.f <= maxPlaybackRate {
			return v.f, true
		}
	}
	return 0, false
}

// maxPlaybackRate bounds pr: larger values are not playback rates.
const maxPlaybackRate = 1000

func (v sfValue) str() (string, bool) {
	if v.kind == sfString {
		return v.s, true
	}
	return "", false
}

func (v sfValue) token() (string, bool) {
	if (v.kind == sfToken || v.kind == sfString) && isToken(v.s) {
		return v.s, true
	}
	return "", false
}

func (v sfValue) strings() []string {
	switch v.kind {
	case sfString:
		return []string{v.s}
	case sfList:
		var out []string
		for _, e := range v.list {
			if e.kind == sfString {
				out = append(out, e.s)
			}
		}
		return out
	}
	return nil
}

type sfParser struct {
	s string
	i int
}

func (p *sfParser) done() bool { return p.i >= len(p.s) }

func (p *sfParser) peek() byte {
	if p.done() {
		return 0
	}
	return p.s[p.i]
}

func (p *sfParser) skipSpace() {
	for !p.done() && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

// isDelim reports the bytes that end a key or a bare item.
func isDelim(b byte) bool {
	switch b {
	case ',', ';', '=', ' ', '\t', '(', ')', '"':
		return true
	}
	return b < 0x20 || b == 0x7f
}

func (p *sfParser) key() string {
	start := p.i
	for !p.done() && !isDelim(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

// params skips ";key[=value]" parameters after an item.
func (p *sfParser) params() error {
	for p.peek() == ';' {
		p.i++
		p.skipSpace()
		if p.key() == "" {
			return fmt.Errorf("%w: parameter key expected at offset %d", ErrCMCD, p.i)
		}
		if p.peek() == '=' {
			p.i++
			if _, err := p.bare(); err != nil {
				return err
			}
		}
	}
	return nil
}

// value parses an item or an inner list, with parameters.
func (p *sfParser) value() (sfValue, error) {
	if p.peek() != '(' {
		v, err := p.bare()
		if err != nil {
			return v, err
		}
		return v, p.params()
	}
	p.i++
	v := sfValue{kind: sfList}
	for {
		p.skipSpace()
		if p.peek() == ')' {
			p.i++
			return v, p.params()
		}
		if p.done() {
			return v, fmt.Errorf("%w: unterminated inner list", ErrCMCD)
		}
		e, err := p.bare()
		if err != nil {
			return v, err
		}
		if err := p.params(); err != nil {
			return v, err
		}
		if len(v.list) < 64 {
			v.list = append(v.list, e)
		}
		if b := p.peek(); b != ' ' && b != ')' {
			return v, fmt.Errorf("%w: bad inner list at offset %d", ErrCMCD, p.i)
		}
	}
}

// bare parses a string, boolean, number or token.
func (p *sfParser) bare() (sfValue, error) {
	switch b := p.peek(); {
	case b == '"':
		return p.quoted()
	case b == '?':
		p.i++
		switch p.peek() {
		case '1':
			p.i++
			return sfValue{kind: sfBool, b: true}, nil
		case '0':
			p.i++
			return sfValue{kind: sfBool}, nil
		}
		return sfValue{}, fmt.Errorf("%w: bad boolean at offset %d", ErrCMCD, p.i)
	}
	tok := p.key()
	if tok == "" {
		return sfValue{}, fmt.Errorf("%w: value expected at offset %d", ErrCMCD, p.i)
	}
	if c := tok[0]; c == '-' || c >= '0' && c <= '9' {
		if n, err := strconv.ParseInt(tok, 10, 64); err == nil {
			return sfValue{kind: sfInt, n: n}, nil
		}
		if f, err := strconv.ParseFloat(tok, 64); err == nil && strings.IndexFunc(tok, notDecimal) < 0 {
			return sfValue{kind: sfDecimal, f: f}, nil
		}
	}
	return sfValue{kind: sfToken, s: tok}, nil
}

func notDecimal(r rune) bool { return r != '-' && r != '.' && (r < '0' || r > '9') }

func (p *sfParser) quoted() (sfValue, error) {
	p.i++ // opening quote
	var b strings.Builder
	for !p.done() {
		c := p.s[p.i]
		p.i++
		switch c {
		case '"':
			return sfValue{kind: sfString, s: b.String()}, nil
		case '\\':
			if p.done() || p.s[p.i] != '"' && p.s[p.i] != '\\' {
				return sfValue{}, fmt.Errorf("%w: bad escape at offset %d", ErrCMCD, p.i)
			}
			b.WriteByte(p.s[p.i])
			p.i++
		default:
			b.WriteByte(c)
		}
	}
	return sfValue{}, fmt.Errorf("%w: unterminated string", ErrCMCD)
}

func quoteSF(s string) string {
	if !strings.ContainsAny(s, `"\`) {
		return `"` + s + `"`
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// isToken reports whether s can be sent unquoted as a token value: it
// must not read as a number or a boolean, nor hold a delimiter.
func isToken(s string) bool {
	if s == "" || s[0] == '-' || s[0] == '?' || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if isDelim(s[i]) {
			return false
		}
	}
	return true
}
