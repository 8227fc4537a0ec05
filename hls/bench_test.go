package hls

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkDecide measures the policy's cost per upstream response: a
// segment (no body read) and a live playlist (read and parsed).
func BenchmarkDecide(b *testing.B) {
	for _, bc := range []struct {
		name, target, ct, body string
	}{
		{"segment", "http://o.test/live/seg120.ts", "video/mp2t", ""},
		{"live_playlist", "http://o.test/live/index.m3u8", mpegURL, livePL},
		{"ll_playlist", "http://o.test/ll/index.m3u8?_HLS_msn=268&_HLS_part=1", mpegURL, llPL},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p := &Policy{}
			r := httptest.NewRequest(http.MethodGet, bc.target, nil)
			b.ReportAllocs()
			for b.Loop() {
				resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {bc.ct}}, Body: io.NopCloser(strings.NewReader(bc.body))}
				p.Decide(r, resp)
			}
		})
	}
}

// BenchmarkKey measures cache key derivation with and without a query.
func BenchmarkKey(b *testing.B) {
	for name, target := range map[string]string{
		"no_query":  "http://o.test/live/seg120.ts",
		"ll_params": "http://o.test/ll/index.m3u8?_HLS_part=1&_HLS_msn=268&sid=x",
	} {
		b.Run(name, func(b *testing.B) {
			p := &Policy{DropQuery: []string{"sid"}}
			r := httptest.NewRequest(http.MethodGet, target, nil)
			b.ReportAllocs()
			for b.Loop() {
				p.Key(r)
			}
		})
	}
}
