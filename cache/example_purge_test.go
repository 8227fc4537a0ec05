package cache_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/onioncdn/onioncdn/cache"
)

// Purging by tag: the origin lists surrogate keys; a hard purge of one
// removes its objects from the store at once (through the store's tag
// index), and the next request fetches the new version. The tags never
// reach the client.
func ExampleCache_Purge() {
	var version atomic.Int64
	version.Store(1)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Surrogate-Key", "news "+strings.TrimPrefix(r.URL.Path, "/"))
		fmt.Fprintf(w, "%s, version %d", r.URL.Path, version.Load())
	}))
	defer origin.Close()
	upstream, _ := url.Parse(origin.URL)
	c := &cache.Cache{Upstream: upstream}
	tier := httptest.NewServer(c)
	defer tier.Close()
	get := func(path string) {
		resp, err := http.Get(tier.URL + path)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		c.Shutdown(context.Background()) // let the fill finish storing
		fmt.Printf("%s (Surrogate-Key sent: %v)\n", body, resp.Header.Get("Surrogate-Key") != "")
	}
	get("/front")
	version.Store(2)
	get("/front") // still the stored version
	res, err := c.Purge(context.Background(), cache.Purge{Kind: cache.PurgeTag, Value: "news"})
	fmt.Println("purged:", res.Removed, err)
	get("/front")
	// Output:
	// /front, version 1 (Surrogate-Key sent: false)
	// /front, version 1 (Surrogate-Key sent: false)
	// purged: 1 <nil>
	// /front, version 2 (Surrogate-Key sent: false)
}
