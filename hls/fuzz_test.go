package hls

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// FuzzDecide feeds hostile playlists and request targets to Policy.Decide.
// Properties: no panic, the body passes through byte for byte, TTLs stay
// within the configured bounds, and the policy's memory stays bounded.
func FuzzDecide(f *testing.F) {
	seeds := []struct{ target, body string }{
		{"/v/master.m3u8", masterPL},                      // master with alternative audio
		{"/v/index.m3u8", vodPL},                          // VOD fMP4 with EXT-X-MAP
		{"/live/index.m3u8", livePL},                      // live TS with EXT-X-KEY
		{"/ll/index.m3u8?_HLS_msn=268&_HLS_part=1", llPL}, // LL-HLS blocking reload
		{"/x.m3u8", "#EXTM3U\n#EXT-X-TARGETDURATION:99999999999999999999\n#EXTINF:1,\na.ts\n"},                                                   // TD overflows gohlslib's parser
		{"/x.m3u8", "#EXTM3U\n#EXT-X-TARGETDURATION:-5\n#EXTINF:-1,\na.ts\n"},                                                                    // negative values
		{"/x.m3u8", "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:NaN,\na.ts\n#EXTINF:1e300,\nb.ts\n"},                                              // NaN and huge EXTINF
		{"/x.m3u8", "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:2147483647\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\na.ts\n#EXTINF:1,\nb.ts\n"},                  // MSN at the int31 limit
		{"/x.m3u8", "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=-1\n\n"},                                                                               // variant without URI
		{"/x.m3u8", "#EXTM3U\n#EXT-X-PART:DURATION=x,URI=\"\"\n#EXT-X-PRELOAD-HINT:TYPE\n"},                                                      // broken LL-HLS attributes
		{"/x.m3u8", "\xef\xbb\xbf#EXTM3U\r\n#EXT-X-ENDLIST\r\n"},                                                                                 // BOM and CRLF
		{"/x.m3u8?_HLS_msn=%zz", "garbage"},                                                                                                      // not a playlist, bad query
		{"/x.m3u8", "#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI=\"" + strings.Repeat("k", 5000) + "\"\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\na.ts\n"}, // over-long URI
	}
	for _, s := range seeds {
		f.Add(s.target, s.body, 200)
	}
	f.Add("/x.m3u8?_HLS_msn=1", "", 404) // blocking reload miss
	f.Fuzz(func(t *testing.T, target, body string, status int) {
		if len(body) > 1<<16 || status < 100 || status > 999 {
			t.Skip()
		}
		r, err := http.NewRequest(http.MethodGet, "http://o.test"+target, nil)
		if err != nil {
			t.Skip()
		}
		p := &Policy{MaxRemembered: 8, MaxPlaylistBytes: 1 << 12}
		for range 2 { // second round: with whatever was remembered
			resp := &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {mpegURL}}, Body: io.NopCloser(strings.NewReader(body)), Request: r}
			d := p.Decide(r, resp)
			got, err := io.ReadAll(resp.Body)
			if err != nil || string(got) != body {
				t.Fatalf("body changed: %v", err)
			}
			if d.TTL < 0 || d.TTL > 6*DefaultMaxTargetDuration && d.TTL > DefaultSegmentTTL {
				t.Fatalf("TTL out of bounds: %v", d.TTL)
			}
			if p.mem != nil && (p.mem.Len() > 8 || p.keys.Len() > 8) {
				t.Fatalf("remembered %d + %d > 8", p.mem.Len(), p.keys.Len())
			}
		}
		_ = p.Key(r)
	})
}

