package hls_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/hls"
	"github.com/onioncdn/onioncdn/hls/hlstest"
	"github.com/onioncdn/onioncdn/onion"
)

// The TTL table of the HLS policy.
func ExamplePolicy_TTLFor() {
	p := &hls.Policy{}
	td := 4 * time.Second
	for _, o := range []hls.Object{
		{Kind: hls.KindMedia, Status: 200, Live: true, TargetDuration: td},
		{Kind: hls.KindMedia, Status: 404, Live: true, TargetDuration: td},
		{Kind: hls.KindMedia, Status: 200, Live: true, TargetDuration: td, Blocking: true},
		{Kind: hls.KindMedia, Status: 404, Live: true, TargetDuration: td, Blocking: true},
		{Kind: hls.KindMedia, Status: 200, Live: false},
		{Kind: hls.KindSegment, Status: 200},
		{Kind: hls.KindKey, Status: 200},
	} {
		d := p.TTLFor(o)
		fmt.Printf("%-14s %d blocking=%-5v ttl=%v nostore=%v\n", o.Kind, o.Status, o.Blocking, d.TTL, d.NoStore)
	}
	// Output:
	// media-playlist 200 blocking=false ttl=2s nostore=false
	// media-playlist 404 blocking=false ttl=4s nostore=false
	// media-playlist 200 blocking=true  ttl=24s nostore=false
	// media-playlist 404 blocking=true  ttl=16s nostore=false
	// media-playlist 200 blocking=false ttl=24h0m0s nostore=false
	// segment        200 blocking=false ttl=24h0m0s nostore=false
	// key            200 blocking=false ttl=0s nostore=true
}

// Cache keys keep the LL-HLS directives in canonical order.
func ExamplePolicy_Key() {
	p := &hls.Policy{DropQuery: []string{"session"}}
	r := httptest.NewRequest(http.MethodGet, "http://edge.example/live/index.m3u8?session=42&_HLS_part=3&_HLS_msn=120", nil)
	fmt.Println(p.Key(r))
	// Output:
	// /live/index.m3u8?_HLS_msn=120&_HLS_part=3
}

// An edge tier with the HLS policy and segment prefetch in front of an
// origin: a client requesting segment 0 makes the edge fetch segments 1
// and 2 in the background, so the client's next requests are hits.
func ExamplePrefetcher() {
	origin := httptest.NewServer(&hlstest.Origin{Segments: 4, Renditions: hlstest.DefaultRenditions[:1]})
	defer origin.Close()
	up, _ := url.Parse(origin.URL)

	edge := &cache.Cache{Upstream: up, Policy: &hls.Policy{}, CacheStatus: true}
	pf := &hls.Prefetcher{}
	if err := pf.Attach(edge); err != nil { // learn the segment lists, count prefetch hits
		panic(err)
	}
	srv := httptest.NewServer(pf.Wrap(edge)) // trigger prefetches
	defer srv.Close()
	defer pf.Close()

	get := func(path string) string {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			return err.Error()
		}
		resp.Body.Close()
		return hls.Disposition(strings.Join(resp.Header.Values("Cache-Status"), ", "))
	}
	get("/240p/index.m3u8")
	get("/240p/seg0.ts")
	// Wait for the two background prefetches.
	for deadline := time.Now().Add(5 * time.Second); pf.Stats().Prefetched < 2 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("seg1:", get("/240p/seg1.ts"))
	// The edge counts the hit once its response is complete.
	for deadline := time.Now().Add(5 * time.Second); pf.Stats().Hits == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("prefetch hits:", pf.Stats().Hits)
	// Output:
	// seg1: hit
	// prefetch hits: 1
}

