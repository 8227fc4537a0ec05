package route

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzDecodeReport checks that the report decoder never panics, that what
// it accepts is within the documented limits and survives an
// encode/decode round trip, and that the report endpoint answers any body
// with a 4xx (the fuzzer cannot produce a valid signature) without
// changing routing.
func FuzzDecodeReport(f *testing.F) {
	seeds := []string{
		// A valid report.
		`{"v":1,"group":"a","edge":"a1","ts":1764150000000,"nonce":"AAAAAAAAAAAAAAAAAAAAAA","healthy":true,"load":{"active":3,"rps":1.5,"bps":1000,"error_ratio":0,"hit_ratio":0.9}}`,
		// Missing load and healthy: allowed (zero load, unhealthy).
		`{"v":1,"group":"a","edge":"a1","ts":1,"nonce":"AAAAAAAAAAAAAAAAAAAAAA"}`,
		// Wrong version.
		`{"v":2,"group":"a","edge":"a1","ts":1,"nonce":"AAAAAAAAAAAAAAAAAAAAAA"}`,
		// Unknown field.
		`{"v":1,"group":"a","edge":"a1","ts":1,"nonce":"AAAAAAAAAAAAAAAAAAAAAA","x":1}`,
		// Trailing data.
		`{"v":1,"group":"a","edge":"a1","ts":1,"nonce":"AAAAAAAAAAAAAAAAAAAAAA"} {}`,
		// Nonce with padding / wrong alphabet / wrong length.
		`{"v":1,"group":"a","edge":"a1","ts":1,"nonce":"AAAAAAAAAAAAAAAAAAAAAA=="}`,
		`{"v":1,"group":"a","edge":"a1","ts":1,"nonce":"++++++++++++++++++++++"}`,
		`{"v":1,"group":"a","edge":"a1","ts":1,"nonce":"AAAAAAAAAAAAAAAAAAAAAB"}`,
		// Ids with spaces, too long, empty.
		`{"v":1,"group":"a b","edge":"a1","ts":1,"nonce":"AAAAAAAAAAAAAAAAAAAAAA"}`,
		`{"v":1,"group":"` + string(bytes.Repeat([]byte("g"), 65)) + `","edge":"a1","ts":1,"nonce":"AAAAAAAAAAAAAAAAAAAAAA"}`,
		`{"v":1,"group":"","edge":"a1","ts":1,"nonce":"AAAAAAAAAAAAAAAAAAAAAA"}`,
		// Out-of-range numbers.
		`{"v":1,"group":"a","edge":"a1","ts":1,"nonce":"AAAAAAAAAAAAAAAAAAAAAA","load":{"active":-1}}`,
		`{"v":1,"group":"a","edge":"a1","ts":1,"nonce":"AAAAAAAAAAAAAAAAAAAAAA","load":{"bps":1e400}}`,
		`{"v":1,"group":"a","edge":"a1","ts":1,"nonce":"AAAAAAAAAAAAAAAAAAAAAA","load":{"hit_ratio":1.5}}`,
		`{"v":1,"group":"a","edge":"a1","ts":99999999999999999999,"nonce":"AAAAAAAAAAAAAAAAAAAAAA"}`,
		// Duplicate keys, case-folded keys, deep nesting, not an object.
		`{"v":1,"v":1,"GROUP":"a","edge":"a1","ts":1,"nonce":"AAAAAAAAAAAAAAAAAAAAAA"}`,
		`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`,
		`null`,
		``,
		"\xff\xfe{",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	// One router for all inputs: state must not change across them.
	_, priv, _ := ed25519.GenerateKey(nil)
	rt := &Router{
		Groups: []Group{{ID: "a", Onion: OnionAddress(priv.Public().(ed25519.PublicKey)),
			Edges: []Edge{{ID: "a1", PublicKey: priv.Public().(ed25519.PublicKey)}}}},
	}
	sig := signReport(priv, []byte("something else"))
	f.Fuzz(func(t *testing.T, body []byte) {
		rep, nonce, err := decodeReport(body)
		if err == nil {
			if !validID(rep.Group) || !validID(rep.Edge) || rep.V != reportVersion || rep.TS <= 0 || rep.Load.validate() != nil {
				t.Fatalf("accepted out-of-range report %+v", rep)
			}
			b, err := json.Marshal(rep)
			if err != nil {
				t.Fatal(err)
			}
			rep2, nonce2, err := decodeReport(b)
			if err != nil || rep2 != rep || nonce2 != nonce {
				t.Fatalf("round trip: %+v %v, want %+v", rep2, err, rep)
			}
		}
		req := httptest.NewRequest(http.MethodPost, DefaultReportPath, bytes.NewReader(body))
		req.Header.Set(SignatureHeader, sig)
		w := httptest.NewRecorder()
		rt.ServeHTTP(w, req)
		if w.Code < 400 || w.Code > 499 {
			t.Fatalf("status %d for an unverifiable report", w.Code)
		}
		st, _ := rt.Stats()
		if st.Reports.Accepted != 0 || st.Groups[0].Healthy {
			t.Fatal("a fuzzed report changed routing")
		}
	})
}
