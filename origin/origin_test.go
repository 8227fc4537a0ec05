package origin

import (
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func testFS() fstest.MapFS {
	mt := time.Unix(1_700_000_000, 0)
	return fstest.MapFS{
		"index.html":     {Data: []byte("<h1>hi</h1>"), ModTime: mt},
		"v/480p.m3u8":    {Data: []byte("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nseg0.ts\n#EXT-X-ENDLIST\n"), ModTime: mt},
		"live/480p.m3u8": {Data: []byte("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nseg9.ts\n"), ModTime: mt},
		"v/master.m3u8":  {Data: []byte("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n480p.m3u8\n"), ModTime: mt},
		"v/seg0.ts":      {Data: []byte(strings.Repeat("x", 1000)), ModTime: mt},
		"v/init.mp4":     {Data: []byte("init"), ModTime: mt},
	}
}

func do(h http.Handler, method, target string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestCacheControlPerType(t *testing.T) {
	h := &Handler{FS: testFS()}
	for _, tc := range []struct{ path, cc, ct string }{
		{"/v/seg0.ts", "public, max-age=31536000, immutable", "video/mp2t"},
		{"/v/init.mp4", "public, max-age=31536000, immutable", "video/mp4"},
		{"/v/480p.m3u8", "public, max-age=3600", "application/vnd.apple.mpegurl"},
		{"/v/master.m3u8", "public, max-age=3600", "application/vnd.apple.mpegurl"},
		{"/live/480p.m3u8", "public, max-age=1", "application/vnd.apple.mpegurl"},
		{"/", "public, max-age=300", "text/html; charset=utf-8"},
	} {
		t.Run(strings.ReplaceAll(tc.path, "/", "_"), func(t *testing.T) {
			w := do(h, "GET", tc.path)
			if w.Code != 200 {
				t.Fatalf("status %d", w.Code)
			}
			if got := w.Header().Get("Cache-Control"); got != tc.cc {
				t.Errorf("Cache-Control = %q, want %q", got, tc.cc)
			}
			if got := w.Header().Get("Content-Type"); got != tc.ct {
				t.Errorf("Content-Type = %q, want %q", got, tc.ct)
			}
			if w.Header().Get("ETag") == "" || w.Header().Get("Last-Modified") == "" {
				t.Errorf("validators missing: %v", w.Header())
			}
		})
	}
}

func TestConditionalAndRange(t *testing.T) {
	h := &Handler{FS: testFS()}
	etag := do(h, "GET", "/v/seg0.ts").Header().Get("ETag")
	if w := do(h, "GET", "/v/seg0.ts", "If-None-Match", etag); w.Code != 304 {
		t.Errorf("If-None-Match: status %d, want 304", w.Code)
	}
	w := do(h, "GET", "/v/seg0.ts", "Range", "bytes=10-19")
	if w.Code != 206 || w.Body.Len() != 10 || w.Header().Get("Content-Range") != "bytes 10-19/1000" {
		t.Errorf("range: %d %q len=%d", w.Code, w.Header().Get("Content-Range"), w.Body.Len())
	}
	if w := do(h, "HEAD", "/v/seg0.ts"); w.Code != 200 || w.Body.Len() != 0 || w.Header().Get("Content-Length") != "1000" {
		t.Errorf("HEAD: %d len=%d cl=%q", w.Code, w.Body.Len(), w.Header().Get("Content-Length"))
	}
}

func TestCORS(t *testing.T) {
	h := &Handler{FS: testFS(), AllowedOrigins: []string{"http://site.onion"}}
	w := do(h, "GET", "/v/seg0.ts", "Origin", "http://site.onion")
	if got := w.Header().Get("Access-Control-Allow-Origin"); got != "http://site.onion" {
		t.Errorf("allowed origin: ACAO = %q", got)
	}
	if !strings.Contains(w.Header().Get("Vary"), "Origin") {
		t.Errorf("Vary = %q, want Origin", w.Header().Get("Vary"))
	}
	w = do(h, "GET", "/v/seg0.ts", "Origin", "http://evil.onion")
	if got := w.Header().Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("other origin: ACAO = %q, want none", got)
	}
	w = do(h, "OPTIONS", "/v/seg0.ts", "Origin", "http://site.onion", "Access-Control-Request-Headers", "range")
	if w.Code != 204 || w.Header().Get("Access-Control-Allow-Headers") != "Range" {
		t.Errorf("preflight: %d %v", w.Code, w.Header())
	}
	star := &Handler{FS: testFS(), AllowedOrigins: []string{"*"}}
	if got := do(star, "GET", "/v/seg0.ts").Header().Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("wildcard: ACAO = %q", got)
	}
	none := &Handler{FS: testFS()}
	if got := do(none, "GET", "/v/seg0.ts", "Origin", "http://site.onion").Header().Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("no CORS configured: ACAO = %q", got)
	}
}

