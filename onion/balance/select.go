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
	intros []hsdesc.IntroPoint // sorted by auth key; each on a known relay
	relays []string            // relay fingerprint of each introduction point
}

func newCandidate(addr string, ips []hsdesc.IntroPoint) candidate {
	c := candidate{addr: addr}
	for _, ip := range ips {
		if r := ip.Relay(); r != "" {
			c.intros = append(c.intros, ip)
			c.relays = append(c.relays, r)
		}
	}
	return c
}

// assign spreads the candidates' introduction points over v descriptor
// variants of at most c introduction points each (one variant per HSDir
// that clients fetch from), deterministically: the same input gives the
// same output on every publisher.
//
// A variant never lists two introduction points on the same relay: tor's
// client maps the circuit it built to an introduction point by the relay's
// identity and takes the first match in the descriptor
// (find_desc_intro_point_by_legacy_id), so a second one on that relay
// would never be used, and a dead first one would hide a live second one.
//
// Variant d considers the candidates starting at ⌊d·n/v⌋ (cyclically),
// those not listed by an earlier variant first. Within a variant, first as
// many backends as possible get one introduction point each (a maximum
// matching of backends to distinct relays, at most c), then every listed
// backend gets one more in each further round that fits whole, so that
// listed backends get equal shares of the variant's clients. So
// with n ≤ c backends on enough relays every variant lists every backend,
// and with more the v variants together list min(n, v·c) of them: that
// many backends are reachable through one address. Each variant starts
// from a different backend and introduction point, so that different
// clients use different ones.
func assign(cands []candidate, v, c int) [][]hsdesc.IntroPoint {
	if v < 1 {
		v = 1
	}
	out := make([][]hsdesc.IntroPoint, v)
	n := len(cands)
	if n == 0 || c < 1 {
		return out
	}
	listed := make([]bool, n)
	for d := range v {
		start := d * n / v
		var first, rest []int
		for i := range n {
			j := (start + i) % n
			if listed[j] {
				rest = append(rest, j)
			} else {
				first = append(first, j)
			}
		}
		order := append(first, rest...)
		chosen := make([]candidate, len(order))
		for i, j := range order {
			chosen[i] = cands[j]
		}
		ips := fill(chosen, c, d)
		in := map[string]bool{}
		for _, ip := range ips {
			in[string(ip.AuthKey)] = true
		}
		for i, j := range order {
			for _, ip := range chosen[i].intros {
				if in[string(ip.AuthKey)] {
					listed[j] = true
				}
			}
		}
		out[d] = ips
	}
	return out
}

// fill picks at most c introduction points from chosen, no two on one
// relay.
func fill(chosen []candidate, c, offset int) []hsdesc.IntroPoint {
	// order[b] lists backend b's introduction points from the offset on.
	order := make([][]int, len(chosen))
	for b, cand := range chosen {
		k := len(cand.intros)
		for i := range k {
			order[b] = append(order[b], (i+offset)%k)
		}
	}
	// Round one: a maximum matching of backends to relays (Kuhn's
	// augmenting paths), so that as many backends as possible get one.
	owner := map[string][2]int{} // relay → (backend, intro)
	matched := make([]int, len(chosen))
	for b := range matched {
		matched[b] = -1
	}
	var try func(b int, seen map[string]bool) bool
	try = func(b int, seen map[string]bool) bool {
		for _, i := range order[b] {
			r := chosen[b].relays[i]
			if seen[r] {
				continue
			}
			seen[r] = true
			o, taken := owner[r]
			if !taken || try(o[0], seen) {
				owner[r] = [2]int{b, i}
				matched[b] = i
				return true
			}
		}
		return false
	}
	count := 0
	for b := range chosen {
		if count == c {
			break
		}
		if try(b, map[string]bool{}) {
			count++
		}
	}
	used := map[string]bool{}
	taken := make([]map[int]bool, len(chosen))
	var ips []hsdesc.IntroPoint
	for b, i := range matched {
		taken[b] = map[int]bool{}
		if i >= 0 {
			ips = append(ips, chosen[b].intros[i])
			used[chosen[b].relays[i]] = true
			taken[b][i] = true
		}
	}
	// Further rounds: one more introduction point for every listed backend,
	// on relays not used yet, as long as the whole round fits. Partial
	// rounds would give some backends more of the clients than others.
	var listedB []int
	for b, i := range matched {
		if i >= 0 {
			listedB = append(listedB, b)
		}
	}
	for len(ips)+len(listedB) <= c && len(listedB) > 0 {
		var round []int // intro index per listed backend
		roundUsed := map[string]bool{}
		for _, b := range listedB {
			pick := -1
			for _, i := range order[b] {
				r := chosen[b].relays[i]
				if !taken[b][i] && !used[r] && !roundUsed[r] {
					pick = i
					break
				}
			}
			if pick < 0 {
				break
			}
			round = append(round, pick)
			roundUsed[chosen[b].relays[pick]] = true
		}
		if len(round) < len(listedB) {
			break
		}
		for k, b := range listedB {
			i := round[k]
			ips = append(ips, chosen[b].intros[i])
			used[chosen[b].relays[i]], taken[b][i] = true, true
		}
	}
	return ips
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
