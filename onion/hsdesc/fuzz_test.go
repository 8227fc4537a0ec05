package hsdesc

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// Parsers take text from HSDirs and backends, so they are fuzzed:
// properties are no panic, errors that wrap one of the package's error
// kinds, and (for descriptors that parse) a decryption that does not
// panic either.

var fuzzNow = time.Unix(1502661599, 0)

// FuzzParse feeds the outer-layer parser. Seeds: tor's test descriptor
// (repaired and as is), a built descriptor, and damaged variants.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("testdata/tor_bad_sig.txt"); err == nil {
		f.Add(string(b))
		f.Add(strings.Replace(string(b), "\n signature ", "\nsignature ", 1))
	}
	id := testKey(f)
	text, _ := buildTest(f, id, testSchedule.Num(fuzzNow), 2, fuzzNow)
	f.Add(text)
	f.Add(text[:len(text)/2])                                                     // truncated
	f.Add(strings.Replace(text, "-----END MESSAGE-----", "-----END MSG-----", 1)) // unterminated object
	f.Add("hs-descriptor 3\n")                                                    // header only
	f.Add("hs-descriptor 3\nsignature x\n")
	f.Fuzz(func(t *testing.T, s string) {
		d, err := Parse(s, fuzzNow)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrExpired) {
				t.Fatalf("error of no known kind: %v", err)
			}
			return
		}
		if len(d.SigningKey) != 32 || len(d.BlindedKey) != 32 {
			t.Fatal("parsed descriptor without keys")
		}
		// Decryption of something that parsed must fail cleanly or work.
		if _, err := d.Decrypt(id.Public(), fuzzNow, testSchedule); err != nil &&
			!errors.Is(err, ErrDecrypt) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrWrongKey) {
			t.Fatalf("Decrypt error of no known kind: %v", err)
		}
	})
}

// FuzzInner feeds the second-layer parser (decrypted text is attacker
// controlled when a malicious service publishes it).
func FuzzInner(f *testing.F) {
	signing := signingKeyFromStd(mustKey(f))
	ip := fakeIntroPoint(f)
	inner, err := innerPlaintext(&Content{FlowControl: "1-2 31", IntroPoints: []IntroPoint{ip, fakeIntroPoint(f)}}, signing, fuzzNow)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(inner)
	f.Add("create2-formats 2\n")
	f.Add("create2-formats 2\nintroduction-point AQ==\n")
	f.Add("create2-formats 3\npow-params v1 AAAA 1 2020-01-01T00:00:00\n")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseInner(s, signing.Public(), fuzzNow)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error of no known kind: %v", err)
			}
			return
		}
		if len(c.IntroPoints) > MaxIntroPoints {
			t.Fatalf("%d introduction points accepted", len(c.IntroPoints))
		}
		for _, ip := range c.IntroPoints {
			if len(ip.OnionKey) != 32 || len(ip.AuthKey) != 32 || len(ip.EncKey) != 32 {
				t.Fatal("introduction point with a short key")
			}
			if validateLinkSpecifiers(ip.LinkSpecifiers) != nil {
				t.Fatal("accepted link specifiers that do not validate")
			}
		}
	})
}

// FuzzParseCert: a certificate that parses re-encodes to the same bytes.
func FuzzParseCert(f *testing.F) {
	k := signingKeyFromStd(mustKey(f))
	f.Add(newCert(CertTypeIntroAuth, make([]byte, 32), fuzzNow, k))
	f.Add([]byte{1, 8, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCert(b)
		if err != nil {
			return
		}
		if len(c.CertifiedKey) != 32 || len(c.Signature) != 64 || string(c.Raw) != string(b) {
			t.Fatal("inconsistent certificate")
		}
		_ = c.Verify(c.Type, nil, fuzzNow) // must not panic
	})
}
