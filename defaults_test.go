package onioncdn_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/upstream"
)

// The library's zero values are the anonymous choice: a user who builds a
// tier from a default cache.Cache and upstream.Transport (as the package
// docs show) never passes on headers that name the origin's software, and
// a client cannot multiply stored objects by varying Host. (Issue 12.)

func newDefaultTier(t *testing.T, origin http.Handler) (*httptest.Server, *cache.Cache, *cache.MemoryStore) {
	t.Helper()
	o := httptest.NewServer(origin)
	t.Cleanup(o.Close)
	tr := &upstream.Transport{Upstreams: []string{o.URL}}
	t.Cleanup(func() { tr.Close() })
	store := &cache.MemoryStore{}
	c := &cache.Cache{Transport: tr, Store: store}
	tier := httptest.NewServer(c)
	t.Cleanup(tier.Close)
	return tier, c, store
}

func TestDefaultsStripServerHeaders(t *testing.T) {
	tier, c, _ := newDefaultTier(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Server", "nginx/1.18.0 (Ubuntu)")
		h.Set("X-Powered-By", "PHP/8.1.2")
		h.Set("X-AspNet-Version", "4.0.30319")
		h.Set("Via", "1.1 origin.internal")
		if r.URL.Path == "/cached" {
			h.Set("Cache-Control", "max-age=60")
		} else {
			h.Set("Cache-Control", "no-store")
		}
		io.WriteString(w, "body")
	}))
	for _, req := range []struct{ method, path string }{
		{"GET", "/cached"}, // miss
		{"GET", "/cached"}, // hit
		{"GET", "/private"},
		{"POST", "/form"}, // through the cache's proxy path
	} {
		r, _ := http.NewRequest(req.method, tier.URL+req.path, nil)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		c.Shutdown(t.Context())
		for _, k := range []string{"X-Powered-By", "X-Aspnet-Version", "Via"} {
			if v, ok := resp.Header[k]; ok {
				t.Errorf("%s %s: %s: %q reached the client", req.method, req.path, k, v)
			}
		}
		// httptest's server adds no Server header of its own: any Server
		// header would be the origin's.
		if v, ok := resp.Header["Server"]; ok {
			t.Errorf("%s %s: Server: %q reached the client", req.method, req.path, v)
		}
	}
}

func TestDefaultsHostDoesNotMultiplyStorage(t *testing.T) {
	var originReqs atomic.Int64
	tier, c, store := newDefaultTier(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		originReqs.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "one object")
	}))
	for _, host := range []string{"site.onion", "SITE.onion", "other.example", "127.0.0.1", "x.onion:8080"} {
		r, _ := http.NewRequest("GET", tier.URL+"/file.ts", nil)
		r.Host = host
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "one object" {
			t.Fatalf("Host %s: %q", host, b)
		}
		c.Shutdown(t.Context())
	}
	if n := store.Stats().Objects; n != 1 {
		t.Errorf("store holds %d objects for one file requested under 5 Host values, want 1", n)
	}
	if n := originReqs.Load(); n != 1 {
		t.Errorf("origin saw %d requests, want 1", n)
	}
}
