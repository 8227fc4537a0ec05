package balance

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/onioncdn/onioncdn/onion/hsdesc"
)

// introOn returns an introduction point on the relay with legacy id byte r.
func introOn(r byte) hsdesc.IntroPoint {
	ip := fakeIntro()
	ip.LinkSpecifiers = append([]byte{1, 2, 20}, bytes.Repeat([]byte{r}, 20)...)
	return ip
}

// backendsOn makes n candidates whose introduction points sit on the
// given relays.
func backendsOn(n int, relays ...byte) []candidate {
	var out []candidate
	for i := range n {
		var ips []hsdesc.IntroPoint
		for _, r := range relays {
			ips = append(ips, introOn(r))
		}
		sortIntros(ips)
		out = append(out, newCandidate(fmt.Sprintf("b%02d", i), ips))
	}
	return out
}

func owners(cands []candidate) map[string]string {
	m := map[string]string{}
	for _, c := range cands {
		for _, ip := range c.intros {
			m[string(ip.AuthKey)] = c.addr
		}
	}
	return m
}

func TestAssign(t *testing.T) {
	for _, tc := range []struct {
		name       string
		cands      []candidate
		v, c       int
		perVariant int // introduction points per variant
		minBack    int // backends per variant, at least
		reach      int // backends over all variants
	}{
		{"3_backends_distinct_relays", backendsOn(3, 1, 2, 3), 5, 20, 3, 3, 3},
		// The private network: 5 relays host everyone's introduction points.
		{"3_backends_5_shared_relays", backendsOn(3, 1, 2, 3, 4, 5), 5, 20, 3, 3, 3},
		{"2_backends_5_shared_relays", backendsOn(2, 1, 2, 3, 4, 5), 5, 20, 4, 2, 2},
		{"4_backends_c10", backendsOn(4, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12), 5, 10, 8, 4, 4},
		{"12_backends_c3", backendsOn(12, 7), 5, 3, 1, 1, 5}, // one shared relay: one intro per variant
	} {
		t.Run(tc.name, func(t *testing.T) {
			vs := assign(tc.cands, tc.v, tc.c)
			own := owners(tc.cands)
			reached := map[string]bool{}
			for d, ips := range vs {
				if len(ips) != tc.perVariant {
					t.Errorf("variant %d: %d introduction points, want %d", d, len(ips), tc.perVariant)
				}
				relays, backs := map[string]bool{}, map[string]bool{}
				for _, ip := range ips {
					if relays[ip.Relay()] {
						t.Errorf("variant %d: two introduction points on relay %s", d, ip.Relay())
					}
					relays[ip.Relay()] = true
					backs[own[string(ip.AuthKey)]] = true
					reached[own[string(ip.AuthKey)]] = true
				}
				if len(backs) < tc.minBack {
					t.Errorf("variant %d lists %d backends, want ≥ %d", d, len(backs), tc.minBack)
				}
			}
			if len(reached) != tc.reach {
				t.Errorf("%d backends reached, want %d", len(reached), tc.reach)
			}
			// Every listed backend has the same number of introduction
			// points in a variant.
			for d, ips := range vs {
				per := map[string]int{}
				for _, ip := range ips {
					per[own[string(ip.AuthKey)]]++
				}
				for b, k := range per {
					if k != len(ips)/len(per) {
						t.Errorf("variant %d: %s has %d of %d introduction points (%d backends)", d, b, k, len(ips), len(per))
					}
				}
			}
			// Deterministic.
			again := assign(tc.cands, tc.v, tc.c)
			for d := range vs {
				if contentKey(vs[d]) != contentKey(again[d]) {
					t.Fatalf("variant %d differs between two runs", d)
				}
			}
		})
	}
}

// With distinct relays (the real network), v variants of c reach v·c
// backends of one introduction point each, and no more.
func TestAssignReach(t *testing.T) {
	var cands []candidate
	for i := range 130 {
		cands = append(cands, newCandidate(fmt.Sprintf("b%03d", i), []hsdesc.IntroPoint{introOn(byte(i)), introOn(byte(i + 130))}))
	}
	own := owners(cands)
	for _, n := range []int{20, 21, 100, 120, 130} {
		vs := assign(cands[:n], 6, 20)
		reached := map[string]bool{}
		for _, ips := range vs {
			if len(ips) != 20 {
				t.Fatalf("n=%d: variant with %d introduction points", n, len(ips))
			}
			for _, ip := range ips {
				reached[own[string(ip.AuthKey)]] = true
			}
		}
		if want := min(n, 120); len(reached) != want {
			t.Errorf("n=%d: %d backends reached, want %d", n, len(reached), want)
		}
	}
	// Fewer backends than room: every variant lists every backend.
	vs := assign(cands[:8], 6, 20)
	for d, ips := range vs {
		back := map[string]bool{}
		for _, ip := range ips {
			back[own[string(ip.AuthKey)]] = true
		}
		if len(back) != 8 || len(ips) != 16 {
			t.Errorf("variant %d: %d backends, %d introduction points", d, len(back), len(ips))
		}
	}
	if contentKey(vs[0]) == contentKey(vs[1]) && vs[0][0].AuthKey.Equal(vs[1][0].AuthKey) {
		t.Error("variants 0 and 1 start alike")
	}
}
