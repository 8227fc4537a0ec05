package tier_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/hls"
	"github.com/onioncdn/onioncdn/tier"
	"github.com/onioncdn/onioncdn/upstream"
)

// A midtier on loopback TCP in front of an origin: the components are
// built with their own packages, the Tier serves them and shuts them down
// in order. (examples/edge and examples/midtier add tor, a disk store,
// signature verification and metrics.)
func Example() {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Server", "nginx/1.18.0 (Ubuntu)") // never reaches clients
		io.WriteString(w, "segment data")
	}))
	defer origin.Close()

	tr := &upstream.Transport{Upstreams: []string{origin.URL}}
	c := &cache.Cache{Transport: tr, Policy: &hls.Policy{}, Name: "midtier", CacheStatus: true}
	t := &tier.Tier{Name: "midtier", Cache: c, Prefetcher: &hls.Prefetcher{}, Transport: tr}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- t.Run(ctx, ln) }() // until ctx ends (a signal, in a program)

	for range 2 {
		resp, err := http.Get("http://" + ln.Addr().String() + "/v/seg1.ts")
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		status, _, _ := strings.Cut(resp.Header.Get("Cache-Status"), "; ttl=")
		fmt.Printf("%s | %s | Server %q\n", body, status, resp.Header.Get("Server"))
		c.Shutdown(ctx) // let the fill finish storing: the next request is a hit
	}
	stop()
	fmt.Println("shut down:", <-done)
	// Output:
	// segment data | midtier; fwd=uri-miss; fwd-status=200 | Server ""
	// segment data | midtier; hit | Server ""
	// shut down: <nil>
}
