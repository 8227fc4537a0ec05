package rfc9111

import (
	"net/http"
	"strings"
	"time"
)

// MaxDirectives bounds how many directives [ParseCacheControl] keeps; later
// ones are ignored. Real responses carry a handful; the bound keeps a
// hostile header from costing more than a fixed amount of work per lookup.
const MaxDirectives = 64

// MaxDelta is the largest delta-seconds value represented: RFC 9111 §1.2.2
// says a cache MUST treat a larger value (or an overflow) as 2^31 seconds.
const MaxDelta = (1 << 31) * time.Second

// inlineDirectives is how many directives a [Directives] holds without a
// heap allocation. Typical headers have at most four.
const inlineDirectives = 6

type directive struct {
	name     string // lower-case token
	value    string // unquoted argument
	hasValue bool   // "=" was present (the argument may be empty)
}

// Directives is a parsed Cache-Control field (RFC 9111 §5.2). Directive
// names are compared case-insensitively; arguments may use token or
// quoted-string syntax (§5.2: recipients accept both forms). The zero value
// is an empty field.
//
// Duplicates and invalid arguments (RFC 9111 §4.2.1): every directive is
// kept in order. Lookups use the first occurrence, except that a directive
// repeated with a different argument is treated as invalid, and an invalid
// delta-seconds argument is reported by [Directives.Seconds] as zero: for
// max-age and s-maxage that makes the response stale, which is what §4.2.1
// encourages ("consider responses that have invalid freshness information
// ... to be stale"), and for every other delta-seconds directive zero is
// the conservative choice (no stale window, no max-stale allowance).
//
// A Directives is a value; it is safe for concurrent reads.
type Directives struct {
	n      int
	inline [inlineDirectives]directive
	extra  []directive
}

// ParseCacheControl parses the lines of a Cache-Control field (pass
// h["Cache-Control"] or h.Values("Cache-Control")). Parsing is lenient and
// never fails: elements whose name is not a token are skipped, text after a
// closing quote up to the next comma is ignored, an unterminated
// quoted-string runs to the end of its line, and at most [MaxDirectives]
// directives are kept. Up to six directives are parsed without allocating.
func ParseCacheControl(values []string) Directives {
	var d Directives
	for _, v := range values {
		d.parse(v)
	}
	return d
}

func (d *Directives) parse(s string) {
	i := 0
	for i < len(s) && d.n < MaxDirectives {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == ',') {
			i++
		}
		if i >= len(s) {
			return
		}
		start := i
		for i < len(s) && s[i] != '=' && s[i] != ',' {
			i++
		}
		name := trimOWS(s[start:i])
		var value string
		hasValue := false
		if i < len(s) && s[i] == '=' {
			i++
			hasValue = true
			for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
				i++
			}
			if i < len(s) && s[i] == '"' {
				value, i = parseQuoted(s, i)
				for i < len(s) && s[i] != ',' {
					i++
				}
			} else {
				start := i
				for i < len(s) && s[i] != ',' {
					i++
				}
				value = trimOWS(s[start:i])
			}
		}
		if !isToken(name) {
			continue
		}
		d.add(directive{name: strings.ToLower(name), value: value, hasValue: hasValue})
	}
}

func (d *Directives) add(x directive) {
	if d.n < inlineDirectives {
		d.inline[d.n] = x
	} else {
		if d.extra == nil {
			d.extra = make([]directive, 0, 8)
		}
		d.extra = append(d.extra, x)
	}
	d.n++
}

func (d *Directives) at(i int) *directive {
	if i < inlineDirectives {
		return &d.inline[i]
	}
	return &d.extra[i-inlineDirectives]
}

// parseQuoted parses the quoted-string starting at s[i] == '"' and returns
// its unescaped content and the index after the closing quote.
func parseQuoted(s string, i int) (string, int) {
	i++ // opening quote
	start := i
	for j := i; j < len(s); j++ {
		switch s[j] {
		case '"':
			return s[start:j], j + 1
		case '\\':
			// Escapes present: build the value.
			var b strings.Builder
			b.WriteString(s[start:j])
			for ; j < len(s); j++ {
				c := s[j]
				if c == '"' {
					return b.String(), j + 1
				}
				if c == '\\' && j+1 < len(s) {
					j++
					c = s[j]
				}
				b.WriteByte(c)
			}
			return b.String(), len(s)
		}
	}
	return s[start:], len(s)
}

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// isTchar reports whether c is a tchar (RFC 9110 §5.6.2).
func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// nameIs reports whether the stored lower-case name equals want,
// case-insensitively.
func nameIs(name, want string) bool {
	return len(name) == len(want) && (name == want || strings.EqualFold(name, want))
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTchar(s[i]) {
			return false
		}
	}
	return true
}

