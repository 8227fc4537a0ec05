package hsdesc

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ToLower(s))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tor src/test/test_hs_common.c test_build_address.
func TestAddressVector(t *testing.T) {
	pub := unhex(t, "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
	const want = "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid.onion"
	if got := Address(pub); got != want {
		t.Fatalf("Address = %s, want %s", got, want)
	}
	back, err := ParseAddress("WWW." + strings.ToUpper(want))
	if err != nil || !bytes.Equal(back, pub) {
		t.Fatalf("ParseAddress = %x, %v", back, err)
	}
	bad := []byte(want)
	bad[3] ^= 1 // another base32 letter: checksum no longer matches
	if _, err := ParseAddress(string(bad)); err == nil {
		t.Fatal("ParseAddress accepted a corrupted address")
	}
}

// tor src/test/test_hs_common.c test_time_period and
// test_start_time_of_next_time_period.
func TestTimePeriodVectors(t *testing.T) {
	var real Period
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC1123, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tm := at("Wed, 13 Apr 2016 11:00:00 UTC")
	if n := real.Num(tm); n != 16903 {
		t.Fatalf("Num(11:00) = %d, want 16903", n)
	}
	tm = tm.Add(3599 * time.Second)
	if n := real.Num(tm); n != 16903 {
		t.Fatalf("Num(11:59:59) = %d, want 16903", n)
	}
	if s := real.Start(real.Num(tm) + 1); !s.Equal(at("Wed, 13 Apr 2016 12:00:00 UTC")) {
		t.Fatalf("next start = %v", s)
	}
	tm = tm.Add(time.Second)
	if n := real.Num(tm); n != 16904 {
		t.Fatalf("Num(12:00) = %d, want 16904", n)
	}
	if s := real.Start(real.Num(tm) + 1); !s.Equal(at("Wed, 14 Apr 2016 12:00:00 UTC")) {
		t.Fatalf("next start = %v", s)
	}
	// A TestingTorNetwork voting every 10 s: 4-minute periods starting at
	// 00:02:00.
	test := NetworkPeriod(10*time.Second, true, 0)
	if test.Length != 4*time.Minute || test.RotationOffset != 2*time.Minute {
		t.Fatalf("NetworkPeriod(10s, testing) = %+v", test)
	}
	for _, c := range []struct{ now, next string }{
		{"Wed, 13 Apr 2016 00:00:00 UTC", "2016-04-13 00:02:00"},
		{"Wed, 13 Apr 2016 00:02:00 UTC", "2016-04-13 00:06:00"},
	} {
		if s := test.Start(test.Num(at(c.now)) + 1).Format(time.DateTime); s != c.next {
			t.Errorf("testing network: next period after %s starts %s, want %s", c.now, s, c.next)
		}
	}
	if p := NetworkPeriod(time.Hour, false, 0); p != (Period{24 * time.Hour, 12 * time.Hour}) {
		t.Errorf("NetworkPeriod(1h) = %+v", p)
	}
}

// tor src/test/test_hs_common.c test_blinding_basics.
func TestBlindingVector(t *testing.T) {
	var real Period
	instant, _ := time.Parse(time.DateTime, "1973-05-20 01:50:33")
	if n := real.Num(instant); n != 1234 {
		t.Fatalf("Num = %d, want 1234", n)
	}
	pub := ed25519.PublicKey(unhex(t, "833990B085C1A688C1D4C8B1F6B56AFAF5A2ECA674449E1D704F83765CCB7BC6"))
	sec := unhex(t, "D8C7FF0E31295B66540D789AF3E3DF992038A9592EEA01D8B7CBA06D6E66D159"+
		"4D6167696320576F7264733A20737065697373636F62616C742062697669756D")
	param := blindingParam(pub, 1234, 1440)
	if want := unhex(t, "379E50DB31FEE6775ABD0AF6FB7C371E060308F4F847DB09FE4CFE13AF602287"); !bytes.Equal(param[:], want) {
		t.Fatalf("blinding param %x, want %x", param, want)
	}
	blinded, err := BlindPublicKey(pub, 1234, real)
	if err != nil {
		t.Fatal(err)
	}
	if want := unhex(t, "3A50BF210E8F9EE955AE0014F7A6917FB65EBF098A86305ABB508D1A7291B6D5"); !bytes.Equal(blinded, want) {
		t.Fatalf("blinded public key %x, want %x", blinded, want)
	}
	sub := Subcredential(pub, blinded)
	if want := unhex(t, "635D55907816E8D76398A675A50B1C2F3E36B42A5CA77BA3A0441285161AE07D"); !bytes.Equal(sub[:], want) {
		t.Fatalf("subcredential %x, want %x", sub, want)
	}
	k, err := NewSigningKey(sec)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Public().Equal(pub) {
		t.Fatalf("public key of the secret key %x, want %x", k.Public(), pub)
	}
	bk := k.Blind(1234, real)
	if !bk.Public().Equal(blinded) {
		t.Fatal("blinded key pair's public key differs from BlindPublicKey")
	}
	want := unhex(t, "A958DC83AC885F6814C67035DE817A2C604D5D2F715282079448F789B656350B"+
		"4540FE1F80AA3F7E91306B7BF7A8E367293352B14A29FDCC8C19F3558075524B")
	if got := bk.expanded(); !bytes.Equal(got, want) {
		t.Fatalf("blinded secret key\n got %x\nwant %x", got, want)
	}
	msg := []byte("a descriptor")
	if !ed25519.Verify(bk.Public(), msg, bk.Sign(msg)) {
		t.Fatal("signature by the blinded key does not verify")
	}
}

// tor src/test/ed25519_vectors.inc, as test_crypto_ed25519_testvectors uses
// them: expanded keys, public keys, signatures, blinding with a raw
// parameter and the curve25519 → ed25519 conversion.
func TestEd25519Vectors(t *testing.T) {
	type vec struct{ seed, expanded, pub, curve, param, bsec, bpub, sig string }
	vs := []vec{
		{"26c76712d89d906e6672dafa614c42e5cb1caac8c6568e4d2493087db51f0d36",
			"c0a4de23cc64392d85aa1da82b3defddbea946d13bb053bf8489fa9296281f495022f1f7ec0dcf52f07d4c7965c4eaed121d5d88d0a8ff546b06116a20e97755",
			"c2247870536a192d142d056abefca68d6193158e7c1a59c1654c954eccaff894",
			"17ba77846e04c7ee5ca17cade774ac1884408f9701f439d4df32cbd8736c6a1f",
			"54a513898b471d1d448a2f3c55c1de2c0ef718c447b04497eeb999ed32027823",
			"293c3acff4e902f6f63ddc5d5caa2a57e771db4f24de65d4c28df3232f47fa01171d43f24e3f53e70ec7ac280044ac77d4942dee5d6807118a59bdf3ee647e89",
			"1fc1fa4465bd9d4956fdbdc9d3acb3c7019bb8d5606b951c2e1dfe0b42eaeb41",
			"d23188eac3773a316d46006fa59c095060be8b1a23582a0dd99002a82a0662bd246d8449e172e04c5f46ac0d1404cebe4aabd8a75a1457aa06cae41f3334f104"},
		{"fba7a5366b5cb98c2667a18783f5cf8f4f8d1a2ce939ad22a6e685edde85128d",
			"18a8a69a06790dac778e882f7e868baacfa12521a5c058f5194f3a729184514a2a656fe7799c3e41f43d756da8d9cd47a061316cfe6147e23ea2f90d1ca45f30",
			"1519a3b15816a1aafab0b213892026ebf5c0dc232c58b21088d88cb90e9b940d",
			"022be2124bc1899a78ba2b4167d191af3b59cadf94f0382bc31ce183a117f161",
			"831e9b5325b5d31b7ae6197e9c7a7baf2ec361e08248bce055908971047a2347",
			"38b88f9f9440358da544504ee152fb475528f7c51c285bd1c68b14ade8e29a07b8ceff20dfcf53eb52b891fc078c934efbf0353af7242e7dc51bb32a093afa29",
			"1cbbd4a88ce8f165447f159d9f628ada18674158c4f7c5ead44ce8eb0fa6eb7e",
			"3a785ac1201c97ee5f6f0d99323960d5f264c7825e61aa7cc81262f15bef75eb4fa5723add9b9d45b12311b6d403eb3ac79ff8e4e631fc3cd51e4ad2185b200b"},
		{"c6bbcce615839756aed2cc78b1de13884dd3618f48367a17597a16c1cd7a290b",
			"b003077c1e52a62308eef7950b2d532e1d4a7eea50ad22d8ac11b892851f1c40ffb9c9ff8dcd0c6c233f665a2e176324d92416bfcfcd1f787424c0c667452d86",
			"95126f14d86494020665face03f2d42ee2b312a85bc729903eb17522954a1c4a",
			"861f33296cb57f8f01e4a5e8a7e5d5d7043a6247586ab36dea8a1a3c4403ee30",
			"0000000000000000000000000000000000000000000000000000000000000000",
			"e5cd03eb4cc456e11bc36724b558873df0045729b22d8b748360067a7770ac02053d9c00c81e1331c06ab50087be8cfc7dc11691b132614474f1aa9c2503cccd",
			"312404d06a0a9de489904b18d5233e83a50b225977fa8734f2c897a73c067952",
			"815213640a643d198bd056e02bba74e1c8d2d931643e84497adf3347eb485079c9afe0afce9284cdc084946b561abbb214f1304ca11228ff82702185cf28f60d"},
		{"c6bbcce615839756aed2cc78b1de13884dd3618f48367a17597a16c1cd7a290b",
			"b003077c1e52a62308eef7950b2d532e1d4a7eea50ad22d8ac11b892851f1c40ffb9c9ff8dcd0c6c233f665a2e176324d92416bfcfcd1f787424c0c667452d86",
			"95126f14d86494020665face03f2d42ee2b312a85bc729903eb17522954a1c4a",
			"861f33296cb57f8f01e4a5e8a7e5d5d7043a6247586ab36dea8a1a3c4403ee30",
			"1111111111111111111111111111111111111111111111111111111111111111",
			"2cf7ed8b163f5af960d2fc62e1883aa422a6090736b4f18a5456ddcaf78ede0c053d9c00c81e1331c06ab50087be8cfc7dc11691b132614474f1aa9c2503cccd",
			"952a908a4a9e0e5176a2549f8f328955aca6817a9fdc59e3acec5dec50838108",
			"815213640a643d198bd056e02bba74e1c8d2d931643e84497adf3347eb485079c9afe0afce9284cdc084946b561abbb214f1304ca11228ff82702185cf28f60d"},
	}
	for i, v := range vs {
		seedKey := signingKeyFromStd(ed25519.NewKeyFromSeed(unhex(t, v.seed)))
		if got := seedKey.expanded(); !bytes.Equal(got[32:], unhex(t, v.expanded)[32:]) {
			t.Errorf("%d: prefix from seed %x", i, got[32:])
		}
		k, err := NewSigningKey(unhex(t, v.expanded))
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		pub := unhex(t, v.pub)
		if !bytes.Equal(k.Public(), pub) || !bytes.Equal(seedKey.Public(), pub) {
			t.Errorf("%d: public key %x, want %s", i, k.Public(), v.pub)
		}
		if sig := k.Sign(pub); !bytes.Equal(sig, unhex(t, v.sig)) {
			t.Errorf("%d: self-signature %x, want %s", i, sig, v.sig)
		}
		var param [32]byte
		copy(param[:], unhex(t, v.param))
		bk := k.blindWithParam(param)
		if got := bk.expanded(); !bytes.Equal(got, unhex(t, v.bsec)) {
			t.Errorf("%d: blinded secret key %x, want %s", i, got, v.bsec)
		}
		bp, err := blindPublicWithParam(pub, param)
		if err != nil || !bytes.Equal(bp, unhex(t, v.bpub)) || !bytes.Equal(bk.Public(), unhex(t, v.bpub)) {
			t.Errorf("%d: blinded public key %x (%v), want %s", i, bp, err, v.bpub)
		}
		fromCurve, err := ed25519FromCurve25519(unhex(t, v.curve), pub[31]>>7)
		if err != nil || !bytes.Equal(fromCurve, pub) {
			t.Errorf("%d: ed25519 from curve25519 %x (%v), want %s", i, fromCurve, err, v.pub)
		}
	}
}

// tor src/test/test_hs_common.c test_hs_indexes and test_disaster_srv (via
// Onionbalance's copy of its vectors).
func TestIndexVectors(t *testing.T) {
	var real Period
	pub := bytes.Repeat([]byte{0x42}, 32)
	if got, want := ServiceIndex(pub, 1, 42, real), unhex(t, "37e5cbbd56a22823714f18f1623ece5983a0d64c78495a8cfab854245e5f9a8a"); !bytes.Equal(got, want) {
		t.Errorf("ServiceIndex %x, want %x", got, want)
	}
	srv := bytes.Repeat([]byte{0x43}, 32)
	if got, want := HSDirIndex(pub, srv, 42, real), unhex(t, "db475361014a09965e7e5e4d4a25b8f8d4b8f16cb1d8a7e95eed50249cc1a2d5"); !bytes.Equal(got, want) {
		t.Errorf("HSDirIndex %x, want %x", got, want)
	}
	for i, want := range []string{
		"F8A4948707653837FA44ABB5BBC75A12F6F101E7F8FAF699B9715F4965D3507D",
		"C17966DF8B4834638E1B7BF38944C4995B92E89749D1623E417A44938D08FD67",
		"A3BAB4327F9C2F8B30A126DAD3ABCCE12DD813169A5D924244B57987AEE413C2",
		"C79ABE7116FCF7810F7A5C76198B97339990C738B456EFDBC1399189927BADEC",
		"941D5FE4289FBF2F853766EAC4B948B51C81A4137A44516342ABC80518E0183D",
	} {
		if got := DisasterSRV(uint64(i+1), real); !bytes.Equal(got, unhex(t, want)) {
			t.Errorf("DisasterSRV(%d) = %X, want %s", i+1, got, want)
		}
	}
}

// Onionbalance test/v3/test_v3_hashring.py: 255 HSDirs whose fingerprint
// and ed25519 identity are byte i repeated, SRVs 41… and 42…, consensus
// valid-after 10101010101.
func TestRingVector(t *testing.T) {
	r := &Ring{
		ValidAfter:     time.Unix(10101010101, 0),
		VotingInterval: time.Hour,
		SRVCurrent:     bytes.Repeat([]byte{41}, 32),
		SRVPrevious:    bytes.Repeat([]byte{42}, 32),
	}
	for i := 1; i < 256; i++ {
		r.HSDirs = append(r.HSDirs, HSDir{
			Fingerprint: strings.ToUpper(hex.EncodeToString(bytes.Repeat([]byte{byte(i)}, 20))),
			Identity:    bytes.Repeat([]byte{byte(i)}, 32),
		})
	}
	first, second := r.ServicePeriods()
	check := func(name string, got []HSDir, want []string) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d HSDirs, want %d", name, len(got), len(want))
		}
		for i := range want {
			if got[i].Fingerprint != strings.Repeat(want[i], 20) {
				t.Errorf("%s[%d] = %s, want %s…", name, i, got[i].Fingerprint, want[i])
			}
		}
	}
	check("first", r.Store(ed25519.PublicKey(unhex(t, "063AEC5E1FD3025098F2DF71EF570B28D94B463FFCCB5EC6A9C061E38F551C6A")), first, false),
		[]string{"D1", "2F", "B0", "3A", "5A", "DF", "F7", "34"})
	check("second", r.Store(ed25519.PublicKey(unhex(t, "5DB624F2D74F103E6E8C6FBCCD074586EF5A5572F90673C00B77DEF94EC11499")), second, true),
		[]string{"5D", "9A", "D1", "7A", "C3", "C6", "E9", "86"})
}

