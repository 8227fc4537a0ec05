package rfc9111

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/onioncdn/onioncdn/internal/hygiene"
)

// ValidationHeaders returns the conditional header fields that revalidate
// the stored response e (RFC 9111 §4.3.1): If-None-Match with the stored
// ETag (weak tags too: If-None-Match uses weak comparison) and
// If-Modified-Since with the stored Last-Modified when it is a valid
// HTTP-date. Both are sent when both exist, as §4.3.1 recommends. The
// result is empty when e has no validator; the caller then fetches in
// full.
func ValidationHeaders(e *Entry) http.Header {
	h := http.Header{}
	if et := e.Header.Get("Etag"); et != "" {
		if _, _, ok := parseETag(et); ok {
			h.Set("If-None-Match", et)
		}
	}
	if lm := e.Header.Get("Last-Modified"); lm != "" {
		if _, ok := parseDate(lm); ok {
			h.Set("If-Modified-Since", lm)
		}
	}
	return h
}

// scanETag parses one entity-tag (RFC 9110 §8.8.3) at the start of s and
// returns its opaque-tag (with quotes), whether it is weak, the text after
// it, and ok.
func scanETag(s string) (opaque string, weak bool, rest string, ok bool) {
	if strings.HasPrefix(s, "W/") {
		weak = true
		s = s[2:]
	}
	if len(s) < 2 || s[0] != '"' {
		return "", false, "", false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if c == '"' {
			return s[:i+1], weak, s[i+1:], true
		}
		// etagc = %x21 / %x23-7E / obs-text
		if c < 0x21 || c == 0x7f {
			return "", false, "", false
		}
	}
	return "", false, "", false
}

// parseETag parses a field value holding exactly one entity-tag.
func parseETag(s string) (opaque string, weak bool, ok bool) {
	opaque, weak, rest, ok := scanETag(trimOWS(s))
	if !ok || trimOWS(rest) != "" {
		return "", false, false
	}
	return opaque, weak, true
}

// etagListMatch reports whether the If-None-Match/If-Match field lines
// list "*" or an entity-tag matching stored (RFC 9110 §8.8.3.2), using
// weak comparison when weakCmp and strong comparison otherwise. A
// malformed member ends the list (the members before it still count).
func etagListMatch(lines []string, stored string, weakCmp bool) bool {
	so, sweak, sok := parseETag(stored)
	for _, line := range lines {
		s := line
		for {
			s = strings.TrimLeft(s, " \t,")
			if s == "" {
				break
			}
			if s[0] == '*' {
				return true
			}
			o, w, rest, ok := scanETag(s)
			if !ok {
				break
			}
			if sok && o == so && (weakCmp || (!w && !sweak)) {
				return true
			}
			s = rest
		}
	}
	return false
}

// NotModified reports whether a client's conditional GET or HEAD request
// req is satisfied by a stored response with header h, so that the cache
// answers 304 (RFC 9111 §4.3.2, RFC 9110 §13.2.2):
//
//   - If-None-Match, when present, decides alone: "*" matches any stored
//     response, otherwise an entity-tag must match h's ETag by weak
//     comparison (RFC 9111 §4.3.2);
//   - otherwise If-Modified-Since (a single valid HTTP-date) matches when
//     h's Last-Modified — or, without one, h's Date (§4.3.2) — is not later
//     than it. With neither, it does not match.
//
// If-Match and If-Unmodified-Since are not evaluated: they are not
// applicable to a cache (§4.3.2) and are for the origin to decide. Other
// methods never get a 304. The caller serves 304 only from a response
// that is fresh or was just validated.
func NotModified(req *http.Request, h http.Header) bool {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return false
	}
	if inm := req.Header["If-None-Match"]; len(inm) > 0 {
		return etagListMatch(inm, h.Get("Etag"), true)
	}
	ims := req.Header["If-Modified-Since"]
	if len(ims) != 1 {
		return false
	}
	since, ok := parseDate(ims[0])
	if !ok {
		return false
	}
	mod, ok := parseDate(h.Get("Last-Modified"))
	if !ok {
		if mod, ok = parseDate(h.Get("Date")); !ok {
			return false
		}
	}
	return !mod.After(since)
}

