package rfc9111

import (
	"net/http"
	"net/url"
	"strings"
)

// safeMethod reports the safe methods of RFC 9110 §9.2.1.
func safeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// InvalidationTargets returns the cache keys a response to req invalidates
// (RFC 9111 §4.4): for an unsafe method (anything but GET, HEAD, OPTIONS,
// TRACE) answered with a non-error status (2xx or 3xx), the target URI and
// the URIs in Location and Content-Location when they have the same origin
// as the target (§4.4: "MUST NOT invalidate ... if the host part ... differs
// from the host part in the target URI"; this package also requires the
// same scheme and port, i.e. the same origin). Relative references are
// resolved against the target URI.
//
// Keys have the format of cache.DefaultKey: "scheme://host/path?query",
// host lower-cased, the fragment dropped; same-origin URIs use the
// target's spelling of the host. The caller removes the stored responses of
// every method (GET and HEAD) under these keys. The result is nil when
// nothing is invalidated.
func InvalidationTargets(req *http.Request, status int, h http.Header) []string {
	if safeMethod(req.Method) || status < 200 || status > 399 {
		return nil
	}
	scheme := req.URL.Scheme
	if scheme == "" {
		scheme = "http"
		if req.TLS != nil {
			scheme = "https"
		}
	}
	scheme = strings.ToLower(scheme)
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	host = strings.ToLower(host)
	base := &url.URL{Scheme: scheme, Host: host, Path: req.URL.Path, RawPath: req.URL.RawPath, RawQuery: req.URL.RawQuery}
	targets := []string{key(scheme, host, base)}
	for _, name := range [...]string{"Location", "Content-Location"} {
		v := trimOWS(h.Get(name))
		if v == "" {
			continue
		}
		ref, err := url.Parse(v)
		if err != nil {
			continue
		}
		u := base.ResolveReference(ref)
		if !strings.EqualFold(u.Scheme, scheme) || !sameHostPort(scheme, strings.ToLower(u.Host), host) {
			continue
		}
		k := key(scheme, host, u)
		dup := false
		for _, t := range targets {
			if t == k {
				dup = true
			}
		}
		if !dup {
			targets = append(targets, k)
		}
	}
	return targets
}

func key(scheme, host string, u *url.URL) string {
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	k := scheme + "://" + host + p
	if u.RawQuery != "" {
		k += "?" + u.RawQuery
	}
	return k
}

// sameHostPort compares two lower-cased authorities, treating an omitted
// port as the scheme's default.
func sameHostPort(scheme, a, b string) bool {
	return withPort(scheme, a) == withPort(scheme, b)
}

func withPort(scheme, hostport string) string {
	// Strip userinfo, which never belongs to the origin.
	if i := strings.LastIndexByte(hostport, '@'); i >= 0 {
		hostport = hostport[i+1:]
	}
	u := url.URL{Host: hostport}
	if u.Port() != "" {
		return hostport
	}
	hostport = strings.TrimSuffix(hostport, ":")
	switch scheme {
	case "https":
		return hostport + ":443"
	default:
		return hostport + ":80"
	}
}
