package integrity_test

import (
	"crypto/ed25519"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/upstream/integrity"
)

// BenchmarkVerification measures what verification costs a tier, for a
// 10 KB and a 2 MB object, signed against unsigned, over loopback:
//
//   - fetch: one GET through the tier's upstream transport (the verifying
//     Transport, or plain net/http for unsigned) from a server sending a
//     response recorded beforehand (the origin's signing is not timed);
//   - chain: a cold miss through a caching tier (a new query each time)
//     to an origin that signs every response (Signer) or not.
//
// first-byte-µs is the mean time from sending the request to the first
// body byte the client reads; MB/s is the throughput of whole requests.
//
//	go test -run '^$' -bench BenchmarkVerification -benchtime 2s ./upstream/integrity/
func BenchmarkVerification(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	keys := map[string]ed25519.PublicKey{integrity.KeyID(pub): pub}
	for _, size := range []struct {
		name string
		n    int
	}{{"10KB", 10_000}, {"2MB", 2_000_000}} {
		body := largeBody()[:size.n]
		site := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "video/mp2t")
			w.Header().Set("Cache-Control", "public, max-age=600")
			w.Write(body)
		})
		signer := &integrity.Signer{Key: priv, TempDir: b.TempDir()}
		// Responses recorded once, replayed from memory.
		signedRec := record(signer.Handler(site), "/seg.ts")
		plainRec := record(site, "/seg.ts")
		for _, signed := range []bool{false, true} {
			name := map[bool]string{false: "unsigned", true: "signed"}[signed]
			rec := plainRec
			if signed {
				rec = signedRec
			}
			replay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range rec.header {
					w.Header()[k] = v
				}
				w.Header().Set("Content-Length", strconv.Itoa(len(rec.body)))
				w.WriteHeader(rec.status)
				w.Write(rec.body)
			}))
			b.Cleanup(replay.Close)
			base := http.DefaultTransport.(*http.Transport).Clone()
			base.DisableCompression = true
			b.Cleanup(base.CloseIdleConnections)
			var rt http.RoundTripper = base
			if signed {
				rt = &integrity.Transport{Base: base, Keys: keys}
			}
			b.Run("fetch/"+size.name+"/"+name, func(b *testing.B) {
				benchGet(b, rt, func(int) string { return replay.URL + "/seg.ts" }, size.n)
			})

			var h http.Handler = site
			if signed {
				h = signer.Handler(site)
			}
			origin := httptest.NewServer(h)
			b.Cleanup(origin.Close)
			u, _ := url.Parse(origin.URL)
			var up http.RoundTripper = base
			if signed {
				up = &integrity.Transport{Base: base, Keys: keys}
			}
			tier := httptest.NewServer(&cache.Cache{Upstream: u, Transport: up, Store: &cache.MemoryStore{MaxBytes: 64 << 20}})
			b.Cleanup(tier.Close)
			client := http.DefaultTransport.(*http.Transport).Clone()
			client.DisableCompression = true
			b.Cleanup(client.CloseIdleConnections)
			b.Run("chain/"+size.name+"/"+name, func(b *testing.B) {
				benchGet(b, client, func(i int) string { return tier.URL + "/seg.ts?i=" + strconv.Itoa(i) }, size.n)
			})
		}
	}
}

func benchGet(b *testing.B, rt http.RoundTripper, target func(i int) string, size int) {
	b.SetBytes(int64(size))
	b.ReportAllocs()
	buf := make([]byte, 32<<10)
	var first time.Duration
	i := 0
	for b.Loop() {
		i++
		req, _ := http.NewRequest(http.MethodGet, target(i), nil)
		start := time.Now()
		resp, err := rt.RoundTrip(req)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			k, err := resp.Body.Read(buf)
			if n == 0 && k > 0 {
				first += time.Since(start)
			}
			n += k
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || n != size {
			b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
		}
	}
	b.ReportMetric(float64(first.Microseconds())/float64(i), "first-byte-µs")
}
