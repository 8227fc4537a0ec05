package rfc9111

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// singleDate returns the date in the field name of h, received at ref. A
// field with several different values is invalid (RFC 9111 §4.2.1: "either
// the first occurrence should be used or the response should be considered
// stale"; this package chooses stale for Expires).
func singleDate(h http.Header, name string, ref time.Time) (time.Time, bool) {
	vs := h[name]
	if len(vs) == 0 {
		return time.Time{}, false
	}
	for _, v := range vs[1:] {
		if v != vs[0] {
			return time.Time{}, false
		}
	}
	return parseDateAt(vs[0], ref)
}

// dateValue is the stored response's Date, or its ResponseTime when Date
// is missing or invalid (RFC 9110 §6.6.1: a recipient with a clock adds
// Date as the time of receipt).
func dateValue(e *Entry) time.Time {
	if d, ok := parseDateAt(e.Header.Get("Date"), e.ResponseTime); ok {
		return d
	}
	return e.ResponseTime
}

// FreshnessLifetime returns the freshness lifetime of e for a shared cache
// (RFC 9111 §4.2.1) and whether it is heuristic. In order of precedence:
//
//  1. e.TTL, if positive (a policy override);
//  2. s-maxage (§5.2.2.10);
//  3. max-age (§5.2.2.1);
//  4. Expires − Date (§5.3); an invalid Expires, or several different
//     Expires values, mean "already expired" (0);
//  5. a heuristic (§4.2.2): o.HeuristicFraction (0.1) of Date −
//     Last-Modified, capped at o.MaxHeuristic (24 h), only when the status
//     is heuristically cacheable (RFC 9110 §15.1) or the response is
//     public. Without a valid Last-Modified the lifetime is 0.
//
// The directives are those of the response's Cache-Control field or, when
// o honours a targeted field the response carries (RFC 9213, see
// [Options.TargetedFields]), of that field; Expires (step 4) is then
// ignored. Invalid or conflicting s-maxage/max-age arguments in
// Cache-Control count as 0 (see [Directives]). Negative results are 0.
func FreshnessLifetime(e *Entry, o Options) (d time.Duration, heuristic bool) {
	if e.TTL > 0 {
		return e.TTL, false
	}
	var cc Directives
	targeted := o.responseDirectives(e.Header, &cc)
	return freshnessLifetime(e, &cc, targeted, o)
}

// freshnessLifetime is FreshnessLifetime with the response directives cc;
// targeted reports that they come from a targeted field, so that Expires
// is ignored (RFC 9213 §2.2).
func freshnessLifetime(e *Entry, cc *Directives, targeted bool, o Options) (time.Duration, bool) {
	if e.TTL > 0 {
		return e.TTL, false
	}
	if v, present, _ := cc.seconds("s-maxage"); present {
		return v, false
	}
	if v, present, _ := cc.seconds("max-age"); present {
		return v, false
	}
	if !targeted && len(e.Header["Expires"]) > 0 {
		exp, ok := singleDate(e.Header, "Expires", e.ResponseTime)
		if !ok {
			return 0, false
		}
		return clampNonNeg(exp.Sub(dateValue(e))), false
	}
	if !heuristicallyCacheable(e.Status) && !cc.has("public") {
		return 0, false
	}
	lm, ok := parseDateAt(e.Header.Get("Last-Modified"), e.ResponseTime)
	if !ok {
		return 0, false
	}
	since := dateValue(e).Sub(lm)
	if since <= 0 {
		return 0, true
	}
	d := time.Duration(float64(since) * o.fraction())
	if m := o.maxHeuristic(); d > m || d < 0 {
		d = m
	}
	return d, true
}

func clampNonNeg(d time.Duration) time.Duration {
	if d < 0 {
		return 0
	}
	if d > MaxDelta {
		return MaxDelta
	}
	return d
}

// ageValue parses the Age header (RFC 9111 §5.1): the first member of a
// list is used; an invalid value is ignored (0).
func ageValue(h http.Header) time.Duration {
	v := h.Get("Age")
	if i := strings.IndexByte(v, ','); i >= 0 {
		v = v[:i]
	}
	d, ok := ParseDeltaSeconds(trimOWS(v))
	if !ok {
		return 0
	}
	return d
}

