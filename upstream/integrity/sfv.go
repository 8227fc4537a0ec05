package integrity

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// This file holds the small subset of Structured Field Values (RFC 8941)
// that HTTP Message Signatures (RFC 9421) and Content-Digest (RFC 9530)
// need: dictionaries whose members are inner lists of strings or byte
// sequences, with parameters whose values are integers, strings, tokens or
// booleans. Input is untrusted: every loop is bounded by the input length and
// the parser never allocates more than a small multiple of it.

var errSyntax = errors.New("integrity: malformed structured field")

// param is one parameter: a key and a value that is an int64, a string
// (sf-string or token) or a bool.
type param struct {
	key string
	val any
}

// component is one covered component identifier: an sf-string with
// parameters, e.g. "@path";req.
type component struct {
	name   string
	params []param
}

func (c component) hasParam(k string) bool {
	for _, p := range c.params {
		if p.key == k {
			return true
		}
	}
	return false
}

// member is one dictionary member: either an inner list of components (for
// Signature-Input) or a byte sequence (for Signature and Content-Digest),
// with its parameters.
type member struct {
	key     string
	list    []component // inner list, if isList
	isList  bool
	bytes   []byte // byte sequence, if isBytes
	isBytes bool
	params  []param
	raw     string // the member's value exactly as it appeared (inner list + params)
}

type sfParser struct {
	s string
	i int
}

func (p *sfParser) eof() bool { return p.i >= len(p.s) }

func (p *sfParser) skipSP() {
	for !p.eof() && p.s[p.i] == ' ' {
		p.i++
	}
}

