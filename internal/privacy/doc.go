// Package privacy holds no code: its tests check, across the committed
// packages, the privacy promises onioncdn makes to the users of the onion
// sites it serves and to operators who serve several sites from one CDN.
//
// # Overview
//
// The promises, each checked end to end over loopback HTTP with the real
// cache, upstream, route and onion types (not with mocks of them):
//
//   - Per-site cache partitions ([cache.Cache.Partition]): the same URL on
//     two sites is two cache entries, and the origin sees two requests. A
//     request for site A cannot tell whether site B's copy of an object is
//     cached: the responses a client of site A receives (status, headers
//     including Age and, when enabled, Cache-Status, and body) are byte for
//     byte the same, apart from Date, whether or not site B's object is
//     stored, with or without only-if-cached, conditionals and Cache-Status.
//     Without a partition function, sites whose requests produce the same
//     cache key share entries: the tests show that too.
//   - Per-site circuits ([upstream.Transport.Site]): every upstream
//     connection carries an isolation tag (the SOCKS user name tor uses to
//     separate circuits); a connection only ever carries requests of one
//     site, the tags of two sites never overlap, and connections open at the
//     same time have distinct tags.
//   - Per-site router cookies ([route.Router.StickyCookie]): host-only
//     cookies (no Domain), unrelated random values, and a router never
//     treats another router's value as one of its own.
//   - Header hygiene through edge → midtier → origin: no client-identifying
//     header (X-Forwarded-*, Forwarded, Via, X-Real-IP, True-Client-IP,
//     circuit-id headers…), no client address and no circuit id reaches the
//     origin, and no tier adds a forwarding header. Cookies and
//     Authorization reach the origin only on the requests that carried
//     them. The user-facing tier sends no Cache-Status by default (and
//     removes one from upstream) while Age is present on every cached
//     response.
//   - Logs leak nothing: with every logger of every tier at Debug level, no
//     log line holds a client address, a circuit id, a cookie, a credential
//     or a query string.
//
// # Usage
//
// Run the tests:
//
//	go test -race ./internal/privacy/
//
// The recipe they check, for one tier serving several onion sites, is in
// the Security sections of packages cache, upstream and route: one
// partition, one upstream site name (hence isolation tags), one onion key
// and one router per site, the site being chosen by the listener (or by a
// fixed table of Host names), never by a value the client controls.
//
// # Security
//
// What the tests cannot rule out, and the operator must know: timing. A
// client of site A can time its own requests (a hit on site A is faster
// than a miss) and can read Age, which tells how long ago the object was
// fetched by someone on site A: both reveal that some client of the same
// site requested the same object recently. Partitioning confines this to
// one site; it cannot hide a site's popularity from its own visitors.
// Cookies a site sets through the CDN (responses with Set-Cookie pass
// through uncached) come back to the CDN with the site's requests and are
// forwarded to its origin, as they must be for logins to work: the CDN does
// not add, store or log them, but it does not hide them from the origin
// either.
package privacy
