package metrics_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// A tier's cache exported to Prometheus: counters from its Stats, delivery
// times from its OnRecord hook.
func Example() {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "hello")
	}))
	defer origin.Close()

	c := &cache.Cache{Name: "edge"}
	reg := prometheus.NewRegistry()
	d := metrics.NewDelivery()
	reg.MustRegister(d, metrics.Cache("edge", c))
	c.OnRecord = append(c.OnRecord, d.OnRecord("edge"))

	for range 3 {
		resp, err := c.RoundTrip(httptest.NewRequest(http.MethodGet, origin.URL+"/a", nil))
		if err != nil {
			panic(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	// Serve it on loopback only: metrics.ListenLocal refuses anything else.
	rec := httptest.NewRecorder()
	metrics.Handler(reg).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	deliveries := 0
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if strings.HasPrefix(line, `onioncdn_cache_requests_total{disposition="miss"`) {
			fmt.Println(line)
		}
		// Later requests are hits, or join the fill if it is still being
		// committed: count them all.
		if strings.HasPrefix(line, "onioncdn_delivery_seconds_count") {
			var n int
			fmt.Sscan(line[strings.LastIndex(line, " ")+1:], &n)
			deliveries += n
		}
	}
	fmt.Println("deliveries observed:", deliveries)
	// Output:
	// onioncdn_cache_requests_total{disposition="miss",tier="edge"} 1
	// deliveries observed: 3
}
