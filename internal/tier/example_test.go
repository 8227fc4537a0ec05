package tier_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"

	"github.com/onioncdn/onioncdn/internal/tier"
)

// A midtier in front of an origin, on loopback TCP: the second request is
// a hit.
func Example() {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		io.WriteString(w, "segment")
	}))
	defer origin.Close()

	t, err := tier.New(tier.Config{Name: "midtier", Upstreams: []string{origin.URL}, CacheStatus: true})
	if err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go t.Serve(ln)
	for range 2 {
		resp, err := http.Get("http://" + ln.Addr().String() + "/seg1.ts")
		if err != nil {
			panic(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		cs := resp.Header.Get("Cache-Status")
		fmt.Println(cs[:len("midtier; hit")])
	}
	fmt.Println(t.Shutdown(context.Background()))
	// Output:
	// midtier; fwd
	// midtier; hit
	// <nil>
}