// FuzzParsePlaylist checks ParsePlaylist on arbitrary input: no panic,
// durations clamped, URIs bounded.
func FuzzParsePlaylist(f *testing.F) {
	for _, s := range []string{masterPL, vodPL, livePL, llPL, "#EXTM3U\n", "#EXTM3U\n#EXT-X-TARGETDURATION:1.5\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		if len(body) > 1<<16 {
			t.Skip()
		}
		base := &url.URL{Scheme: "http", Host: "o.test", Path: "/a/b.m3u8"}
		pl, err := ParsePlaylist(base, []byte(body))
		if err != nil {
			return
		}
		if pl.TargetDuration < 0 || pl.TargetDuration > maxDuration || pl.PartTarget < 0 || pl.PartTarget > maxDuration {
			t.Fatalf("durations out of range: %v %v", pl.TargetDuration, pl.PartTarget)
		}
		for _, s := range pl.Segments {
			if s.Duration < 0 || s.Duration > maxDuration || len(s.URI) > maxURILength {
				t.Fatalf("bad segment %+v", s)
			}
		}
	})
}

// FuzzPrefetcherHint feeds a client's CMCD (whose nor names the object to
// prefetch) to an edge's Prefetcher. Property: the Prefetcher fetches
// nothing that a playlist it has seen does not list, whatever the client
// sends.
func FuzzPrefetcherHint(f *testing.F) {
	for _, payload := range []string{
		`nor="seg3.ts"`,                            // listed: prefetched
		`nor="../480p/index.m3u8"`,                 // a listed media playlist
		`nor="seg3.ts?x=1",sid="a"`,                // a query, dropped
		`nor="..%2F..%2Fetc%2Fpasswd"`,             // traversal, encoded
		`nor="http%3A%2F%2Fother.test%2Fx.ts"`,     // another host
		`nor="%2F%2Fother.test%2Fseg3.ts"`,         // scheme-relative
		`nor=("seg4.ts" "seg5.ts"),mtp=0`,          // version 2 list
		`nor="seg99999999999999999999.ts"`,         // not listed
		`nor="` + strings.Repeat("a/", 2000) + `"`, // long
	} {
		f.Add("/240p/seg2.ts", payload)
	}
	master, media := func() (*Playlist, *Playlist) {
		base, _ := url.Parse("http://e.test/master.m3u8")
		m, _ := ParsePlaylist(base, []byte("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=400000\n240p/index.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=1000000\n480p/index.m3u8\n"))
		base, _ = url.Parse("http://e.test/240p/index.m3u8")
		pl, _ := ParsePlaylist(base, []byte("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nseg2.ts\n#EXTINF:2,\nseg3.ts\n#EXTINF:2,\nseg4.ts\n#EXTINF:2,\nseg5.ts\n#EXT-X-ENDLIST\n"))
		return m, pl
	}()
	listed := map[string]bool{"/240p/index.m3u8": true, "/480p/index.m3u8": true}
	for _, s := range media.Segments {
		u, _ := url.Parse(s.URI)
		listed[u.Path] = true
	}
	f.Fuzz(func(t *testing.T, target, payload string) {
		r, err := http.NewRequest(http.MethodGet, "http://e.test"+target+"?CMCD="+url.QueryEscape(payload), nil)
		if err != nil {
			t.Skip()
		}
		var mu sync.Mutex
		var fetched []string
		p := &Prefetcher{StartVariants: -1, Headroom: -1, Ahead: 1, Fetch: func(ctx context.Context, r *http.Request) error {
			mu.Lock()
			fetched = append(fetched, r.URL.Path)
			mu.Unlock()
			return nil
		}}
		defer p.Close()
		p.ObserveMaster(httptest.NewRequest(http.MethodGet, "http://e.test/master.m3u8", nil), master)
		p.ObservePlaylist(httptest.NewRequest(http.MethodGet, "http://e.test/240p/index.m3u8", nil), media)
		var seen CMCD
		(&CMCDFilter{Next: p.Wrap(http.NotFoundHandler()), OnCMCD: func(_ *http.Request, c CMCD) { seen = c }}).ServeHTTP(httptest.NewRecorder(), r)
		for _, n := range seen.NextURLs(r) {
			p.Hint(r, n)
		}
		waitPrefetchIdle(t, p)
		mu.Lock()
		defer mu.Unlock()
		for _, path := range fetched {
			if !listed[path] {
				t.Fatalf("prefetched %q, which no playlist lists (target %q, CMCD %q)", path, target, payload)
			}
		}
	})
}
