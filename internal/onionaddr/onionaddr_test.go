package onionaddr

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	pub := ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey)
	id := Encode(pub)
	if len(id) != IDLen || id != strings.ToLower(id) {
		t.Fatalf("Encode = %q", id)
	}
	got, err := Decode(id)
	if err != nil || string(got) != string(pub) {
		t.Fatalf("Decode(%q) = %x, %v", id, got, err)
	}
	// Tor's own test vector (rend-spec-v3 appendix / test_hs_common.c).
	const torID = "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid"
	if _, err := Decode(torID); err != nil {
		t.Errorf("tor's example address: %v", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	id := Encode(ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey))
	flip := []byte(id)
	if flip[5] == 'a' {
		flip[5] = 'b'
	} else {
		flip[5] = 'a'
	}
	ver := []byte(id)
	ver[55] = 'a' // last char encodes the version byte's low bits
	for _, tc := range []struct {
		name, id string
		want     error
	}{
		{"short", id[:55], ErrLength},
		{"upper_case", strings.ToUpper(id), ErrAlphabet},
		{"bad_char", id[:10] + "1" + id[11:], ErrAlphabet},
		{"checksum", string(flip), ErrChecksum},
		{"version", string(ver), ErrVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Decode(tc.id); !errors.Is(err, tc.want) {
				t.Fatalf("Decode = %v, want %v", err, tc.want)
			}
		})
	}
}
