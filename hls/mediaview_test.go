package hls

import (
	"net/url"
	"testing"
	"time"
)

func view(t *testing.T, body string) *mediaView {
	t.Helper()
	base := &url.URL{Scheme: "http", Host: "o.test", Path: "/v/index.m3u8"}
	pl, err := ParsePlaylist(base, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return parseView(base, []byte(body), pl)
}

const llDelta = `#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.5,HOLD-BACK=6,CAN-SKIP-UNTIL=12
#EXT-X-PART-INF:PART-TARGET=0.5
#EXT-X-MEDIA-SEQUENCE:10
#EXT-X-SKIP:SKIPPED-SEGMENTS=2
#EXT-X-PROGRAM-DATE-TIME:2025-01-01T00:00:24.000Z
#EXTINF:2,
s12.ts
#EXT-X-PART:DURATION=0.5,URI="s13.0.ts",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.5,URI="s13.1.ts"
#EXT-X-PART:DURATION=0.5,URI="s13.2.ts"
#EXT-X-PART:DURATION=0.5,URI="s13.3.ts"
#EXTINF:2,
s13.ts
#EXT-X-PART:DURATION=0.5,URI="s14.0.ts",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="s14.1.ts"
`

func TestParseView(t *testing.T) {
	v := view(t, llDelta)
	if !v.live || v.td != 2 || !v.canBlock || v.partHoldBack != 1.5 || v.holdBack != 6 || v.canSkipUntil != 12 || v.partTarget != 0.5 || v.skipped != 2 {
		t.Fatalf("controls %+v", v)
	}
	if len(v.segs) != 2 || v.segs[0].msn != 12 || v.segs[1].msn != 13 || v.segs[1].uri != "http://o.test/v/s13.ts" || len(v.segs[1].parts) != 4 || !v.segs[1].parts[0].independent || v.segs[1].parts[1].independent {
		t.Fatalf("segments %+v", v.segs)
	}
	if !v.segs[1].pdt.Equal(time.Date(2025, 1, 1, 0, 0, 26, 0, time.UTC)) {
		t.Errorf("program date-time not carried forward: %v", v.segs[1].pdt)
	}
	if len(v.trailing) != 1 || v.hint != "http://o.test/v/s14.1.ts" {
		t.Errorf("trailing %+v, hint %q", v.trailing, v.hint)
	}
	if m, p := v.directive(true); m != 14 || p != 1 {
		t.Errorf("directive with parts (%d,%d), want (14,1)", m, p)
	}
	if m, p := v.directive(false); m != 14 || p != -1 {
		t.Errorf("directive without parts (%d,%d), want (14,-1)", m, p)
	}
	v.trailing = nil
	if m, p := v.directive(true); m != 14 || p != 0 {
		t.Errorf("directive after a complete segment (%d,%d), want (14,0)", m, p)
	}

	// Merging with the playlist it updates restores the skipped segments.
	old := &mediaView{segs: []viewSeg{{msn: 9}, {msn: 10, dur: 2}, {msn: 11, dur: 2}, {msn: 12, dur: 2}}}
	v = view(t, llDelta)
	v.merge(old)
	if v.incomplete || len(v.segs) != 4 || v.segs[0].msn != 10 || v.segs[2].msn != 12 || v.segs[2].uri == "" {
		t.Errorf("merged %+v (incomplete %v)", v.segs, v.incomplete)
	}
	v = view(t, llDelta)
	v.merge(&mediaView{segs: []viewSeg{{msn: 11, dur: 2}}})
	if !v.incomplete {
		t.Error("a merge missing segment 10 is not marked incomplete")
	}

	// The timeline anchors later playlists on the segments they share, and
	// the program date-time base on a segment that has one.
	var tl timeline
	tl.learn(view(t, llDelta))
	if s, _ := tl.start(13); s != 2 {
		t.Errorf("segment 13 at %v", s)
	}
	if e, _ := view(t, llDelta).edge(&tl); e != 4.5 {
		t.Errorf("edge %v, want 4.5 (segment 13 ends at 4, one part of 14)", e)
	}
	if !tl.pdtBase.Equal(time.Date(2025, 1, 1, 0, 0, 24, 0, time.UTC)) {
		t.Errorf("program date-time base %v", tl.pdtBase)
	}
	tl.learn(&mediaView{td: 2, segs: []viewSeg{{msn: 13, dur: 2}, {msn: 14, dur: 1.5}, {msn: 15, dur: 2}}})
	if s, _ := tl.start(15); s != 5.5 {
		t.Errorf("segment 15 at %v, want 5.5", s)
	}
	tl.learn(&mediaView{td: 2, segs: []viewSeg{{msn: 20, dur: 2}}}) // a gap
	if s, _ := tl.start(20); s != 5.5+5*2 {
		t.Errorf("segment 20 after a gap at %v, want 15.5", s)
	}
}

// Byte-range parts are not played as parts; a byte-range hint is ignored.
func TestParseViewByteRangeParts(t *testing.T) {
	v := view(t, "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PART-INF:PART-TARGET=1\n#EXT-X-MEDIA-SEQUENCE:1\n"+
		"#EXT-X-PART:DURATION=1,URI=\"s1.mp4\",BYTERANGE=100@0\n#EXTINF:2,\ns1.mp4\n"+
		"#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"s2.mp4\",BYTERANGE-START=0,BYTERANGE-LENGTH=10\n")
	if len(v.segs) != 1 || len(v.segs[0].parts) != 0 || v.hint != "" || v.hasParts() {
		t.Errorf("%+v", v)
	}
}
