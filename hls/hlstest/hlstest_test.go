package hlstest

import (
	"bytes"
	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func TestOriginVOD(t *testing.T) {
	o := &Origin{Segments: 3}
	code, body := get(t, o, "/master.m3u8")
	if code != 200 || strings.Count(body, "#EXT-X-STREAM-INF") != 3 || !strings.Contains(body, "480p/index.m3u8") {
		t.Fatalf("master %d:\n%s", code, body)
	}
	code, body = get(t, o, "/480p/index.m3u8")
	if code != 200 || !strings.Contains(body, "#EXT-X-ENDLIST") || strings.Count(body, "#EXTINF:2.000,") != 3 || !strings.Contains(body, "seg2.ts") {
		t.Fatalf("media %d:\n%s", code, body)
	}
	code, body = get(t, o, "/480p/seg2.ts")
	if code != 200 || len(body) != 250_000 || !bytes.Equal([]byte(body), SegmentBytes("480p", 2, 250_000)) {
		t.Fatalf("segment %d, %d bytes", code, len(body))
	}
	if body[0] != 0x47 || body[188] != 0x47 {
		t.Error("no TS sync bytes")
	}
	if _, b1 := get(t, o, "/240p/seg1.ts"); b1 == body[:len(b1)] {
		t.Error("segments of different renditions share bytes")
	}
	for _, p := range []string{"/480p/seg3.ts", "/480p/seg-1.ts", "/1080p/index.m3u8", "/480p/init.mp4", "/x"} {
		if code, _ := get(t, o, p); code != 404 {
			t.Errorf("%s: %d, want 404", p, code)
		}
	}
	if n := o.Requests("/480p/seg2.ts"); n != 1 {
		t.Errorf("Requests = %d", n)
	}
}

func TestOriginLiveWindow(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	o := &Origin{Live: true, Window: 3, Start: time.Unix(1000, 0), Now: clock, FMP4: true}
	if code, _ := get(t, o, "/240p/index.m3u8"); code != 404 {
		t.Errorf("empty live playlist: %d, want 404", code)
	}
	mu.Lock()
	now = now.Add(11 * time.Second) // segments 0..4 complete
	mu.Unlock()
	_, body := get(t, o, "/240p/index.m3u8")
	if !strings.Contains(body, "#EXT-X-MEDIA-SEQUENCE:2\n") || strings.Contains(body, "ENDLIST") || !strings.Contains(body, "seg4.m4s") || strings.Contains(body, "seg5.m4s") || !strings.Contains(body, `#EXT-X-MAP:URI="init.mp4"`) {
		t.Fatalf("live playlist:\n%s", body)
	}
	if code, _ := get(t, o, "/240p/seg5.m4s"); code != 404 {
		t.Error("future segment served")
	}
	if code, _ := get(t, o, "/240p/init.mp4"); code != 200 {
		t.Error("init not served")
	}
}

func TestGenerateFFmpeg(t *testing.T) {
	bin := RequireFFmpeg(t)
	dir := t.TempDir()
	master, err := GenerateFFmpeg(t.Context(), dir, FFmpegOptions{FFmpeg: bin, Duration: 4 * time.Second, FMP4: true,
		Renditions: []FFmpegRendition{{Name: "a", Width: 160, Height: 90, VideoBitrate: 100_000}, {Name: "b", Width: 320, Height: 180, VideoBitrate: 200_000}}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(master)
	if strings.Count(string(b), "#EXT-X-STREAM-INF") != 2 {
		t.Fatalf("master:\n%s", b)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "b", "seg*.m4s"))
	if len(segs) != 2 {
		t.Errorf("%d segments in b, want 2", len(segs))
	}
	pl, _ := os.ReadFile(filepath.Join(dir, "b", "index.m3u8"))
	_, rest, ok := strings.Cut(string(pl), `#EXT-X-MAP:URI="`)
	init, _, _ := strings.Cut(rest, `"`)
	if !ok || !strings.HasSuffix(init, ".mp4") || !strings.Contains(string(pl), "#EXT-X-ENDLIST") {
		t.Fatalf("media playlist:\n%s", pl)
	}
	f, err := os.Open(filepath.Join(dir, "b", init))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	head := make([]byte, 8)
	io.ReadFull(f, head)
	if string(head[4:8]) != "ftyp" {
		t.Errorf("%s starts %q", init, head)
	}
}

func TestOriginLowLatency(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1000, 0).Add(10*time.Second + 500*time.Millisecond) // segments 0..4 done, seg5 part 0 done
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	o := &Origin{Live: true, Start: time.Unix(1000, 0), Now: clock, PartDuration: 500 * time.Millisecond}
	_, body := get(t, o, "/480p/index.m3u8")
	pl, err := playlist.Unmarshal([]byte(body))
	if err != nil {
		t.Fatalf("%v:\n%s", err, body)
	}
	m := pl.(*playlist.Media)
	if m.ServerControl == nil || !m.ServerControl.CanBlockReload || m.PartInf == nil || m.PartInf.PartTarget != 500*time.Millisecond {
		t.Fatalf("LL-HLS tags missing:\n%s", body)
	}
	if len(m.Parts) != 1 || m.Parts[0].URI != "seg5.0.ts" || m.PreloadHint == nil || m.PreloadHint.URI != "seg5.1.ts" {
		t.Fatalf("parts %v hint %v:\n%s", m.Parts, m.PreloadHint, body)
	}
	if len(m.Segments[len(m.Segments)-1].Parts) != 4 {
		t.Errorf("last segment has %d parts, want 4", len(m.Segments[len(m.Segments)-1].Parts))
	}
	if code, b := get(t, o, "/480p/seg5.0.ts"); code != 200 || len(b) != 62_500 {
		t.Errorf("part: %d, %d bytes", code, len(b))
	}
	if code, _ := get(t, o, "/480p/seg5.2.ts"); code != 404 {
		t.Errorf("part after the hinted one: %d", code)
	}
	if code, _ := get(t, o, "/480p/index.m3u8?_HLS_msn=9"); code != 400 {
		t.Errorf("msn too far ahead: %d", code)
	}
	// A blocking request for the next part, and a request for the hinted
	// part itself, return once the clock reaches it.
	done := make(chan string)
	hinted := make(chan int)
	go func() {
		_, b := get(t, o, "/480p/index.m3u8?_HLS_msn=5&_HLS_part=1")
		done <- b
	}()
	go func() {
		code, b := get(t, o, "/480p/seg5.1.ts")
		hinted <- code*1000_000 + len(b)
	}()
	select {
	case <-done:
		t.Fatal("blocking reload returned before the part existed")
	case <-hinted:
		t.Fatal("hinted part served before it existed")
	case <-time.After(50 * time.Millisecond):
	}
	mu.Lock()
	now = now.Add(500 * time.Millisecond)
	mu.Unlock()
	select {
	case b := <-done:
		if !strings.Contains(b, `URI="seg5.1.ts"`) || !strings.Contains(b, `PRELOAD-HINT:TYPE=PART,URI="seg5.2.ts"`) {
			t.Errorf("blocking reload returned:\n%s", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocking reload did not return")
	}
	select {
	case got := <-hinted:
		if got != 200*1000_000+62_500 {
			t.Errorf("hinted part: status %d, %d bytes", got/1000_000, got%1000_000)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("hinted part request did not return")
	}
	if !strings.Contains(body, "#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:16:40.000Z\n#EXTINF") {
		t.Errorf("no program date-time of segment 0 (the origin's start):\n%s", body)
	}
}

func TestOriginDeltaUpdates(t *testing.T) {
	start := time.Unix(1000, 0)
	clock := func() time.Time { return start.Add(20*time.Second + 100*time.Millisecond) } // segments 0..9 complete
	o := &Origin{Live: true, Window: 10, Start: start, Now: clock, DeltaUpdates: true}
	_, full := get(t, o, "/240p/index.m3u8")
	_, delta := get(t, o, "/240p/index.m3u8?_HLS_skip=YES")
	for _, body := range []string{full, delta} {
		pl, err := playlist.Unmarshal([]byte(body))
		if err != nil {
			t.Fatalf("%v:\n%s", err, body)
		}
		m := pl.(*playlist.Media)
		if m.ServerControl == nil || m.ServerControl.CanSkipUntil == nil || *m.ServerControl.CanSkipUntil != 12*time.Second {
			t.Fatalf("no CAN-SKIP-UNTIL=12:\n%s", body)
		}
	}
	if strings.Contains(full, "SKIP:") || strings.Count(full, "#EXTINF") != 10 {
		t.Errorf("full playlist:\n%s", full)
	}
	// 6 TD = 12 s = 6 segments kept: 0..3 skipped, 4..9 listed.
	if !strings.Contains(delta, "#EXT-X-MEDIA-SEQUENCE:0\n") || !strings.Contains(delta, "#EXT-X-SKIP:SKIPPED-SEGMENTS=4\n") ||
		strings.Count(delta, "#EXTINF") != 6 || strings.Contains(delta, "seg3.ts") || !strings.Contains(delta, "PROGRAM-DATE-TIME:1970-01-01T00:16:48.000Z\n#EXTINF:2.000,\nseg4.ts") {
		t.Errorf("delta update:\n%s", delta)
	}
	// Without DeltaUpdates the directive is ignored.
	o2 := &Origin{Live: true, Window: 10, Start: start, Now: clock}
	if _, b := get(t, o2, "/240p/index.m3u8?_HLS_skip=YES"); strings.Contains(b, "SKIP") {
		t.Errorf("skip without DeltaUpdates:\n%s", b)
	}
}
