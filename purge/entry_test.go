package purge

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/upstream/integrity"
)

func testKey(t testing.TB, seed byte) (ed25519.PrivateKey, map[string]ed25519.PublicKey) {
	t.Helper()
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	k := ed25519.NewKeyFromSeed(s)
	return k, integrity.Keys(k.Public().(ed25519.PublicKey))
}

func wantReason(t *testing.T, err error, r Reason) {
	t.Helper()
	var re *RejectError
	if !errors.As(err, &re) || re.Reason != r {
		t.Fatalf("error %v, want a %s refusal", err, r)
	}
	if !strings.HasPrefix(err.Error(), "purge: ") {
		t.Fatalf("error %q without the package prefix", err)
	}
}

func TestEntryRoundTrip(t *testing.T) {
	key, keys := testKey(t, 1)
	e := Entry{Log: 42, Seq: 7, Time: time.UnixMilli(1_700_000_000_123), Purge: cache.Purge{Kind: cache.PurgePrefix, Value: "/video/", Soft: true}}
	raw, err := SignEntry(key, e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseEntry(raw, keys)
	if err != nil {
		t.Fatal(err)
	}
	e.KeyID = integrity.KeyID(key.Public().(ed25519.PublicKey))
	if got != e {
		t.Fatalf("got %+v, want %+v", got, e)
	}
}

// rawEntry signs an arbitrary payload as an entry.
func rawEntry(key ed25519.PrivateKey, payload string) string {
	return sign(key, entryDomain, []byte(payload))
}

func TestEntryRefused(t *testing.T) {
	key, keys := testKey(t, 1)
	other, _ := testKey(t, 2)
	kid := integrity.KeyID(key.Public().(ed25519.PublicKey))
	good, _ := SignEntry(key, Entry{Log: 1, Seq: 1, Time: time.Now(), Purge: cache.Purge{Kind: cache.PurgeURL, Value: "/a"}})
	p, sg, _ := strings.Cut(good, ".")
	payload, _ := b64.DecodeString(p)
	altered := b64.EncodeToString([]byte(strings.Replace(string(payload), `"/a"`, `"/b"`, 1))) + "." + sg
	forgedByOther, _ := SignEntry(other, Entry{Log: 1, Seq: 1, Time: time.Now(), Purge: cache.Purge{Kind: cache.PurgeAll}, KeyID: kid})
	req, _ := signRequest(key, cache.Purge{Kind: cache.PurgeAll}, time.Now(), "0123456789abcdefghij")
	for _, tc := range []struct {
		name, raw string
		reason    Reason
	}{
		{"altered_value", altered, ReasonBadSignature},
		{"signed_by_another_key_claiming_the_origins_id", forgedByOther, ReasonBadSignature},
		{"unknown_key_id", mustSign(t, other, Entry{Log: 1, Seq: 1, Purge: cache.Purge{Kind: cache.PurgeAll}}), ReasonUnknownKey},
		{"a_request_is_not_an_entry", req, ReasonMalformed},
		{"no_signature", p, ReasonMalformed},
		{"bad_base64", "!!." + sg, ReasonMalformed},
		{"short_signature", p + ".AAAA", ReasonMalformed},
		{"too_long", strings.Repeat("a", maxSigned+1), ReasonMalformed},
		{"unknown_field", rawEntry(key, `{"log":1,"seq":1,"time":0,"kind":"all","kid":"`+kid+`","extra":1}`), ReasonMalformed},
		{"regex_kind", rawEntry(key, `{"log":1,"seq":1,"time":0,"kind":"regex","value":".*","kid":"`+kid+`"}`), ReasonInvalid},
		{"pattern_prefix", rawEntry(key, `{"log":1,"seq":1,"time":0,"kind":"prefix","value":"/v/*","kid":"`+kid+`"}`), ReasonInvalid},
		{"no_sequence", rawEntry(key, `{"log":1,"seq":0,"time":0,"kind":"all","kid":"`+kid+`"}`), ReasonInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseEntry(tc.raw, keys)
			wantReason(t, err, tc.reason)
		})
	}
}

func mustSign(t *testing.T, key ed25519.PrivateKey, e Entry) string {
	t.Helper()
	raw, err := SignEntry(key, e)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestRequestRefused: a request is signed under its own domain; an entry
// presented as a request is refused.
func TestRequestRefused(t *testing.T) {
	key, keys := testKey(t, 1)
	entry := mustSign(t, key, Entry{Log: 1, Seq: 1, Purge: cache.Purge{Kind: cache.PurgeAll}})
	_, err := parseRequest(entry, keys)
	wantReason(t, err, ReasonMalformed)
	short, _ := signRequest(key, cache.Purge{Kind: cache.PurgeAll}, time.Now(), "short")
	_, err = parseRequest(short, keys)
	wantReason(t, err, ReasonInvalid)
	ok, _ := signRequest(key, cache.Purge{Kind: cache.PurgeTag, Value: "t"}, time.Now(), "0123456789abcdef")
	if r, err := parseRequest(ok, keys); err != nil || r.purge.Value != "t" {
		t.Fatalf("valid request: %+v, %v", r, err)
	}
}

// FuzzParseEntry: entries come from other tiers. ParseEntry must never
// panic; an entry it accepts is well-formed and normalized, and signing it
// again gives an entry that parses to the same value.
func FuzzParseEntry(f *testing.F) {
	key, keys := testKey(f, 1)
	kid := integrity.KeyID(key.Public().(ed25519.PublicKey))
	for _, e := range []Entry{
		{Log: 1, Seq: 1, Time: time.UnixMilli(1), Purge: cache.Purge{Kind: cache.PurgeURL, Value: "/a?b=c"}},
		{Log: 9, Seq: 99, Time: time.UnixMilli(5), Purge: cache.Purge{Kind: cache.PurgeTag, Value: "news", Soft: true}},
		{Log: 3, Seq: 2, Purge: cache.Purge{Kind: cache.PurgeAll}},
	} {
		f.Add(mustSignF(key, e))
	}
	f.Add(rawEntry(key, `{"log":1,"seq":1,"time":0,"kind":"prefix","value":"/my video/","kid":"`+kid+`"}`)) // normalized on parse
	f.Add(rawEntry(key, `{"log":1,"seq":1,"time":0,"kind":"url","value":"","kid":"`+kid+`"}`))
	f.Add(rawEntry(key, `[]`))
	f.Add("a.b")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseEntry(s, keys)
		if err != nil {
			if reasonOf(err) == "" {
				t.Fatalf("error %v is not a RejectError", err)
			}
			return
		}
		if e.Log == 0 || e.Seq == 0 {
			t.Fatalf("accepted %+v", e)
		}
		if p, err := e.Purge.Normalize(); err != nil || p != e.Purge {
			t.Fatalf("accepted a purge that is not normalized: %+v (%v)", e.Purge, err)
		}
		again, err := ParseEntry(mustSignF(key, e), keys)
		if err != nil || again.Purge != e.Purge || again.Seq != e.Seq || again.Log != e.Log {
			t.Fatalf("re-signed entry parses to %+v, %v", again, err)
		}
	})
}

func mustSignF(key ed25519.PrivateKey, e Entry) string {
	raw, err := SignEntry(key, e)
	if err != nil {
		panic(err)
	}
	return raw
}
