package balance

import (
	"crypto/ed25519"
	"strings"
	"testing"
	"time"
)

func TestParseConsensus(t *testing.T) {
	f := newFakeNet(t, 4)
	text := f.consensusText()
	c, err := parseConsensus(text)
	if err != nil {
		t.Fatal(err)
	}
	if !c.validAfter.Equal(f.va.UTC()) || c.freshUntil.Sub(c.validAfter) != 10*time.Second {
		t.Fatalf("times %v %v", c.validAfter, c.freshUntil)
	}
	if len(c.relays) != 4 || c.srvPrevious == nil || c.srvCurrent != nil || c.params["hsdir_spread_store"] != 4 {
		t.Fatalf("parsed %+v", c)
	}
	for i, r := range c.relays {
		if r.fingerprint != f.hsdirs[i].Fingerprint || !r.hsdir {
			t.Errorf("relay %d: %+v", i, r)
		}
	}
	// A relay without the HSDir flag, or without HSDir=2, is no HSDir.
	noFlag := strings.Replace(text, "s Fast Guard HSDir Running", "s Fast Guard Running", 1)
	old := strings.Replace(text, "HSDir=2", "HSDir=1", 1)
	for name, txt := range map[string]string{"no_flag": noFlag, "hsdir_1": old} {
		c, err := parseConsensus(txt)
		if err != nil || c.relays[0].hsdir {
			t.Errorf("%s: relay 0 counted as HSDir (%v)", name, err)
		}
	}
	ids := map[string]ed25519.PublicKey{}
	for i, r := range c.relays {
		ids[r.mdDigest] = f.hsdirs[i].Identity
	}
	r := c.ring(ids, true)
	if len(r.HSDirs) != 4 || r.Schedule.Length != 4*time.Minute {
		t.Fatalf("ring %+v", r)
	}
	if _, err := parseConsensus("network-status-version 3 microdesc\n"); err == nil {
		t.Error("consensus without times accepted")
	}
	for in, want := range map[string]bool{"2": true, "1-2": true, "1,3-4": false, "3-4,2": true, "x": false} {
		if protoIncludes(in, 2) != want {
			t.Errorf("protoIncludes(%q, 2) != %v", in, want)
		}
	}
	if k, ok := parseMicrodescEd25519("onion-key\nid ed25519 " + strings.Repeat("A", 43) + "\n"); !ok || len(k) != 32 {
		t.Error("parseMicrodescEd25519")
	}
}

// FuzzParseConsensus: the consensus comes from the Publisher's own tor,
// but a parser must not panic on anything.
func FuzzParseConsensus(f *testing.F) {
	f.Add(newFakeNet(f, 3).consensusText())
	f.Add("valid-after 2026-01-01 00:00:00\nfresh-until 2026-01-01 00:00:10\nr\n")
	f.Add("r a AAAA\npr HSDir=1-2,5\ns HSDir\n")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseConsensus(s)
		if err != nil {
			return
		}
		if !c.freshUntil.After(c.validAfter) {
			t.Fatal("accepted a consensus with fresh-until not after valid-after")
		}
		for _, r := range c.relays {
			if len(r.fingerprint) != 40 {
				t.Fatalf("fingerprint %q", r.fingerprint)
			}
		}
		_ = c.ring(map[string]ed25519.PublicKey{}, false)
	})
}