// find returns the first occurrence of name and whether a later occurrence
// carries a different argument (a conflicting duplicate).
func (d *Directives) find(name string) (x *directive, conflict bool) {
	for i := 0; i < d.n; i++ {
		y := d.at(i)
		if !nameIs(y.name, name) {
			continue
		}
		if x == nil {
			x = y
		} else if y.value != x.value || y.hasValue != x.hasValue {
			return x, true
		}
	}
	return x, false
}

func (d *Directives) has(name string) bool {
	for i := 0; i < d.n; i++ {
		if nameIs(d.at(i).name, name) {
			return true
		}
	}
	return false
}

// seconds returns name's delta-seconds argument; valid is false when the
// directive is present without a valid argument (missing, non-numeric or
// conflicting duplicates).
func (d *Directives) seconds(name string) (v time.Duration, present, valid bool) {
	x, conflict := d.find(name)
	if x == nil {
		return 0, false, false
	}
	if conflict || !x.hasValue {
		return 0, true, false
	}
	v, ok := ParseDeltaSeconds(x.value)
	return v, true, ok
}

// Has reports whether the directive name is present (with or without an
// argument).
func (d Directives) Has(name string) bool { return d.has(name) }

// Value returns the (unquoted) argument of the first occurrence of name and
// whether name is present. The argument is "" when the directive has none.
func (d Directives) Value(name string) (string, bool) {
	x, _ := d.find(name)
	if x == nil {
		return "", false
	}
	return x.value, true
}

// Len reports how many directives were kept.
func (d Directives) Len() int { return d.n }

// Seconds returns name's delta-seconds argument (RFC 9111 §1.2.2) and
// whether name is present. A present directive whose argument is missing,
// not a delta-seconds, or repeated with a different value is reported as
// (0, true) (see [Directives]); values beyond 2^31 seconds clamp to
// [MaxDelta].
func (d Directives) Seconds(name string) (time.Duration, bool) {
	v, present, _ := d.seconds(name)
	return v, present
}

// FieldNames returns the field names listed in the argument of name (the
// qualified forms no-cache="a, b" and private="x", RFC 9111 §5.2.2.4 and
// §5.2.2.7) in canonical header form, and whether name is present. fields
// is nil for the unqualified form.
func (d Directives) FieldNames(name string) (fields []string, present bool) {
	x, _ := d.find(name)
	if x == nil {
		return nil, false
	}
	for _, f := range strings.Split(x.value, ",") {
		if f = trimOWS(f); f != "" {
			fields = append(fields, http.CanonicalHeaderKey(f))
		}
	}
	return fields, true
}

// String returns the canonical form of d: directives in order, names in
// lower case, separated by ", ", arguments as tokens when they are tokens
// and as quoted-strings otherwise. ParseCacheControl([]string{d.String()})
// yields d again.
func (d Directives) String() string {
	var b strings.Builder
	for i := 0; i < d.n; i++ {
		x := d.at(i)
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(x.name)
		if !x.hasValue {
			continue
		}
		b.WriteByte('=')
		if isToken(x.value) {
			b.WriteString(x.value)
			continue
		}
		b.WriteByte('"')
		for j := 0; j < len(x.value); j++ {
			if c := x.value[j]; c == '"' || c == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(x.value[j])
		}
		b.WriteByte('"')
	}
	return b.String()
}

// ParseDeltaSeconds parses delta-seconds = 1*DIGIT (RFC 9111 §1.2.2).
// Values beyond 2^31 seconds, however many digits, clamp to [MaxDelta].
func ParseDeltaSeconds(s string) (time.Duration, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n <= 1<<31 {
			n = n*10 + int64(c-'0')
		}
	}
	if n > 1<<31 {
		n = 1 << 31
	}
	return time.Duration(n) * time.Second, true
}
