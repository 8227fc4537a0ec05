package integrity_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/upstream/integrity"
)

// gateStore is a cache.Store whose Writers hold Abort until released, so a
// test can look at what readers of a failing fill see between the moment
// the fill's last read failed and the moment the fill is marked failed.
type gateStore struct {
	cache.Store
	aborting chan struct{} // closed when a Writer's Abort is entered
	release  chan struct{} // close to let Abort proceed
	once     sync.Once
}

func (s *gateStore) Create(ctx context.Context, key string, meta []byte) (cache.Writer, error) {
	w, err := s.Store.Create(ctx, key, meta)
	if err != nil {
		return nil, err
	}
	return &gateWriter{Writer: w, s: s}, nil
}

type gateWriter struct {
	cache.Writer
	s *gateStore
}

func (w *gateWriter) Abort() error {
	w.s.once.Do(func() { close(w.s.aborting) })
	<-w.s.release
	return w.Writer.Abort()
}

// TestTamperedLastBytesNeverLookComplete: when the read that completes a
// response body fails verification, the bytes of that read must not let a
// client (here a cache.Cache used as RoundTripper, whose reply carries
// Content-Length) finish reading a complete-looking body. The fill is
// held between its failed read and its abort; a reader must not reach EOF
// in that window.
func TestTamperedLastBytesNeverLookComplete(t *testing.T) {
	pub, priv := newKey(t)
	content := largeBody()[:100<<10]
	signer := &integrity.Signer{Key: priv, TempDir: t.TempDir()}
	rec := httptest.NewRecorder()
	signer.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(content)
	})).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://site.example/blob", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Signature") == "" {
		t.Fatalf("signing: status %d, headers %v", rec.Code, rec.Header())
	}
	forged := bytes.Clone(rec.Body.Bytes())
	forged[len(forged)-1] ^= 0xff
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return (&recorded{status: rec.Code, header: rec.Header(), body: forged}).response(r), nil
	})
	store := &gateStore{Store: &cache.MemoryStore{}, aborting: make(chan struct{}), release: make(chan struct{})}
	released := false
	defer func() {
		if !released {
			close(store.release)
		}
	}()
	verify := &integrity.Transport{Base: base, Keys: map[string]ed25519.PublicKey{integrity.KeyID(pub): pub}}
	c := &cache.Cache{Transport: verify, Store: store}

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://site.example/blob", nil)
	resp, err := c.RoundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip: %v (want a started response whose body fails)", err)
	}
	defer resp.Body.Close()
	select {
	case <-store.aborting:
	case <-time.After(30 * time.Second): // guards against a hang only
		t.Fatal("the fill of a forged body was never aborted")
	}
	// The fill has read (and rejected) the whole body but has not yet
	// failed its readers. Read now.
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := io.ReadAll(resp.Body)
		done <- result{len(b), err}
	}()
	var res result
	select {
	case res = <-done:
		// The reader finished inside the window: it must have failed.
	case <-time.After(500 * time.Millisecond):
		// The reader waits for the fill's outcome, as it should; let the
		// abort proceed. (A slow machine can only make this branch pass,
		// never fail, the test.)
		close(store.release)
		released = true
		res = <-done
	}
	if res.err == nil {
		t.Fatalf("reader got a complete-looking body of %d bytes (Content-Length %d) from a fill that failed verification", res.n, resp.ContentLength)
	}
	if got := verify.Stats().Rejected; got != 1 {
		t.Errorf("Rejected = %d, want 1", got)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