func (p *sfParser) skipOWS() {
	for !p.eof() && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func isLCAlpha(c byte) bool { return 'a' <= c && c <= 'z' }
func isDigit(c byte) bool   { return '0' <= c && c <= '9' }

// key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" )
func (p *sfParser) key() (string, error) {
	start := p.i
	if p.eof() || !(isLCAlpha(p.s[p.i]) || p.s[p.i] == '*') {
		return "", fmt.Errorf("%w: key expected at %d", errSyntax, p.i)
	}
	p.i++
	for !p.eof() {
		c := p.s[p.i]
		if isLCAlpha(c) || isDigit(c) || c == '_' || c == '-' || c == '.' || c == '*' {
			p.i++
			continue
		}
		break
	}
	return p.s[start:p.i], nil
}

func (p *sfParser) sfString() (string, error) {
	if p.eof() || p.s[p.i] != '"' {
		return "", fmt.Errorf("%w: string expected at %d", errSyntax, p.i)
	}
	p.i++
	var b strings.Builder
	for !p.eof() {
		c := p.s[p.i]
		p.i++
		switch {
		case c == '\\':
			if p.eof() {
				return "", fmt.Errorf("%w: unterminated escape", errSyntax)
			}
			c = p.s[p.i]
			p.i++
			if c != '"' && c != '\\' {
				return "", fmt.Errorf("%w: bad escape", errSyntax)
			}
			b.WriteByte(c)
		case c == '"':
			return b.String(), nil
		case c < 0x20 || c > 0x7e:
			return "", fmt.Errorf("%w: bad character in string", errSyntax)
		default:
			b.WriteByte(c)
		}
	}
	return "", fmt.Errorf("%w: unterminated string", errSyntax)
}

func isTChar(c byte) bool {
	if isDigit(c) || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func (p *sfParser) bareItem() (any, error) {
	if p.eof() {
		return nil, fmt.Errorf("%w: item expected", errSyntax)
	}
	c := p.s[p.i]
	switch {
	case c == '"':
		return p.sfString()
	case c == '-' || isDigit(c):
		start := p.i
		if c == '-' {
			p.i++
		}
		digits := 0
		for !p.eof() && isDigit(p.s[p.i]) {
			p.i++
			digits++
		}
		if digits == 0 || digits > 15 {
			return nil, fmt.Errorf("%w: bad integer", errSyntax)
		}
		if !p.eof() && p.s[p.i] == '.' {
			return nil, fmt.Errorf("%w: decimals not supported", errSyntax)
		}
		n, err := strconv.ParseInt(p.s[start:p.i], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: bad integer", errSyntax)
		}
		return n, nil
	case c == '?':
		p.i++
		if p.eof() || (p.s[p.i] != '0' && p.s[p.i] != '1') {
			return nil, fmt.Errorf("%w: bad boolean", errSyntax)
		}
		v := p.s[p.i] == '1'
		p.i++
		return v, nil
	case c == ':':
		p.i++
		end := strings.IndexByte(p.s[p.i:], ':')
		if end < 0 {
			return nil, fmt.Errorf("%w: unterminated byte sequence", errSyntax)
		}
		b, err := base64.StdEncoding.DecodeString(p.s[p.i : p.i+end])
		if err != nil {
			return nil, fmt.Errorf("%w: bad base64", errSyntax)
		}
		p.i += end + 1
		return b, nil
	case ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || c == '*':
		start := p.i
		p.i++
		for !p.eof() && (isTChar(p.s[p.i]) || p.s[p.i] == ':' || p.s[p.i] == '/') {
			p.i++
		}
		return token(p.s[start:p.i]), nil
	}
	return nil, fmt.Errorf("%w: unexpected %q", errSyntax, c)
}

// token is an sf-token (distinct from an sf-string).
type token string

func (p *sfParser) params() ([]param, error) {
	var ps []param
	for !p.eof() && p.s[p.i] == ';' {
		p.i++
		p.skipSP()
		k, err := p.key()
		if err != nil {
			return nil, err
		}
		var v any = true
		if !p.eof() && p.s[p.i] == '=' {
			p.i++
			if v, err = p.bareItem(); err != nil {
				return nil, err
			}
			if _, ok := v.([]byte); ok {
				return nil, fmt.Errorf("%w: byte sequence parameter", errSyntax)
			}
		}
		replaced := false
		for j := range ps {
			if ps[j].key == k {
				ps[j].val = v
				replaced = true
			}
		}
		if !replaced {
			ps = append(ps, param{k, v})
		}
	}
	return ps, nil
}

func (p *sfParser) innerList() ([]component, error) {
	if p.eof() || p.s[p.i] != '(' {
		return nil, fmt.Errorf("%w: inner list expected", errSyntax)
	}
	p.i++
	var items []component
	for {
		p.skipSP()
		if p.eof() {
			return nil, fmt.Errorf("%w: unterminated inner list", errSyntax)
		}
		if p.s[p.i] == ')' {
			p.i++
			return items, nil
		}
		name, err := p.sfString()
		if err != nil {
			return nil, err
		}
		ps, err := p.params()
		if err != nil {
			return nil, err
		}
		items = append(items, component{name: name, params: ps})
		if p.eof() || (p.s[p.i] != ' ' && p.s[p.i] != ')') {
			return nil, fmt.Errorf("%w: bad inner list", errSyntax)
		}
	}
}

// parseDictionary parses a dictionary whose members are inner lists of
// strings or byte sequences. Other member types are rejected.
func parseDictionary(s string) ([]member, error) {
	if len(s) > 16<<10 {
		return nil, fmt.Errorf("%w: field too long", errSyntax)
	}
	p := &sfParser{s: s}
	var ms []member
	p.skipSP()
	for !p.eof() {
		k, err := p.key()
		if err != nil {
			return nil, err
		}
		if p.eof() || p.s[p.i] != '=' {
			return nil, fmt.Errorf("%w: member %q has no value", errSyntax, k)
		}
		p.i++
		m := member{key: k}
		start := p.i
		if !p.eof() && p.s[p.i] == '(' {
			if m.list, err = p.innerList(); err != nil {
				return nil, err
			}
			m.isList = true
		} else {
			v, err := p.bareItem()
			if err != nil {
				return nil, err
			}
			b, ok := v.([]byte)
			if !ok {
				return nil, fmt.Errorf("%w: member %q is not a byte sequence or inner list", errSyntax, k)
			}
			m.bytes, m.isBytes = b, true
		}
		if m.params, err = p.params(); err != nil {
			return nil, err
		}
		m.raw = p.s[start:p.i]
		ms = append(ms, m)
		p.skipOWS()
		if p.eof() {
			break
		}
		if p.s[p.i] != ',' {
			return nil, fmt.Errorf("%w: comma expected at %d", errSyntax, p.i)
		}
		p.i++
		p.skipOWS()
		if p.eof() {
			return nil, fmt.Errorf("%w: trailing comma", errSyntax)
		}
	}
	return ms, nil
}

// serializeString returns s as an sf-string. It reports false if s has a
// character an sf-string cannot hold.
func serializeString(s string) (string, bool) {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			return "", false
		}
		if c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	b.WriteByte('"')
	return b.String(), true
}

func serializeParams(ps []param) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteByte(';')
		b.WriteString(p.key)
		switch v := p.val.(type) {
		case bool:
			if !v {
				b.WriteString("=?0")
			}
		case int64:
			b.WriteByte('=')
			b.WriteString(strconv.FormatInt(v, 10))
		case string:
			s, _ := serializeString(v)
			b.WriteByte('=')
			b.WriteString(s)
		case token:
			b.WriteByte('=')
			b.WriteString(string(v))
		}
	}
	return b.String()
}

func (c component) String() string {
	s, _ := serializeString(c.name)
	return s + serializeParams(c.params)
}

func serializeInnerList(cs []component, ps []param) string {
	var b strings.Builder
	b.WriteByte('(')
	for i, c := range cs {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(c.String())
	}
	b.WriteByte(')')
	b.WriteString(serializeParams(ps))
	return b.String()
}
