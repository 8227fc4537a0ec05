package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/purge"
	"github.com/onioncdn/onioncdn/upstream/integrity"
)

// TestFollowsPurges: with -verify-key the edge follows its upstream's
// purge log; facing users it answers 404 at the log's path (and forwards
// nothing), as a midtier (-cache-status) it serves the entries it applied.
func TestFollowsPurges(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	plog := &purge.Log{Key: priv}
	var forwarded atomic.Int32
	mux := http.NewServeMux()
	mux.Handle(purge.DefaultPath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("wait") == "" {
			forwarded.Add(1) // not a follower's poll
		}
		plog.ServeHTTP(w, r)
	}))
	upstreamSrv := httptest.NewServer(mux)
	t.Cleanup(upstreamSrv.Close)
	t.Cleanup(func() { plog.Close() })
	if _, err := plog.Append(t.Context(), cache.Purge{Kind: cache.PurgePrefix, Value: "/v/", Soft: true}); err != nil {
		t.Fatal(err)
	}
	for _, midtier := range []bool{false, true} {
		out := &lines{}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		args := []string{"-listen", "127.0.0.1:0", "-upstream", upstreamSrv.URL, "-verify-key", integrity.EncodePublicKey(pub), "-log-level", "warn"}
		if midtier {
			args = append(args, "-cache-status")
		}
		go func() { done <- run(ctx, args, out) }()
		addr := out.wait(t, servingRE, 30*time.Second)
		var code, n int
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
			code, n = resp.StatusCode, len(f.Entries)
			if !midtier || n == 1 || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if midtier && (code != 200 || n != 1) || !midtier && code != http.StatusNotFound {
			t.Fatalf("midtier=%v: %d, %d entries", midtier, code, n)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if n := forwarded.Load(); n != 0 {
		t.Fatalf("the edge forwarded %d requests for the log's path", n)
	}
}
