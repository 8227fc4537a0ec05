package hls

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/cache"
)

// fetchLog records the prefetch requests a Prefetcher makes.
type fetchLog struct {
	mu   sync.Mutex
	reqs []*http.Request
	got  chan string
}

func newFetchLog() *fetchLog { return &fetchLog{got: make(chan string, 100)} }

func (f *fetchLog) fetch(ctx context.Context, r *http.Request) error {
	f.mu.Lock()
	f.reqs = append(f.reqs, r)
	f.mu.Unlock()
	f.got <- r.URL.Path
	return nil
}

// wait returns the next n prefetched paths, sorted.
func (f *fetchLog) wait(t *testing.T, n int) []string {
	t.Helper()
	var paths []string
	for range n {
		select {
		case p := <-f.got:
			paths = append(paths, p)
		case <-time.After(10 * time.Second):
			t.Fatalf("timed out waiting for prefetches, got %v", paths)
		}
	}
	slices.Sort(paths)
	return paths
}

func vodPlaylist(t *testing.T, segs int) *Playlist {
	t.Helper()
	body := "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
	for i := range segs {
		body += "#EXTINF:2,\nseg" + string(rune('0'+i)) + ".ts\n"
	}
	body += "#EXT-X-ENDLIST\n"
	pl, err := ParsePlaylist(requestURL(httptest.NewRequest(http.MethodGet, "http://edge.test/v/index.m3u8", nil)), []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

func TestPrefetcherNextSegments(t *testing.T) {
	f := newFetchLog()
	p := &Prefetcher{Fetch: f.fetch}
	t.Cleanup(func() { p.Close() })
	plReq := httptest.NewRequest(http.MethodGet, "/v/index.m3u8", nil)
	plReq.Host = "edge.test"
	p.ObservePlaylist(plReq, vodPlaylist(t, 6))

	h := p.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	req := httptest.NewRequest(http.MethodGet, "/v/seg1.ts", nil)
	req.Host = "edge.test"
	h.ServeHTTP(httptest.NewRecorder(), req)
	if got := f.wait(t, 2); !slices.Equal(got, []string{"/v/seg2.ts", "/v/seg3.ts"}) {
		t.Fatalf("prefetched %v", got)
	}
	f.mu.Lock()
	r0 := f.reqs[0]
	f.mu.Unlock()
	// Same form as the client request: path only, Host set, no client headers.
	if r0.URL.Host != "" || r0.Host != "edge.test" || r0.Method != http.MethodGet || len(r0.Header) != 0 {
		t.Errorf("prefetch request %s %q host %q header %v", r0.Method, r0.URL, r0.Host, r0.Header)
	}
	// seg2 again: only seg4 is new.
	req = httptest.NewRequest(http.MethodGet, "/v/seg2.ts", nil)
	req.Host = "edge.test"
	h.ServeHTTP(httptest.NewRecorder(), req)
	p.OnRecord(req, cache.Record{Method: "GET", Disposition: cache.Hit})
	if got := f.wait(t, 1); got[0] != "/v/seg4.ts" {
		t.Fatalf("prefetched %v", got)
	}
	p.OnRecord(req, cache.Record{Method: "GET", Disposition: cache.Hit}) // counted once
	req3 := httptest.NewRequest(http.MethodGet, "/v/seg3.ts", nil)
	req3.Host = "edge.test"
	h.ServeHTTP(httptest.NewRecorder(), req3)
	p.OnRecord(req3, cache.Record{Method: "GET", Disposition: cache.Miss}) // not a hit
	f.wait(t, 1)                                                           // seg5
	if err := p.Close(); err != nil {                                      // waits for the workers
		t.Fatal(err)
	}
	if s := p.Stats(); s.Hits != 1 || s.Prefetched != 4 || s.Scheduled != 4 {
		t.Errorf("stats %+v", s)
	}
	if err := p.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
}

func TestPrefetcherLiveStopsWhenIdle(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	f := newFetchLog()
	p := &Prefetcher{Fetch: f.fetch, Now: clock, Idle: 10 * time.Second, Ahead: 2}
	t.Cleanup(func() { p.Close() })
	live := func(first, n int) *Playlist {
		pl := &Playlist{Live: true, TargetDuration: 2 * time.Second, MediaSequence: first}
		for i := first; i < first+n; i++ {
			pl.Segments = append(pl.Segments, Segment{URI: "http://edge.test/l/s" + string(rune('a'+i)) + ".ts", Duration: 2 * time.Second, MSN: i})
		}
		return pl
	}
	plReq := httptest.NewRequest(http.MethodGet, "http://edge.test/l/index.m3u8", nil)
	p.ObservePlaylist(plReq, live(0, 3))
	// A client requests the newest segment: nothing listed after it yet.
	p.Observe(httptest.NewRequest(http.MethodGet, "http://edge.test/l/sc.ts", nil))
	// The next playlist lists segment 3 and 4: both are wanted (2 ahead).
	p.ObservePlaylist(plReq, live(1, 4))
	if got := f.wait(t, 2); !slices.Equal(got, []string{"/l/sd.ts", "/l/se.ts"}) {
		t.Fatalf("prefetched %v", got)
	}
	if f.reqs[0].URL.Host != "edge.test" {
		t.Errorf("absolute client requests must give absolute prefetches: %q", f.reqs[0].URL)
	}
	// Nobody watches for longer than Idle: new segments are not fetched.
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	// A request for segment 4 wants 5 and 6, not listed yet...
	p.Observe(httptest.NewRequest(http.MethodGet, "http://edge.test/l/se.ts", nil))
	mu.Lock()
	now = now.Add(time.Minute) // ...then a minute of silence
	mu.Unlock()
	p.ObservePlaylist(plReq, live(3, 4)) // lists 5 and 6
	if s := p.Stats(); s.Scheduled != 2 {
		t.Errorf("scheduled %d for an idle rendition", s.Scheduled)
	}
	// Watched again: 5 and 6 are fetched.
	p.Observe(plReq)
	p.ObservePlaylist(plReq, live(3, 4))
	if got := f.wait(t, 2); !slices.Equal(got, []string{"/l/sf.ts", "/l/sg.ts"}) {
		t.Fatalf("prefetched %v", got)
	}
}

func TestPrefetcherNeverBlocks(t *testing.T) {
	block := make(chan struct{})
	p := &Prefetcher{Concurrency: 1, Ahead: 200, Fetch: func(ctx context.Context, r *http.Request) error {
		select {
		case <-block:
		case <-ctx.Done():
		}
		return nil
	}}
	pl := &Playlist{}
	for i := range 200 {
		pl.Segments = append(pl.Segments, Segment{URI: "http://e.test/s" + itoa(i) + ".ts", MSN: i})
	}
	p.ObservePlaylist(httptest.NewRequest(http.MethodGet, "http://e.test/i.m3u8", nil), pl)
	done := make(chan struct{})
	go func() {
		p.Observe(httptest.NewRequest(http.MethodGet, "http://e.test/s0.ts", nil))
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Observe blocked")
	}
	if s := p.Stats(); s.Dropped == 0 || s.Scheduled > prefetchQueue+1 {
		t.Errorf("stats %+v", s)
	}
	close(block)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}
