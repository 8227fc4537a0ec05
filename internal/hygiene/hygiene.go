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
	"X-Original-Forwarded-For",
	"X-Originating-Ip",
	"X-Remote-Ip",
	"X-Remote-Addr",
	"X-Cluster-Client-Ip",
	"Fastly-Client-Ip",
}

// traceRequest are request headers that carry trace, span, request or
// correlation ids, tracing baggage or a cache's status. A browser, an
// extension or a client library sets them once per session or page load;
// forwarded, they let every tier and the origin link one client's requests
// to each other (and across sites sharing a tier). They are removed unless
// an operator keeps them (CleanRequestExcept). Canonical forms.
var traceRequest = map[string]bool{
	// W3C Trace Context and Baggage.
	"Traceparent": true,
	"Tracestate":  true,
	"Baggage":     true,
	// Zipkin B3 single header (multi-header X-B3-* below).
	"B3": true,
	// Jaeger.
	"Uber-Trace-Id":   true,
	"Jaeger-Debug-Id": true,
	"Jaeger-Baggage":  true,
	// Cloud vendors and APM agents.
	"X-Amzn-Trace-Id":         true,
	"X-Amz-Cf-Id":             true,
	"X-Cloud-Trace-Context":   true,
	"Grpc-Trace-Bin":          true,
	"Sentry-Trace":            true,
	"Newrelic":                true,
	"X-Newrelic-Id":           true,
	"X-Newrelic-Transaction":  true,
	"Elastic-Apm-Traceparent": true,
	"X-Dynatrace":             true,
	"X-Ot-Span-Context":       true,
	"Cf-Ray":                  true,
	"X-Client-Trace-Id":       true,
	// Request and correlation ids.
	"X-Request-Id":        true,
	"Request-Id":          true,
	"X-Correlation-Id":    true,
	"Correlation-Id":      true,
	"Correlation-Context": true,
	"X-Trace-Id":          true,
	"X-Span-Id":           true,
	// A client's own RFC 9211 status, meaningless in a request.
	"Cache-Status": true,
}

// tracePrefixes start trace header families with one header per field
// (canonical forms): Zipkin's X-B3-TraceId, X-B3-SpanId…, Jaeger baggage
// (uberctx-*), OpenTracing (ot-tracer-*, ot-baggage-*), Datadog.
var tracePrefixes = [...]string{"X-B3-", "Uberctx-", "Ot-Tracer-", "Ot-Baggage-", "X-Datadog-"}

// IsTrace reports whether name is a trace, span, request or correlation id
// header (or a request's Cache-Status) that CleanRequest removes.
func IsTrace(name string) bool {
	name = http.CanonicalHeaderKey(name)
	if traceRequest[name] {
		return true
	}
	for _, p := range tracePrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
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
// header: client addresses and forwarding headers, and trace, span,
// request and correlation ids (see IsTrace). It never adds any header.
func CleanRequest(h http.Header) { CleanRequestExcept(h, nil) }

// CleanRequestExcept is CleanRequest keeping the trace and correlation
// headers named in keep (case-insensitive; a name ending in "*" keeps every
// header it prefixes, such as "X-B3-*"). Hop-by-hop headers and headers
// carrying client addresses or circuit ids are removed whatever keep says.
func CleanRequestExcept(h http.Header, keep []string) {
	RemoveHopByHop(h)
	for _, k := range identifyingRequest {
		h.Del(k)
	}
	for k := range h {
		if IsTrace(k) && !kept(k, keep) {
			delete(h, k)
		}
	}
}

// kept reports whether header name is listed in keep.
func kept(name string, keep []string) bool {
	for _, p := range keep {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if len(name) >= len(prefix) && strings.EqualFold(name[:len(prefix)], prefix) {
				return true
			}
		} else if strings.EqualFold(name, p) {
			return true
		}
	}
	return false
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
