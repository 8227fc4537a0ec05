package hls

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/cache"
)

const masterPL = `#EXTM3U
#EXT-X-VERSION:3
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="en",URI="audio/en.m3u8"
#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=426x240,AUDIO="aud"
240p/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=1200000,RESOLUTION=854x480,AUDIO="aud"
480p/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=2500000,RESOLUTION=1280x720,AUDIO="aud"
/v/720p/stream?token=x
`

const vodPL = `#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:10
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-MAP:URI="first.mp4"
#EXTINF:10.0,
seg0.m4s
#EXTINF:10.0,
seg1.m4s
#EXTINF:4.5,
seg2.m4s
#EXT-X-ENDLIST
`

const livePL = `#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:4
#EXT-X-MEDIA-SEQUENCE:120
#EXT-X-KEY:METHOD=AES-128,URI="/keys/k1?id=9"
#EXTINF:4.0,
seg120.ts
#EXTINF:4.0,
seg121.ts
#EXTINF:4.0,
chunk?n=122
`

// An LL-HLS playlist: parts of complete and in-progress segments, a
// preload hint and blocking reload support.
const llPL = `#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.0,CAN-SKIP-UNTIL=12.0
#EXT-X-PART-INF:PART-TARGET=0.33334
#EXT-X-MEDIA-SEQUENCE:266
#EXT-X-MAP:URI="init.mp4"
#EXTINF:2.0,
fileSequence266.mp4
#EXT-X-PART:DURATION=0.33334,URI="filePart267.0.mp4",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.33334,URI="filePart267.1.mp4"
#EXTINF:0.66668,
fileSequence267.mp4
#EXT-X-PART:DURATION=0.33334,URI="p/filePart268.0"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="p/filePart268.1"
#EXT-X-RENDITION-REPORT:URI="../1M/waitForMSN.php",LAST-MSN=273,LAST-PART=2
`

// decide runs p.Decide on a response with the given status, content type
// and body, checks that the body bytes pass through unchanged, and returns
// the decision.
func decide(t *testing.T, p *Policy, target string, status int, ct, body string) cache.Decision {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, target, nil)
	resp := &http.Response{StatusCode: status, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body)), Request: r}
	if ct != "" {
		resp.Header.Set("Content-Type", ct)
	}
	d := p.Decide(r, resp)
	got, err := io.ReadAll(resp.Body)
	if err != nil || string(got) != body {
		t.Fatalf("body changed by Decide: err %v, %d bytes, want %d", err, len(got), len(body))
	}
	if resp.StatusCode != status {
		t.Fatalf("status changed to %d", resp.StatusCode)
	}
	return d
}

const mpegURL = "application/vnd.apple.mpegurl"

