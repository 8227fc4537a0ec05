package rfc9111

import (
	"net/http"
	"time"
)

// ExplicitLifetime reports whether a response states its own freshness
// lifetime for a shared cache (RFC 9111 §4.2.1): s-maxage or max-age,
// no-cache (which makes it stale at once), or a valid Expires. The
// directives are those the cache honours (see ResponseDirectives): a
// targeted field (RFC 9213) replaces Cache-Control and Expires.
func ExplicitLifetime(h http.Header, o Options) bool {
	d, targeted := ResponseDirectives(h, o)
	if d.Has("s-maxage") || d.Has("max-age") || d.Has("no-cache") {
		return true
	}
	if targeted {
		return false
	}
	_, ok := singleDate(h, "Expires", time.Time{})
	return ok
}
