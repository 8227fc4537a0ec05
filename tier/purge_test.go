package tier_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/cache/diskstore"
	"github.com/onioncdn/onioncdn/purge"
	"github.com/onioncdn/onioncdn/tier"
	"github.com/onioncdn/onioncdn/upstream"
	"github.com/onioncdn/onioncdn/upstream/integrity"
)

// TestPurgeThroughTiers: origin (signed responses, purge log) ← midtier
// (disk store, verifying, following the origin's log, serving it) ← edge
// (verifying, following the midtier's log). Purges submitted at the origin
// reach both tiers; hard and soft purges by tag and prefix take effect at
// the edge; the edge neither serves the log nor forwards its path; the
// tags never reach the edge's clients.
func TestPurgeThroughTiers(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	keys := integrity.Keys(pub)
	var version atomic.Int64
	version.Store(1)
	site := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := version.Load()
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("ETag", fmt.Sprintf(`"%d"`, v))
		w.Header().Set("Surrogate-Key", "all "+strings.Split(r.URL.Path, "/")[1])
		if r.Header.Get("If-None-Match") == fmt.Sprintf(`"%d"`, v) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprintf(w, "v%d %s", v, r.URL.Path)
	})
	plog := &purge.Log{Key: priv}
	mux := http.NewServeMux()
	mux.Handle(purge.DefaultPath, plog)
	mux.Handle("/", (&integrity.Signer{Key: priv}).Handler(site))
	origin := httptest.NewServer(mux)
	t.Cleanup(origin.Close)
	t.Cleanup(func() { plog.Close() })

	// Midtier.
	midTr := &upstream.Transport{Upstreams: []string{origin.URL}, MinIdle: 1}
	store, err := diskstore.Open(t.TempDir(), diskstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	midCache := &cache.Cache{Transport: &integrity.Transport{Base: midTr, Keys: keys}, Store: store, Name: "mid", CacheStatus: true, ForwardTags: true}
	midFollow := &purge.Follower{Transport: midTr, Keys: keys, Wait: 5 * time.Second}
	mid := &tier.Tier{Name: "mid", Cache: midCache, Transport: midTr, Store: store, Purge: midFollow, ServePurgeLog: true}
	midLn, midURL := listen(t)
	go mid.Serve(midLn)

	// Edge.
	edgeTr := &upstream.Transport{Upstreams: []string{midURL}, MinIdle: 1}
	edgeFollow := &purge.Follower{Transport: edgeTr, Keys: keys, Wait: 5 * time.Second}
	edgeCache := &cache.Cache{Transport: edgeFollow.Guard(&integrity.Transport{Base: edgeTr, Keys: keys}), Name: "edge", CacheStatus: true}
	edge := &tier.Tier{Name: "edge", Cache: edgeCache, Transport: edgeTr, Purge: edgeFollow}
	edgeLn, edgeURL := listen(t)
	go edge.Serve(edgeLn)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := edge.Shutdown(ctx); err != nil {
			t.Errorf("edge shutdown: %v", err)
		}
		if err := mid.Shutdown(ctx); err != nil {
			t.Errorf("midtier shutdown: %v", err)
		}
	})

	get := func(path string) (string, string, http.Header) {
		t.Helper()
		resp, err := http.Get(edgeURL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		edgeCache.Shutdown(t.Context()) // fills stored
		midCache.Shutdown(t.Context())
		return string(b), strings.Join(resp.Header.Values("Cache-Status"), ", "), resp.Header
	}
	paths := []string{"/news/1", "/news/2", "/video/a", "/other/x"}
	for _, p := range paths {
		get(p)
		if body, cs, h := get(p); body != "v1 "+p || !strings.Contains(cs, "edge; hit") || h.Get("Surrogate-Key") != "" || h.Get(purge.PositionField) != "" {
			t.Fatalf("%s: %q %q, Surrogate-Key %q, position %q", p, body, cs, h.Get("Surrogate-Key"), h.Get(purge.PositionField))
		}
	}
	// The midtier tells the tiers below where it is in the log (the
	// edge's Guard reads the field and removes it).
	if resp, err := http.Get(midURL + "/news/1"); err != nil || resp.Header.Get(purge.PositionField) == "" {
		t.Fatalf("midtier response without %s: %v", purge.PositionField, err)
	} else {
		resp.Body.Close()
	}
	version.Store(2)
	submit := func(p cache.Purge) {
		t.Helper()
		e, err := purge.Submit(t.Context(), nil, origin.URL+purge.DefaultPath, priv, p)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, s := edgeFollow.Position(); s == e.Seq {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("entry %d did not reach the edge: %+v", e.Seq, edgeFollow.Stats())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	submit(cache.Purge{Kind: cache.PurgeTag, Value: "news"})
	submit(cache.Purge{Kind: cache.PurgePrefix, Value: "/video/", Soft: true})
	for p, want := range map[string]string{"/news/1": "v2", "/news/2": "v2", "/video/a": "v2", "/other/x": "v1"} {
		if body, cs, _ := get(p); !strings.HasPrefix(body, want) {
			t.Errorf("%s after the purges: %q (%s), want %s", p, body, cs, want)
		}
	}
	// The soft purge revalidated at both tiers rather than refetching.
	if _, cs, _ := get("/video/a"); !strings.Contains(cs, "edge; hit") {
		t.Errorf("/video/a after its refresh: %s", cs)
	}
	if st := midFollow.Stats(); st.Applied != 2 || st.Objects < 2 {
		t.Errorf("midtier follower %+v", st)
	}

	// The log: served by the midtier, not by the edge (nor forwarded).
	for _, tc := range []struct {
		url  string
		code int
	}{{midURL + purge.DefaultPath, 200}, {edgeURL + purge.DefaultPath, 404}} {
		resp, err := http.Get(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("GET %s: %d, want %d", tc.url, resp.StatusCode, tc.code)
		}
	}
}
