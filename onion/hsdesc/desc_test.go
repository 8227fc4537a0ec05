package hsdesc

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

// testKey returns a fresh identity key.
func testKey(t testing.TB) *SigningKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signingKeyFromStd(priv)
}

// fakeIntroPoint returns an introduction point with random keys and link
// specifiers of the three kinds tor uses (IPv4, legacy id, ed25519 id).
func fakeIntroPoint(t testing.TB) IntroPoint {
	t.Helper()
	r := func(n int) []byte {
		b := make([]byte, n)
		rand.Read(b)
		return b
	}
	ls := []byte{3, 0, 6, 127, 0, 0, 1, 0x1f, 0x90, 2, 20}
	ls = append(ls, r(20)...)
	ls = append(ls, 3, 32)
	ls = append(ls, r(32)...)
	auth, _, _ := ed25519.GenerateKey(rand.Reader)
	return IntroPoint{LinkSpecifiers: ls, OnionKey: r(32), AuthKey: auth, EncKey: r(32)}
}

var testSchedule = NetworkPeriod(10*time.Second, true, 0) // a 4-minute period

func buildTest(t testing.TB, id *SigningKey, tp uint64, n int, now time.Time) (string, []IntroPoint) {
	t.Helper()
	var ips []IntroPoint
	for range n {
		ips = append(ips, fakeIntroPoint(t))
	}
	text, err := Build(&Spec{
		Identity: id, Period: tp, Schedule: testSchedule, RevisionCounter: 1234567, Now: now,
		Content: Content{FlowControl: "1-2 31", IntroPoints: ips},
	})
	if err != nil {
		t.Fatal(err)
	}
	return text, ips
}

func TestBuildRoundTrip(t *testing.T) {
	id := testKey(t)
	now := time.Now()
	tp := testSchedule.Num(now)
	text, ips := buildTest(t, id, tp, 5, now)
	if !strings.HasPrefix(text, "hs-descriptor 3\ndescriptor-lifetime 180\ndescriptor-signing-key-cert\n-----BEGIN ED25519 CERT-----\n") ||
		!strings.HasSuffix(text, "\n") {
		t.Fatalf("unexpected layout:\n%.300s", text)
	}
	d, err := Parse(text, now)
	if err != nil {
		t.Fatal(err)
	}
	blinded, _ := BlindPublicKey(id.Public(), tp, testSchedule)
	if !d.BlindedKey.Equal(blinded) || d.RevisionCounter != 1234567 || d.Lifetime != DefaultLifetime {
		t.Fatalf("outer layer: blinded %x revision %d lifetime %v", d.BlindedKey, d.RevisionCounter, d.Lifetime)
	}
	c, err := d.Decrypt(id.Public(), now, testSchedule, tp-1, tp, tp+1)
	if err != nil {
		t.Fatal(err)
	}
	if c.FlowControl != "1-2 31" || len(c.Create2Formats) != 1 || c.Create2Formats[0] != 2 || c.PoW != nil || c.Skipped != 0 {
		t.Fatalf("content header %+v", c)
	}
	if len(c.IntroPoints) != len(ips) {
		t.Fatalf("%d introduction points, want %d", len(c.IntroPoints), len(ips))
	}
	for i, got := range c.IntroPoints {
		want := ips[i]
		if !bytes.Equal(got.LinkSpecifiers, want.LinkSpecifiers) || !bytes.Equal(got.OnionKey, want.OnionKey) ||
			!got.AuthKey.Equal(want.AuthKey) || !bytes.Equal(got.EncKey, want.EncKey) {
			t.Errorf("introduction point %d differs", i)
		}
		if got.Relay() == "" || len(got.Relay()) != 40 {
			t.Errorf("introduction point %d: Relay() = %q", i, got.Relay())
		}
	}
}