// Start-up prefetch: a viewer's request for the master playlist makes the
// edge fetch what the player asks for next (the first variant's media
// playlist, init section and first segment), so that those requests are
// hits instead of three round trips upstream one after another.
func ExamplePrefetcher_startUp() {
	var mu sync.Mutex
	var asked []string
	o := &hlstest.Origin{FMP4: true}
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.URL.Path)
		mu.Unlock()
		o.ServeHTTP(w, r)
	}))
	defer origin.Close()
	up, _ := url.Parse(origin.URL)

	edge := &cache.Cache{Upstream: up, Policy: &hls.Policy{}, CacheStatus: true}
	pf := &hls.Prefetcher{}
	if err := pf.Attach(edge); err != nil {
		panic(err)
	}
	srv := httptest.NewServer(&hls.CMCDFilter{Next: pf.Wrap(edge)})
	defer srv.Close()
	defer pf.Close()

	get := func(path string) string {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			return err.Error()
		}
		resp.Body.Close()
		return hls.Disposition(strings.Join(resp.Header.Values("Cache-Status"), ", "))
	}
	fmt.Println("master:", get("/master.m3u8"))
	for deadline := time.Now().Add(5 * time.Second); pf.Stats().Prefetched < 3 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	slices.Sort(asked)
	fmt.Println("the edge asked the origin for", asked)
	mu.Unlock()
	for _, path := range []string{"/240p/index.m3u8", "/240p/init.mp4", "/240p/seg0.m4s"} {
		fmt.Println(path+":", get(path))
	}
	// Output:
	// master: miss
	// the edge asked the origin for [/240p/index.m3u8 /240p/init.mp4 /240p/seg0.m4s /master.m3u8]
	// /240p/index.m3u8: hit
	// /240p/init.mp4: hit
	// /240p/seg0.m4s: hit
}

// Measuring a stream: three players against a synthetic origin. A VOD
// session ends when its last segment is downloaded, so this takes well
// under a second even in real time.
func ExampleTester() {
	origin := httptest.NewServer(&hlstest.Origin{Segments: 5})
	defer origin.Close()
	t := &hls.Tester{Players: 3, Rendition: 1}
	rep, err := t.Run(context.Background(), origin.URL+"/master.m3u8")
	if err != nil {
		fmt.Println(err)
		return
	}
	s := rep.Summary
	fmt.Printf("players %d, segments %d, stalls %d, errors %d\n", s.Players, s.Segments, s.Stalls, s.Errors)
	// Output:
	// players 3, segments 15, stalls 0, errors 0
}

// Warming a tier: every rendition's playlist and segments, retrying
// failures.
func ExampleWarmer() {
	origin := httptest.NewServer(&hlstest.Origin{Segments: 3})
	defer origin.Close()
	w := &hls.Warmer{Concurrency: 2, Select: func(v hls.Variant) bool { return strings.HasPrefix(v.Resolution, "854x") }}
	rep, err := w.Warm(context.Background(), origin.URL+"/master.m3u8")
	fmt.Println(rep.Objects, rep.Bytes, len(rep.Failures), err)
	// Output:
	// 5 750618 0 <nil>
}

// Testing an onion site through tor: each simulated viewer gets its own
// circuit (tor's IsolateSOCKSAuth), as distinct Tor Browser users would.
// Compile-only: it needs a running tor.
func ExampleTester_tor() {
	t := &hls.Tester{
		Players:       5,
		StartInterval: 2 * time.Second,
		ClientFor: func(player int) *http.Client {
			d := &onion.Dialer{SocksAddr: "127.0.0.1:9050", Isolation: onion.NewIsolationTag()}
			return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
		},
	}
	rep, err := t.Run(context.Background(), "http://exampleonionaddressxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.onion/master.m3u8")
	if err != nil {
		fmt.Println(err)
	}
	if rep != nil {
		rep.WriteText(os.Stdout)
	}
}

// Where requests enter a tier, CMCD is removed before anything else sees
// it; what the player announced as its next request (nor) is resolved
// against the request and restricted to the same host, ready to prefetch.
// In a tier, hls.CMCDFilter does this for every request.
func ExampleStripCMCD() {
	payload := hls.CMCD{BufferLength: 12 * time.Second, Next: []string{"seg5.ts"}, SessionID: "6e2fb550"}
	r := httptest.NewRequest(http.MethodGet, "http://edge.example/v/480p/seg4.ts?token=abc&"+payload.Query(), nil)
	c, ok := hls.StripCMCD(r)
	fmt.Println(ok, r.URL)
	fmt.Println(c.BufferLength, c.SessionID, c.NextURLs(r))
	// Output:
	// true http://edge.example/v/480p/seg4.ts?token=abc
	// 12s 6e2fb550 [http://edge.example/v/480p/seg5.ts]
}