// IfRangeMatches reports whether req's Range may be honoured against a
// stored response with header h (RFC 9110 §13.1.5): true without If-Range;
// with an entity-tag, when it is strong and strongly equal to h's ETag;
// with an HTTP-date, when it exactly equals h's Last-Modified and that is a
// strong validator, i.e. at least one second before h's Date (RFC 9110
// §8.8.2.2). Anything else (weak tags, invalid values) is false: serve the
// whole representation.
func IfRangeMatches(req *http.Request, h http.Header) bool {
	vs := req.Header["If-Range"]
	if len(vs) == 0 {
		return true
	}
	if len(vs) > 1 {
		return false
	}
	v := trimOWS(vs[0])
	if strings.HasPrefix(v, "W/") || strings.HasPrefix(v, `"`) {
		o, weak, ok := parseETag(v)
		if !ok || weak {
			return false
		}
		so, sweak, sok := parseETag(h.Get("Etag"))
		return sok && !sweak && so == o
	}
	t, ok := parseDate(v)
	if !ok {
		return false
	}
	lm, ok := parseDate(h.Get("Last-Modified"))
	if !ok || !lm.Equal(t) {
		return false
	}
	date, ok := parseDate(h.Get("Date"))
	return ok && date.Sub(lm) >= time.Second
}

// update304Excluded reports the canonical field names [Update304] never
// copies.
func update304Excluded(name string) bool {
	switch name {
	case "Content-Length", "Content-Range", "Content-Encoding", "Transfer-Encoding", "Trailer",
		"Proxy-Authenticate", "Proxy-Authentication-Info", "Proxy-Authorization", "Set-Cookie":
		return true
	}
	return false
}

// Update304 updates the stored response header stored with the header of
// a 304 (Not Modified) response fresh (RFC 9111 §3.2, §4.3.4), or of a 200
// response to HEAD that [HEADUpdates] accepts (§4.3.5): each field
// in fresh replaces the stored field of the same name, except the
// hop-by-hop fields (internal/hygiene), the fields named by fresh's
// Connection field, and these framing and privacy fields:
//
//   - Content-Length (§3.2 names it), Content-Range, Transfer-Encoding and
//     Trailer: they describe the 304's framing, not the stored body;
//   - Content-Encoding: the stored bytes stay in the stored coding, so a
//     different value would corrupt them (§3.2 lets a cache omit fields the
//     stored response depends on);
//   - Proxy-Authenticate, Proxy-Authentication-Info, Proxy-Authorization:
//     not to be stored at all (§3.1);
//   - Set-Cookie: a cookie on the 304 to this cache's revalidation must not
//     become part of the shared response every later client receives.
//
// Other fields, Content-Type included, are replaced (§3.2 says metadata is
// updated). fresh is not modified; stored gets copies of its values.
//
// The caller should then set the entry's RequestTime and ResponseTime to
// those of the revalidation (Date and Age now come from the 304), remove
// the fields a qualified private names with [StripPrivate], and check
// [Storable] again on the merged header: a 304 can add no-store or
// private.
func Update304(stored, fresh http.Header) {
	var skip []string
	for _, c := range fresh["Connection"] {
		for f := range strings.SplitSeq(c, ",") {
			if f = trimOWS(f); f != "" {
				skip = append(skip, http.CanonicalHeaderKey(f))
			}
		}
	}
outer:
	for k, vs := range fresh {
		ck := http.CanonicalHeaderKey(k)
		if hygiene.IsHopByHop(ck) || update304Excluded(ck) {
			continue
		}
		for _, x := range skip {
			if ck == x {
				continue outer
			}
		}
		if k != ck {
			delete(stored, k)
		}
		stored[ck] = append([]string(nil), vs...)
	}
}

// HEADUpdates reports whether a 200 (OK) response to HEAD with header
// head may update a stored GET response with header stored and a body of
// size bytes (RFC 9111 §4.3.5): "if the stored response and HEAD response
// have matching values for any received validator fields (ETag and
// Last-Modified) and, if the HEAD response has a Content-Length header
// field, the value of Content-Length matches that of the stored response,
// the cache SHOULD update the stored response ...; otherwise, the cache
// SHOULD consider the stored response to be stale".
//
// The match is strict: the HEAD response must carry at least one
// validator, each validator it carries must equal the stored one (the
// same entity-tag, weakness included; the same Last-Modified date), and a
// Content-Length must be a single value equal to size. The caller then
// updates the stored header as for a 304 ([Update304], [StripPrivate],
// [Storable]), with the request and response times of the HEAD exchange.
func HEADUpdates(stored http.Header, size int64, head http.Header) bool {
	validators := 0
	if et, ok := head["Etag"]; ok {
		validators++
		so, sweak, sok := parseETag(stored.Get("Etag"))
		o, weak, ok := parseETag(strings.Join(et, ","))
		if !sok || !ok || o != so || weak != sweak {
			return false
		}
	}
	if lm, ok := head["Last-Modified"]; ok {
		validators++
		st, sok := parseDate(stored.Get("Last-Modified"))
		t, ok := parseDate(strings.Join(lm, ","))
		if !sok || !ok || !t.Equal(st) {
			return false
		}
	}
	if cl, ok := head["Content-Length"]; ok {
		v := ""
		if len(cl) == 1 {
			v = trimOWS(cl[0])
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || v == "" || v[0] < '0' || v[0] > '9' || n != size {
			return false
		}
	}
	return validators > 0
}
