package integrity

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"
)

// The ed25519 test key of RFC 9421 Appendix B.1.4.
const rfcKeyPEM = `-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF
-----END PRIVATE KEY-----`

const rfcPubPEM = `-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=
-----END PUBLIC KEY-----`

func rfcKey(t *testing.T) (ed25519.PrivateKey, ed25519.PublicKey) {
	t.Helper()
	b, _ := pem.Decode([]byte(rfcKeyPEM))
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := pem.Decode([]byte(rfcPubPEM))
	pub, err := x509.ParsePKIXPublicKey(p.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(ed25519.PrivateKey), pub.(ed25519.PublicKey)
}

// rfcRequest is the test-request message of RFC 9421 Appendix B.2.
func rfcRequest(t *testing.T) *http.Request {
	t.Helper()
	r, err := http.NewRequest("POST", "http://example.com/foo?param=Value&Pet=dog", strings.NewReader(`{"hello": "world"}`))
	if err != nil {
		t.Fatal(err)
	}
	r.Host = "example.com"
	r.Header.Set("Date", "Tue, 20 Apr 2021 02:07:55 GMT")
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Content-Digest", "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:")
	r.Header.Set("Content-Length", "18")
	return r
}

// RFC 9421 Appendix B.2.6: signing a request using ed25519. Ed25519 is
// deterministic, so both the signature base and the signature must match
// the RFC byte for byte.
func TestRFC9421_B26(t *testing.T) {
	priv, pub := rfcKey(t)
	const input = `sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"`
	const wantSig = "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw=="
	const wantBase = `"date": Tue, 20 Apr 2021 02:07:55 GMT
"@method": POST
"@path": /foo
"@authority": example.com
"content-type": application/json
"content-length": 18
"@signature-params": ("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"`

	ms, err := parseDictionary(input)
	if err != nil || len(ms) != 1 || !ms[0].isList {
		t.Fatalf("parseDictionary(%q) = %+v, %v", input, ms, err)
	}
	if got := ms[0].key + "=" + serializeInnerList(ms[0].list, ms[0].params); got != input {
		t.Errorf("re-serialised Signature-Input = %q, want %q", got, input)
	}
	r := rfcRequest(t)
	base, err := signatureBase(ms[0].list, ms[0].params, message{req: r, header: r.Header})
	if err != nil {
		t.Fatal(err)
	}
	if base != wantBase {
		t.Fatalf("signature base:\n%s\nwant:\n%s", base, wantBase)
	}
	sig := ed25519.Sign(priv, []byte(base))
	if got := base64.StdEncoding.EncodeToString(sig); got != wantSig {
		t.Errorf("signature = %s, want %s", got, wantSig)
	}
	want, _ := base64.StdEncoding.DecodeString(wantSig)
	if !ed25519.Verify(pub, []byte(base), want) {
		t.Error("RFC signature does not verify")
	}
}

// RFC 9421 Appendix B.2 test-request carries the RFC 9530 sha-512 digest of
// its body; check our digest parser and the sha-256 form against it.
func TestContentDigest(t *testing.T) {
	body := []byte(`{"hello": "world"}`)
	h, want, err := parseContentDigest(rfcRequest(t).Header.Get("Content-Digest"))
	if err != nil {
		t.Fatal(err)
	}
	h.Write(body)
	if got := h.Sum(nil); string(got) != string(want) {
		t.Errorf("sha-512 digest of RFC body does not match the RFC's Content-Digest")
	}
	// RFC 9530 §2 example: sha-256 of {"hello": "world"}.
	if got, want := ContentDigest(body), "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"; got != want {
		t.Errorf("ContentDigest = %s, want %s", got, want)
	}
	for _, bad := range []string{"", "sha-256=:abc:", "md5=:AAAA:", "sha-256=abc", "sha-256=:" + strings.Repeat("A", 40) + ":"} {
		if _, _, err := parseContentDigest(bad); err == nil {
			t.Errorf("parseContentDigest(%q) = nil error", bad)
		}
	}
}

func TestKeyID(t *testing.T) {
	_, pub := rfcKey(t)
	other, _, _ := ed25519.GenerateKey(nil)
	id := KeyID(pub)
	if len(id) != 43 || strings.ContainsAny(id, "+/=") {
		t.Errorf("KeyID = %q, want 43 unpadded base64url characters", id)
	}
	if KeyID(pub) != id {
		t.Error("KeyID not deterministic")
	}
	if KeyID(other) == id {
		t.Error("two keys share a KeyID")
	}
}

func TestParseDictionaryErrors(t *testing.T) {
	for _, s := range []string{
		`a=`, `=("x")`, `a=("x"`, `a=("x" "y";)`, `a=(x)`, `a=1`, `a=:!!:`, `a=("x"),`, `A=("x")`,
		`a=("x");created=1.5`, `a=("\q")`, `a=("x")  b=("y")`, `a=("x");k=:AA==:`,
	} {
		if ms, err := parseDictionary(s); err == nil {
			t.Errorf("parseDictionary(%q) = %+v, want error", s, ms)
		}
	}
	ms, err := parseDictionary(`a=("@path";req "x"), b=:AAEC:;p="v"`)
	if err != nil || len(ms) != 2 || !ms[0].list[0].hasParam("req") || string(ms[1].bytes) != "\x00\x01\x02" {
		t.Fatalf("parseDictionary = %+v, %v", ms, err)
	}
}

func FuzzParseDictionary(f *testing.F) {
	for _, s := range []string{
		`sig1=("@status" "@path";req "content-digest");created=1;expires=2;keyid="k";alg="ed25519"`, // a Signer's field
		`sig1=:AAEC:, sig2=:AQID:`,                               // Signature with two labels
		`sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:`, // Content-Digest
		`a=("x";req;bs ""),b=()`,                                 // empty list and odd params
		`a=("\"\\")`,                                             // escapes
		`a=(`,                                                    // truncated
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := parseDictionary(s)
		if err != nil {
			return
		}
		for _, m := range ms {
			if !m.isList {
				continue
			}
			// Round trip: a parsed inner list serialises to a form that
			// parses back to the same thing.
			ser := m.key + "=" + serializeInnerList(m.list, m.params)
			again, err := parseDictionary(ser)
			if err != nil || len(again) != 1 {
				t.Fatalf("re-parse of %q: %v", ser, err)
			}
			if got := again[0].key + "=" + serializeInnerList(again[0].list, again[0].params); got != ser {
				t.Fatalf("round trip %q → %q", ser, got)
			}
		}
	})
}
