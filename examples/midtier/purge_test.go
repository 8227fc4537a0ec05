package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/purge"
	"github.com/onioncdn/onioncdn/upstream/integrity"
)

// TestFollowsPurges: with -verify-key, the midtier follows the origin's
// purge log and serves the entries it applied to the edges; with
// -purge=false it does neither.
func TestFollowsPurges(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	plog := &purge.Log{Key: priv}
	mux := http.NewServeMux()
	mux.Handle(purge.DefaultPath, plog)
	mux.Handle("/", (&integrity.Signer{Key: priv}).Handler(http.NotFoundHandler()))
	origin := httptest.NewServer(mux)
	t.Cleanup(origin.Close)
	t.Cleanup(func() { plog.Close() })
	if _, err := plog.Append(t.Context(), cache.Purge{Kind: cache.PurgeTag, Value: "news"}); err != nil {
		t.Fatal(err)
	}
	for _, follow := range []bool{true, false} {
		out := &lines{}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		args := []string{"-listen", "127.0.0.1:0", "-upstream", origin.URL, "-verify-key", integrity.EncodePublicKey(pub),
			"-cache-dir", t.TempDir(), "-log-level", "warn"}
		if !follow {
			args = append(args, "-purge=false")
		}
		go func() { done <- run(ctx, args, out) }()
		addr := out.wait(t, regexp.MustCompile(`serving (http://\S+)`))
		var n, code int
		var cs string
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.Get(addr + purge.DefaultPath + "?after=0")
			if err != nil {
				t.Fatal(err)
			}
			var f struct{ Entries []string }
			json.NewDecoder(resp.Body).Decode(&f)
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			n, cs, code = len(f.Entries), resp.Header.Get("Cache-Status"), resp.StatusCode
			if n == 1 || !follow || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		// Following, the midtier serves the entries it applied itself.
		// Otherwise the path goes upstream like any other, where the
		// origin's log, which is not a signed response, fails
		// verification: it never passes a verifying tier.
		if follow && (n != 1 || cs != "" || code != 200) || !follow && code != http.StatusBadGateway {
			t.Fatalf("follow=%v: %d, %d entries, Cache-Status %q", follow, code, n, cs)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
