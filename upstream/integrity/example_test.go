package integrity_test

import (
	"crypto/ed25519"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

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
