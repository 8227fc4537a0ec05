package hls

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/hls/hlstest"
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

// req is a client GET of rawURL (absolute: RoundTrip form).
func req(rawURL string) *http.Request { return httptest.NewRequest(http.MethodGet, rawURL, nil) }

// legRecord is a prefetch's cache record whose fill took rtt to respond
// and moved bytes at bps.
func legRecord(rtt time.Duration, bytes int64, bps float64) cache.Record {
	xfer := time.Duration(float64(bytes*8) / bps * float64(time.Second))
	return cache.Record{Method: http.MethodGet, Status: http.StatusOK, Prefetch: true, Timing: cache.Timing{
		UpstreamStart: time.Millisecond, UpstreamHeaders: time.Millisecond + rtt, UpstreamFirstByte: time.Millisecond + rtt,
		UpstreamLastByte: time.Millisecond + rtt + xfer, UpstreamBytes: bytes,
	}}
}

// mediaOf returns the 10-segment VOD (or live) playlist of rendition name
// on e.test.
func mediaOf(t *testing.T, name string, live bool) *Playlist {
	t.Helper()
	_, pl := masterAndMedia(t, live)
	for i := range pl.Segments {
		pl.Segments[i].URI = strings.Replace(pl.Segments[i].URI, "/240p/", "/"+name+"/", 1)
	}
	return pl
}

// Issue 14: the lookahead is sized by the measured upstream leg and the
// rendition's segment size: a segment is filled twice over before a
// real-time player asks for it.
func TestPrefetcherAheadSizedByLeg(t *testing.T) {
	f := newFetchLog()
	clock := newFakeClock()
	p := &Prefetcher{Fetch: f.fetch, Now: clock.Now, Headroom: -1, StartVariants: -1}
	t.Cleanup(func() { p.Close() })
	master, _ := masterAndMedia(t, false)
	p.ObserveMaster(req("http://e.test/master.m3u8"), master)
	p.ObservePlaylist(req("http://e.test/240p/index.m3u8"), mediaOf(t, "240p", false))
	p.ObservePlaylist(req("http://e.test/720p/index.m3u8"), mediaOf(t, "720p", false))
	p.Observe(req("http://e.test/240p/seg0.ts"))
	if got := f.wait(t, DefaultPrefetchAhead); !slices.Equal(got, []string{"/240p/seg1.ts", "/240p/seg2.ts"}) {
		t.Fatalf("before any measurement: prefetched %v", got)
	}
	// The leg: 0.4 s to respond, 4 Mbit/s.
	p.OnRecord(req("http://e.test/other"), legRecord(400*time.Millisecond, 250_000, 4e6))
	// 240p (400 kbit/s): 100 kB in 0.6 s, twice over in 2 s segments: 1.
	p.Observe(req("http://e.test/240p/seg4.ts"))
	// 720p (2.5 Mbit/s): 625 kB in 1.65 s: 2.
	p.Observe(req("http://e.test/720p/seg4.ts"))
	if got := f.wait(t, 3); !slices.Equal(got, []string{"/240p/seg5.ts", "/720p/seg5.ts", "/720p/seg6.ts"}) {
		t.Fatalf("sized: prefetched %v", got)
	}
	// Measured 720p segments of 1.25 MB: 2.9 s, 3 ahead.
	p.OnRecord(req("http://e.test/720p/seg6.ts"), legRecord(400*time.Millisecond, 1_250_000, 4e6))
	p.Observe(req("http://e.test/720p/seg6.ts"))
	if got := f.wait(t, 3); !slices.Equal(got, []string{"/720p/seg7.ts", "/720p/seg8.ts", "/720p/seg9.ts"}) {
		t.Fatalf("measured size: prefetched %v", got)
	}
	waitPrefetchIdle(t, p)
	if s := p.Stats(); s.Scheduled != 8 {
		t.Errorf("stats %+v", s)
	}
}

// Issue 14: no headroom while fills slow each other down on the leg (for
// 30 s after the last such fill), nor for a player whose CMCD says it
// cannot afford the next variant.
func TestPrefetcherHeadroomGates(t *testing.T) {
	f := newFetchLog()
	clock := newFakeClock()
	p := &Prefetcher{Fetch: f.fetch, Now: clock.Now, Ahead: 1, StartVariants: -1}
	t.Cleanup(func() { p.Close() })
	master, _ := masterAndMedia(t, false)
	p.ObserveMaster(req("http://e.test/master.m3u8"), master) // opens the lease
	p.ObservePlaylist(req("http://e.test/240p/index.m3u8"), mediaOf(t, "240p", false))
	p.ObservePlaylist(req("http://e.test/480p/index.m3u8"), mediaOf(t, "480p", false))
	p.OnRecord(req("http://e.test/a"), legRecord(400*time.Millisecond, 250_000, 4e6))
	p.Observe(req("http://e.test/240p/seg0.ts"))
	if got := f.wait(t, 2); !slices.Equal(got, []string{"/240p/seg1.ts", "/480p/seg1.ts"}) {
		t.Fatalf("prefetched %v", got)
	}
	// A fill waits 1.2 s for its response: the leg is contended.
	p.OnRecord(req("http://e.test/b"), legRecord(1200*time.Millisecond, 250_000, 4e6))
	p.Observe(req("http://e.test/240p/seg1.ts"))
	if got := f.wait(t, 1); got[0] != "/240p/seg2.ts" {
		t.Fatalf("prefetched %v", got)
	}
	clock.Advance(stickyContention + time.Second)
	p.Observe(req("http://e.test/240p/seg2.ts"))
	if got := f.wait(t, 2); !slices.Equal(got, []string{"/240p/seg3.ts", "/480p/seg3.ts"}) {
		t.Fatalf("30 s later: prefetched %v", got)
	}
	withCMCD := func(rawURL string, c CMCD) *http.Request {
		r := req(rawURL)
		return r.WithContext(context.WithValue(r.Context(), cmcdCtxKey{}, c))
	}
	// mtp 1000 kbit/s: 70 % of it is below 480p's 1 Mbit/s.
	p.Observe(withCMCD("http://e.test/240p/seg3.ts", CMCD{MeasuredThroughput: 1000}))
	if got := f.wait(t, 1); got[0] != "/240p/seg4.ts" {
		t.Fatalf("prefetched %v", got)
	}
	p.Observe(withCMCD("http://e.test/240p/seg4.ts", CMCD{MeasuredThroughput: 2000}))
	if got := f.wait(t, 2); !slices.Equal(got, []string{"/240p/seg5.ts", "/480p/seg5.ts"}) {
		t.Fatalf("prefetched %v", got)
	}
	waitPrefetchIdle(t, p)
	if s := p.Stats(); s.Headroom != 3 || s.Scheduled != 8 {
		t.Errorf("stats %+v: want 3 headroom segments of 8 prefetches", s)
	}
}

