package balance

import (
	"bytes"
	"slices"
	"strings"

	"github.com/onioncdn/onioncdn/onion/hsdesc"
)

// candidate is a backend that may appear in the group's descriptors.
type candidate struct {
	addr   string
	intros []hsdesc.IntroPoint // sorted by auth key
}

// assign spreads the candidates' introduction points over v descriptor
// variants of at most c introduction points each (one variant per HSDir
// that clients fetch from), deterministically: the same input gives the
// same output on every publisher.
//
// With n candidates, each variant lists min(n, c) backends. If n ≤ c, every
// variant lists every backend, and the remaining room goes to further
// introduction points of each backend in turn, each variant starting at a
// different one so that different clients use different introduction
// points. If n > c, variant d lists the c backends starting at ⌊d·n/v⌋
// (cyclically), so that the v variants together list every backend as
// long as n ≤ v·c: that many backends are reachable through one address.
func assign(cands []candidate, v, c int) [][]hsdesc.IntroPoint {
	if v < 1 {
		v = 1
	}
	out := make([][]hsdesc.IntroPoint, v)
	n := len(cands)
	if n == 0 || c < 1 {
		return out
	}
	for d := range v {
		var chosen []candidate
		if n <= c {
			chosen = cands
		} else {
			start := d * n / v
			for i := range c {
				chosen = append(chosen, cands[(start+i)%n])
			}
		}
		var ips []hsdesc.IntroPoint
		for round := 0; len(ips) < c; round++ {
			added := false
			for _, b := range chosen {
				k := len(b.intros)
				if round >= k {
					continue
				}
				ips = append(ips, b.intros[(round+d)%k])
				added = true
				if len(ips) == c {
					break
				}
			}
			if !added {
				break
			}
		}
		out[d] = ips
	}
	return out
}

// contentKey identifies a variant by its introduction points' auth keys,
// independent of order and of the certificates (which every build makes
// anew).
func contentKey(ips []hsdesc.IntroPoint) string {
	keys := make([]string, 0, len(ips))
	for _, ip := range ips {
		keys = append(keys, string(ip.AuthKey))
	}
	slices.Sort(keys)
	return strings.Join(keys, "")
}

// sortIntros orders introduction points by auth key.
func sortIntros(ips []hsdesc.IntroPoint) {
	slices.SortFunc(ips, func(a, b hsdesc.IntroPoint) int { return bytes.Compare(a.AuthKey, b.AuthKey) })
}
