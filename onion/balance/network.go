package balance

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/onioncdn/onioncdn/onion/hsdesc"
)

// consensus is what the Publisher needs from a microdescriptor consensus
// (dir-spec 3.4.1, microdesc flavour).
type consensus struct {
	validAfter, freshUntil, validUntil time.Time
	srvCurrent, srvPrevious            []byte
	params                             map[string]int
	relays                             []relay
}

// relay is one router status entry.
type relay struct {
	fingerprint string // upper-case hex
	mdDigest    string // base64, as in the "m" line
	hsdir       bool   // HSDir flag and HSDir=2 protocol
}

// parseConsensus reads the fields of a microdesc consensus that the hash
// ring needs. It is lenient about everything else.
func parseConsensus(text string) (*consensus, error) {
	c := &consensus{params: map[string]int{}}
	var cur *relay
	var hsdirFlag, hsdirProto bool
	flush := func() {
		if cur != nil {
			cur.hsdir = hsdirFlag && hsdirProto
			c.relays = append(c.relays, *cur)
		}
		cur, hsdirFlag, hsdirProto = nil, false, false
	}
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "valid-after", "fresh-until", "valid-until":
			if len(f) < 3 {
				return nil, fmt.Errorf("balance: consensus: bad %s line", f[0])
			}
			t, err := time.Parse(time.DateTime, f[1]+" "+f[2])
			if err != nil {
				return nil, fmt.Errorf("balance: consensus: bad %s: %w", f[0], err)
			}
			switch f[0] {
			case "valid-after":
				c.validAfter = t
			case "fresh-until":
				c.freshUntil = t
			default:
				c.validUntil = t
			}
		case "params":
			for _, kv := range f[1:] {
				k, v, ok := strings.Cut(kv, "=")
				if n, err := strconv.Atoi(v); ok && err == nil {
					c.params[k] = n
				}
			}
		case "shared-rand-current-value", "shared-rand-previous-value":
			if len(f) < 3 {
				continue
			}
			v, err := base64.StdEncoding.DecodeString(f[2])
			if err != nil || len(v) != 32 {
				continue // tor ignores a bad SRV and uses the disaster value
			}
			if f[0] == "shared-rand-current-value" {
				c.srvCurrent = v
			} else {
				c.srvPrevious = v
			}
		case "r":
			flush()
			if len(f) < 3 {
				return nil, errors.New("balance: consensus: bad r line")
			}
			id, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(f[2], "="))
			if err != nil || len(id) != 20 {
				return nil, errors.New("balance: consensus: bad relay identity")
			}
			cur = &relay{fingerprint: strings.ToUpper(hex.EncodeToString(id))}
		case "m":
			if cur != nil && len(f) >= 2 {
				cur.mdDigest = f[1]
			}
		case "s":
			if cur != nil {
				for _, fl := range f[1:] {
					hsdirFlag = hsdirFlag || fl == "HSDir"
				}
			}
		case "pr":
			if cur != nil {
				for _, p := range f[1:] {
					if v, ok := strings.CutPrefix(p, "HSDir="); ok {
						hsdirProto = protoIncludes(v, 2)
					}
				}
			}
		case "directory-footer":
			flush()
		}
	}
	flush()
	if c.validAfter.IsZero() || c.freshUntil.IsZero() || !c.freshUntil.After(c.validAfter) {
		return nil, errors.New("balance: consensus: no valid-after/fresh-until")
	}
	return c, nil
}

// protoIncludes reports whether a protocol version list ("1-2,4") includes v.
func protoIncludes(list string, v int) bool {
	for part := range strings.SplitSeq(list, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			continue
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				continue
			}
		}
		if v >= a && v <= b {
			return true
		}
	}
	return false
}

// parseMicrodescEd25519 returns the ed25519 identity in a
// microdescriptor's "id ed25519" line.
func parseMicrodescEd25519(md string) (ed25519.PublicKey, bool) {
	for line := range strings.Lines(md) {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "id" && f[1] == "ed25519" {
			k, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(f[2], "="))
			if err == nil && len(k) == 32 {
				return ed25519.PublicKey(k), true
			}
		}
	}
	return nil, false
}

// ring builds the hash ring of the consensus, given the ed25519 identities
// of its relays (by microdescriptor digest) and whether tor runs a
// TestingTorNetwork.
func (c *consensus) ring(ids map[string]ed25519.PublicKey, testing bool) *hsdesc.Ring {
	vi := c.freshUntil.Sub(c.validAfter)
	r := &hsdesc.Ring{
		ValidAfter:     c.validAfter,
		VotingInterval: vi,
		Schedule:       hsdesc.NetworkPeriod(vi, testing, c.params["hsdir_interval"]),
		SRVCurrent:     c.srvCurrent,
		SRVPrevious:    c.srvPrevious,
		Replicas:       c.params["hsdir_n_replicas"],
		SpreadStore:    c.params["hsdir_spread_store"],
		SpreadFetch:    c.params["hsdir_spread_fetch"],
	}
	for _, rl := range c.relays {
		if !rl.hsdir {
			continue
		}
		if id, ok := ids[rl.mdDigest]; ok {
			r.HSDirs = append(r.HSDirs, hsdesc.HSDir{Fingerprint: rl.fingerprint, Identity: id})
		}
	}
	return r
}
