package rfc9111

import "net/http"

// ExplicitLifetime reports whether a response states its own freshness
// lifetime for a shared cache (RFC 9111 §4.2.1): Cache-Control s-maxage or
// max-age, no-cache (which makes it stale at once), or a valid Expires
// (parsed as FreshnessLifetime parses it).
func ExplicitLifetime(h http.Header) bool {
	d := ParseCacheControl(h["Cache-Control"])
	if d.Has("s-maxage") || d.Has("max-age") || d.Has("no-cache") {
		return true
	}
	_, ok := singleDate(h, "Expires")
	return ok
}
