package hls

// Issue 14: what an edge with a Prefetcher sends upstream, and when, as a
// player's requests arrive. The tests assert the requests (paths, in sets
// per step), never timings: every step waits until the edge has nothing
// left to do before looking at what the origin saw.

import (
	"context"
	"fmt"
	"io"
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

// hangGuard bounds waits that would otherwise hang a broken test; it is
// never used to assert on durations.
const hangGuard = 20 * time.Second

// fakeClock is a settable clock for Prefetcher.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// upstreamLog is the origin side of the edge under test: it records every
// request it serves and how many were in flight at most, and can hold
// segment requests at a gate.
type upstreamLog struct {
	next http.Handler

	mu          sync.Mutex
	reqs        []*http.Request
	seen        int // requests returned by the last call to newSince
	inflight    int
	maxInflight int
	gate        chan struct{} // if set, .m4s and .ts requests take a token from it
	stop        chan struct{} // closed when the test ends: the gate opens
	waiting     int           // requests waiting at the gate
}

func (u *upstreamLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.reqs = append(u.reqs, r.Clone(r.Context()))
	u.inflight++
	u.maxInflight = max(u.maxInflight, u.inflight)
	gate := u.gate
	u.mu.Unlock()
	defer func() {
		u.mu.Lock()
		u.inflight--
		u.mu.Unlock()
	}()
	if gate != nil && (strings.HasSuffix(r.URL.Path, ".m4s") || strings.HasSuffix(r.URL.Path, ".ts")) {
		u.mu.Lock()
		u.waiting++
		u.mu.Unlock()
		select {
		case <-gate:
		case <-u.stop:
		}
		u.mu.Lock()
		u.waiting--
		u.mu.Unlock()
	}
	u.next.ServeHTTP(w, r)
}

// newSince returns the paths requested since its last call, sorted.
func (u *upstreamLog) newSince() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var paths []string
	for _, r := range u.reqs[u.seen:] {
		paths = append(paths, r.URL.Path)
	}
	u.seen = len(u.reqs)
	slices.Sort(paths)
	return paths
}

// edgeUnderTest is an edge cache with a Prefetcher (Attach, Wrap, a
// CMCDFilter in front, as package tier serves it) in front of an origin.
type edgeUnderTest struct {
	origin *upstreamLog
	pf     *Prefetcher
	clock  *fakeClock
	url    string
	done   chan struct{} // one per request the edge finished serving
}

func newEdgeUnderTest(t *testing.T, o http.Handler, pf *Prefetcher) *edgeUnderTest {
	t.Helper()
	e := &edgeUnderTest{origin: &upstreamLog{next: o}, pf: pf, clock: newFakeClock(), done: make(chan struct{}, 100)}
	osrv := httptest.NewServer(e.origin)
	t.Cleanup(osrv.Close)
	ou, _ := url.Parse(osrv.URL)
	c := &cache.Cache{Upstream: ou, Policy: &Policy{}}
	if pf.Now == nil {
		pf.Now = e.clock.Now
	}
	pf.noContention = true // loopback timings are noise
	if err := pf.Attach(c); err != nil {
		t.Fatal(err)
	}
	h := &CMCDFilter{Next: pf.Wrap(c)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { e.done <- struct{}{} }()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { pf.Close() })
	e.url = srv.URL
	return e
}

// get requests path from the edge as a player would, reads the response,
// waits until the edge has finished with it and its prefetches, and
// returns the paths the origin was asked for meanwhile.
func (e *edgeUnderTest) get(t *testing.T, path string, header ...string) []string {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, e.url+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
	select {
	case <-e.done:
	case <-time.After(hangGuard):
		t.Fatalf("GET %s: the edge did not finish", path)
	}
	waitPrefetchIdle(t, e.pf)
	return e.origin.newSince()
}

// waitPrefetchIdle waits until p has nothing queued or in flight. A
// prefetch in flight queues what it calls for before it ends (the policy
// reports its playlist while the fill runs), so nothing more comes.
func waitPrefetchIdle(t *testing.T, p *Prefetcher) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for {
		p.mu.Lock()
		idle := p.queued == 0 && p.running == 0
		p.mu.Unlock()
		if idle {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("prefetcher still busy; stats %+v", p.Stats())
		}
		time.Sleep(time.Millisecond)
	}
}

