package cache_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"

	"github.com/onioncdn/onioncdn/cache"
)

// The origin lets browsers keep a page for a minute, an onioncdn edge for
// an hour (its own targeted field, RFC 9213) and other CDNs for ten
// minutes. The edge obeys its field; the client receives every field as
// the origin sent it.
func ExampleCache_targetedFields() {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("CDN-Cache-Control", "max-age=600")
		w.Header().Set("Onioncdn-Edge-Cache-Control", "max-age=3600")
		fmt.Fprint(w, "page")
	}))
	defer origin.Close()

	upstream, _ := url.Parse(origin.URL)
	edge := &cache.Cache{
		Upstream:       upstream,
		TargetedFields: []string{"Onioncdn-Edge-Cache-Control"}, // then CDN-Cache-Control
		CacheStatus:    true,
	}
	tier := httptest.NewServer(edge)
	defer tier.Close()

	resp, err := http.Get(tier.URL + "/")
	if err != nil {
		panic(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	_, ttl, _ := strings.Cut(resp.Header.Get("Cache-Status"), "ttl=")
	ttl, _, _ = strings.Cut(ttl, ";")
	secs, _ := strconv.Atoi(ttl)
	fmt.Println("fresh at the edge for", (secs+30)/60, "minutes")
	for _, f := range []string{"Cache-Control", "CDN-Cache-Control", "Onioncdn-Edge-Cache-Control"} {
		fmt.Printf("%s: %s\n", f, resp.Header.Get(f))
	}
	// Output:
	// fresh at the edge for 60 minutes
	// Cache-Control: max-age=60
	// CDN-Cache-Control: max-age=600
	// Onioncdn-Edge-Cache-Control: max-age=3600
}