func TestDecryptRefusesOtherKeysAndPeriods(t *testing.T) {
	id, other := testKey(t), testKey(t)
	now := time.Now()
	tp := testSchedule.Num(now)
	text, _ := buildTest(t, id, tp, 3, now)
	d, err := Parse(text, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Decrypt(other.Public(), now, testSchedule, tp); !errors.Is(err, ErrWrongKey) {
		t.Errorf("other service: %v, want ErrWrongKey", err)
	}
	if _, err := d.Decrypt(other.Public(), now, testSchedule); !errors.Is(err, ErrDecrypt) {
		t.Errorf("other service without periods: %v, want ErrDecrypt", err)
	}
	if _, err := d.Decrypt(id.Public(), now, testSchedule, tp+5, tp+6); !errors.Is(err, ErrWrongKey) {
		t.Errorf("other period: %v, want ErrWrongKey", err)
	}
	// A corrupted ciphertext fails the MAC.
	d.Superencrypted[len(d.Superencrypted)/2] ^= 1
	if _, err := d.Decrypt(id.Public(), now, testSchedule, tp); !errors.Is(err, ErrDecrypt) {
		t.Errorf("corrupted: %v, want ErrDecrypt", err)
	}
}

func TestParseRefuses(t *testing.T) {
	id := testKey(t)
	now := time.Now()
	text, _ := buildTest(t, id, testSchedule.Num(now), 2, now)
	if _, err := Parse(text, now.Add(CertLifetime+2*time.Hour)); !errors.Is(err, ErrExpired) {
		t.Errorf("after the certificate expires: %v, want ErrExpired", err)
	}
	for name, c := range map[string]struct {
		text string
		want error
	}{
		"revision_changed": {strings.Replace(text, "revision-counter 1234567", "revision-counter 1234568", 1), ErrBadSignature},
		"no_signature":     {text[:strings.Index(text, "signature ")], ErrMalformed},
		"version_2":        {strings.Replace(text, "hs-descriptor 3", "hs-descriptor 2", 1), ErrMalformed},
		"two_lifetimes":    {strings.Replace(text, "descriptor-lifetime 180\n", "descriptor-lifetime 180\ndescriptor-lifetime 180\n", 1), ErrMalformed},
		"lifetime_13h":     {strings.Replace(text, "descriptor-lifetime 180", "descriptor-lifetime 780", 1), ErrMalformed},
		"too_big":          {text + strings.Repeat("x", MaxSize), ErrMalformed},
		"garbage":          {"hello\n", ErrMalformed},
		"empty":            {"", ErrMalformed},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse(c.text, now); !errors.Is(err, c.want) {
				t.Fatalf("Parse = %v, want %v", err, c.want)
			}
		})
	}
}

// An introduction point whose certificates another key signed is skipped,
// as tor skips it; the rest of the descriptor stays usable.
func TestForeignIntroPointSkipped(t *testing.T) {
	now := time.Now()
	good, foreign := signingKeyFromStd(mustKey(t)), signingKeyFromStd(mustKey(t))
	ips := []IntroPoint{fakeIntroPoint(t), fakeIntroPoint(t)}
	a, err := innerPlaintext(&Content{IntroPoints: ips[:1]}, good, now)
	if err != nil {
		t.Fatal(err)
	}
	b, err := innerPlaintext(&Content{IntroPoints: ips[1:]}, foreign, now)
	if err != nil {
		t.Fatal(err)
	}
	second := b[strings.Index(b, "introduction-point "):] // b's introduction point only
	c, err := parseInner(a+second, good.Public(), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.IntroPoints) != 1 || c.Skipped != 1 || !c.IntroPoints[0].AuthKey.Equal(ips[0].AuthKey) {
		t.Fatalf("kept %d, skipped %d (%v)", len(c.IntroPoints), c.Skipped, c.SkipErrors)
	}
	if !errors.Is(c.SkipErrors[0], ErrBadSignature) {
		t.Fatalf("skip reason %v, want ErrBadSignature", c.SkipErrors[0])
	}
}

