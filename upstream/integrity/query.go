package integrity

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// The query of the request a response answers selects content as much as
// its path does (?v=2 cache busting, LL-HLS _HLS_msn, a search), so the
// Signer binds it: each query parameter is covered with RFC 9421
// "@query-param";name="…";req, except the parameters listed in
// Signer.IgnoreQuery (session tokens, analytics: parameters that do not
// select content and that a cache may leave out of its key). Covering
// parameters one by one, rather than the whole query with "@query",
// keeps a signature valid for the same parameters in another order or
// percent-encoding (the HLS policy's cache key sorts them) and lets tokens
// vary. When a parameter that is not ignored occurs twice, or the query
// does not parse, the whole query is covered with "@query";req instead
// (RFC 9421 §2.2.8 does not define @query-param for repeated names).
//
// A verifier accepts a signature only if it binds the query of the request
// it made: either it covers "@query";req, or it carries the tag
// profileTag (saying "every parameter the origin does not ignore is
// covered") and covers with @query-param every parameter of the request
// that is not in Transport.IgnoreQuery. A parameter added, removed or
// changed by a tier between the request and the signed response makes the
// response fail.

// profileTag is the tag parameter of every signature the Signer makes (RFC
// 9421 §2.3: an application-specific profile); see above.
const profileTag = "onioncdn"

// queryParam is one decoded query parameter.
type queryParam struct{ name, value string }

// parseQuery splits a raw query into decoded parameters
// (application/x-www-form-urlencoded: "+" is a space). It reports false if
// a name or value is not validly percent-encoded.
func parseQuery(raw string) ([]queryParam, bool) {
	var ps []queryParam
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			return nil, false
		}
		value, err := url.QueryUnescape(v)
		if err != nil {
			return nil, false
		}
		ps = append(ps, queryParam{name, value})
	}
	return ps, true
}

// encodeQueryPart percent-encodes a decoded query name or value as RFC
// 9421 §2.2.8 does for @query-param: every byte but ASCII letters, digits
// and "*-._" becomes %XX (a space too: %20, not "+").
func encodeQueryPart(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("*-._", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// queryParamValue returns the value of the @query-param component for the
// encoded name in raw, and whether it is present exactly once.
func queryParamValue(raw, encName string) (string, bool) {
	ps, ok := parseQuery(raw)
	if !ok {
		return "", false
	}
	var v string
	n := 0
	for _, p := range ps {
		if encodeQueryPart(p.name) == encName {
			v = p.value
			n++
		}
	}
	return encodeQueryPart(v), n == 1
}

// ignored reports whether the decoded name is in list.
func ignored(list []string, name string) bool { return slices.Contains(list, name) }

// queryComponents returns the components that bind r's query for a
// Signer ignoring the parameters in ignore (see above).
func queryComponents(r *http.Request, ignore []string) []component {
	raw := r.URL.RawQuery
	if raw == "" {
		return nil
	}
	ps, ok := parseQuery(raw)
	whole := []component{{name: "@query", params: []param{{"req", true}}}}
	if !ok {
		return whole
	}
	seen := make(map[string]bool, len(ps))
	var names []string
	for _, p := range ps {
		if ignored(ignore, p.name) {
			continue
		}
		if seen[p.name] {
			return whole
		}
		seen[p.name] = true
		names = append(names, p.name)
	}
	slices.Sort(names)
	cs := make([]component, 0, len(names))
	for _, n := range names {
		cs = append(cs, component{name: "@query-param", params: []param{{"name", encodeQueryPart(n)}, {"req", true}}})
	}
	return cs
}

// queryBound reports whether a signature covering cs with the signature
// parameters ps binds the query of r for a verifier ignoring the
// parameters in ignore (see above).
func queryBound(r *http.Request, cs []component, ps []param, ignore []string) bool {
	covered := make(map[string]bool)
	for _, c := range cs {
		switch c.name {
		case "@query":
			return true
		case "@query-param":
			for _, p := range c.params {
				if s, ok := p.val.(string); ok && p.key == "name" {
					covered[s] = true
				}
			}
		}
	}
	tagged := false
	for _, p := range ps {
		if s, ok := p.val.(string); ok && p.key == "tag" && s == profileTag {
			tagged = true
		}
	}
	if !tagged {
		return false
	}
	qs, ok := parseQuery(r.URL.RawQuery)
	if !ok {
		return false
	}
	for _, q := range qs {
		if !ignored(ignore, q.name) && !covered[encodeQueryPart(q.name)] {
			return false
		}
	}
	return true
}
