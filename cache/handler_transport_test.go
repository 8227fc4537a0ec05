package cache_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/cache"
)

// TestHandlerTransportStreams: a cache in front of an in-process handler
// streams the body as the handler writes it (the first bytes reach the
// client while the handler still blocks), stores it once, and serves the
// hit without calling the handler again.
func TestHandlerTransportStreams(t *testing.T) {
	release := make(chan struct{})
	var calls atomic.Int64
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.RequestURI != "/v.ts?x=1" || r.Host != "app" {
			t.Errorf("handler saw RequestURI %q Host %q", r.RequestURI, r.Host)
		}
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "01234")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "56789")
	})
	c := &cache.Cache{Transport: cache.HandlerTransport{Handler: app}, Upstream: &url.URL{Scheme: "http", Host: "app"}}
	srv := httptest.NewServer(c)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v.ts?x=1")
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, 5)
	done := make(chan error, 1)
	go func() { _, err := io.ReadFull(resp.Body, first); done <- err }()
	select {
	case err := <-done:
		if err != nil || string(first) != "01234" {
			t.Fatalf("first bytes %q, %v", first, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("body not streamed: first bytes did not arrive while the handler was writing")
	}
	close(release)
	rest, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(rest) != "56789" {
		t.Fatalf("rest %q", rest)
	}
	c.Shutdown(t.Context())
	resp, err = http.Get(srv.URL + "/v.ts?x=1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "0123456789" || calls.Load() != 1 {
		t.Fatalf("hit: %q, handler called %d times", b, calls.Load())
	}
}

// TestHandlerTransportPanic: a handler that panics mid-body fails the
// body with an error (never a clean short body), and nothing is stored.
func TestHandlerTransportPanic(t *testing.T) {
	var calls atomic.Int64
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "partial")
		panic("boom")
	})
	tr := cache.HandlerTransport{Handler: app}
	req := httptest.NewRequest("GET", "http://app/x", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err == nil || !strings.Contains(err.Error(), "panicked") || string(b) != "partial" {
		t.Fatalf("body %q, err %v; want the partial bytes, then an error", b, err)
	}
	c := &cache.Cache{Transport: tr}
	for range 2 {
		resp, err := c.RoundTrip(httptest.NewRequest("GET", "http://app/x", nil))
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if err == nil {
			t.Fatal("a panicking handler's response read as complete")
		}
		c.Shutdown(t.Context())
	}
	if calls.Load() != 3 {
		t.Fatalf("handler called %d times: a failed body was stored", calls.Load())
	}
	// An empty handler answers 200 with an empty body.
	resp, err = cache.HandlerTransport{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}.RoundTrip(httptest.NewRequest("GET", "http://app/", nil))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("empty handler: %v, %v", resp, err)
	}
	if _, err := (cache.HandlerTransport{}).RoundTrip(httptest.NewRequest("GET", "http://app/", nil)); err == nil {
		t.Fatal("nil Handler accepted")
	}
}
