package hls

import (
	"net/url"
	"testing"
)

// A delta update (EXT-X-SKIP) numbers its segments after the skipped ones.
func TestParsePlaylistDeltaUpdate(t *testing.T) {
	body := "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n#EXT-X-SERVER-CONTROL:CAN-SKIP-UNTIL=12\n#EXT-X-MEDIA-SEQUENCE:100\n" +
		"#EXT-X-SKIP:SKIPPED-SEGMENTS=4\n#EXTINF:2,\nseg104.ts\n#EXTINF:2,\nseg105.ts\n"
	pl, err := ParsePlaylist(&url.URL{Scheme: "http", Host: "o.test", Path: "/v/index.m3u8"}, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if pl.MediaSequence != 100 || len(pl.Segments) != 2 || pl.Segments[0].MSN != 104 || pl.Segments[1].MSN != 105 ||
		pl.Segments[0].URI != "http://o.test/v/seg104.ts" {
		t.Fatalf("%+v", pl)
	}
}
