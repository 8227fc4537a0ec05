package limit_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/limit"
	"github.com/onioncdn/onioncdn/onion"
)

// A client over its request rate gets 429 with Retry-After; another client
// is not affected. (At an onion edge the default Key is the client's Tor
// circuit; here a header stands for it.)
func ExampleLimiter() {
	lim := &limit.Limiter{
		RequestsPerSecond: 1,
		Burst:             2,
		Key: func(r *http.Request) (string, bool) {
			k := r.Header.Get("X-Client")
			return k, k != ""
		},
	}
	srv := httptest.NewServer(lim.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})))
	defer srv.Close()
	for _, client := range []string{"a", "a", "a", "b"} {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		req.Header.Set("X-Client", client)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		if ra := resp.Header.Get("Retry-After"); ra != "" {
			fmt.Println(client, resp.StatusCode, "Retry-After:", ra)
		} else {
			fmt.Println(client, resp.StatusCode)
		}
	}
	fmt.Println("refused for rate:", lim.Stats().Rejected[limit.RejectRate])
	// Output:
	// a 200
	// a 200
	// a 429 Retry-After: 1
	// b 200
	// refused for rate: 1
}

// The wiring of an onion edge: the Limiter outermost, its AdmitMiss in the
// cache, its server settings, and tor's own defences on the listener.
// Needs tor.
func ExampleLimiter_ConfigureServer() {
	lim := &limit.Limiter{}
	c := &cache.Cache{AdmitMiss: lim.AdmitMiss /* Transport, Store… */}
	srv := &http.Server{
		Handler:     lim.Handler(c), // before router agent and prefetcher
		ConnContext: onion.ConnContext,
	}
	lim.ConfigureServer(srv) // MaxHeaderBytes 32 KiB, ReadHeaderTimeout 15 s, ReadTimeout 1 min, IdleTimeout 2 min

	tor := new(onion.Server)
	defer tor.Close()
	ln, err := tor.Listen(context.Background(), onion.ListenConfig{
		ExportCircuitID: true, // per-circuit limits
		PoW:             true,
		IntroDoSDefense: true,
		MaxStreams:      32, // extra streams refused; closing the circuit would hand the client a fresh one
	})
	if err != nil {
		panic(err)
	}
	srv.Serve(ln)
}