func TestDecideTTLs(t *testing.T) {
	p := &Policy{}
	// Teach the policy the playlists first (order matters: URIs are
	// remembered from playlists).
	tests := []struct {
		name   string
		target string
		status int
		ct     string
		body   string
		want   cache.Decision
	}{
		{"master", "http://o.test/v/master.m3u8", 200, mpegURL, masterPL, cache.Decision{TTL: 5 * time.Minute}},
		{"vod_media_playlist", "http://o.test/v/240p/index.m3u8", 200, mpegURL, vodPL, cache.Decision{TTL: 24 * time.Hour}},
		{"live_media_playlist", "http://o.test/live/index.m3u8", 200, "audio/mpegurl", livePL, cache.Decision{TTL: 2 * time.Second}},
		{"live_playlist_without_extension", "http://o.test/v/720p/stream?token=x", 200, "", livePL, cache.Decision{TTL: 2 * time.Second}},
		{"live_playlist_404_one_td", "http://o.test/live/index.m3u8", 404, "text/plain", "gone", cache.Decision{TTL: 4 * time.Second}},
		{"live_playlist_503_one_td", "http://o.test/live/index.m3u8", 503, "", "", cache.Decision{TTL: 4 * time.Second}},
		{"live_playlist_304_half_td", "http://o.test/live/index.m3u8", 304, "", "", cache.Decision{TTL: 2 * time.Second}},
		{"ll_playlist", "http://o.test/ll/index.m3u8", 200, mpegURL, llPL, cache.Decision{TTL: time.Second}},
		{"blocking_reload_six_td", "http://o.test/ll/index.m3u8?_HLS_msn=268&_HLS_part=1", 200, mpegURL, llPL, cache.Decision{TTL: 12 * time.Second}},
		{"blocking_reload_404_four_td", "http://o.test/ll/index.m3u8?_HLS_msn=999", 404, "", "", cache.Decision{TTL: 8 * time.Second}},
		{"unknown_playlist_404_default_td", "http://o.test/new/index.m3u8", 404, "", "", cache.Decision{TTL: 6 * time.Second}},
		{"ts_segment", "http://o.test/live/seg120.ts", 200, "video/mp2t", "x", cache.Decision{TTL: 24 * time.Hour}},
		{"segment_without_extension", "http://o.test/live/chunk?n=122", 200, "application/octet-stream", "x", cache.Decision{TTL: 24 * time.Hour}},
		{"segment_404_not_overridden", "http://o.test/live/seg999.ts", 404, "", "", cache.Decision{}},
		{"fmp4_segment", "http://o.test/v/240p/seg1.m4s", 200, "video/iso.segment", "x", cache.Decision{TTL: 24 * time.Hour}},
		{"remembered_init", "http://o.test/v/240p/first.mp4", 200, "video/mp4", "x", cache.Decision{TTL: 24 * time.Hour}},
		{"ll_part", "http://o.test/ll/filePart267.1.mp4", 200, "video/mp4", "x", cache.Decision{TTL: 24 * time.Hour}},
		{"ll_part_without_extension", "http://o.test/ll/p/filePart268.0", 200, "", "x", cache.Decision{TTL: 24 * time.Hour}},
		{"preload_hint", "http://o.test/ll/p/filePart268.1", 200, "", "x", cache.Decision{TTL: 24 * time.Hour}},
		{"key_private_by_default", "http://o.test/keys/k1?id=9", 200, "application/octet-stream", "0123456789abcdef", cache.Decision{NoStore: true}},
		{"key_by_extension", "http://o.test/k/a.key", 200, "", "0123456789abcdef", cache.Decision{NoStore: true}},
		{"webvtt", "http://o.test/subs/s1.webvtt", 200, "text/vtt", "WEBVTT", cache.Decision{TTL: 24 * time.Hour}},
		{"not_hls", "http://o.test/index.html", 200, "text/html", "<html>", cache.Decision{}},
		{"typescript_source_not_a_segment", "http://o.test/js/app.ts", 200, "application/typescript", "let x = 1", cache.Decision{}},
		{"misconfigured_ts_type_still_segment", "http://o.test/other/seg9.ts", 200, "text/vnd.trolltech.linguist", "x", cache.Decision{TTL: 24 * time.Hour}},
		{"html_at_playlist_path_is_short_lived", "http://o.test/x/other.m3u8", 200, "text/html", "<html>", cache.Decision{TTL: 3 * time.Second}},
		{"head_playlist_uses_memory", "http://o.test/v/240p/index.m3u8", 304, "", "", cache.Decision{TTL: 24 * time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := decide(t, p, tt.target, tt.status, tt.ct, tt.body); got != tt.want {
				t.Errorf("Decide = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDecideKeyPublic(t *testing.T) {
	p := &Policy{}
	r := httptest.NewRequest(http.MethodGet, "http://o.test/k/a.key", nil)
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Cache-Control": {"public, max-age=60"}}, Body: http.NoBody}
	if d := p.Decide(r, resp); d != (cache.Decision{}) {
		t.Errorf("public key: %+v, want the zero Decision (origin headers decide)", d)
	}
}

func TestDecidePrecedence(t *testing.T) {
	for _, tt := range []struct {
		name string
		prec Precedence
		cc   string
		want cache.Decision
	}{
		{"hls_first_overrides_origin", HLSFirst, "max-age=3600", cache.Decision{TTL: 2 * time.Second}},
		{"origin_wins_with_max_age", OriginCacheControl, "max-age=3600", cache.Decision{}},
		{"origin_wins_with_s_maxage", OriginCacheControl, "public, s-maxage=1", cache.Decision{}},
		{"origin_mode_fills_gaps", OriginCacheControl, "", cache.Decision{TTL: 2 * time.Second}},
		{"origin_mode_ignores_unrelated", OriginCacheControl, "public", cache.Decision{TTL: 2 * time.Second}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := &Policy{Precedence: tt.prec}
			r := httptest.NewRequest(http.MethodGet, "http://o.test/live/index.m3u8", nil)
			resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {mpegURL}}, Body: io.NopCloser(strings.NewReader(livePL))}
			if tt.cc != "" {
				resp.Header.Set("Cache-Control", tt.cc)
			}
			if d := p.Decide(r, resp); d != tt.want {
				t.Errorf("Decide = %+v, want %+v", d, tt.want)
			}
		})
	}
}

func TestDecidePlaylistLimits(t *testing.T) {
	t.Run("over_limit_passes_through_unclassified", func(t *testing.T) {
		p := &Policy{MaxPlaylistBytes: 64}
		if d := decide(t, &Policy{MaxPlaylistBytes: 64}, "http://o.test/a.m3u8", 200, mpegURL, livePL+strings.Repeat("#c\n", 100)); d != (cache.Decision{}) {
			t.Errorf("over limit: %+v, want zero", d)
		}
		if d := decide(t, p, "http://o.test/a.m3u8", 200, mpegURL, livePL[:60]); d.TTL == 0 {
			t.Errorf("under limit: %+v, want a TTL", d)
		}
	})
	t.Run("huge_target_duration_capped", func(t *testing.T) {
		body := strings.Replace(livePL, "TARGETDURATION:4", "TARGETDURATION:2147483647", 1)
		if d := decide(t, &Policy{}, "http://o.test/h.m3u8", 200, mpegURL, body); d.TTL != 30*time.Second {
			t.Errorf("TTL %v, want MaxTargetDuration/2 = 30s", d.TTL)
		}
	})
	t.Run("gzip_playlist_classified_bytes_unchanged", func(t *testing.T) {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write([]byte(vodPL))
		zw.Close()
		r := httptest.NewRequest(http.MethodGet, "http://o.test/z.m3u8", nil)
		resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Encoding": {"gzip"}}, Body: io.NopCloser(bytes.NewReader(b.Bytes()))}
		if d := (&Policy{}).Decide(r, resp); d.TTL != DefaultVODPlaylistTTL {
			t.Errorf("TTL %v, want VOD", d.TTL)
		}
		got, _ := io.ReadAll(resp.Body)
		if !bytes.Equal(got, b.Bytes()) {
			t.Error("gzip body changed")
		}
	})
	t.Run("read_error_is_replayed", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodGet, "http://o.test/e.m3u8", nil)
		resp := &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(io.MultiReader(strings.NewReader("#EXTM3U\n"), errReader{io.ErrUnexpectedEOF}))}
		if d := (&Policy{}).Decide(r, resp); d != (cache.Decision{}) {
			t.Errorf("Decide = %+v, want zero", d)
		}
		got, err := io.ReadAll(resp.Body)
		if string(got) != "#EXTM3U\n" || err != io.ErrUnexpectedEOF {
			t.Errorf("replay = %q, %v", got, err)
		}
	})
}

