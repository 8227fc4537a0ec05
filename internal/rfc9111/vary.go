package rfc9111

import (
	"net/http"
	"slices"
	"strings"
)

// varyNames appends the lower-cased field names listed in h's Vary lines
// and reports whether one of them is "*".
func varyNames(h http.Header, names []string) ([]string, bool) {
	for _, line := range h["Vary"] {
		for f := range strings.SplitSeq(line, ",") {
			f = trimOWS(f)
			if f == "" {
				continue
			}
			if f == "*" {
				return names, true
			}
			names = append(names, strings.ToLower(f))
		}
	}
	return names, false
}

func varyStar(h http.Header) bool {
	_, star := varyNames(h, nil)
	return star
}

// VaryKey returns the secondary cache key of req for a stored response
// with header respHeader (RFC 9111 §4.1): one line per field named by
// Vary, names lower-cased, de-duplicated and sorted, each followed by the
// request's values of that field, normalised as §4.1 allows (field lines
// combined, whitespace around list commas removed, runs of spaces and tabs
// collapsed to one space). An absent field ("name") and an empty one
// ("name:") give different keys. Without Vary the key is "". ok is false
// for Vary: *, which never matches (this package never stores such
// responses, see [Storable]).
//
// The key contains request header values (for Vary: Cookie, a cookie):
// store it hashed and never log it.
func VaryKey(req *http.Request, respHeader http.Header) (key string, ok bool) {
	if len(respHeader["Vary"]) == 0 {
		return "", true
	}
	var buf [8]string
	names, star := varyNames(respHeader, buf[:0])
	if star {
		return "", false
	}
	if len(names) == 0 {
		return "", true
	}
	slices.Sort(names)
	names = slices.Compact(names)
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(n)
		vs := req.Header.Values(n)
		if len(vs) == 0 {
			continue
		}
		b.WriteByte(':')
		first := true
		for _, line := range vs {
			for f := range strings.SplitSeq(line, ",") {
				if !first {
					b.WriteByte(',')
				}
				first = false
				writeCollapsed(&b, trimOWS(f))
			}
		}
	}
	return b.String(), true
}

// writeCollapsed writes s with runs of SP/HTAB collapsed to one SP.
func writeCollapsed(b *strings.Builder, s string) {
	space := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ' ' || c == '\t' {
			space = true
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteByte(c)
	}
}
