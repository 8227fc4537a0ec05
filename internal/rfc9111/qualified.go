package rfc9111

import (
	"net/http"
	"strings"
)

// qualified returns the field names of the qualified form of the response
// directive name (no-cache="a, b" or private="a", RFC 9111 §5.2.2.4 and
// §5.2.2.7) in canonical form. all is true when the directive applies to
// the whole response instead: the unqualified form, and — so that an
// ambiguous directive errs on the strict side — an argument that lists no
// field name or something that is not a field name (a token), or
// conflicting duplicates of the directive. Both are false when the
// directive is absent.
func (d *Directives) qualified(name string) (all bool, fields []string) {
	x, conflict := d.find(name)
	if x == nil {
		return false, nil
	}
	if conflict || !x.hasValue {
		return true, nil
	}
	for f := range strings.SplitSeq(x.value, ",") {
		f = trimOWS(f)
		if !isToken(f) {
			return true, nil
		}
		fields = append(fields, http.CanonicalHeaderKey(f))
	}
	return false, fields
}

// noCacheAll reports a no-cache directive that applies to the whole
// response: the response may not be reused without validation.
func noCacheAll(cc *Directives) bool {
	if !cc.has("no-cache") {
		return false
	}
	all, _ := cc.qualified("no-cache")
	return all
}

// privateAll reports a private directive that applies to the whole
// response: a shared cache must not store it.
func privateAll(cc *Directives) bool {
	if !cc.has("private") {
		return false
	}
	all, _ := cc.qualified("private")
	return all
}

// NoCache reports the response's no-cache directive (RFC 9111 §5.2.2.4),
// taken from Cache-Control or from the targeted field o selects (see
// [ResponseDirectives]). always is true when the response must be
// validated before every reuse (the unqualified form, or an argument that
// is not a list of field names); otherwise fields are the canonical names
// the qualified form lists: the response may be reused without
// validation, but those fields "MUST NOT be sent in the response to a
// subsequent request without successful revalidation with the origin
// server". Both are zero without no-cache.
func NoCache(h http.Header, o Options) (always bool, fields []string) {
	var cc Directives
	o.responseDirectives(h, &cc)
	if !cc.has("no-cache") {
		return false, nil
	}
	return cc.qualified("no-cache")
}

// StripPrivate removes from h the fields a qualified private directive
// names (private="Set-Cookie", RFC 9111 §5.2.2.7: "a shared cache MUST NOT
// store the listed header fields if they are present in the original
// response but MAY store the remainder of the response message without
// those fields") and returns them, or nil if there were none. The
// directive comes from Cache-Control or from the targeted field o selects
// (see [ResponseDirectives]). Call it on a response before storing it
// (after [Storable], which allows such a response) and on the header
// [Update304] merged. The removed fields may go to the client whose
// request fetched the response, never to another.
func StripPrivate(h http.Header, o Options) http.Header {
	var cc Directives
	o.responseDirectives(h, &cc)
	if !cc.has("private") {
		return nil
	}
	all, fields := cc.qualified("private")
	if all {
		return nil
	}
	var removed http.Header
	for _, f := range fields {
		if vs, ok := h[f]; ok {
			if removed == nil {
				removed = http.Header{}
			}
			removed[f] = vs
			delete(h, f)
		}
	}
	return removed
}

// listsField reports whether the qualified form of directive name lists
// field (canonical).
func listsField(cc *Directives, name, field string) bool {
	all, fields := cc.qualified(name)
	if all {
		return false
	}
	for _, f := range fields {
		if f == field {
			return true
		}
	}
	return false
}
