package hls

import (
	"mime"
	"path"
	"strings"
)

// Kind is the role of an HTTP object in an HLS presentation.
type Kind uint8

// Kinds of HLS objects.
const (
	KindUnknown Kind = iota // not recognised as HLS: the cache's own rules apply
	KindMaster              // multivariant playlist (EXT-X-STREAM-INF)
	KindMedia               // media playlist, live or VOD
	KindSegment             // media segment (.ts, .m4s, .aac, .vtt…)
	KindInit                // initialisation section (EXT-X-MAP)
	KindPart                // LL-HLS partial segment (EXT-X-PART, EXT-X-PRELOAD-HINT)
	KindKey                 // decryption key (EXT-X-KEY)
)

var kindNames = [...]string{"unknown", "master-playlist", "media-playlist", "segment", "init-segment", "part", "key"}

// String returns a lower-case, hyphenated name such as "media-playlist".
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// kindPlaylist is what ClassifyPath and ClassifyContentType return for a
// playlist before its content told master from media.
const kindPlaylist = KindMedia

// ClassifyPath guesses the kind of an object from its URL path alone:
// ".m3u8"/".m3u" are playlists (reported as [KindMedia]; only the
// content tells a master from a media playlist), media extensions are
// segments, init-like names ("init.mp4", "init_0.m4s", "*.m4i") are
// [KindInit], ".key" is [KindKey]. Anything else is [KindUnknown].
func ClassifyPath(p string) Kind {
	base := strings.ToLower(path.Base(p))
	ext := path.Ext(base)
	switch ext {
	case ".m3u8", ".m3u":
		return kindPlaylist
	case ".key":
		return KindKey
	case ".m4i":
		return KindInit
	case ".mp4", ".m4s", ".m4v", ".m4a", ".cmfv", ".cmfa":
		if strings.HasPrefix(base, "init") || strings.Contains(base, "_init") || strings.Contains(base, "-init") {
			return KindInit
		}
		return KindSegment
	case ".ts", ".aac", ".ac3", ".ec3", ".mp3", ".vtt", ".webvtt", ".cmft", ".mpegts":
		return KindSegment
	}
	return KindUnknown
}

// ClassifyContentType guesses the kind of an object from its Content-Type:
// the HLS playlist types are playlists (reported as [KindMedia]), MPEG-TS,
// MP4 fragments, AAC/MP3 and WebVTT are segments. Anything else, including
// application/octet-stream, is [KindUnknown].
func ClassifyContentType(ct string) Kind {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return KindUnknown
	}
	switch mt {
	case "application/vnd.apple.mpegurl", "application/x-mpegurl", "audio/mpegurl", "audio/x-mpegurl":
		return kindPlaylist
	case "video/mp2t", "video/mp4", "audio/mp4", "video/iso.segment", "audio/aac", "audio/mpeg", "text/vtt", "application/mp4":
		return KindSegment
	}
	return KindUnknown
}
