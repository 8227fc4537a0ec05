package rfc9111

import (
	"net/http"
	"time"
)

// Options are the operator's choices where RFC 9111 leaves room. The zero
// value is the conservative default.
type Options struct {
	// AllowSetCookie lets responses carrying Set-Cookie be stored. If
	// false (the default) they are not stored: a shared cache would hand
	// one client's cookie to every other client, linking them (an
	// anonymity leak RFC 9111 permits but this project does not).
	AllowSetCookie bool

	// HeuristicFraction is the share of the time since Last-Modified used
	// as a heuristic freshness lifetime (RFC 9111 §4.2.2). If zero (or
	// negative), 0.1 is used.
	HeuristicFraction float64

	// MaxHeuristic caps a heuristic freshness lifetime. If zero (or
	// negative), 24 hours is used: heuristics beyond a day make a stale
	// object outlive an origin change for too long, and §4.2.2 notes that
	// caches should warn clients about heuristic ages above 24 hours.
	MaxHeuristic time.Duration

	// DefaultStaleWhileRevalidate and DefaultStaleIfError are the RFC 5861
	// windows used when a response carries no stale-while-revalidate or
	// stale-if-error directive of its own. If zero, there is no window.
	// They never apply to responses whose directives forbid serving stale
	// (no-cache, must-revalidate, proxy-revalidate, s-maxage).
	DefaultStaleWhileRevalidate, DefaultStaleIfError time.Duration

	// TargetedFields is the cache's target list (RFC 9213 §2.2): the
	// targeted cache-control fields it honours, most specific first, such
	// as {"Onioncdn-Cache-Control", CDNCacheControl}. For each response
	// the first of these fields that is present, valid and non-empty (see
	// [ParseTargeted]) replaces the Cache-Control field in every decision
	// of this package (storing, freshness, serving stale, validation), and
	// Expires is then ignored; Cache-Control applies when none is usable.
	// Names are matched case-insensitively (canonical names are looked up
	// fastest). If empty, no targeted field is honoured: plain RFC 9111.
	TargetedFields []string
}

func (o Options) fraction() float64 {
	if o.HeuristicFraction <= 0 {
		return 0.1
	}
	return o.HeuristicFraction
}

func (o Options) maxHeuristic() time.Duration {
	if o.MaxHeuristic <= 0 {
		return 24 * time.Hour
	}
	return o.MaxHeuristic
}

// Entry is a stored response as the freshness rules see it.
type Entry struct {
	Status int
	Header http.Header
	// RequestTime is when the request that produced the stored response
	// (or its latest revalidation) was sent; ResponseTime is when the
	// response was received (RFC 9111 §4.2.3 request_time and
	// response_time).
	RequestTime, ResponseTime time.Time
	// TTL, SWR and SIE are policy overrides (cache.Decision): if positive
	// they replace the freshness lifetime, the stale-while-revalidate and
	// the stale-if-error window. Zero means no override.
	TTL, SWR, SIE time.Duration
}

// Storing reasons returned by [Storable] when ok is false. They are short,
// constant strings meant for logs and Cache-Status detail.
const (
	ReasonMethod         = "method" // only GET responses are stored
	ReasonStatus         = "status" // status never stored (1xx, 206, 304) or not understood with must-understand
	ReasonRequestNoStore = "request-no-store"
	ReasonNoStore        = "no-store"
	ReasonPrivate        = "private"       // unqualified private
	ReasonAuthorization  = "authorization" // request had Authorization and the response no public/s-maxage/must-revalidate
	ReasonSetCookie      = "set-cookie"
	ReasonVaryStar       = "vary-star"
	ReasonNoFreshness    = "no-freshness" // status not cacheable by default and no explicit freshness
)

