package integrity

import (
	"net/http"
	"strings"
	"time"

	"github.com/onioncdn/onioncdn/cache"
)

// DefaultMargin is the default [BoundPolicy.Margin].
const DefaultMargin = time.Minute

// BoundPolicy is a [cache.Policy] for a tier whose Transport verifies
// signatures: it applies Policy, and bounds every stored response by its
// signature's expiry (the rule under "Lifetimes" in the package
// documentation). From the earliest expires of the response's signatures,
// less Margin, the cache no longer serves the response, fresh or stale,
// without revalidating it; the 304 brings a new signature, and the merged
// response is usable until that one expires. Without the bound, a tier
// whose policy keeps an object longer than its signature lasts (the HLS
// policy keeps segments and VOD playlists 24 h, heuristic freshness
// reaches 24 h) would keep serving a copy no verifying tier below it
// accepts any more.
//
// The zero value bounds plain RFC 9111 caching. Its fields must not change
// once a cache uses it.
//
//	c := &cache.Cache{Transport: verifier, Policy: &integrity.BoundPolicy{Policy: &hls.Policy{}}}
type BoundPolicy struct {
	// Policy decides keys and storage. If nil, the cache's own rules:
	// cache.DefaultKey and the zero Decision.
	Policy cache.Policy

	// Margin is how long before a signature expires the cache stops using
	// the response without revalidating it, so that the tiers below still
	// receive it valid with time to spare (their clocks may run ahead).
	// It is at most half the signature's lifetime. If zero,
	// DefaultMargin (1 minute).
	Margin time.Duration
}

var _ cache.BoundedPolicy = (*BoundPolicy)(nil)

// Key returns Policy's key for r, or cache.DefaultKey(r).
func (p *BoundPolicy) Key(r *http.Request) string {
	if p.Policy != nil {
		return p.Policy.Key(r)
	}
	return cache.DefaultKey(r)
}

// Decide returns Policy's decision for resp, or the zero Decision.
func (p *BoundPolicy) Decide(r *http.Request, resp *http.Response) cache.Decision {
	if p.Policy != nil {
		return p.Policy.Decide(r, resp)
	}
	return cache.Decision{}
}

// Unwrap returns Policy, so that code looking for a policy of its own
// (hls.Prefetcher.Attach looks for an *hls.Policy) finds it under the
// bound.
func (p *BoundPolicy) Unwrap() cache.Policy { return p.Policy }

// NotAfter returns the earliest expires of the signatures in h, less the
// margin; the zero time if h has no signature with an expiry.
func (p *BoundPolicy) NotAfter(h http.Header) time.Time {
	created, expires, ok := signatureWindow(h)
	if !ok {
		return time.Time{}
	}
	margin := p.Margin
	if margin <= 0 {
		margin = DefaultMargin
	}
	margin = min(margin, expires.Sub(created)/2)
	return expires.Add(-max(margin, 0))
}

// signatureWindow returns the created and expires times of the signature
// in h that expires first.
func signatureWindow(h http.Header) (created, expires time.Time, ok bool) {
	inputs := h.Values("Signature-Input")
	if len(inputs) == 0 {
		return created, expires, false
	}
	ms, err := parseDictionary(strings.Join(inputs, ", "))
	if err != nil {
		return created, expires, false
	}
	for _, m := range ms {
		var c, e int64
		var hasC, hasE bool
		for _, p := range m.params {
			switch p.key {
			case "created":
				c, hasC = p.val.(int64)
			case "expires":
				e, hasE = p.val.(int64)
			}
		}
		if !m.isList || !hasE {
			continue
		}
		if !hasC {
			c = e
		}
		if !ok || time.Unix(e, 0).Before(expires) {
			created, expires, ok = time.Unix(c, 0), time.Unix(e, 0), true
		}
	}
	return created, expires, ok
}