func equal(t *testing.T, step string, got []string, want ...string) {
	t.Helper()
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s: the edge asked the origin for\n\t%v\nwant\n\t%v", step, got, want)
	}
}

// vodOrigin serves 3 renditions (240p, 480p, 720p, listed in that order)
// of 10 fMP4 segments with init sections.
func vodOrigin() *hlstest.Origin { return &hlstest.Origin{FMP4: true} }

// Issue 14: a master playlist request makes the edge fetch, at once, what
// the player will ask next: the starting variant's media playlist, its
// init section and first segment; nothing of the other variants.
func TestPrefetchStartUp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		pf   *Prefetcher
		want []string
	}{
		{"defaults", &Prefetcher{},
			[]string{"/master.m3u8", "/240p/index.m3u8", "/240p/init.mp4", "/240p/seg0.m4s"}},
		{"two_variants_two_segments", &Prefetcher{StartVariants: 2, StartSegments: 2},
			[]string{"/master.m3u8", "/240p/index.m3u8", "/240p/init.mp4", "/240p/seg0.m4s", "/240p/seg1.m4s",
				"/480p/index.m3u8", "/480p/init.mp4", "/480p/seg0.m4s", "/480p/seg1.m4s"}},
		{"playlist_and_init_only", &Prefetcher{StartSegments: -1},
			[]string{"/master.m3u8", "/240p/index.m3u8", "/240p/init.mp4"}},
		{"off", &Prefetcher{StartVariants: -1},
			[]string{"/master.m3u8"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEdgeUnderTest(t, vodOrigin(), tc.pf)
			equal(t, "master playlist", e.get(t, "/master.m3u8"), tc.want...)
			// The player's next requests are hits: nothing more goes upstream
			// for them but the lookahead after the first segment.
			if tc.name == "defaults" {
				equal(t, "media playlist", e.get(t, "/240p/index.m3u8"))
				equal(t, "init section", e.get(t, "/240p/init.mp4"))
				if s := e.pf.Stats(); s.Started != 3 || s.Hits != 1 {
					t.Errorf("stats %+v: want 3 start-up prefetches, and the init section counted as a hit", s)
				}
			}
		})
	}
}

// Issue 14: the segment requests of a player keep Ahead segments of its
// rendition ahead and, during the start lease, the next segment of the
// next higher variant (with its playlist and init section), never two
// variants up. After the lease, only the watched rendition is prefetched,
// until a master playlist request opens a new lease.
func TestPrefetchLookaheadHeadroomLease(t *testing.T) {
	t.Parallel()
	e := newEdgeUnderTest(t, vodOrigin(), &Prefetcher{Ahead: 2})
	e.get(t, "/master.m3u8")
	e.get(t, "/240p/index.m3u8")
	e.get(t, "/240p/init.mp4")
	equal(t, "first segment (prefetched)", e.get(t, "/240p/seg0.m4s"),
		"/240p/seg1.m4s", "/240p/seg2.m4s", // lookahead
		"/480p/index.m3u8", "/480p/init.mp4", "/480p/seg1.m4s") // headroom
	equal(t, "second segment (prefetched)", e.get(t, "/240p/seg1.m4s"),
		"/240p/seg3.m4s", "/480p/seg2.m4s")
	// The player switches up: the segment is there, and so is the next.
	equal(t, "480p playlist", e.get(t, "/480p/index.m3u8"))
	equal(t, "480p init", e.get(t, "/480p/init.mp4"))
	equal(t, "switch up (prefetched)", e.get(t, "/480p/seg2.m4s"),
		"/480p/seg3.m4s", "/480p/seg4.m4s", "/720p/index.m3u8", "/720p/init.mp4", "/720p/seg3.m4s")
	if s := e.pf.Stats(); s.Headroom != 3 || s.Hits != 5 {
		t.Errorf("stats %+v: want 3 headroom segments, and the player's 5 requests for segments and init sections hits", s)
	}

	// A minute and a half later (the lease and the idle time are over),
	// the player asks for a segment: its rendition only.
	e.clock.Advance(DefaultStartLease + DefaultPrefetchIdle)
	equal(t, "after the lease", e.get(t, "/480p/seg5.m4s"), "/480p/seg5.m4s", "/480p/seg6.m4s", "/480p/seg7.m4s")
	// A segment request does not reopen the lease; a master request does.
	e.clock.Advance(time.Second)
	equal(t, "still after the lease", e.get(t, "/480p/seg6.m4s"), "/480p/seg8.m4s")
	equal(t, "a viewer arrives", e.get(t, "/master.m3u8")) // everything it starts with is stored
	equal(t, "in the new lease", e.get(t, "/480p/seg7.m4s"), "/480p/seg9.m4s", "/720p/seg8.m4s")
}

