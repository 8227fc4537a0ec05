package cache_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/onioncdn/onioncdn/cache"
)

// A tier in front of an origin: the second request is a hit.
func ExampleCache() {
	var originRequests atomic.Int64
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		originRequests.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "hello from the origin")
	}))
	defer origin.Close()

	upstream, _ := url.Parse(origin.URL)
	c := &cache.Cache{Upstream: upstream, Name: "edge", CacheStatus: true}
	tier := httptest.NewServer(c)
	defer tier.Close()

	for i := 0; i < 2; i++ {
		resp, err := http.Get(tier.URL + "/greeting")
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		c.Shutdown(resp.Request.Context()) // let the fill finish storing
		status, _, _ := strings.Cut(resp.Header.Get("Cache-Status"), "; ttl=")
		_, hasAge := resp.Header["Age"]
		fmt.Printf("%s | %s | Age sent: %v\n", body, status, hasAge)
	}
	fmt.Println("origin requests:", originRequests.Load())
	// Output:
	// hello from the origin | edge; fwd=uri-miss; fwd-status=200 | Age sent: true
	// hello from the origin | edge; hit | Age sent: true
	// origin requests: 1
}

// Ten concurrent clients on a cold object cost one origin request.
func ExampleCache_collapse() {
	var originRequests atomic.Int64
	release := make(chan struct{})
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		originRequests.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "01234")
		http.NewResponseController(w).Flush()
		<-release // the rest comes once every client has the first bytes
		io.WriteString(w, "56789")
	}))
	defer origin.Close()

	upstream, _ := url.Parse(origin.URL)
	tier := httptest.NewServer(&cache.Cache{Upstream: upstream})
	defer tier.Close()

	const clients = 10
	var started, done sync.WaitGroup
	started.Add(clients)
	done.Add(clients)
	bodies := make(chan string, clients)
	for i := 0; i < clients; i++ {
		go func() {
			defer done.Done()
			resp, err := http.Get(tier.URL + "/video.ts")
			if err != nil {
				panic(err)
			}
			defer resp.Body.Close()
			first := make([]byte, 5)
			io.ReadFull(resp.Body, first) // streamed while the origin still holds the rest
			started.Done()
			rest, _ := io.ReadAll(resp.Body)
			bodies <- string(first) + string(rest)
		}()
	}
	started.Wait()
	close(release)
	done.Wait()
	close(bodies)
	complete := 0
	for b := range bodies {
		if b == "0123456789" {
			complete++
		}
	}
	fmt.Println("complete bodies:", complete)
	fmt.Println("origin requests:", originRequests.Load())
	// Output:
	// complete bodies: 10
	// origin requests: 1
}

// The cache as a client transport.
func ExampleCache_RoundTrip() {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "cached")
	}))
	defer origin.Close()

	c := &cache.Cache{Store: &cache.MemoryStore{MaxBytes: 1 << 20}}
	client := &http.Client{Transport: c}
	for i := 0; i < 2; i++ {
		resp, err := client.Get(origin.URL + "/a")
		if err != nil {
			panic(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		c.Shutdown(resp.Request.Context())
	}
	st := c.Stats()
	fmt.Println("hits:", st.Hits, "misses:", st.Misses)
	// Output:
	// hits: 1 misses: 1
}

// A cache in front of an application's own handler, in the same process:
// the handler's responses stream through the cache, which stores them.
func ExampleHandlerTransport() {
	calls := 0
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "rendered %s", r.URL.Path)
	})
	c := &cache.Cache{
		Transport: cache.HandlerTransport{Handler: app},
		Upstream:  &url.URL{Scheme: "http", Host: "app.internal"},
	}
	srv := httptest.NewServer(c)
	defer srv.Close()
	for range 2 {
		resp, err := http.Get(srv.URL + "/page")
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		c.Shutdown(resp.Request.Context())
		fmt.Println(string(body))
	}
	fmt.Println("handler calls:", calls)
	// Output:
	// rendered /page
	// rendered /page
	// handler calls: 1
}
