package tier

import (
	"fmt"
	"net/url"
	"strings"
)

// ListFlag is a repeatable string flag (flag.Var): every occurrence adds
// one value.
type ListFlag []string

// String implements flag.Value.
func (l *ListFlag) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, "; ")
}

// Set implements flag.Value.
func (l *ListFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// ParseUpstreams splits a comma-separated list of upstream base URLs and
// checks each: http or https, a host, no query, fragment or user info.
func ParseUpstreams(list string) ([]string, error) {
	var out []string
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("tier: upstream %q: %w", s, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("tier: upstream %q: want http(s)://host[:port][/prefix]", s)
		}
		if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("tier: upstream %q: no user info, query or fragment allowed", s)
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("tier: no upstream URL given")
	}
	return out, nil
}

// AnyOnion reports whether one of the URLs names a .onion host, which
// must be reached through Tor.
func AnyOnion(urls []string) bool {
	for _, s := range urls {
		if u, err := url.Parse(s); err == nil && strings.HasSuffix(strings.ToLower(u.Hostname()), ".onion") {
			return true
		}
	}
	return false
}
