package limit_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/onioncdn/onioncdn/limit"
	"github.com/onioncdn/onioncdn/onion"
)

// BenchmarkHandler measures what the Limiter adds to a request: size
// checks, the key's buckets, the counting ResponseWriter.
func BenchmarkHandler(b *testing.B) {
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	for _, bc := range []struct {
		name string
		lim  *limit.Limiter
	}{
		{"none", nil},
		{"circuit_key", &limit.Limiter{RequestsPerSecond: 1e12, Burst: 1 << 30}},
		{"no_key", &limit.Limiter{Key: func(*http.Request) (string, bool) { return "", false }}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var h http.Handler = next
			if bc.lim != nil {
				h = bc.lim.Handler(next)
			}
			r := httptest.NewRequest("GET", "/segment/0001.ts", nil)
			r.Header.Set("User-Agent", "Mozilla/5.0 (Windows NT 10.0; rv:128.0) Gecko/20100101 Firefox/128.0")
			r.Header.Set("Accept", "*/*")
			r = r.WithContext(onion.WithCircuitID(context.Background(), 42))
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, r)
			}
		})
	}
}
