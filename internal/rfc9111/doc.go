// Package rfc9111 implements the HTTP caching rules of a shared cache as
// pure functions: RFC 9111 (HTTP Caching), RFC 5861 (stale-while-revalidate
// and stale-if-error) and the parts of RFC 9110 a cache needs (conditional
// requests, range requests).
//
// # Overview
//
// The package holds no state and does no I/O. Package cache calls it to
// decide:
//
//   - whether a response may be stored: [Storable];
//   - how long it stays fresh and how old it is: [FreshnessLifetime],
//     [CurrentAge];
//   - what to do with a stored response for a request: [Evaluate] (fresh,
//     stale but servable, stale-while-revalidate, or validate first) and,
//     when validation fails, [StaleIfError];
//   - which fields a response may not share: [StripPrivate] (before
//     storing), [NoCache] (fields not served without validation);
//   - which stored variant a request selects: [VaryKey];
//   - how to revalidate and merge the answer: [ValidationHeaders],
//     [Update304], and when a response to HEAD may update a stored GET
//     response: [HEADUpdates];
//   - whether a client's conditional request gets a 304: [NotModified];
//   - which keys an unsafe request invalidates: [InvalidationTargets];
//   - byte ranges served from a complete stored object: [ParseRange],
//     [IfRangeMatches], [ContentRange]; and the same rule, as far as it
//     applies without the object's size, for a Range field forwarded
//     upstream: [ForwardRange].
//
// Targeted cache-control fields (RFC 9213) such as CDN-Cache-Control are
// honoured when [Options.TargetedFields] lists them: the first one present
// and valid ([ParseTargeted], a strict Structured Field parser) replaces
// Cache-Control and Expires in every decision above ([ResponseDirectives]).
// The package never removes or rewrites a field; whether a tier forwards
// them is the caller's choice.
//
// [ParseCacheControl] parses Cache-Control without allocating for up to
// six directives (unless a quoted-string contains escapes); [Evaluate] is
// meant for the hit path and does not allocate. All functions are safe for
// concurrent use; none modifies its arguments except [Update304], which
// updates the stored header it is given.
//
// # Usage
//
//	ok, reason := rfc9111.Storable(req, resp.StatusCode, resp.Header, dec.TTL > 0, opts)
//	if !ok {
//		// forward without storing; reason goes to the log
//	}
//	e := &rfc9111.Entry{Status: 200, Header: h, RequestTime: sent, ResponseTime: received}
//	switch v, age := rfc9111.Evaluate(req, e, time.Now(), opts); v {
//	case rfc9111.Fresh, rfc9111.StaleServable:
//		// serve with Age: age
//	case rfc9111.StaleWhileRevalidate:
//		// serve, revalidate in the background with rfc9111.ValidationHeaders(e)
//	case rfc9111.MustValidate:
//		// revalidate; on upstream failure serve only if rfc9111.StaleIfError(...)
//	}
//
// # Security
//
// The rules are those of a shared cache, stricter than RFC 9111 where it
// leaves a choice: private responses, responses to requests with
// Authorization (unless public, s-maxage or must-revalidate), Vary: * and
// — unless [Options.AllowSetCookie] or private="Set-Cookie" — responses
// with Set-Cookie are never stored, and [Update304] never copies
// Set-Cookie into a stored response, so one client's state does not reach
// another. A response with private="field" is stored only after
// [StripPrivate] removed the named fields; the fields of no-cache="field"
// are stored but must not be served without validation ([NoCache]). A
// qualified directive whose argument is not a list of field names counts
// as unqualified. [VaryKey] returns request header values (possibly cookies):
// hash it before storing and never log it. Parsers are bounded
// ([MaxDirectives], [MaxRangeSpecs]) and never panic. No Range field makes
// a response larger than the representation plus [MaxRanges] part headers:
// overlapping and adjacent ranges are coalesced, and a field whose ranges
// overlap to more than the representation's size, or that still has more
// than MaxRanges ranges, is ignored (the whole representation is served);
// [ForwardRange] keeps only such fields when passing one upstream.
package rfc9111