// heuristicallyCacheable reports whether status is cacheable by default
// (RFC 9110 §15.1).
func heuristicallyCacheable(status int) bool {
	switch status {
	case 200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// understood reports whether this cache implements the caching
// requirements of status (for must-understand, RFC 9111 §5.2.2.3): the
// statuses cacheable by default plus the redirects 302, 303 and 307, whose
// caching needs nothing beyond the generic rules. 206 is understood but
// never stored (see [Storable]).
func understood(status int) bool {
	switch status {
	case 302, 303, 307:
		return true
	}
	return heuristicallyCacheable(status)
}

// Storable reports whether a shared cache may store the response with
// status and header h to request req (RFC 9111 §3, shared-cache rules), and
// if not, a constant reason (the Reason* constants). ttlOverride says that
// a policy gave the response an explicit lifetime; it makes a status that
// is not cacheable by default storable but never overrides a rule that
// forbids storing.
//
// Choices made here, stricter than the RFC where it permits:
//   - Only GET is stored. HEAD responses have no body and cannot answer a
//     later GET; a cache answers HEAD from a stored GET (and may fill a HEAD
//     miss with a GET). POST responses (§3 allows them with explicit
//     freshness and Content-Location) are not stored.
//   - 206 and 304 are never stored: only complete responses are (ranges
//     are served from a complete object), and a 304 only updates one
//     (§4.3.4). 1xx responses are not final.
//   - private is never stored. The qualified form private="field" is: the
//     caller removes the named fields first with [StripPrivate]
//     (§5.2.2.7). An argument that is not a list of field names counts as
//     unqualified.
//   - Vary: * is never stored, so it is never served (§4.1).
//   - Set-Cookie is not stored unless o.AllowSetCookie (see [Options]) or
//     private="Set-Cookie" says to store the response without it.
//   - must-understand (§5.2.2.3): the response is stored only when the
//     status is understood (see above), and then its no-store is ignored.
//
// The response directives are those of Cache-Control or, when o honours a
// targeted field the response carries (RFC 9213 §2.2, see
// [Options.TargetedFields]), of that field; Expires then does not count as
// explicit freshness.
func Storable(req *http.Request, status int, h http.Header, ttlOverride bool, o Options) (ok bool, reason string) {
	if req.Method != http.MethodGet {
		return false, ReasonMethod
	}
	if status < 200 || status == http.StatusPartialContent || status == http.StatusNotModified || status > 999 {
		return false, ReasonStatus
	}
	if RequestNoStore(req) {
		return false, ReasonRequestNoStore
	}
	var cc Directives
	targeted := o.responseDirectives(h, &cc)
	if cc.has("must-understand") {
		if !understood(status) {
			return false, ReasonStatus
		}
	} else if cc.has("no-store") {
		return false, ReasonNoStore
	}
	if privateAll(&cc) {
		return false, ReasonPrivate
	}
	if len(req.Header["Authorization"]) > 0 &&
		!cc.has("public") && !cc.has("s-maxage") && !cc.has("must-revalidate") {
		return false, ReasonAuthorization
	}
	if !o.AllowSetCookie && len(h["Set-Cookie"]) > 0 && !listsField(&cc, "private", "Set-Cookie") {
		return false, ReasonSetCookie
	}
	if varyStar(h) {
		return false, ReasonVaryStar
	}
	if ttlOverride || heuristicallyCacheable(status) || cc.has("public") ||
		cc.has("max-age") || cc.has("s-maxage") || (!targeted && len(h["Expires"]) > 0) {
		return true, ""
	}
	return false, ReasonNoFreshness
}

// RequestNoStore reports whether req carries Cache-Control: no-store
// (RFC 9111 §5.2.1.5): nothing of this exchange may be stored.
func RequestNoStore(req *http.Request) bool {
	cc := ParseCacheControl(req.Header["Cache-Control"])
	return cc.has("no-store")
}

// OnlyIfCached reports whether req carries Cache-Control: only-if-cached
// (RFC 9111 §5.2.1.7): the cache answers from storage or with 504.
func OnlyIfCached(req *http.Request) bool {
	cc := ParseCacheControl(req.Header["Cache-Control"])
	return cc.has("only-if-cached")
}