// CurrentAge returns the current age of e at now (RFC 9111 §4.2.3):
//
//	apparent_age          = max(0, response_time − date_value)
//	response_delay        = response_time − request_time
//	corrected_age_value   = age_value + response_delay
//	corrected_initial_age = max(apparent_age, corrected_age_value)
//	resident_time         = now − response_time
//	current_age           = corrected_initial_age + resident_time
//
// A missing or invalid Date gives apparent_age 0; negative delays and
// resident times (clock steps) count as 0; the result is at most
// [MaxDelta] (§1.2.2).
func CurrentAge(e *Entry, now time.Time) time.Duration {
	apparent := time.Duration(0)
	if d, ok := parseDateAt(e.Header.Get("Date"), e.ResponseTime); ok {
		apparent = clampNonNeg(e.ResponseTime.Sub(d))
	}
	delay := clampNonNeg(e.ResponseTime.Sub(e.RequestTime))
	corrected := ageValue(e.Header) + delay
	initial := max(apparent, corrected)
	age := initial + clampNonNeg(now.Sub(e.ResponseTime))
	if age > MaxDelta || age < 0 {
		age = MaxDelta
	}
	return age
}

// Verdict is what a cache may do with a stored response for a request.
type Verdict int

const (
	// Fresh: serve the stored response.
	Fresh Verdict = iota
	// StaleServable: the response is stale but the request's max-stale
	// allows serving it without validation (RFC 9111 §5.2.1.2).
	StaleServable
	// StaleWhileRevalidate: serve the stale response and revalidate it in
	// the background (RFC 5861 §3).
	StaleWhileRevalidate
	// MustValidate: the response may only be used after a successful
	// validation (a 304) — or, when validation fails, under
	// [StaleIfError].
	MustValidate
)

// String returns the verdict's name.
func (v Verdict) String() string {
	switch v {
	case Fresh:
		return "fresh"
	case StaleServable:
		return "stale-servable"
	case StaleWhileRevalidate:
		return "stale-while-revalidate"
	case MustValidate:
		return "must-validate"
	}
	return "verdict(" + strconv.Itoa(int(v)) + ")"
}

// requestNoCache reports no-cache in the request's Cache-Control, or
// Pragma: no-cache when the request has no Cache-Control field (RFC 9111
// §5.4).
func requestNoCache(req *http.Request, rcc *Directives) bool {
	if rcc.has("no-cache") {
		return true
	}
	if _, ok := req.Header["Cache-Control"]; ok {
		return false
	}
	for _, p := range req.Header["Pragma"] {
		for f := range strings.SplitSeq(p, ",") {
			if strings.EqualFold(trimOWS(f), "no-cache") {
				return true
			}
		}
	}
	return false
}

// staleForbidden reports response directives that forbid serving the
// response stale by a shared cache (RFC 9111 §4.2.4): must-revalidate,
// proxy-revalidate, and s-maxage (which implies proxy-revalidate,
// §5.2.2.10).
func staleForbidden(cc *Directives) bool {
	return cc.has("must-revalidate") || cc.has("proxy-revalidate") || cc.has("s-maxage")
}

