package hsdesc

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// maxObjectSize bounds one object (tor: MAX_UNPARSED_OBJECT_SIZE).
const maxObjectSize = 128 << 10

// token is one item of tor's directory document meta-format (dir-spec
// 1.2): a keyword line with arguments, optionally followed by an object.
type token struct {
	kw      string
	args    []string
	objType string // "" if no object
	obj     []byte
	line    int
}

// tokenize splits a document into tokens the way tor's tokenizer does for
// the descriptor formats: one keyword line per item, arguments separated
// by spaces or tabs, an optional PEM-like object after it. It is stricter
// than necessary only where tor itself would reject the input.
func tokenize(doc string) ([]token, error) {
	if strings.IndexByte(doc, 0) >= 0 {
		return nil, errors.New("hsdesc: document contains a NUL byte")
	}
	var toks []token
	lines := strings.Split(doc, "\n")
	// A final newline leaves one empty element.
	if n := len(lines); n > 0 && lines[n-1] == "" {
		lines = lines[:n-1]
	}
	for i := 0; i < len(lines); i++ {
		l := strings.TrimRight(lines[i], "\r")
		if strings.TrimSpace(l) == "" {
			return nil, fmt.Errorf("hsdesc: line %d: empty line", i+1)
		}
		if strings.HasPrefix(l, "-----") {
			return nil, fmt.Errorf("hsdesc: line %d: object without a keyword", i+1)
		}
		f := strings.FieldsFunc(l, func(r rune) bool { return r == ' ' || r == '\t' })
		if len(f) == 0 {
			return nil, fmt.Errorf("hsdesc: line %d: no keyword", i+1)
		}
		kw := f[0]
		if kw == "opt" && len(f) > 1 { // "opt" prefix, still accepted by tor
			f = f[1:]
			kw = f[0]
		}
		for _, r := range kw {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return nil, fmt.Errorf("hsdesc: line %d: bad keyword %q", i+1, kw)
			}
		}
		t := token{kw: kw, args: f[1:], line: i + 1}
		if len(t.args) > 512 {
			return nil, fmt.Errorf("hsdesc: line %d: too many arguments", i+1)
		}
		if i+1 < len(lines) {
			next := strings.TrimRight(lines[i+1], "\r")
			if typ, ok := strings.CutPrefix(next, "-----BEGIN "); ok {
				typ, ok = strings.CutSuffix(typ, "-----")
				if !ok || typ == "" {
					return nil, fmt.Errorf("hsdesc: line %d: malformed object header", i+2)
				}
				end := "-----END " + typ + "-----"
				var body strings.Builder
				j := i + 2
				for ; j < len(lines); j++ {
					bl := strings.TrimRight(lines[j], "\r")
					if bl == end {
						break
					}
					if strings.HasPrefix(bl, "-----") {
						return nil, fmt.Errorf("hsdesc: line %d: object %q not terminated", i+2, typ)
					}
					body.WriteString(bl)
					if body.Len() > maxObjectSize*4/3+4 {
						return nil, fmt.Errorf("hsdesc: line %d: object too large", i+2)
					}
				}
				if j == len(lines) {
					return nil, fmt.Errorf("hsdesc: line %d: object %q not terminated", i+2, typ)
				}
				obj, err := decodeBase64(body.String())
				if err != nil {
					return nil, fmt.Errorf("hsdesc: line %d: object %q: %w", i+2, typ, err)
				}
				t.objType, t.obj = typ, obj
				i = j
			}
		}
		toks = append(toks, t)
	}
	return toks, nil
}

// decodeBase64 decodes standard base64 with or without padding, ignoring
// white space, as tor's base64_decode does.
func decodeBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, s)
	s = strings.TrimRight(s, "=")
	b, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("bad base64")
	}
	return b, nil
}

// rule says how often a keyword may appear and its argument count, like
// tor's token_rule_t.
type rule struct {
	kw       string
	min, max int // occurrences; max < 0: unlimited
	minArgs  int
	maxArgs  int // < 0: unlimited
	obj      objRule
}

type objRule int

const (
	noObj objRule = iota
	needObj
	objOK
)

// check applies rules to toks: counts, argument counts and objects for the
// keywords the rules name; other keywords are ignored (tor treats them as
// unknown and skips them).
func check(toks []token, rules []rule, section string) error {
	count := map[string]int{}
	byKw := map[string]rule{}
	for _, r := range rules {
		byKw[r.kw] = r
	}
	for _, t := range toks {
		r, ok := byKw[t.kw]
		if !ok {
			continue
		}
		count[t.kw]++
		if len(t.args) < r.minArgs || (r.maxArgs >= 0 && len(t.args) > r.maxArgs) {
			return fmt.Errorf("hsdesc: %s: line %d: %s has %d arguments", section, t.line, t.kw, len(t.args))
		}
		switch {
		case r.obj == needObj && t.objType == "":
			return fmt.Errorf("hsdesc: %s: line %d: %s needs an object", section, t.line, t.kw)
		case r.obj == noObj && t.objType != "":
			return fmt.Errorf("hsdesc: %s: line %d: %s takes no object", section, t.line, t.kw)
		}
	}
	for _, r := range rules {
		n := count[r.kw]
		if n < r.min || (r.max >= 0 && n > r.max) {
			return fmt.Errorf("hsdesc: %s: %s appears %d times", section, r.kw, n)
		}
	}
	return nil
}

func find(toks []token, kw string) *token {
	for i := range toks {
		if toks[i].kw == kw {
			return &toks[i]
		}
	}
	return nil
}

// pem encodes an object as tor does: base64 in 64-character lines.
func pem(typ string, data []byte) string {
	var b strings.Builder
	b.WriteString("-----BEGIN " + typ + "-----\n")
	b.WriteString(base64Lines(data))
	b.WriteString("-----END " + typ + "-----")
	return b.String()
}

// base64Lines is tor's BASE64_ENCODE_MULTILINE: padded base64 in lines of
// 64 characters, each ending with a newline.
func base64Lines(data []byte) string {
	s := base64.StdEncoding.EncodeToString(data)
	var b strings.Builder
	for len(s) > 64 {
		b.WriteString(s[:64])
		b.WriteByte('\n')
		s = s[64:]
	}
	if s != "" {
		b.WriteString(s)
		b.WriteByte('\n')
	}
	return b.String()
}
