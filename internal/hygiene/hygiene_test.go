package hygiene

import (
	"net/http"
	"testing"
)

func TestCleanRequest(t *testing.T) {
	h := http.Header{}
	h.Set("Connection", "keep-alive, X-Secret")
	h.Set("X-Secret", "1")
	h.Set("Keep-Alive", "timeout=5")
	h.Set("Te", "trailers")
	h.Set("X-Forwarded-For", "10.0.0.1")
	h.Set("Forwarded", "for=10.0.0.1")
	h.Set("Via", "1.1 edge")
	h.Set("X-Real-IP", "10.0.0.1")
	h.Set("Accept", "*/*")
	h.Set("Range", "bytes=0-1")
	CleanRequest(h)
	for _, k := range []string{"Connection", "X-Secret", "Keep-Alive", "Te", "X-Forwarded-For", "Forwarded", "Via", "X-Real-Ip"} {
		if v := h.Get(k); v != "" {
			t.Errorf("%s = %q after CleanRequest, want removed", k, v)
		}
	}
	if h.Get("Accept") != "*/*" || h.Get("Range") != "bytes=0-1" {
		t.Errorf("end-to-end headers removed: %v", h)
	}
}

func TestCleanResponse(t *testing.T) {
	for _, strip := range []bool{false, true} {
		h := http.Header{}
		h.Set("Server", "nginx/1.22")
		h.Set("X-Powered-By", "PHP")
		h.Set("Transfer-Encoding", "chunked")
		h.Set("Proxy-Authenticate", "Basic")
		h.Set("Proxy-Authentication-Info", "nextnonce=x")
		h.Set("Content-Type", "text/plain")
		CleanResponse(h, strip)
		for _, k := range []string{"Transfer-Encoding", "Proxy-Authenticate", "Proxy-Authentication-Info"} {
			if h.Get(k) != "" {
				t.Errorf("strip=%v: %s kept", strip, k)
			}
		}
		if got := h.Get("Server") == ""; got != strip {
			t.Errorf("strip=%v: Server removed=%v", strip, got)
		}
		if h.Get("Content-Type") != "text/plain" {
			t.Errorf("strip=%v: Content-Type removed", strip)
		}
	}
}

func TestIsHopByHop(t *testing.T) {
	for name, want := range map[string]bool{"transfer-encoding": true, "TE": true, "Content-Length": false, "Trailers": false} {
		if got := IsHopByHop(name); got != want {
			t.Errorf("IsHopByHop(%q) = %v, want %v", name, got, want)
		}
	}
}

// Issue 16: trace and correlation ids link one client's requests across
// tiers; they are never forwarded unless the operator keeps them.
func TestCleanRequestTraceHeaders(t *testing.T) {
	trace := []string{
		"traceparent", "Tracestate", "baggage", "X-Request-Id", "X-Correlation-Id",
		"X-B3-TraceId", "x-b3-spanid", "X-B3-ParentSpanId", "X-B3-Sampled", "X-B3-Flags", "b3",
		"uber-trace-id", "uberctx-user", "X-Amzn-Trace-Id", "X-Cloud-Trace-Context", "grpc-trace-bin",
		"sentry-trace", "newrelic", "x-datadog-trace-id", "x-datadog-parent-id", "ot-tracer-traceid",
		"ot-baggage-k", "elastic-apm-traceparent", "Request-Id", "Correlation-Context", "Cache-Status",
		"X-Trace-Id", "jaeger-debug-id", "X-Client-Trace-Id",
	}
	h := http.Header{}
	for _, k := range trace {
		h.Set(k, "id-1")
	}
	h.Set("Accept", "*/*")
	h.Set("X-Api-Version", "2")
	h.Set("Authorization", "Bearer x")
	h["x-request-id"] = []string{"non-canonical"} // as a hand-built map may hold it
	CleanRequest(h)
	for k := range h {
		if IsTrace(k) {
			t.Errorf("%s = %q after CleanRequest, want removed", k, h[k])
		}
	}
	for _, k := range []string{"Accept", "X-Api-Version", "Authorization"} {
		if h.Get(k) == "" {
			t.Errorf("%s removed", k)
		}
	}
	if len(h) != 3 {
		t.Errorf("left %v, want Accept, X-Api-Version and Authorization", h)
	}
	for _, k := range trace {
		if !IsTrace(k) {
			t.Errorf("IsTrace(%q) = false", k)
		}
	}
	for _, k := range []string{"Accept", "Range", "X-B3", "Cache-Control", "Traceparent-Not"} {
		if IsTrace(k) {
			t.Errorf("IsTrace(%q) = true", k)
		}
	}
}

func TestCleanRequestExcept(t *testing.T) {
	h := http.Header{}
	for _, k := range []string{"Traceparent", "Tracestate", "X-B3-TraceId", "X-B3-SpanId", "X-Request-Id", "X-Forwarded-For", "Connection", "X-Real-Ip"} {
		h.Set(k, "v")
	}
	CleanRequestExcept(h, []string{"traceparent", "x-b3-*", "X-Forwarded-For", "Connection", "X-Real-IP"})
	want := map[string]bool{"Traceparent": true, "X-B3-Traceid": true, "X-B3-Spanid": true}
	for k := range h {
		if !want[k] {
			t.Errorf("%s kept", k)
		}
	}
	for k := range want {
		if h.Get(k) == "" {
			t.Errorf("%s removed although listed", k)
		}
	}
}

func BenchmarkCleanRequest(b *testing.B) {
	src := http.Header{
		"Accept":          {"*/*"},
		"Accept-Encoding": {"gzip"},
		"User-Agent":      {"Mozilla/5.0"},
		"Connection":      {"keep-alive"},
		"Traceparent":     {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
		"Range":           {"bytes=0-"},
	}
	b.ReportAllocs()
	for b.Loop() {
		h := make(http.Header, len(src))
		for k, v := range src {
			h[k] = v
		}
		CleanRequest(h)
	}
}