// tor src/test/test_hs_descriptor.inc HS_DESC_BAD_SIG: tor refuses it
// ("Malformed signature line") at the time its test uses.
func TestTorBadSignatureVector(t *testing.T) {
	b, err := os.ReadFile("testdata/tor_bad_sig.txt")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Parse(string(b), time.Unix(1502661599, 0))
	if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Parse = %v, want a malformed or bad-signature error", err)
	}
	// Only the signature line is broken (a leading space): repaired, the
	// descriptor tor's test suite made verifies.
	fixed := strings.Replace(string(b), "\n signature ", "\nsignature ", 1)
	d, err := Parse(fixed, time.Unix(1502661599, 0))
	if err != nil {
		t.Fatalf("Parse(repaired) = %v", err)
	}
	if d.RevisionCounter != 42 || d.Lifetime != 3*time.Hour || len(d.BlindedKey) != 32 {
		t.Fatalf("Parse(repaired) = revision %d, lifetime %v", d.RevisionCounter, d.Lifetime)
	}
	// One changed byte in the signed part breaks the signature.
	tampered := strings.Replace(fixed, "revision-counter 42", "revision-counter 43", 1)
	if _, err := Parse(tampered, time.Unix(1502661599, 0)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Parse(tampered) = %v, want ErrBadSignature", err)
	}
	// Its signing-key certificate expired long ago.
	if _, err := Parse(fixed, time.Now()); !errors.Is(err, ErrExpired) {
		t.Fatalf("Parse(now) = %v, want ErrExpired", err)
	}
}