// Issue 14: a live stream starts three segments from the end (HOLD-BACK),
// an LL-HLS stream at the last parts listed and the preload hint.
func TestPrefetcherLiveStart(t *testing.T) {
	t.Run("live", func(t *testing.T) {
		f := newFetchLog()
		p := &Prefetcher{Fetch: f.fetch}
		t.Cleanup(func() { p.Close() })
		master, live := masterAndMedia(t, true)
		p.ObserveMaster(req("http://e.test/master.m3u8"), master)
		if got := f.wait(t, 1); got[0] != "/240p/index.m3u8" {
			t.Fatalf("prefetched %v", got)
		}
		p.ObservePlaylist(req("http://e.test/240p/index.m3u8"), live) // segments 0…9
		if got := f.wait(t, 1); got[0] != "/240p/seg7.ts" {
			t.Fatalf("prefetched %v", got)
		}
	})
	t.Run("ll_hls", func(t *testing.T) {
		start := time.Unix(1_000_000, 0)
		now := start.Add(20*time.Second + 600*time.Millisecond) // segments 0…9 done, and part 0 of 10
		o := &hlstest.Origin{Live: true, FMP4: true, PartDuration: 500 * time.Millisecond, Start: start, Now: func() time.Time { return now }}
		rec := httptest.NewRecorder()
		o.ServeHTTP(rec, req("http://e.test/240p/index.m3u8"))
		base, _ := url.Parse("http://e.test/240p/index.m3u8")
		ll, err := ParsePlaylist(base, rec.Body.Bytes())
		if err != nil || ll.PreloadHint != "http://e.test/240p/seg10.1.m4s" {
			t.Fatalf("playlist: %v, hint %q:\n%s", err, ll.PreloadHint, rec.Body)
		}
		f := newFetchLog()
		p := &Prefetcher{Fetch: f.fetch}
		t.Cleanup(func() { p.Close() })
		master, _ := masterAndMedia(t, true)
		p.ObserveMaster(req("http://e.test/master.m3u8"), master)
		f.wait(t, 1)
		p.ObservePlaylist(req("http://e.test/240p/index.m3u8"), ll)
		want := []string{"/240p/init.mp4", "/240p/seg10.0.m4s", "/240p/seg10.1.m4s", "/240p/seg9.1.m4s", "/240p/seg9.2.m4s", "/240p/seg9.3.m4s"}
		if got := f.wait(t, len(want)); !slices.Equal(got, want) {
			t.Fatalf("prefetched %v, want %v", got, want)
		}
	})
}

// Issue 14: players filling their buffer ask faster than real time: the
// lookahead, and the headroom's reach, follow their pace.
func TestPrefetcherPacedByPlayers(t *testing.T) {
	f := newFetchLog()
	clock := newFakeClock()
	p := &Prefetcher{Fetch: f.fetch, Now: clock.Now, StartVariants: -1}
	t.Cleanup(func() { p.Close() })
	master, _ := masterAndMedia(t, false)
	p.ObserveMaster(req("http://e.test/master.m3u8"), master)
	p.ObservePlaylist(req("http://e.test/240p/index.m3u8"), mediaOf(t, "240p", false))
	p.ObservePlaylist(req("http://e.test/480p/index.m3u8"), mediaOf(t, "480p", false))
	p.OnRecord(req("http://e.test/other"), legRecord(400*time.Millisecond, 250_000, 4e6))
	// In real time: a 240p segment fills in 0.6 s, a 480p one in 0.9 s,
	// within a 2 s segment: one ahead, one up.
	p.Observe(req("http://e.test/240p/seg0.ts"))
	if got := f.wait(t, 2); !slices.Equal(got, []string{"/240p/seg1.ts", "/480p/seg1.ts"}) {
		t.Fatalf("prefetched %v", got)
	}
	// The next request half a second later: 0.6 s twice over at 0.5 s
	// per segment is 3 ahead; the player passes 2 segments while a 480p
	// one fills.
	clock.Advance(500 * time.Millisecond)
	p.Observe(req("http://e.test/240p/seg1.ts"))
	want := []string{"/240p/seg2.ts", "/240p/seg3.ts", "/240p/seg4.ts", "/480p/seg2.ts", "/480p/seg3.ts"}
	if got := f.wait(t, len(want)); !slices.Equal(got, want) {
		t.Fatalf("prefetched %v, want %v", got, want)
	}
	waitPrefetchIdle(t, p)
	if s := p.Stats(); s.Scheduled != 7 || s.Headroom != 3 {
		t.Errorf("stats %+v", s)
	}
}
