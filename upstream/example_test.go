package upstream_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/onioncdn/onioncdn/onion"
	"github.com/onioncdn/onioncdn/upstream"
)

// A Transport over a plain dialer: the pool is warm before the first
// request, so the request does not wait for a dial.
func ExampleTransport() {
	midtier := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s ua=%q", r.Method, r.URL, r.UserAgent())
	}))
	defer midtier.Close()

	tr := &upstream.Transport{
		Upstreams: []string{midtier.URL + "/v1"},
		MinIdle:   2,
	}
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tr.Warm(ctx); err != nil {
		log.Fatal(err)
	}

	idle := tr.Stats().Upstreams[0].Idle

	// The caller's URL host does not matter: only path and query are used.
	resp, err := (&http.Client{Transport: tr}).Get("http://edge.example/video/seg1.ts?x=1")
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(string(body))

	s := tr.Stats().Upstreams[0]
	fmt.Printf("idle before the request: %d, requests that had to dial: %d\n", idle, s.ColdDials)
	// Output:
	// GET /v1/video/seg1.ts?x=1 ua=""
	// idle before the request: 2, requests that had to dial: 0
}

// An edge reaching two midtier onions through tor: every pooled connection
// gets its own circuit, and requests fail over between the midtiers.
func ExampleTransport_onion() {
	d := &onion.Dialer{SocksAddr: "127.0.0.1:9050"}
	tr := &upstream.Transport{
		Upstreams: []string{
			"http://midtier1xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.onion",
			"http://midtier2xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.onion",
		},
		DialIsolated:      d.DialIsolated,
		MinIdle:           4,
		KeepAliveInterval: 5 * time.Minute,
		ProbePath:         "/healthz",
	}
	defer tr.Close()
	if err := tr.Warm(context.Background()); err != nil {
		log.Print(err) // some midtier is unreachable; the others serve
	}
	resp, err := (&http.Client{Transport: tr}).Get("http://edge/index.m3u8")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
}