// Issue 14: start-up jobs still queued when the lease ends are skipped,
// not fetched for a rendition nobody came to watch.
func TestPrefetchLeaseEndsQueued(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	started := make(chan string, 10)
	release := make(chan struct{})
	p := &Prefetcher{Concurrency: 1, Now: clock.Now, StartSegments: 3, Fetch: func(ctx context.Context, r *http.Request) error {
		started <- r.URL.Path
		<-release
		return nil
	}}
	t.Cleanup(func() { p.Close() })
	master, media := masterAndMedia(t, false)
	mr := httptest.NewRequest(http.MethodGet, "http://e.test/master.m3u8", nil)
	p.ObserveMaster(mr, master)
	if got := <-started; got != "/240p/index.m3u8" {
		t.Fatalf("first prefetch %s", got)
	}
	// The playlist arrives (the policy reports it while the prefetch runs):
	// the segments are queued behind it.
	p.ObservePlaylist(httptest.NewRequest(http.MethodGet, "http://e.test/240p/index.m3u8", nil), media)
	clock.Advance(DefaultStartLease + time.Second)
	close(release)
	waitPrefetchIdle(t, p)
	if s := p.Stats(); s.Scheduled != 4 || s.Prefetched != 1 || s.Idle != 3 {
		t.Errorf("stats %+v: want the playlist fetched, the 3 segments queued then skipped", s)
	}
}

// Issue 14: a player's CMCD next-object request is prefetched when a
// playlist the edge has seen lists it, and ignored otherwise; CMCD never
// reaches the origin.
func TestPrefetchHint(t *testing.T) {
	t.Parallel()
	e := newEdgeUnderTest(t, vodOrigin(), &Prefetcher{Ahead: 1, Headroom: -1})
	e.get(t, "/master.m3u8")
	e.get(t, "/240p/index.m3u8")
	cmcd := func(path, payload string) string { return path + "?CMCD=" + url.QueryEscape(payload) }
	equal(t, "known next object", e.get(t, cmcd("/240p/seg0.m4s", `nor="seg5.m4s",sid="s1"`)),
		"/240p/seg1.m4s", "/240p/seg5.m4s")
	for _, nor := range []string{
		"seg99.m4s",         // not in the playlist
		"../secret/key.bin", // not a listed object
		"http%3A%2F%2Fother.test%2F240p%2Fseg6.m4s", // another host
		"index.m3u8%3Fx%3D1",                        // a query smuggled in: dropped; the playlist is stored already
	} {
		got := e.get(t, "/240p/seg1.m4s", "CMCD-Request", `nor="`+nor+`"`)
		e.get(t, "/240p/seg1.m4s") // the same again: nothing new
		if slices.ContainsFunc(got, func(p string) bool { return !strings.HasPrefix(p, "/240p/seg2") }) {
			t.Errorf("nor %q: the edge asked the origin for %v", nor, got)
		}
	}
	if s := e.pf.Stats(); s.Hinted != 2 {
		t.Errorf("stats %+v: want two hints taken (seg5, and the playlist without the query)", s)
	}
	e.origin.mu.Lock()
	defer e.origin.mu.Unlock()
	for _, r := range e.origin.reqs {
		if r.URL.RawQuery != "" || r.Header.Get("CMCD-Request") != "" {
			t.Errorf("the origin saw CMCD: %s?%s %v", r.URL.Path, r.URL.RawQuery, r.Header)
		}
	}
	if (&Prefetcher{}).Hint(httptest.NewRequest(http.MethodGet, "/x", nil), "http://e.test/240p/seg1.m4s") {
		t.Error("a Prefetcher that saw no playlist took a hint")
	}
}

