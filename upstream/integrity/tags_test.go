package integrity_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/onioncdn/onioncdn/upstream/integrity"
)

// tagRelay alters the tag fields of the responses it passes on.
type tagRelay struct{ set func(h http.Header) }

func (r tagRelay) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := plainRT.RoundTrip(req)
	if err == nil && r.set != nil {
		r.set(resp.Header)
	}
	return resp, err
}

// TestTagFieldsSigned: the tags a cache purges by (Surrogate-Key,
// Cache-Tag) are covered by the signature, so a tier in between can
// neither change nor add them (which would let it keep an object out of
// the origin's purges by tag).
func TestTagFieldsSigned(t *testing.T) {
	pub, priv := newKey(t)
	origin := httptest.NewServer((&integrity.Signer{Key: priv}).Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		if r.URL.Path == "/tagged" {
			w.Header().Set("Surrogate-Key", "news front")
			w.Header().Set("Cache-Tag", "a,b")
		}
		io.WriteString(w, "body")
	})))
	defer origin.Close()
	for _, tc := range []struct {
		name, path string
		set        func(h http.Header)
		ok         bool
	}{
		{"genuine", "/tagged", nil, true},
		{"genuine_untagged", "/plain", nil, true},
		{"surrogate_key_changed", "/tagged", func(h http.Header) { h.Set("Surrogate-Key", "other") }, false},
		{"surrogate_key_removed", "/tagged", func(h http.Header) { h.Del("Surrogate-Key") }, false},
		{"cache_tag_added", "/plain", func(h http.Header) { h.Set("Cache-Tag", "x") }, false},
		{"surrogate_key_added", "/plain", func(h http.Header) { h.Set("Surrogate-Key", "x") }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := &integrity.Transport{Base: tagRelay{tc.set}, Keys: integrity.Keys(pub)}
			req := httptest.NewRequest(http.MethodGet, origin.URL+tc.path, nil).WithContext(t.Context())
			req.RequestURI = ""
			resp, err := v.RoundTrip(req)
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if (err == nil) != tc.ok {
				t.Fatalf("verified=%v (%v), want %v", err == nil, err, tc.ok)
			}
		})
	}
}
