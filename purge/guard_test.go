package purge

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/cache"
)

// TestGuard: a response from a tier above that is behind the follower is
// fetched again until one is not (or the retries run out); the position
// field never passes the guard.
func TestGuard(t *testing.T) {
	_, keys := testKey(t, 1)
	f := &Follower{Cache: &cache.Cache{}, Transport: http.DefaultTransport, Keys: keys,
		guardPauses: []time.Duration{time.Millisecond, time.Millisecond, time.Millisecond}}
	f.init()
	f.setPosition(7, 5)
	var n atomic.Int64
	var catchUpAt atomic.Int64 // the attempt from which the upstream is at 7.5
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		pos := "7.4"
		if c := catchUpAt.Load(); c > 0 && i >= c {
			pos = "7.5"
		}
		w.Header().Set(PositionField, pos)
		io.WriteString(w, pos)
	}))
	defer up.Close()
	client := &http.Client{Transport: f.Guard(http.DefaultTransport)}
	get := func() (string, http.Header) {
		t.Helper()
		resp, err := client.Get(up.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), resp.Header
	}
	catchUpAt.Store(3)
	body, h := get()
	if body != "7.5" || n.Load() != 3 || h.Get(PositionField) != "" {
		t.Fatalf("got %q after %d requests, position field %q", body, n.Load(), h.Get(PositionField))
	}
	if st := f.Stats(); st.BehindRetried != 2 || st.BehindServed != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Always behind: used after the retries, counted.
	n.Store(0)
	catchUpAt.Store(0)
	if body, _ := get(); body != "7.4" || n.Load() != 4 {
		t.Fatalf("got %q after %d requests", body, n.Load())
	}
	if st := f.Stats(); st.BehindServed != 1 {
		t.Fatalf("stats %+v", st)
	}
	// Ahead, equal, another (older) log, no field, garbage: no retry.
	for _, pos := range []string{"7.9", "7.5", "", "x.y"} {
		n.Store(0)
		up.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			if pos != "" {
				w.Header().Set(PositionField, pos)
			}
		})
		get()
		if n.Load() != 1 {
			t.Errorf("position %q: %d requests, want 1", pos, n.Load())
		}
	}
	n.Store(0)
	up.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set(PositionField, "6.100") // a superseded log
	})
	get()
	if n.Load() != 4 {
		t.Errorf("an older log: %d requests, want the retries", n.Load())
	}
}

// TestMark: a marking tier's responses carry its position.
func TestMark(t *testing.T) {
	_, keys := testKey(t, 1)
	f := &Follower{Cache: &cache.Cache{}, Transport: http.DefaultTransport, Keys: keys}
	h := f.Mark(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if v := rec.Header().Get(PositionField); v != "0.0" {
		t.Fatalf("before any entry: %q", v)
	}
	f.setPosition(3, 9)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if v := rec.Header().Get(PositionField); v != "3.9" {
		t.Fatalf("position field %q", v)
	}
}
