package integrity_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/onion"
	"github.com/onioncdn/onioncdn/oniontest"
	"github.com/onioncdn/onioncdn/upstream"
	"github.com/onioncdn/onioncdn/upstream/integrity"
)

var testNet oniontest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	testNet.Close()
	os.Exit(code)
}

// TestTorTamperingMidtier runs the chain of issue #17 over the private Tor
// network: origin → a malicious midtier published as an onion service →
// a verifying edge reaching it through Tor → client. The midtier tampers
// by path; the client never receives a byte that is not the origin's and
// the edge stores only the genuine object.
func TestTorTamperingMidtier(t *testing.T) {
	n := testNet.Get(t)
	pub, priv := newKey(t)
	body := largeBody()[:256<<10]
	site := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Cache-Control", "public, max-age=600")
		w.Write(body)
	})
	origin := httptest.NewServer((&integrity.Signer{Key: priv, TempDir: t.TempDir()}).Handler(site))
	t.Cleanup(origin.Close)
	ou, _ := url.Parse(origin.URL)

	// The malicious midtier: a reverse proxy that tampers by path.
	evil := &tamperTransport{base: plainTransport(t)}
	evil.set(func(resp *http.Response) *http.Response {
		switch strings.TrimPrefix(resp.Request.URL.Path, "/") {
		case "flip10":
			mapBody(resp, flipAt(func(int) int { return 10 }), sameLength)
		case "fliplast":
			mapBody(resp, flipAt(func(n int) int { return n - 1 }), sameLength)
		case "empty":
			mapBody(resp, func([]byte) []byte { return nil }, sameLength)
		}
		return resp
	})
	srv := &onion.Server{ExtraTorrc: n.TorrcLines(), DataDir: t.TempDir()}
	t.Cleanup(func() { srv.Close() })
	if err := srv.Start(t.Context()); err != nil {
		t.Fatalf("onion server: %v", err)
	}
	ln, err := srv.Listen(t.Context(), onion.ListenConfig{})
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	mid := &http.Server{Handler: &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(ou) },
		Transport: evil,
	}}
	go mid.Serve(ln)
	t.Cleanup(func() { mid.Close(); ln.Close() })

	// The edge: cache → verifying Transport → upstream.Transport over Tor.
	logs := &logBuf{}
	d := &onion.Dialer{SocksAddr: n.SocksAddr()}
	up := &upstream.Transport{
		Upstreams:    []string{"http://" + ln.Onion()},
		DialIsolated: d.DialIsolated,
		DialTimeout:  45 * time.Second,
		Logger:       slog.New(slog.DiscardHandler),
	}
	t.Cleanup(func() { up.Close() })
	verify := &integrity.Transport{Base: up, Keys: map[string]ed25519.PublicKey{integrity.KeyID(pub): pub}, Logger: logs.logger()}
	store := &cache.MemoryStore{}
	c := &cache.Cache{Transport: verify, Store: store, Policy: &integrity.BoundPolicy{}, FillTimeout: 2 * time.Minute}
	edge := httptest.NewServer(c)
	t.Cleanup(edge.Close)
	client := &http.Client{Transport: plainTransport(t)}

	// The first requests after a publish may fail while the descriptor
	// propagates: retry the genuine object within a bound.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, edge.URL+"/genuine", nil)
		resp, err := client.Do(req)
		var got []byte
		if err == nil {
			got, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		cancel()
		if err == nil && resp.StatusCode == 200 && bytes.Equal(got, body) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("genuine object over Tor: %v (status %v)", err, resp)
		}
		time.Sleep(time.Second)
	}
	for _, tc := range []struct {
		path, rng string
		check     string
	}{
		{"/flip10", "bytes=0-1023", "digest"},
		{"/fliplast", "", "digest"},
		{"/empty", "", "length"},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, edge.URL+tc.path, nil)
		if tc.rng != "" {
			req.Header.Set("Range", tc.rng)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		got, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Logf("%s: %d, %d bytes, %v", tc.path, resp.StatusCode, len(got), rerr)
		if !bytes.HasPrefix(body, got) && resp.StatusCode != http.StatusBadGateway {
			t.Errorf("%s: the client received a byte that is not the origin's", tc.path)
		}
		if resp.StatusCode != http.StatusBadGateway && rerr == nil {
			t.Errorf("%s: %d ended cleanly from a tampering midtier", tc.path, resp.StatusCode)
		}
	}
	if err := c.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := store.Stats(); st.Objects != 1 {
		t.Errorf("edge stores %d objects, want only the genuine one", st.Objects)
	}
	s := verify.Stats()
	if s.Digest != 2 || s.Length != 1 || s.Rejected != 3 {
		t.Errorf("edge integrity %+v, want 2 digest and 1 length rejections", s)
	}
	if rej := logs.lines(t, "integrity: response rejected"); len(rej) != 3 {
		t.Errorf("%d rejections logged, want 3", len(rej))
	}
}