func TestBadRequests(t *testing.T) {
	h := &Handler{FS: testFS()}
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/missing.ts", 404},
		{"GET", "/v", 404},
		{"GET", "/../../etc/passwd", 404},
		{"POST", "/v/seg0.ts", 405},
		{"DELETE", "/v/seg0.ts", 405},
	} {
		if w := do(h, tc.method, tc.path); w.Code != tc.code {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, w.Code, tc.code)
		}
	}
	if w := do(&Handler{}, "GET", "/x"); w.Code != 404 {
		t.Errorf("zero Handler: %d, want 404", w.Code)
	}
}

// spaced returns n one-byte range-specs with a gap between them
// ("0-0,2-2,4-4…"), adjacent returns n touching ones ("0-0,1-1,…").
func spaced(n int) string   { return rangeSpecs(n, 2) }
func adjacent(n int) string { return rangeSpecs(n, 1) }

func rangeSpecs(n, step int) string {
	var b strings.Builder
	b.WriteString("bytes=")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		p := strconv.Itoa(i * step)
		b.WriteString(p + "-" + p)
	}
	return b.String()
}

// Issue 16: 1,000 one-byte ranges of a 10 KB file got 144,846 bytes from
// the origin's file server. No Range makes it send much more than the file.
func TestIssue16RangeAmplification(t *testing.T) {
	const size = 10240
	body := strings.Repeat("0123456789abcdef", size/16)
	h := &Handler{FS: fstest.MapFS{"f.bin": {Data: []byte(body), ModTime: time.Unix(1_700_000_000, 0)}}}
	const overhead = 16 * 200 // part headers of at most 16 parts
	for _, tc := range []struct {
		name, rng string
		status    int
		parts     int // multipart parts, 0 for a single body
		bodyLen   int // exact length for non-multipart answers
	}{
		{name: "thousand_adjacent", rng: adjacent(1000), status: 200, bodyLen: size},
		{name: "thousand_spaced", rng: spaced(1000), status: 200, bodyLen: size},
		{name: "fifty_adjacent_coalesced", rng: adjacent(50), status: 206, bodyLen: 50},
		{name: "seventeen_spaced", rng: spaced(17), status: 200, bodyLen: size},
		{name: "sixteen_spaced", rng: spaced(16), status: 206, parts: 16},
		{name: "overlapping_whole", rng: "bytes=0-,0-,0-", status: 200, bodyLen: size},
		{name: "unsatisfiable", rng: "bytes=20000-", status: 416, bodyLen: 0},
		{name: "single", rng: "bytes=100-199", status: 206, bodyLen: 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/f.bin", nil)
			req.Header.Set("Range", tc.rng)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if req.Header.Get("Range") != tc.rng {
				t.Errorf("caller's request modified")
			}
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d", w.Code, tc.status)
			}
			n := w.Body.Len()
			if n > size+overhead {
				t.Fatalf("%d body bytes for a %d-byte file", n, size)
			}
			if tc.parts == 0 {
				if tc.status != 416 && n != tc.bodyLen {
					t.Errorf("body %d bytes, want %d", n, tc.bodyLen)
				}
				return
			}
			_, params, err := mime.ParseMediaType(w.Header().Get("Content-Type"))
			if err != nil {
				t.Fatal(err)
			}
			mr := multipart.NewReader(w.Body, params["boundary"])
			parts := 0
			for {
				p, err := mr.NextPart()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(p)
				if len(b) != 1 {
					t.Errorf("part %d has %d bytes", parts, len(b))
				}
				parts++
			}
			if parts != tc.parts {
				t.Errorf("%d parts, want %d", parts, tc.parts)
			}
		})
	}
}
