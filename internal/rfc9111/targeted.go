package rfc9111

import (
	"net/http"
	"strings"
	"unicode/utf8"
)

// CDNCacheControl is the canonical name of the CDN-Cache-Control response
// field (RFC 9213 §3), the targeted field every CDN cache honours.
const CDNCacheControl = "Cdn-Cache-Control"

// ParseTargeted parses the lines of a targeted cache-control field (RFC
// 9213), such as CDN-Cache-Control. Unlike Cache-Control, a targeted field
// is a Structured Field Dictionary (RFC 9213 §2.1, RFC 8941 §3.2) and its
// error handling is strict: ok is false, and the field must be ignored as
// a whole ("it behaves as if the field were not present"), when
//
//   - the field is absent or empty (§2.1);
//   - it is not a valid Dictionary (RFC 8941 §4.2; for example "max-age
//     =60", "Max-Age=60", a trailing comma or an unknown item type), the
//     lines being combined with commas (RFC 8941 §4.2);
//   - a directive this package implements has a value of a type its
//     definition does not allow (§2.1: "Implementations SHOULD NOT consume
//     values that violate these inferred constraints"): max-age, s-maxage,
//     stale-while-revalidate and stale-if-error must be non-negative
//     Integers; no-store, must-revalidate, proxy-revalidate, public,
//     must-understand, no-transform and immutable must be Boolean true;
//     no-cache and private must be Boolean true or a String (the list of
//     field names). Ignoring the whole field, rather than one directive,
//     falls back to the response's Cache-Control, which every other cache
//     obeys: an origin's mistake never makes this cache more permissive
//     than the origin's general policy;
//   - it has more than [MaxDirectives] distinct directives.
//
// Parameters on members are ignored (§2.1). A directive repeated in the
// Dictionary keeps its first position and its last value (RFC 8941
// §4.2.2). Extension directives may have any type; their values are kept
// as written (strings unquoted). The result is used like a parsed
// Cache-Control field: Boolean true is a directive without argument,
// Integers, Tokens and Strings are its argument.
func ParseTargeted(values []string) (d Directives, ok bool) {
	ok = parseTargeted(values, &d)
	return d, ok
}

// parseTargeted is ParseTargeted into d, which must be zero; d is zero
// again when it returns false.
func parseTargeted(values []string, d *Directives) bool {
	if !parseDictionary(values, d) {
		*d = Directives{}
		return false
	}
	return true
}

func parseDictionary(values []string, d *Directives) bool {
	var s string
	switch len(values) {
	case 0:
		return false
	case 1:
		s = values[0]
	default:
		s = strings.Join(values, ",")
	}
	p := sfParser{s: s}
	p.skipSP()
	if p.done() {
		return false // empty: ignored (RFC 9213 §2.1)
	}
	for {
		key, ok := p.key()
		if !ok {
			return false
		}
		x := directive{name: key}
		kind := sfTrue
		if p.peek() == '=' {
			p.i++
			x.value, kind, ok = p.itemOrInnerList()
			if !ok {
				return false
			}
			x.hasValue = kind != sfTrue
		}
		if !p.params() || !allowed(key, kind) || !d.put(x) {
			return false
		}
		p.skipOWS()
		if p.done() {
			return true
		}
		if p.s[p.i] != ',' {
			return false
		}
		p.i++
		p.skipOWS()
		if p.done() {
			return false // trailing comma
		}
	}
}

// put adds x or, if its name is present, replaces that directive's value
// in place (RFC 8941 §4.2.2). It reports false beyond MaxDirectives.
func (d *Directives) put(x directive) bool {
	for i := 0; i < d.n; i++ {
		if y := d.at(i); y.name == x.name {
			*y = x
			return true
		}
	}
	if d.n >= MaxDirectives {
		return false
	}
	d.add(x)
	return true
}

// Types of Structured Field values, as far as directive constraints care.
const (
	sfTrue    = iota // Boolean true (also a member without value)
	sfInteger        // non-negative Integer (its digits are the value)
	sfString
	sfOther // negative Integer, Decimal, Token, Byte Sequence, Boolean false, Date, Display String, Inner List
)

