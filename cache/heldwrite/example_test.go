package heldwrite_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/cache/heldwrite"
)

// A cache served with heldwrite: a small hit leaves in one write, header
// and body.
func Example() {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, strings.Repeat("x", 10<<10))
	}))
	defer origin.Close()

	upstream, _ := url.Parse(origin.URL)
	c := &cache.Cache{Upstream: upstream, CacheStatus: true}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := &http.Server{Handler: heldwrite.Wrap(c), ConnContext: heldwrite.ConnContext}
	go srv.Serve(heldwrite.Listener(ln))
	defer srv.Close()

	for range 2 {
		resp, err := http.Get("http://" + ln.Addr().String() + "/obj")
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		c.Shutdown(resp.Request.Context()) // let the fill finish storing
		status, _, _ := strings.Cut(resp.Header.Get("Cache-Status"), "; ttl=")
		fmt.Println(resp.Status, len(body), "bytes |", status)
	}
	// Output:
	// 200 OK 10240 bytes | onioncdn; fwd=uri-miss; fwd-status=200
	// 200 OK 10240 bytes | onioncdn; hit
}
