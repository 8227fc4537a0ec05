// Package hygiene removes the HTTP headers a CDN tier must not forward:
// hop-by-hop headers (RFC 9110 §7.6.1) and headers that identify clients,
// tiers or circuits. It is shared by cache and upstream.
package hygiene

import (
	"net/http"
	"strings"
)

// hopHeaders are hop-by-hop headers that are removed whether or not the
// Connection header names them.
var hopHeaders = [...]string{
	"Connection",
	"Proxy-Connection", // non-standard but still sent by some clients
	"Keep-Alive",
	"Proxy-Authenticate",
	"Proxy-Authentication-Info", // like Proxy-Authenticate, for the next client only (RFC 9110 §11.7.3)
	"Proxy-Authorization",
	"Te",      // canonicalised "TE"
	"Trailer", // not Trailers (RFC 9110 §6.6.2)
	"Transfer-Encoding",
	"Upgrade",
}

// identifyingRequest are request headers that reveal a client's address,
// the tier layout or a Tor circuit. A tier never forwards them.
var identifyingRequest = [...]string{
	"Forwarded",
	"X-Forwarded-For",
	"X-Forwarded-Host",
	"X-Forwarded-Proto",
	"X-Forwarded-Port",
	"X-Forwarded-Server",
	"X-Real-Ip",
	"X-Client-Ip",
	"Client-Ip",
	"True-Client-Ip",
	"Cf-Connecting-Ip",
	"Via",
	"X-Tor-Circuit-Id",
}

// identifyingResponse are response headers that fingerprint the origin's
// software. They are removed only when asked for.
var identifyingResponse = [...]string{
	"Server",
	"X-Powered-By",
	"X-Aspnet-Version",
	"X-Aspnetmvc-Version",
	"X-Generator",
	"X-Runtime",
	"X-Backend-Server",
	"Via",
}

// RemoveHopByHop removes the headers named in h's Connection header and the
// fixed hop-by-hop headers from h.
func RemoveHopByHop(h http.Header) {
	for _, f := range h["Connection"] {
		for _, sf := range strings.Split(f, ",") {
			if sf = strings.TrimSpace(sf); sf != "" {
				h.Del(sf)
			}
		}
	}
	for _, k := range hopHeaders {
		h.Del(k)
	}
}

// IsHopByHop reports whether name is one of the fixed hop-by-hop headers.
func IsHopByHop(name string) bool {
	name = http.CanonicalHeaderKey(name)
	for _, k := range hopHeaders {
		if k == name {
			return true
		}
	}
	return false
}

// CleanRequest removes hop-by-hop headers and every header that could
// identify the client, a tier or a circuit from an outgoing request's
// header. It never adds any header.
func CleanRequest(h http.Header) {
	RemoveHopByHop(h)
	for _, k := range identifyingRequest {
		h.Del(k)
	}
}

// CleanResponse removes hop-by-hop headers from a response header and, if
// stripServer is set, headers that fingerprint the origin's software.
func CleanResponse(h http.Header, stripServer bool) {
	RemoveHopByHop(h)
	if stripServer {
		for _, k := range identifyingResponse {
			h.Del(k)
		}
	}
}