// allowed reports whether a directive this package implements may have a
// value of type kind (RFC 9213 §2.1 inferred constraints).
func allowed(name string, kind int) bool {
	switch name {
	case "max-age", "s-maxage", "stale-while-revalidate", "stale-if-error":
		return kind == sfInteger
	case "no-store", "must-revalidate", "proxy-revalidate", "public", "must-understand", "no-transform", "immutable":
		return kind == sfTrue
	case "no-cache", "private":
		return kind == sfTrue || kind == sfString
	}
	return true
}

// sfParser parses Structured Field text (RFC 8941 §4.2, with the Date and
// Display String types of RFC 9651 so that a field using them is not
// rejected).
type sfParser struct {
	s string
	i int
}

func (p *sfParser) done() bool { return p.i >= len(p.s) }

func (p *sfParser) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *sfParser) skipSP() {
	for p.i < len(p.s) && p.s[p.i] == ' ' {
		p.i++
	}
}

func (p *sfParser) skipOWS() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

// key parses key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" ).
func (p *sfParser) key() (string, bool) {
	start := p.i
	if c := p.peek(); !(c >= 'a' && c <= 'z' || c == '*') {
		return "", false
	}
	p.i++
	for p.i < len(p.s) {
		c := p.s[p.i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '*') {
			break
		}
		p.i++
	}
	return p.s[start:p.i], true
}

// params parses and discards parameters (";" key [ "=" bare-item ]).
func (p *sfParser) params() bool {
	for p.peek() == ';' {
		p.i++
		p.skipSP()
		if _, ok := p.key(); !ok {
			return false
		}
		if p.peek() == '=' {
			p.i++
			if _, _, ok := p.bareItem(); !ok {
				return false
			}
		}
	}
	return true
}

// itemOrInnerList parses a member value: an Item (bare item and
// parameters; the parameters are left for the caller) or an Inner List,
// whose text is returned as written.
func (p *sfParser) itemOrInnerList() (string, int, bool) {
	if p.peek() != '(' {
		return p.bareItem()
	}
	start := p.i
	p.i++
	for {
		p.skipSP()
		if p.peek() == ')' {
			p.i++
			return p.s[start:p.i], sfOther, true
		}
		if _, _, ok := p.bareItem(); !ok || !p.params() {
			return "", 0, false
		}
		if c := p.peek(); c != ' ' && c != ')' {
			return "", 0, false
		}
	}
}

// bareItem parses a bare item and returns its value as text (Strings
// unescaped) and its kind.
func (p *sfParser) bareItem() (string, int, bool) {
	switch c := p.peek(); {
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case c == '"':
		return p.str()
	case c == '*' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		start := p.i
		p.i++
		for p.i < len(p.s) && (isTchar(p.s[p.i]) || p.s[p.i] == ':' || p.s[p.i] == '/') {
			p.i++
		}
		return p.s[start:p.i], sfOther, true
	case c == ':':
		start := p.i
		p.i++
		for p.i < len(p.s) && p.s[p.i] != ':' {
			c := p.s[p.i]
			if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=') {
				return "", 0, false
			}
			p.i++
		}
		if p.done() {
			return "", 0, false
		}
		p.i++
		return p.s[start:p.i], sfOther, true
	case c == '?':
		if p.i+1 < len(p.s) && (p.s[p.i+1] == '0' || p.s[p.i+1] == '1') {
			p.i += 2
			if p.s[p.i-1] == '1' {
				return "", sfTrue, true
			}
			return "?0", sfOther, true
		}
		return "", 0, false
	case c == '@': // Date (RFC 9651 §3.3.7): an Integer
		start := p.i
		p.i++
		if _, kind, ok := p.number(); !ok || kind == sfOther && strings.Contains(p.s[start:p.i], ".") {
			return "", 0, false
		}
		return p.s[start:p.i], sfOther, true
	case c == '%': // Display String (RFC 9651 §3.3.8)
		return p.displayString()
	}
	return "", 0, false
}

