package integrity

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// message is what a signature base is built from: a request, or a
// response together with the request it answers.
type message struct {
	req    *http.Request // the request, or the related request of a response
	status int           // response status; 0 for a request
	header http.Header   // the message's own header
}

func (m message) isResponse() bool { return m.status != 0 }

// componentValue returns the value of one covered component (RFC 9421 §2).
// It supports the derived components @method, @path, @query, @query-param
// (with its name parameter), @authority, @scheme, @target-uri and @status,
// and HTTP fields, each optionally with the "req" parameter; other
// parameters (sf, key, bs, tr) are not supported and give an error, as does
// a field absent from the message.
func componentValue(c component, m message) (string, error) {
	var qname string
	for _, p := range c.params {
		switch {
		case p.key == "req":
		case p.key == "name" && c.name == "@query-param":
			s, ok := p.val.(string)
			if !ok {
				return "", fmt.Errorf("integrity: component %s: name is not a string", c)
			}
			qname = s
		default:
			return "", fmt.Errorf("integrity: component %s: unsupported parameter %q", c, p.key)
		}
	}
	useReq := c.hasParam("req")
	if useReq && !m.isResponse() {
		return "", fmt.Errorf("integrity: component %s: req parameter on a request", c)
	}
	if strings.HasPrefix(c.name, "@") {
		if c.name == "@status" {
			if !m.isResponse() || useReq {
				return "", fmt.Errorf("integrity: component %s: @status of a request", c)
			}
			return strconv.Itoa(m.status), nil
		}
		if m.isResponse() && !useReq {
			return "", fmt.Errorf("integrity: component %s: request component without req on a response", c)
		}
		r := m.req
		if r == nil {
			return "", fmt.Errorf("integrity: component %s: no request", c)
		}
		switch c.name {
		case "@method":
			return r.Method, nil
		case "@path":
			p := r.URL.EscapedPath()
			if p == "" {
				p = "/"
			}
			return p, nil
		case "@query":
			return "?" + r.URL.RawQuery, nil
		case "@query-param":
			if qname == "" {
				return "", fmt.Errorf("integrity: component %s: no name", c)
			}
			v, ok := queryParamValue(r.URL.RawQuery, qname)
			if !ok {
				return "", fmt.Errorf("integrity: component %s: parameter absent or repeated", c)
			}
			return v, nil
		case "@authority":
			return authority(r), nil
		case "@scheme":
			return scheme(r), nil
		case "@target-uri":
			u := scheme(r) + "://" + authority(r) + r.URL.EscapedPath()
			if r.URL.RawQuery != "" {
				u += "?" + r.URL.RawQuery
			}
			return u, nil
		}
		return "", fmt.Errorf("integrity: unsupported derived component %s", c)
	}
	if c.name != strings.ToLower(c.name) || c.name == "" {
		return "", fmt.Errorf("integrity: component %s: field names must be lower case", c)
	}
	h := m.header
	if useReq {
		h = m.req.Header
	}
	vals := h.Values(c.name)
	if len(vals) == 0 {
		return "", fmt.Errorf("integrity: component %s: field absent", c)
	}
	for i, v := range vals {
		vals[i] = strings.Trim(v, " \t")
	}
	// Values returns the header's own slice: join into a new string only.
	return strings.Join(vals, ", "), nil
}

func scheme(r *http.Request) string {
	if r.URL.Scheme != "" {
		return strings.ToLower(r.URL.Scheme)
	}
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

func authority(r *http.Request) string {
	h := r.Host
	if h == "" {
		h = r.URL.Host
	}
	h = strings.ToLower(h)
	if s := scheme(r); (s == "http" && strings.HasSuffix(h, ":80")) || (s == "https" && strings.HasSuffix(h, ":443")) {
		h = h[:strings.LastIndexByte(h, ':')]
	}
	return h
}

// signatureBase builds the signature base (RFC 9421 §2.5) for the covered
// components cs with signature parameters ps.
func signatureBase(cs []component, ps []param, m message) (string, error) {
	var b strings.Builder
	seen := make(map[string]bool, len(cs))
	for _, c := range cs {
		id := c.String()
		if seen[id] {
			return "", fmt.Errorf("integrity: component %s covered twice", id)
		}
		seen[id] = true
		if c.name == "@signature-params" {
			return "", fmt.Errorf("integrity: @signature-params cannot be covered")
		}
		v, err := componentValue(c, m)
		if err != nil {
			return "", err
		}
		if strings.ContainsAny(v, "\r\n") {
			return "", fmt.Errorf("integrity: component %s: newline in value", id)
		}
		b.WriteString(id)
		b.WriteString(": ")
		b.WriteString(v)
		b.WriteByte('\n')
	}
	b.WriteString(`"@signature-params": `)
	b.WriteString(serializeInnerList(cs, ps))
	return b.String(), nil
}
