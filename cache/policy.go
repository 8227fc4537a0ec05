package cache

import (
	"net"
	"net/http"
	"strings"
	"time"
)

// Policy adjusts how a [Cache] treats requests and responses beyond the
// rules of RFC 9111. The HLS policy in github.com/onioncdn/onioncdn/hls
// implements it. A nil Policy means plain RFC 9111 behaviour.
//
// Implementations must be safe for concurrent use.
type Policy interface {
	// Key returns the resource part of the cache key for r: its path and
	// query, normalised as the policy sees fit. The cache adds the method,
	// the host part (see [Cache.KeyHost]) and the site partition itself.
	// [DefaultKey] is the default: the path and the query unchanged.
	Key(r *http.Request) string

	// Decide is called with every response the cache receives from
	// upstream, before it decides whether and how long to store it, except
	// a 304 that revalidates a stored response (which keeps the Decision
	// it was stored with) and a 5xx answered with a stale response
	// (stale-if-error). r is the client's request (for a collapsed fill,
	// the request that started it).
	// Decide may read resp.Body and replace it with an equivalent reader
	// (for example to classify a playlist by its content); it must leave
	// the bytes a client receives unchanged and must not change the status.
	Decide(r *http.Request, resp *http.Response) Decision
}

// BoundedPolicy is a [Policy] that also bounds how long a stored response
// may be used without validation, whatever its freshness lifetime and
// stale windows say. From NotAfter(h) on, a cache treats the stored
// response with header h as needing validation: it serves it neither
// fresh nor stale (stale-while-revalidate, max-stale, stale-if-error)
// until a 304 has updated it, and the 304's fields then give the new
// bound. The zero time sets no bound.
//
// The cache calls NotAfter once per version of a stored head (when it
// reads it, and again after a 304 changed it). Package
// github.com/onioncdn/onioncdn/upstream/integrity bounds responses by
// their signature's expiry with it.
type BoundedPolicy interface {
	Policy
	NotAfter(h http.Header) time.Time
}

// Decision is a [Policy]'s verdict on one upstream response.
// The zero Decision changes nothing.
type Decision struct {
	// TTL, if positive, replaces the freshness lifetime the cache would
	// compute from the response headers, and makes a response with a status
	// that is not cacheable by default (e.g. 404 on an LL-HLS blocking
	// request) storable. It never makes storable what a shared cache must not
	// store: no-store, private, Authorization without public/s-maxage/
	// must-revalidate, and Set-Cookie (unless the cache allows it) still win.
	TTL time.Duration

	// StaleWhileRevalidate and StaleIfError, if positive, replace the
	// corresponding windows (RFC 5861) for this response.
	StaleWhileRevalidate time.Duration
	StaleIfError         time.Duration

	// NoStore forbids storing the response, whatever its headers say.
	// Waiters collapsed on its fill then go upstream themselves.
	NoStore bool
}

// PolicyFunc adapts a function to a [Policy] whose Key is [DefaultKey].
type PolicyFunc func(r *http.Request, resp *http.Response) Decision

// Key returns DefaultKey(r).
func (f PolicyFunc) Key(r *http.Request) string { return DefaultKey(r) }

// Decide calls f(r, resp).
func (f PolicyFunc) Decide(r *http.Request, resp *http.Response) Decision { return f(r, resp) }

// DefaultKey returns the default resource part of a cache key for r: its
// escaped path ("/" if empty) and, if not empty, "?" and the raw query.
// The host is not part of it: see [Cache.KeyHost].
func DefaultKey(r *http.Request) string { return defaultKey("", r) }

// defaultKey returns prefix + DefaultKey(r), built in one allocation.
func defaultKey(prefix string, r *http.Request) string {
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	n := len(prefix) + len(path)
	if r.URL.RawQuery != "" {
		n += 1 + len(r.URL.RawQuery)
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(prefix)
	b.WriteString(path)
	if r.URL.RawQuery != "" {
		b.WriteByte('?')
		b.WriteString(r.URL.RawQuery)
	}
	return b.String()
}

// URLHost returns the scheme and host r is addressed to, as
// "scheme://host" with the host lower-cased: the host part of the cache
// keys of requests sent through [Cache.RoundTrip] when KeyHost is nil. The
// scheme is "https" when r.TLS is set and "http" otherwise, unless r.URL
// carries an absolute scheme; the host is r.Host, or r.URL.Host if empty.
func URLHost(r *http.Request) string {
	scheme := r.URL.Scheme
	if scheme == "" {
		scheme = "http"
		if r.TLS != nil {
			scheme = "https"
		}
	}
	host := r.Host
	if host == "" {
		host = r.URL.Host
	}
	return scheme + "://" + strings.ToLower(host)
}

// FixedHost returns a [Cache.KeyHost] function that keys every request
// under name, whatever its Host: for a cache in front of one site that is
// reachable under several names (its onion address, a TCP name, a
// development host), so that each object is stored once.
func FixedHost(name string) func(*http.Request) string {
	name = normalHost(name)
	return func(*http.Request) string { return name }
}

// AllowHosts returns a [Cache.KeyHost] function for a cache in front of
// several sites that share one upstream and are told apart by Host: a
// request whose Host is one of names (compared case-insensitively,
// without port or trailing dot) is keyed under that name; any other Host
// is keyed under "" (all unknown hosts share one set of keys), so that a
// client cannot multiply stored objects by inventing Host values.
func AllowHosts(names ...string) func(*http.Request) string {
	allowed := make(map[string]bool, len(names))
	for _, n := range names {
		allowed[normalHost(n)] = true
	}
	return func(r *http.Request) string {
		h := r.Host
		if h == "" {
			h = r.URL.Host
		}
		if h = normalHost(h); allowed[h] {
			return h
		}
		return ""
	}
}

// normalHost lower-cases a host and drops its port and trailing dot.
func normalHost(h string) string {
	if hp, _, err := net.SplitHostPort(h); err == nil {
		h = hp
	}
	return strings.TrimSuffix(strings.ToLower(h), ".")
}