func TestDecideCallsOnMediaPlaylist(t *testing.T) {
	var got *Playlist
	p := &Policy{OnMediaPlaylist: func(r *http.Request, pl *Playlist) { got = pl }}
	decide(t, p, "http://o.test/ll/index.m3u8", 200, mpegURL, llPL)
	if got == nil {
		t.Fatal("OnMediaPlaylist not called")
	}
	if len(got.Segments) != 2 || got.Segments[1].URI != "http://o.test/ll/fileSequence267.mp4" || got.Segments[1].MSN != 267 {
		t.Errorf("segments = %+v", got.Segments)
	}
	if !got.CanBlockReload || got.PartTarget != 333340*time.Microsecond || !got.Live {
		t.Errorf("LL-HLS fields = %+v", got)
	}
	wantParts := []string{"http://o.test/ll/filePart267.0.mp4", "http://o.test/ll/filePart267.1.mp4", "http://o.test/ll/p/filePart268.0", "http://o.test/ll/p/filePart268.1"}
	if strings.Join(got.Parts, " ") != strings.Join(wantParts, " ") {
		t.Errorf("parts = %v", got.Parts)
	}
	if len(got.Init) != 1 || got.Init[0] != "http://o.test/ll/init.mp4" {
		t.Errorf("init = %v", got.Init)
	}
	got = nil
	decide(t, p, "http://o.test/v/master.m3u8", 200, mpegURL, masterPL)
	if got != nil {
		t.Error("OnMediaPlaylist called for a master playlist")
	}
}

func TestRememberedBounded(t *testing.T) {
	p := &Policy{MaxRemembered: 3}
	decide(t, p, "http://o.test/a/index.m3u8", 200, mpegURL, livePL)
	decide(t, p, "http://o.test/b/index.m3u8", 200, mpegURL, livePL)
	if n := p.mem.Len(); n > 3 {
		t.Fatalf("remembered %d URIs, max 3", n)
	}
	// Segments never evict keys: the key is still remembered.
	if d := decide(t, p, "http://o.test/keys/k1?id=9", 200, "", "k"); !d.NoStore {
		t.Errorf("recent key: %+v, want NoStore", d)
	}
	// /a's playlist was evicted by /b's segments: a 304 for it falls back
	// to the default target duration.
	if d := decide(t, p, "http://o.test/a/index.m3u8", 304, "", ""); d.TTL != DefaultTargetDuration/2 {
		t.Errorf("evicted playlist: %+v", d)
	}
}

