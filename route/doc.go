// Package route steers clients to groups of edges by load, and spreads a
// page's assets over several onions.
//
// # Overview
//
// Several edges publishing one onion key split clients by descriptor race
// (whichever edge uploaded last receives everyone), with no regard to load.
// A [Router] fixes that one level up: it is an [net/http.Handler], served
// on its own onion (itself made redundant by that same race), that answers
// each request with a redirect to the onion of one group of edges:
//
//	client ──▶ router onion ──302──▶ group A onion (edges a1, a2, …)
//	                              └─▶ group B onion (edges b1, …)
//	                  ▲
//	                  └── signed load reports from an Agent on every edge
//
// The router picks among groups that sent a fresh healthy report, by
// weighted power of two choices on a load score (active requests and
// bytes per second relative to the group's capacity weight); see [Router]
// for the formula. An optional short-lived cookie keeps a client on its
// group while that group stays healthy. When no group is healthy the
// router serves a fallback handler or answers 503 with Retry-After.
//
// An [Agent] runs beside each edge. Its [Agent.Middleware] counts the
// edge's in-flight requests, response bytes and errors; a [Agent.Sample]
// hook adds what only the edge knows (the cache hit ratio); [Agent.Run]
// signs and posts a report every [Agent.Interval] through any
// [net/http.Client] (over Tor in production), backs off on failure, and
// reports the edge unhealthy when it stops.
//
// [Shards] maps asset paths to several base URLs by rendezvous hashing,
// from Go ([Shards.URL]) or templates ([Shards.FuncMap], "shard"). Tor
// Browser opens a separate circuit per onion key (onion subdomains do not
// count), so assets on several onions load in parallel, and each asset
// always comes from the same onion, whose caches stay warm.
//
// Route is not a consistent-hash peer picker for cache tiers, and it does
// not probe edges itself: health is what the agents report.
//
// # Usage
//
// Router, on the router host:
//
//	rt := &route.Router{
//		Groups: []route.Group{
//			{ID: "eu", Onion: "<56 chars>.onion", Weight: 2, Edges: []route.Edge{{ID: "eu-1", PublicKey: euPub}}},
//			{ID: "us", Onion: "<56 chars>.onion", Edges: []route.Edge{{ID: "us-1", PublicKey: usPub}}},
//		},
//		StickyCookie: "ocdn",
//	}
//	http.Serve(routerOnionListener, rt)
//
// Agent, on each edge, with the edge's cache c:
//
//	agent := &route.Agent{
//		URL:    "http://<router>.onion" + route.DefaultReportPath,
//		Group:  "eu", Edge: "eu-1", Key: euPriv,
//		Client: torClient, // dials through onion.Dialer
//	}
//	var last cache.Stats
//	agent.Sample = func(l *route.Load) {
//		s := c.Stats()
//		l.HitRatio = s.HitRatio(last) // the one definition (cache.Stats.HitRatio)
//		last = s
//	}
//	go agent.Run(ctx)
//	http.Serve(edgeOnionListener, agent.Middleware(c))
//
// Sharding, in a page template:
//
//	shards, err := route.NewShards("http://<static1>.onion", "http://<static2>.onion")
//	tmpl := template.New("page").Funcs(shards.FuncMap()) // {{shard "/js/app.js"}}
//
// # Security
//
// Reports are authenticated with ed25519: every edge has its own key pair,
// and the router holds only the public keys ([Edge.PublicKey]). We chose
// per-edge signatures over a shared per-group HMAC secret because the
// router (the most exposed host: its address is public) then holds no
// secret that could forge reports, an edge can be revoked alone, and a
// compromised edge can speak only for itself. A report is a JSON body
// (version, group, edge, timestamp in Unix ms, 128-bit random nonce,
// healthy flag, [Load]); the [SignatureHeader] carries the signature over a
// fixed context string and the exact body bytes. The router accepts only
// POST bodies up to [Router.MaxReportBytes] (8 KiB) and rejects, with a 4xx
// and a per-reason counter in [Router.Stats], reports that are unsigned
// (401), not verifiable by the named edge's key, from an unknown group or
// edge, or outside the [Router.ClockSkew] window (±60 s; 403), replayed
// (409: nonces are remembered for the window, at most 1024 per edge, 429
// beyond), malformed (400) or oversized (413). A rejected report never
// changes routing; an older report delivered after a newer one is
// accepted but not applied.
//
// Stickiness without tracking: the cookie value is 128 bits from
// crypto/rand, derived from nothing, scoped to the router's host (Path=/,
// no Domain, HttpOnly, SameSite=Lax, Max-Age minutes; Secure only over
// TLS, since onion sites usually run plain HTTP inside Tor's encryption).
// The value-to-group map is held in memory only, bounded and expiring, and
// never logged. Values the router did not issue are never used as keys: the
// client gets a fresh value. Two routers for two sites issue unrelated
// values, so the cookie cannot link a client across sites.
//
// Redirects carry Cache-Control: no-store and preserve the path and query
// exactly (built with [net/url.URL]); request URIs over
// [Router.MaxURLBytes] get 414. The router never logs client addresses,
// cookies or URLs, and adds no forwarding headers. A redirect reveals to
// the client which group serves it, and the report endpoint reveals which
// group and edge ids exist to whoever can reach the router: ids should not
// be secrets.
//
// Several sites on one CDN: run one Router per site, each on that site's
// own router onion and with its own edge groups (whose tiers partition
// their caches and upstream circuits by site, see packages cache and
// upstream). A cookie is scoped to the host that set it, so a Router
// shared by two sites under one onion would see one client's visits to
// both under the same cookie; two Routers cannot: their values are
// unrelated, a browser sends each only to its own router, and a value
// handed to the other router is unknown there and replaced. What a client
// can still infer is its own group (from the redirect) and, over many
// redirects, the routers' view of relative load.
//
// Logging defaults: the Logger receives configuration errors and rejected
// reports (reason, and the group and edge ids a report claimed); the Agent
// logs failed reports with their error. Neither logs client addresses,
// circuit ids, cookie values, request paths or queries; the Router reads
// neither the request's RemoteAddr nor the onion circuit id.
//
// [Router.AllowNonOnion] lets groups be ordinary host:port addresses for
// tests on loopback; without it only v3 onion addresses (checksum and
// version verified, see [ValidOnion]) are accepted.
package route
