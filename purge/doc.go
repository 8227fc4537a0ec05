// Package purge carries an origin's purges to every tier of an onioncdn
// CDN: an append-only log of purges signed with the origin's key, served
// by the origin, followed by each tier from the tier above it over its own
// upstream connection, and applied to each tier's cache.Cache.
//
// # Overview
//
// Edges that share one onion address cannot be reached one by one (only
// the one holding the descriptor receives connections), so purges are not
// pushed down: they are pulled up. The origin keeps a [Log]; each midtier
// runs a [Follower] that long-polls the origin's log through the
// midtier's upstream transport, and each edge runs a Follower that
// long-polls a midtier's Follower through the edge's warm Tor pool. An
// edge that does not hold the descriptor follows like any other: it only
// needs its outgoing circuits.
//
// An [Entry] is the origin's statement "the n-th purge of log L is P",
// signed with ed25519 by the key the origin signs responses with
// (package upstream/integrity), so tiers verify purges with the keys they
// already have. Tiers never sign: a midtier re-serves the origin's entries
// as they are, and a tier that did not receive an entry cannot make one up
// nor alter one (a forged or altered entry is refused and counted, and
// changes nothing).
//
// Replays are refused by sequence number: a Follower applies entries in
// order, each once; an entry at or below the last one applied is a replay.
// Sequence numbers, not timestamps, order entries, so clocks need not
// agree. The log's id is its creation time: if the origin loses its log
// and starts a new one, followers move to it (an older log's entries are
// refused from then on). Purge requests sent to the origin ([Submit],
// signed by the same key) carry a time and a nonce instead: a request more
// than MaxSkew from the origin's clock, or with a nonce seen before, is
// refused.
//
// Logs are bounded (MaxEntries). A follower that finds entries missing (it
// was offline longer than the window, or the log is new) cannot know what
// they purged: it applies a soft purge of everything (each object
// revalidates once) and continues. A restarted tier resumes from its last
// applied entry when its Follower has a StateFile and its Cache a
// PurgeFile.
//
// What a purge does to a cache, hard or soft, and how fills in progress
// are kept from storing purged content: see cache.Cache.Purge.
//
// With several midtiers, an edge may apply a purge from one midtier while
// fetching an object from another that has not applied it yet (a few
// milliseconds behind): the edge would store the purged object after the
// purge. A midtier therefore marks its responses with its position in the
// log ([Follower.Mark], PositionField), and an edge fetches through
// [Follower.Guard], which sends a request again (the upstream transport
// may pick another midtier) while the response comes from a midtier
// behind the edge.
//
// # Usage
//
// At the origin, next to (not under) the handler that signs responses:
//
//	plog := &purge.Log{Key: originKey, File: "/var/lib/origin/purge.log"}
//	mux := http.NewServeMux()
//	mux.Handle(purge.DefaultPath, plog)
//	mux.Handle("/", (&integrity.Signer{Key: originKey}).Handler(site))
//
// Issue a purge from the origin machine (examples/origin has a command
// for it):
//
//	e, err := purge.Submit(ctx, nil, "http://127.0.0.1:8000"+purge.DefaultPath, originKey,
//		cache.Purge{Kind: cache.PurgePrefix, Value: "/video/", Soft: true})
//
// At every tier, with the tier's raw upstream transport and the origin's
// public keys (tier.Tier runs it and, on a midtier, serves it):
//
//	f := &purge.Follower{Transport: upstreamTransport, Keys: integrity.Keys(originPub),
//		StateFile: "/var/cache/edge/purge-state"}
//	c := &cache.Cache{Transport: f.Guard(verifyingTransport), PurgeFile: "/var/cache/edge/purge-rules", ...}
//	t := &tier.Tier{Cache: c, Purge: f, ServePurgeLog: isMidtier} // sets f.Cache
//
// # Security
//
// A purge can only come from the holder of the origin's key. A tier in
// between can withhold or delay entries (so a Follower's lag, and its
// metrics, are worth watching), or cut its log short, which makes the
// tiers below revalidate everything once through it; it cannot purge what
// the origin did not, nor replay an entry. Surrogate keys, which tag
// purges select by, are signed response fields (integrity), so a tier
// cannot retag objects either.
//
// The log lists the URLs, prefixes and tags purged. The origin serves it
// only to whoever reaches the origin (the midtiers); a midtier serves it
// to whoever reaches the midtier (the edges). An edge does not serve it,
// and does not forward requests for DefaultPath (see tier.Tier).
package purge
