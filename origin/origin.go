// Package origin serves a directory as a CDN origin: Cache-Control per
// object type, strong ETags and Last-Modified, ranges, and CORS headers for
// media. It backs examples/origin and the demo.
package origin

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/onioncdn/onioncdn/internal/rfc9111"
)

// Handler serves the files of FS. The zero value serves nothing: set FS.
type Handler struct {
	// FS holds the site's files.
	FS fs.FS

	// AllowedOrigins are the origins (e.g. "http://site.onion") whose pages
	// may fetch media from this origin and the CDN in front of it. "*"
	// allows any origin. If empty, no CORS headers are sent.
	AllowedOrigins []string

	// SegmentMaxAge is the max-age of media segments, which never change.
	// If zero, one year (and "immutable").
	SegmentMaxAge time.Duration

	// VODPlaylistMaxAge is the max-age of playlists that end with
	// EXT-X-ENDLIST and of master playlists. If zero, one hour.
	VODPlaylistMaxAge time.Duration

	// LivePlaylistMaxAge is the max-age of live media playlists. If zero,
	// one second (HLS: at most half the target duration).
	LivePlaylistMaxAge time.Duration

	// DefaultMaxAge is the max-age of every other file. If zero, five
	// minutes.
	DefaultMaxAge time.Duration

	// Logger receives errors. If nil, logs are discarded.
	Logger *slog.Logger
}

var mediaTypes = map[string]string{
	".m3u8": "application/vnd.apple.mpegurl",
	".m3u":  "application/vnd.apple.mpegurl",
	".ts":   "video/mp2t",
	".m4s":  "video/iso.segment",
	".mp4":  "video/mp4",
	".m4a":  "audio/mp4",
	".m4v":  "video/mp4",
	".aac":  "audio/aac",
	".vtt":  "text/vtt",
	".key":  "application/octet-stream",
}

func isSegment(ext string) bool {
	switch ext {
	case ".ts", ".m4s", ".mp4", ".m4a", ".m4v", ".aac", ".vtt":
		return true
	}
	return false
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

func maxAge(d time.Duration) string { return strconv.FormatInt(int64(d/time.Second), 10) }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodOptions {
		w.Header().Set("Allow", "GET, HEAD, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h.cors(w, r)
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if h.FS == nil {
		http.NotFound(w, r)
		return
	}
	name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	if name == "" {
		name = "index.html"
	}
	if !fs.ValidPath(name) {
		http.NotFound(w, r)
		return
	}
	f, err := h.FS.Open(name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.IsDir() {
		http.NotFound(w, r)
		return
	}
	ext := strings.ToLower(path.Ext(name))
	ct := mediaTypes[ext]
	if ct == "" {
		ct = mime.TypeByExtension(ext)
	}
	if ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.Header().Set("ETag", fmt.Sprintf(`"%x-%x"`, st.Size(), st.ModTime().UnixNano()))

	var content io.ReadSeeker
	if rs, ok := f.(io.ReadSeeker); ok {
		content = rs
	} else {
		b, err := io.ReadAll(f)
		if err != nil {
			h.logger().Error("origin: reading file", "name", name, "err", err)
			http.Error(w, "read error", http.StatusInternalServerError)
			return
		}
		content = bytes.NewReader(b)
	}
	switch {
	case isSegment(ext):
		w.Header().Set("Cache-Control", "public, max-age="+maxAge(orDefault(h.SegmentMaxAge, 365*24*time.Hour))+", immutable")
	case ext == ".m3u8" || ext == ".m3u":
		// Read the playlist to tell live from VOD (playlists are small).
		b, err := io.ReadAll(io.LimitReader(content, 4<<20))
		if err != nil {
			http.Error(w, "read error", http.StatusInternalServerError)
			return
		}
		live := bytes.Contains(b, []byte("#EXT-X-TARGETDURATION")) && !bytes.Contains(b, []byte("#EXT-X-ENDLIST")) &&
			!bytes.Contains(b, []byte("#EXT-X-PLAYLIST-TYPE:VOD"))
		if live {
			w.Header().Set("Cache-Control", "public, max-age="+maxAge(orDefault(h.LivePlaylistMaxAge, time.Second)))
		} else {
			w.Header().Set("Cache-Control", "public, max-age="+maxAge(orDefault(h.VODPlaylistMaxAge, time.Hour)))
		}
		content = bytes.NewReader(b)
	default:
		w.Header().Set("Cache-Control", "public, max-age="+maxAge(orDefault(h.DefaultMaxAge, 5*time.Minute)))
	}
	if _, ok := r.Header["Range"]; ok {
		r = limitRange(r, content)
	}
	http.ServeContent(w, r, name, st.ModTime(), content)
}

// limitRange returns r with its Range field rewritten by the range rule of
// the CDN's caches (coalesced, at most rfc9111.MaxRanges ranges, overlaps
// adding up to more than the file ignored), so that no Range makes the
// origin send many times a file's size: http.ServeContent alone honours
// any number of ranges. A field the rule ignores is removed (the whole
// file is sent); an unsatisfiable one is answered 416.
func limitRange(r *http.Request, content io.ReadSeeker) *http.Request {
	var value string
	size, err := content.Seek(0, io.SeekEnd)
	if _, serr := content.Seek(0, io.SeekStart); err == nil && serr == nil && len(r.Header["Range"]) == 1 {
		ranges, err := rfc9111.ParseRange(r.Header["Range"][0], size)
		switch {
		case errors.Is(err, rfc9111.ErrUnsatisfiable):
			value = "bytes=" + strconv.FormatInt(size, 10) + "-"
		case len(ranges) > 0:
			var b strings.Builder
			b.WriteString("bytes=")
			for i, rg := range ranges {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(strconv.FormatInt(rg.Start, 10) + "-" + strconv.FormatInt(rg.Start+rg.Length-1, 10))
			}
			value = b.String()
		}
	}
	r2 := new(http.Request)
	*r2 = *r
	r2.Header = r.Header.Clone()
	if value == "" {
		delete(r2.Header, "Range")
	} else {
		r2.Header["Range"] = []string{value}
	}
	return r2
}

func (h *Handler) cors(w http.ResponseWriter, r *http.Request) {
	if len(h.AllowedOrigins) == 0 {
		return
	}
	hdr := w.Header()
	if slices.Contains(h.AllowedOrigins, "*") {
		hdr.Set("Access-Control-Allow-Origin", "*")
	} else {
		hdr.Add("Vary", "Origin")
		o := r.Header.Get("Origin")
		if o == "" || !slices.Contains(h.AllowedOrigins, o) {
			return
		}
		hdr.Set("Access-Control-Allow-Origin", o)
	}
	hdr.Set("Access-Control-Expose-Headers", "Content-Length, Content-Range, Age")
	if r.Method == http.MethodOptions {
		hdr.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		hdr.Set("Access-Control-Allow-Headers", "Range")
		hdr.Set("Access-Control-Max-Age", "600")
	}
}

func (h *Handler) logger() *slog.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.New(slog.DiscardHandler)
}