// Issue 14: one client session cannot have more than MaxPerSession
// prefetches queued or in flight; another session is not held back.
func TestPrefetchSessionLimit(t *testing.T) {
	t.Parallel()
	pf := &Prefetcher{MaxPerSession: 2, Session: func(r *http.Request) string { return r.Header.Get("X-Test-Session") }}
	e := newEdgeUnderTest(t, vodOrigin(), pf)
	// The playlist prefetch is in flight when its segments are queued:
	// the init section fits, the segment does not.
	equal(t, "session a", e.get(t, "/master.m3u8", "X-Test-Session", "a"),
		"/master.m3u8", "/240p/index.m3u8", "/240p/init.mp4")
	if s := pf.Stats(); s.Limited != 1 {
		t.Errorf("stats %+v: want one prefetch refused", s)
	}
	equal(t, "session b", e.get(t, "/master.m3u8", "X-Test-Session", "b"), "/240p/seg0.m4s")
}

// Issue 14: never more than Concurrency prefetches go upstream at once.
func TestPrefetchConcurrency(t *testing.T) {
	t.Parallel()
	pf := &Prefetcher{Concurrency: 2, StartVariants: 3, StartSegments: 3}
	e := newEdgeUnderTest(t, vodOrigin(), pf)
	const segments = 3 * 3
	gate := make(chan struct{}, segments)
	e.origin.mu.Lock()
	e.origin.gate, e.origin.stop = gate, make(chan struct{})
	e.origin.mu.Unlock()
	t.Cleanup(func() { close(e.origin.stop) }) // first: the servers can close
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, e.url+"/master.m3u8", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	<-e.done
	// Segments are let through one at a time, each time both workers
	// wait at the gate (until fewer than two are left).
	for left := segments; left > 0; left-- {
		deadline := time.Now().Add(hangGuard)
		for {
			e.origin.mu.Lock()
			n := e.origin.waiting
			e.origin.mu.Unlock()
			if n == min(2, left) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d segment requests waiting at the origin with %d left, want %d", n, left, min(2, left))
			}
			time.Sleep(time.Millisecond)
		}
		gate <- struct{}{}
	}
	waitPrefetchIdle(t, pf)
	got := e.origin.newSince()
	if n := len(got); n != 1+3*(2+3) {
		t.Errorf("the edge asked the origin for %d objects (%v), want the master and 3 × (playlist, init, 3 segments)", n, got)
	}
	if e.origin.maxInflight != 2 {
		t.Errorf("at most %d requests in flight at the origin, want 2 (Concurrency)", e.origin.maxInflight)
	}
}

// masterAndMedia returns a master playlist of e.test listing 240p, 480p
// and 720p, and the 240p media playlist (10 segments, VOD or live).
func masterAndMedia(t *testing.T, live bool) (master, media *Playlist) {
	t.Helper()
	base, _ := url.Parse("http://e.test/master.m3u8")
	master, err := ParsePlaylist(base, []byte("#EXTM3U\n"+
		"#EXT-X-STREAM-INF:BANDWIDTH=400000\n240p/index.m3u8\n"+
		"#EXT-X-STREAM-INF:BANDWIDTH=1000000\n480p/index.m3u8\n"+
		"#EXT-X-STREAM-INF:BANDWIDTH=2500000\n720p/index.m3u8\n"))
	if err != nil {
		t.Fatal(err)
	}
	base, _ = url.Parse("http://e.test/240p/index.m3u8")
	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n")
	for i := range 10 {
		fmt.Fprintf(&b, "#EXTINF:2,\nseg%d.ts\n", i)
	}
	if !live {
		b.WriteString("#EXT-X-ENDLIST\n")
	}
	if media, err = ParsePlaylist(base, []byte(b.String())); err != nil {
		t.Fatal(err)
	}
	return master, media
}