// number parses an Integer or a Decimal (RFC 8941 §4.2.4).
func (p *sfParser) number() (string, int, bool) {
	start := p.i
	neg := p.peek() == '-'
	if neg {
		p.i++
	}
	if c := p.peek(); c < '0' || c > '9' {
		return "", 0, false
	}
	digitsStart, dot := p.i, -1
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c >= '0' && c <= '9':
		case c == '.' && dot < 0:
			if p.i-digitsStart > 12 {
				return "", 0, false
			}
			dot = p.i
		default:
			goto end
		}
		p.i++
		if dot < 0 && p.i-digitsStart > 15 || dot >= 0 && p.i-digitsStart > 16 {
			return "", 0, false
		}
	}
end:
	if dot < 0 {
		if neg {
			return p.s[start:p.i], sfOther, true
		}
		return p.s[digitsStart:p.i], sfInteger, true
	}
	if frac := p.i - dot - 1; frac < 1 || frac > 3 {
		return "", 0, false
	}
	return p.s[start:p.i], sfOther, true
}

// str parses a String (RFC 8941 §4.2.5) and returns its unescaped content.
func (p *sfParser) str() (string, int, bool) {
	p.i++ // opening quote
	start := p.i
	var b *strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			if b != nil {
				return b.String(), sfString, true
			}
			return p.s[start : p.i-1], sfString, true
		case c == '\\':
			if p.i+1 >= len(p.s) || p.s[p.i+1] != '"' && p.s[p.i+1] != '\\' {
				return "", 0, false
			}
			if b == nil {
				b = new(strings.Builder)
				b.WriteString(p.s[start:p.i])
			}
			b.WriteByte(p.s[p.i+1])
			p.i += 2
			continue
		case c < 0x20 || c > 0x7e:
			return "", 0, false
		}
		if b != nil {
			b.WriteByte(c)
		}
		p.i++
	}
	return "", 0, false // unterminated
}

// displayString parses %"..." with lower-case %xx escapes of valid UTF-8.
func (p *sfParser) displayString() (string, int, bool) {
	start := p.i
	if p.i+1 >= len(p.s) || p.s[p.i+1] != '"' {
		return "", 0, false
	}
	p.i += 2
	var raw []byte
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			if !utf8.Valid(raw) {
				return "", 0, false
			}
			return p.s[start:p.i], sfOther, true
		case c == '%':
			if p.i+2 >= len(p.s) {
				return "", 0, false
			}
			hi, ok1 := lowerHex(p.s[p.i+1])
			lo, ok2 := lowerHex(p.s[p.i+2])
			if !ok1 || !ok2 {
				return "", 0, false
			}
			raw = append(raw, hi<<4|lo)
			p.i += 3
			continue
		case c < 0x20 || c > 0x7e:
			return "", 0, false
		}
		raw = append(raw, c)
		p.i++
	}
	return "", 0, false
}

func lowerHex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// responseDirectives sets cc (zero on entry) to the directives that govern
// this cache's storage and freshness decisions for a response with header
// h (RFC 9213 §2.2): those of the first field of o.TargetedFields that is
// present, valid and non-empty, reporting true; otherwise those of the
// response's Cache-Control. (cc is filled in place: a Directives is too
// large to return cheaply on the hit path.)
func (o *Options) responseDirectives(h http.Header, cc *Directives) (targeted bool) {
	for _, name := range o.TargetedFields {
		vs, ok := h[name]
		if !ok {
			if c := http.CanonicalHeaderKey(name); c != name {
				vs = h[c]
			}
		}
		if len(vs) > 0 && parseTargeted(vs, cc) {
			return true
		}
	}
	for _, v := range h["Cache-Control"] {
		cc.parse(v)
	}
	return false
}

// ResponseDirectives returns the response directives that govern a shared
// cache with options o for a response with header h (RFC 9213 §2.2): the
// first targeted field of o.TargetedFields that is present, valid and
// non-empty (see [ParseTargeted]), else the Cache-Control field. targeted
// reports which: when it is true, the response's Cache-Control and Expires
// fields play no part in this cache's decisions.
func ResponseDirectives(h http.Header, o Options) (d Directives, targeted bool) {
	targeted = o.responseDirectives(h, &d)
	return d, targeted
}