func TestKey(t *testing.T) {
	for _, tt := range []struct {
		name   string
		policy *Policy
		target string
		want   string
	}{
		{"no_query", &Policy{}, "http://O.test/a.m3u8", "/a.m3u8"},
		{"hls_params_canonical_order", &Policy{}, "http://o.test/a.m3u8?_HLS_skip=YES&_HLS_part=2&_HLS_msn=10", "/a.m3u8?_HLS_msn=10&_HLS_part=2&_HLS_skip=YES"},
		{"others_sorted_after_hls", &Policy{}, "http://o.test/a.m3u8?z=1&_HLS_part=2&a=2&a=1&_HLS_msn=10", "/a.m3u8?_HLS_msn=10&_HLS_part=2&a=2&a=1&z=1"},
		{"drop_listed", &Policy{DropQuery: []string{"sid"}}, "http://o.test/s.ts?sid=abc&q=1", "/s.ts?q=1"},
		{"drop_all_keeps_hls", &Policy{DropQuery: []string{"*"}}, "http://o.test/a.m3u8?sid=abc&_HLS_msn=3", "/a.m3u8?_HLS_msn=3"},
		{"keep_only_listed", &Policy{KeepQuery: []string{"v"}}, "http://o.test/a.m3u8?v=2&sid=abc&_HLS_part=0&_HLS_msn=3", "/a.m3u8?_HLS_msn=3&_HLS_part=0&v=2"},
		{"escaped_values_stable", &Policy{}, "http://o.test/a.ts?b=x%20y&a=%2F", "/a.ts?a=%2F&b=x+y"},
		{"cmcd_never_in_key", &Policy{}, "http://o.test/s.ts?q=1&CMCD=bl%3D2000%2Csid%3D%22x%22&cmcd=su", "/s.ts?q=1"},
		{"cmcd_kept_when_listed", &Policy{KeepQuery: []string{"CMCD"}}, "http://o.test/s.ts?CMCD=su", "/s.ts?CMCD=su"},
		{"unparsable_query_verbatim", &Policy{}, "http://o.test/a.ts?a=%zz", "/a.ts?a=%zz"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tt.target, nil)
			if got := tt.policy.Key(r); got != tt.want {
				t.Errorf("Key = %q, want %q", got, tt.want)
			}
			if r.URL.String() != tt.target && !strings.EqualFold(r.URL.String(), tt.target) {
				t.Errorf("Key modified the request URL: %q", r.URL)
			}
		})
	}
}

func TestClassifyPath(t *testing.T) {
	for p, want := range map[string]Kind{
		"/a/index.m3u8": KindMedia, "/a/seg1.ts": KindSegment, "/a/s.m4s": KindSegment, "/a/init.mp4": KindInit,
		"/a/v_init.m4s": KindInit, "/a/seg.mp4": KindSegment, "/a/k.key": KindKey, "/a/audio.aac": KindSegment,
		"/a/sub.vtt": KindSegment, "/a/": KindUnknown, "/index.html": KindUnknown, "/A/SEG.TS": KindSegment,
	} {
		if got := ClassifyPath(p); got != want {
			t.Errorf("ClassifyPath(%q) = %v, want %v", p, got, want)
		}
	}
}

// TestRequestKey: the prefetcher's per-request key is the policy's memory
// key of the request's URL, for path-only and absolute requests, hosts in
// any case, escaped paths and queries (dropped).
func TestRequestKey(t *testing.T) {
	for _, target := range []string{
		"/v/seg1.ts", "/v/seg1.ts?token=1", "http://Edge.Test/v/index.m3u8",
		"/v/a%20b.ts", "/v/caf%C3%A9.ts", "/",
	} {
		for _, host := range []string{"", "EDGE.test", "edge.test:8080"} {
			r := httptest.NewRequest(http.MethodGet, target, nil)
			r.Host = host
			if got, want := requestKey(r), memKey(requestURL(r)); got != want {
				t.Errorf("%s host %q: requestKey %q, memKey(requestURL) %q", target, host, got, want)
			}
		}
	}
	if got, want := requestKey(nil), memKey(requestURL(nil)); got != want {
		t.Errorf("nil request: %q vs %q", got, want)
	}
}
