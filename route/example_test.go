package route_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"html/template"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/onioncdn/onioncdn/route"
)

// key returns a fixed key so the example output is stable. Real edges use
// ed25519.GenerateKey and keep the private key secret.
func key(seed byte) ed25519.PrivateKey {
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	return ed25519.NewKeyFromSeed(s)
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// A router in front of two edge groups. Each group's agent reports its
// load; the router redirects new clients to the group best able to serve
// them and keeps them there with a short-lived cookie.
func ExampleRouter() {
	edgeA, edgeB := key(1), key(2)
	// The groups' onion addresses (the edges of a group share one onion key).
	onionA, onionB := route.OnionAddress(pub(key(11))), route.OnionAddress(pub(key(12)))

	rt := &route.Router{
		Groups: []route.Group{
			{ID: "a", Onion: onionA, Edges: []route.Edge{{ID: "a1", PublicKey: pub(edgeA)}}},
			{ID: "b", Onion: onionB, Edges: []route.Edge{{ID: "b1", PublicKey: pub(edgeB)}}},
		},
		StickyCookie: "ocdn",
	}
	// In production this is http.Serve on the router's onion listener.
	srv := httptest.NewServer(rt)
	defer srv.Close()

	// The edges' agents report: a is down for maintenance, b is healthy.
	report := func(group, edge string, k ed25519.PrivateKey, healthy bool) {
		a := &route.Agent{
			URL:   srv.URL + route.DefaultReportPath,
			Group: group, Edge: edge, Key: k,
			Client: srv.Client(),
		}
		if !healthy {
			a.Healthy = func(context.Context) error { return fmt.Errorf("maintenance") }
		}
		if err := a.Report(context.Background()); err != nil {
			log.Fatal(err)
		}
	}
	report("a", "a1", edgeA, false)
	report("b", "b1", edgeB, true)

	client := srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Get(srv.URL + "/video/index.m3u8?_HLS_msn=3")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status)
	fmt.Println(strings.Replace(resp.Header.Get("Location"), onionB, "<b>.onion", 1))
	fmt.Println(resp.Header.Get("Cache-Control"))
	fmt.Println(len(resp.Cookies()) == 1 && resp.Cookies()[0].Name == "ocdn")
	// Output:
	// 302 Found
	// http://<b>.onion/video/index.m3u8?_HLS_msn=3
	// no-store
	// true
}

// An edge counts its load with the agent's middleware and reports it,
// with its cache hit ratio, to the router.
func ExampleAgent() {
	edgeKey := key(1)
	rt := &route.Router{Groups: []route.Group{{
		ID: "eu", Onion: route.OnionAddress(pub(key(11))),
		Edges: []route.Edge{{ID: "edge-1", PublicKey: pub(edgeKey)}},
	}}}
	router := httptest.NewServer(rt)
	defer router.Close()

	agent := &route.Agent{
		URL:   router.URL + route.DefaultReportPath,
		Group: "eu", Edge: "edge-1", Key: edgeKey,
		// In production: an *http.Client whose transport dials the
		// router's onion through Tor, e.g. with onion.Dialer.
		Client: router.Client(),
		// Add what the middleware cannot see, e.g. from cache.Cache.Stats().
		Sample: func(l *route.Load) { l.HitRatio = 0.9 },
	}
	// The edge's handler (normally the cache) wrapped by the agent.
	edge := agent.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "segment")
	}))
	edge.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/seg1.ts", nil))

	// Run reports every Interval until ctx ends; one report is enough here.
	if err := agent.Report(context.Background()); err != nil {
		log.Fatal(err)
	}
	st, _ := rt.Stats()
	g := st.Groups[0]
	fmt.Println(g.ID, "healthy:", g.Healthy, "hit ratio:", g.Load.HitRatio, "accepted:", st.Reports.Accepted)
	// Output:
	// eu healthy: true hit ratio: 0.9 accepted: 1
}

// Assets spread over several onions load over parallel Tor circuits.
func ExampleShards() {
	shards, err := route.NewShards("http://static1.example.onion", "http://static2.example.onion")
	if err != nil {
		log.Fatal(err)
	}
	// The mapping depends only on the bases and the path: every edge
	// rendering the page agrees, and the output below never changes.
	for _, p := range []string{"/css/site.css", "/js/app.js", "/img/logo.png"} {
		fmt.Println(shards.URL(p))
	}
	// Output:
	// http://static1.example.onion/css/site.css
	// http://static2.example.onion/js/app.js
	// http://static1.example.onion/img/logo.png
}

func ExampleShards_FuncMap() {
	shards, err := route.NewShards("http://static1.example.onion", "http://static2.example.onion")
	if err != nil {
		log.Fatal(err)
	}
	page := template.Must(template.New("page").Funcs(shards.FuncMap()).Parse(
		`<link rel="stylesheet" href="{{shard "/css/site.css"}}">` + "\n" +
			`<script src="{{shard "/js/app.js"}}"></script>` + "\n"))
	if err := page.Execute(os.Stdout, nil); err != nil {
		log.Fatal(err)
	}
	// Output:
	// <link rel="stylesheet" href="http://static1.example.onion/css/site.css">
	// <script src="http://static2.example.onion/js/app.js"></script>
}