func mustKey(t testing.TB) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// The enc-key-cert certifies the ed25519 form of the curve25519 enc-key
// (sign bit 0), as tor's service makes it.
func TestEncKeyCertCertifiesConvertedKey(t *testing.T) {
	now := time.Now()
	signing := signingKeyFromStd(mustKey(t))
	ip := fakeIntroPoint(t)
	text, err := innerPlaintext(&Content{IntroPoints: []IntroPoint{ip}}, signing, now)
	if err != nil {
		t.Fatal(err)
	}
	toks, err := tokenize(text[strings.Index(text, "introduction-point "):])
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseCert(find(toks, "enc-key-cert").obj)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := ed25519FromCurve25519(ip.EncKey, 0)
	if !bytes.Equal(c.CertifiedKey, want) {
		t.Fatalf("enc-key-cert certifies %x, want %x", c.CertifiedKey, want)
	}
	if err := c.Verify(CertTypeIntroEncKey, signing.Public(), now); err != nil {
		t.Fatal(err)
	}
	if c.Expires.Sub(now) < CertLifetime-time.Hour || c.Expires.Minute() != 0 {
		t.Fatalf("expires %v", c.Expires)
	}
}

// Twenty introduction points, tor's maximum, fit under tor's size limit;
// twenty-one are refused.
func TestBuildLimits(t *testing.T) {
	id := testKey(t)
	now := time.Now()
	text, _ := buildTest(t, id, testSchedule.Num(now), MaxIntroPoints, now)
	if len(text) >= MaxSize {
		t.Fatalf("20 introduction points: %d bytes", len(text))
	}
	t.Logf("descriptor with %d introduction points: %d bytes (limit %d)", MaxIntroPoints, len(text), MaxSize)
	var ips []IntroPoint
	for range MaxIntroPoints + 1 {
		ips = append(ips, fakeIntroPoint(t))
	}
	if _, err := Build(&Spec{Identity: id, Content: Content{IntroPoints: ips}}); err == nil {
		t.Fatal("Build accepted 21 introduction points")
	}
	legacy := fakeIntroPoint(t)
	legacy.Legacy = true
	if _, err := Build(&Spec{Identity: id, Content: Content{IntroPoints: []IntroPoint{legacy}}}); err == nil {
		t.Fatal("Build accepted a legacy introduction point")
	}
}

func TestPoWParamsRoundTrip(t *testing.T) {
	id := testKey(t)
	now := time.Now()
	tp := testSchedule.Num(now)
	seed := bytes.Repeat([]byte{7}, 32)
	exp := now.Add(time.Hour).Truncate(time.Second).UTC()
	text, err := Build(&Spec{Identity: id, Period: tp, Schedule: testSchedule, Now: now,
		Content: Content{PoW: &PoWParams{Seed: seed, SuggestedEffort: 250, Expires: exp}, IntroPoints: []IntroPoint{fakeIntroPoint(t)}}})
	if err != nil {
		t.Fatal(err)
	}
	d, err := Parse(text, now)
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.Decrypt(id.Public(), now, testSchedule, tp)
	if err != nil {
		t.Fatal(err)
	}
	if c.PoW == nil || c.PoW.Type != "v1" || !bytes.Equal(c.PoW.Seed, seed) || c.PoW.SuggestedEffort != 250 || !c.PoW.Expires.Equal(exp) {
		t.Fatalf("pow-params %+v", c.PoW)
	}
}

func TestSigningKeyNeverPrintsSecret(t *testing.T) {
	k := testKey(t)
	secret := base64.StdEncoding.EncodeToString(k.expanded())
	for _, s := range []string{k.String(), k.GoString()} {
		if strings.Contains(s, secret) || !strings.Contains(s, ".onion") {
			t.Fatalf("String = %q", s)
		}
	}
	if _, err := NewSigningKey(make([]byte, 64)); err == nil {
		t.Fatal("NewSigningKey accepted an unclamped scalar")
	}
}