// The descriptor of the current time period is fetched from the HSDirs it
// is stored at, whichever half of the day the consensus falls in.
func TestRingFetchWithinStore(t *testing.T) {
	for _, va := range []int64{10101010101, 10101010101 + 12*3600, 1700000000, 1700000000 + 6*3600} {
		r := &Ring{ValidAfter: time.Unix(va, 0), VotingInterval: time.Hour, SRVCurrent: bytes.Repeat([]byte{1}, 32)}
		for i := 1; i < 40; i++ {
			r.HSDirs = append(r.HSDirs, HSDir{Fingerprint: strings.Repeat(hex.EncodeToString([]byte{byte(i)}), 20), Identity: bytes.Repeat([]byte{byte(i)}, 32)})
		}
		first, second := r.ServicePeriods()
		if second != first+1 || (first != r.TimePeriod() && second != r.TimePeriod()) {
			t.Fatalf("valid-after %d: periods %d, %d around %d", va, first, second, r.TimePeriod())
		}
		id := testKey(t).Public()
		tp := r.TimePeriod()
		isSecond := second == tp
		blinded, _ := BlindPublicKey(id, tp, r.Schedule)
		fetch, fetched, store := r.Fetch(blinded), r.FetchedFrom(blinded, tp, isSecond), r.Store(blinded, tp, isSecond)
		if len(fetch) != 6 || len(store) != 8 {
			t.Fatalf("valid-after %d: %d fetch, %d store HSDirs", va, len(fetch), len(store))
		}
		for i := range fetch {
			if fetch[i].Fingerprint != fetched[i].Fingerprint {
				t.Fatalf("valid-after %d: Fetch and FetchedFrom differ", va)
			}
		}
		inStore := map[string]bool{}
		for _, d := range store {
			inStore[d.Fingerprint] = true
		}
		for _, d := range fetch {
			if !inStore[d.Fingerprint] {
				t.Fatalf("valid-after %d: client fetches from %s, where the service does not store", va, d.Fingerprint)
			}
		}
	}
}

// On the real network the descriptors a service keeps change at 00:00 UTC
// (new shared random value: the next period's descriptor) and at 12:00
// UTC (new time period).
func TestPeriodsSince(t *testing.T) {
	for _, c := range []struct{ va, since string }{
		{"2016-04-13 11:00:00", "2016-04-13 00:00:00"},
		{"2016-04-13 12:00:00", "2016-04-13 12:00:00"},
		{"2016-04-13 23:00:00", "2016-04-13 12:00:00"},
		{"2016-04-14 00:00:00", "2016-04-14 00:00:00"},
	} {
		va, _ := time.Parse(time.DateTime, c.va)
		r := &Ring{ValidAfter: va, VotingInterval: time.Hour}
		if got := r.PeriodsSince().Format(time.DateTime); got != c.since {
			t.Errorf("valid-after %s: PeriodsSince %s, want %s", c.va, got, c.since)
		}
	}
}
