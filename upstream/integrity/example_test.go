package integrity_test

import (
	"crypto/ed25519"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/onioncdn/onioncdn/upstream/integrity"
)

// The origin signs its responses; a tier verifies them on the way in.
func Example() {
	pub, priv, _ := ed25519.GenerateKey(nil)

	content := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		io.WriteString(w, "segment bytes")
	})
	origin := httptest.NewServer((&integrity.Signer{Key: priv}).Handler(content))
	defer origin.Close()

	// In a tier, this Transport sits below the cache, around the upstream
	// transport to the next tier up.
	client := &http.Client{Transport: &integrity.Transport{
		Keys: map[string]ed25519.PublicKey{integrity.KeyID(pub): pub},
	}}
	resp, err := client.Get(origin.URL + "/seg1.ts")
	if err != nil {
		fmt.Println(err)
		return
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body), err)
	// Output: 200 segment bytes <nil>
}

func ExampleSRI() {
	fmt.Println(integrity.SRI([]byte("alert('Hello, world.');")))
	// Output: sha384-H8BRh8j48O9oYatfu5AZzq6A9RINhZO5H16dQZngK7T62em8MUt1FLm52t+eX6xO
}

// The one lifetime rule: a tier uses a signed response only until its
// signature expires (less the margin), then revalidates it. A page is
// signed for an hour (Validity), an HLS segment for a day (LongValidity,
// the HLS policy's TTL), so tiers keeping segments a day never revalidate
// them early, and a page kept longer is revalidated hourly.
func ExampleBoundPolicy() {
	_, priv, _ := ed25519.GenerateKey(nil)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	signer := &integrity.Signer{Key: priv, Now: func() time.Time { return now }}
	bound := &integrity.BoundPolicy{} // in a tier: &integrity.BoundPolicy{Policy: &hls.Policy{}}

	for _, path := range []string{"/index.html", "/video/seg42.ts"} {
		rec := httptest.NewRecorder()
		signer.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "public, max-age=300")
			io.WriteString(w, "content")
		})).ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		fmt.Printf("%s: served without revalidation for %v\n", path, bound.NotAfter(rec.Header()).Sub(now))
	}
	// Output:
	// /index.html: served without revalidation for 59m0s
	// /video/seg42.ts: served without revalidation for 23h59m0s
}