// Evaluate decides how the stored response e may answer req at now and
// returns the response's current age (for the Age header). The rules, in
// order:
//
//   - request no-cache, or Pragma: no-cache without Cache-Control
//     (§5.2.1.4, §5.4) ⇒ MustValidate;
//   - response no-cache without field names (§5.2.2.4) ⇒ MustValidate.
//     The qualified form no-cache="field" does not force validation: the
//     caller serves the response without the named fields unless it was
//     just validated (see [NoCache]);
//   - request max-age (§5.2.1.1) smaller than the age ⇒ MustValidate;
//   - fresh (lifetime > age) and, with min-fresh (§5.2.1.3), still fresh
//     for at least min-fresh ⇒ Fresh; fresh but short of min-fresh ⇒
//     MustValidate;
//   - stale with must-revalidate, proxy-revalidate or s-maxage ⇒
//     MustValidate, whatever max-stale or the windows say (§4.2.4);
//   - stale by at most the stale-while-revalidate window ("up to the
//     indicated number of seconds", RFC 5861 §3) ⇒
//     StaleWhileRevalidate. The window is e.SWR if positive, else the
//     response's directive (even 0), else o.DefaultStaleWhileRevalidate.
//     It is preferred over max-stale because it also refreshes the entry;
//   - stale within the request's max-stale (any staleness without an
//     argument) ⇒ StaleServable;
//   - otherwise MustValidate.
//
// Response directives come from Cache-Control or from the targeted field
// o selects (see [Options.TargetedFields]). Request directives with
// invalid arguments count as 0 (max-age=0 validates, max-stale=0 allows no
// staleness).
func Evaluate(req *http.Request, e *Entry, now time.Time, o Options) (Verdict, time.Duration) {
	rcc := ParseCacheControl(req.Header["Cache-Control"])
	var cc Directives
	targeted := o.responseDirectives(e.Header, &cc)
	age := CurrentAge(e, now)
	if requestNoCache(req, &rcc) || noCacheAll(&cc) {
		return MustValidate, age
	}
	if v, present, _ := rcc.seconds("max-age"); present && age > v {
		return MustValidate, age
	}
	lifetime, _ := freshnessLifetime(e, &cc, targeted, o)
	if lifetime > age {
		if minFresh, present, _ := rcc.seconds("min-fresh"); present && lifetime-age < minFresh {
			return MustValidate, age
		}
		return Fresh, age
	}
	if staleForbidden(&cc) {
		return MustValidate, age
	}
	staleness := age - lifetime
	if swr := staleWindow(e.SWR, &cc, "stale-while-revalidate", o.DefaultStaleWhileRevalidate); swr > 0 && staleness <= swr {
		return StaleWhileRevalidate, age
	}
	if x, _ := rcc.find("max-stale"); x != nil {
		if !x.hasValue {
			return StaleServable, age
		}
		if v, _, _ := rcc.seconds("max-stale"); staleness <= v {
			return StaleServable, age
		}
	}
	return MustValidate, age
}

// staleWindow returns override if positive, else the response directive
// name if present (invalid arguments count as 0), else def.
func staleWindow(override time.Duration, cc *Directives, name string, def time.Duration) time.Duration {
	if override > 0 {
		return override
	}
	if v, present, _ := cc.seconds(name); present {
		return v
	}
	return def
}

// StaleIfError reports whether the stale (or unvalidated) response e may be
// served for req at now because validating it failed: the upstream could
// not be reached or answered 500, 502, 503 or 504 (RFC 5861 §4). It is
// allowed when the staleness is at most the response's window (e.SIE if
// positive, else the response's stale-if-error directive, else
// o.DefaultStaleIfError) or at most the request's stale-if-error, and the
// window is positive. It is never allowed when the response has no-cache
// (unqualified; the qualified form only hides its fields, see [NoCache]),
// must-revalidate, proxy-revalidate or s-maxage (RFC 9111 §4.2.4 and
// §5.2.2.2: "if a cache is disconnected, the cache MUST generate an error
// response rather than reuse the stale response"), nor when the request
// has no-cache (the client asked for a validated response). Response
// directives come from Cache-Control or from the targeted field o selects
// (see [Options.TargetedFields]).
func StaleIfError(req *http.Request, e *Entry, now time.Time, o Options) bool {
	rcc := ParseCacheControl(req.Header["Cache-Control"])
	var cc Directives
	targeted := o.responseDirectives(e.Header, &cc)
	if noCacheAll(&cc) || staleForbidden(&cc) || requestNoCache(req, &rcc) {
		return false
	}
	lifetime, _ := freshnessLifetime(e, &cc, targeted, o)
	staleness := clampNonNeg(CurrentAge(e, now) - lifetime)
	if w := staleWindow(e.SIE, &cc, "stale-if-error", o.DefaultStaleIfError); w > 0 && staleness <= w {
		return true
	}
	if w, present, _ := rcc.seconds("stale-if-error"); present && w > 0 && staleness <= w {
		return true
	}
	return false
}
