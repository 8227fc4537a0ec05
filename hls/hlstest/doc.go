// Package hlstest provides HLS test content: a pure-Go synthetic HLS origin
// and a generator of real ABR sets with ffmpeg.
//
// # Overview
//
// [Origin] is an [net/http.Handler] serving a master playlist, media
// playlists (VOD, or a live sliding window driven by an injectable clock)
// and segments whose sizes match each rendition's bitrate × duration, with
// deterministic bytes. It counts the requests it serves. [GenerateFFmpeg]
// writes a real 3-rendition H.264/AAC HLS set (TS or fMP4) to a directory,
// for an [net/http.FileServer] origin.
//
// # Usage
//
//	o := &hlstest.Origin{Segments: 10}
//	srv := httptest.NewServer(o)
//	// srv.URL + "/master.m3u8"
//
// # Security
//
// Test content only: the origin serves whatever it is asked for its
// synthetic presentation and nothing else; it reads no files.
package hlstest
