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
