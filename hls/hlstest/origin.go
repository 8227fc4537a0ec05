package hlstest

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Rendition is one variant of the synthetic presentation.
type Rendition struct {
	Name       string // path element, e.g. "480p"
	Bandwidth  int    // bits per second; segment sizes follow it
	Resolution string // e.g. "854x480"
}

// DefaultRenditions are the three renditions an [Origin] serves by default.
var DefaultRenditions = []Rendition{
	{Name: "240p", Bandwidth: 400_000, Resolution: "426x240"},
	{Name: "480p", Bandwidth: 1_000_000, Resolution: "854x480"},
	{Name: "720p", Bandwidth: 2_500_000, Resolution: "1280x720"},
}

// Origin is a synthetic HLS origin. Paths:
//
//	/master.m3u8            master playlist
//	/NAME/index.m3u8        media playlist of rendition NAME
//	/NAME/segN.ts           segment N (segN.m4s with FMP4)
//	/NAME/init.mp4          init section (FMP4 only)
//
// Its zero value serves a 10-segment VOD presentation of 2 s segments in
// the three DefaultRenditions. Fields may not change after the first
// request. It is safe for concurrent use.
type Origin struct {
	// Renditions to serve. If nil, DefaultRenditions.
	Renditions []Rendition
	// SegmentDuration is the duration of every segment. If zero, 2s.
	SegmentDuration time.Duration
	// Segments is the number of segments of a VOD presentation. If zero, 10.
	Segments int
	// Live serves a live sliding window instead of VOD: segment N is
	// complete at Start + (N+1)×SegmentDuration. Its first listed segment
	// carries its EXT-X-PROGRAM-DATE-TIME, Start + N×SegmentDuration.
	Live bool
	// Window is the number of segments in a live playlist. If zero, 6.
	Window int
	// Start is when live segment 0 began. If zero, Window segments before
	// the first request, so the first playlist is full.
	Start time.Time
	// Now returns the current time. If nil, time.Now. Tests drive a live
	// origin faster than real time with a scaled clock.
	Now func() time.Time
	// FMP4 serves fragmented MP4 segments with an init section instead of
	// MPEG-TS.
	FMP4 bool
	// Header holds extra headers for every response (e.g. Cache-Control).
	Header http.Header
	// PartDuration, if positive and Live, makes the stream LL-HLS: each
	// segment is also served as parts of this duration (NAME/segN.P.ts),
	// listed with EXT-X-PART for the last segments and the one in progress,
	// with an EXT-X-PRELOAD-HINT, and playlist requests with _HLS_msn
	// (and _HLS_part) block until that segment (part) exists, for at most
	// three target durations of real time. A request for the next part
	// (the hinted one) blocks the same way until it exists; parts further
	// ahead are 404.
	PartDuration time.Duration
	// DeltaUpdates, with Live, advertises CAN-SKIP-UNTIL (six target
	// durations) and answers playlist requests carrying _HLS_skip=YES
	// with a delta update: the segments older than the skip boundary are
	// replaced by EXT-X-SKIP.
	DeltaUpdates bool

	once     sync.Once
	start    time.Time
	mu       sync.Mutex
	requests map[string]int
}

func (o *Origin) init() {
	o.once.Do(func() {
		o.start = o.Start
		if o.start.IsZero() {
			o.start = o.now().Add(-time.Duration(o.window()) * o.segDur())
		}
		o.requests = make(map[string]int)
	})
}

func (o *Origin) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func (o *Origin) renditions() []Rendition {
	if o.Renditions == nil {
		return DefaultRenditions
	}
	return o.Renditions
}

func (o *Origin) segDur() time.Duration {
	if o.SegmentDuration <= 0 {
		return 2 * time.Second
	}
	return o.SegmentDuration
}

func (o *Origin) window() int {
	if o.Window <= 0 {
		return 6
	}
	return o.Window
}

func (o *Origin) ext() string {
	if o.FMP4 {
		return ".m4s"
	}
	return ".ts"
}

// Requests returns how many requests the origin served for path (any
// status), counting since it started.
func (o *Origin) Requests(path string) int {
	o.init()
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.requests[path]
}

// TotalRequests returns the number of requests the origin served.
func (o *Origin) TotalRequests() int {
	o.init()
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, c := range o.requests {
		n += c
	}
	return n
}

// SegmentSize returns the size in bytes of every segment of r.
func (o *Origin) SegmentSize(r Rendition) int {
	return int(int64(r.Bandwidth) * int64(o.segDur()) / int64(8*time.Second))
}

// available returns the first and last MSN listed now.
func (o *Origin) available() (first, last int) {
	if !o.Live {
		n := o.Segments
		if n <= 0 {
			n = 10
		}
		return 0, n - 1
	}
	last = int(o.now().Sub(o.start)/o.segDur()) - 1
	return max(0, last-o.window()+1), last
}

// ServeHTTP serves the synthetic presentation.
func (o *Origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.init()
	o.mu.Lock()
	o.requests[r.URL.Path]++
	o.mu.Unlock()
	// Date follows the injectable clock, so caches running on the same
	// (possibly scaled) clock compute ages correctly.
	w.Header().Set("Date", o.now().UTC().Format(http.TimeFormat))
	for k, v := range o.Header {
		w.Header()[k] = v
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path == "/master.m3u8" {
		o.serveMaster(w)
		return
	}
	name, file, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	var rend *Rendition
	for i, rr := range o.renditions() {
		if rr.Name == name {
			rend = &o.renditions()[i]
		}
	}
	if !ok || rend == nil {
		http.NotFound(w, r)
		return
	}
	switch {
	case file == "index.m3u8":
		if o.ll() && r.URL.Query().Has("_HLS_msn") {
			if !o.block(w, r) {
				return
			}
		}
		o.serveMedia(w, rend, o.DeltaUpdates && r.URL.Query().Get("_HLS_skip") == "YES")
	case o.ll() && strings.HasPrefix(file, "seg") && strings.Count(file, ".") == 2:
		var n, p int
		if _, err := fmt.Sscanf(file, "seg%d.%d"+o.ext(), &n, &p); err != nil || n < 0 || p < 0 || p >= o.partsPerSegment() {
			http.NotFound(w, r)
			return
		}
		if !o.partAvailable(n, p) && (!o.nextPart(n, p) || !o.wait(w, r, func() bool { return o.partAvailable(n, p) })) {
			if !o.nextPart(n, p) {
				http.NotFound(w, r)
			}
			return
		}
		ct := "video/mp2t"
		if o.FMP4 {
			ct = "video/iso.segment"
		}
		o.serveBytes(w, r, ct, o.SegmentSize(*rend)/o.partsPerSegment(), seed(rend.Name, n)^uint64(p+1)<<48)
	case file == "init.mp4" && o.FMP4:
		o.serveBytes(w, r, "video/mp4", 1000, seed(rend.Name, -1))
	case strings.HasPrefix(file, "seg") && strings.HasSuffix(file, o.ext()):
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(file, "seg"), o.ext()))
		first, last := o.available()
		// Live: keep serving segments that just left the window.
		if err != nil || n < 0 || n > last || n < first-o.window() {
			http.NotFound(w, r)
			return
		}
		ct := "video/mp2t"
		if o.FMP4 {
			ct = "video/iso.segment"
		}
		o.serveBytes(w, r, ct, o.SegmentSize(*rend), seed(rend.Name, n))
	default:
		http.NotFound(w, r)
	}
}

func (o *Origin) serveMaster(w http.ResponseWriter) {
	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n")
	for _, r := range o.renditions() {
		fmt.Fprintf(&b, "#EXT-X-STREAM-INF:BANDWIDTH=%d,AVERAGE-BANDWIDTH=%d,RESOLUTION=%s,CODECS=\"avc1.64001f,mp4a.40.2\"\n%s/index.m3u8\n",
			r.Bandwidth, r.Bandwidth, r.Resolution, r.Name)
	}
	w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
	w.Write([]byte(b.String()))
}

func (o *Origin) serveMedia(w http.ResponseWriter, r *Rendition, skip bool) {
	first, last := o.available()
	if last < first {
		http.Error(w, "no segments yet", http.StatusNotFound)
		return
	}
	d := o.segDur()
	td := int((d + time.Second - 1) / time.Second)
	version := 6
	if o.Live && o.DeltaUpdates {
		version = 9 // EXT-X-SKIP
	}
	var b strings.Builder
	fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:%d\n#EXT-X-TARGETDURATION:%d\n#EXT-X-MEDIA-SEQUENCE:%d\n", version, td, first)
	if !o.Live {
		b.WriteString("#EXT-X-PLAYLIST-TYPE:VOD\n")
	}
	if o.FMP4 {
		b.WriteString("#EXT-X-MAP:URI=\"init.mp4\"\n")
	}
	var control []string
	if o.ll() {
		control = append(control, "CAN-BLOCK-RELOAD=YES", fmt.Sprintf("PART-HOLD-BACK=%.3f", 3*o.PartDuration.Seconds()))
	}
	if o.Live && o.DeltaUpdates {
		control = append(control, fmt.Sprintf("CAN-SKIP-UNTIL=%d", 6*td))
	}
	if len(control) > 0 {
		fmt.Fprintf(&b, "#EXT-X-SERVER-CONTROL:%s\n", strings.Join(control, ","))
	}
	if o.ll() {
		fmt.Fprintf(&b, "#EXT-X-PART-INF:PART-TARGET=%.3f\n", o.PartDuration.Seconds())
	}
	listFrom := first
	if skip && o.Live {
		// Segments starting more than the skip boundary (6 TD) before the
		// end of the playlist are skipped.
		keep := int((6*time.Duration(td)*time.Second + d - 1) / d)
		if n := last + 1 - first - keep; n > 0 {
			listFrom = first + n
			fmt.Fprintf(&b, "#EXT-X-SKIP:SKIPPED-SEGMENTS=%d\n", n)
		}
	}
	for n := listFrom; n <= last; n++ {
		if o.Live && n == listFrom {
			// The program date-time of the first segment listed: media
			// time on the origin's clock.
			fmt.Fprintf(&b, "#EXT-X-PROGRAM-DATE-TIME:%s\n", o.start.Add(time.Duration(n)*d).UTC().Format("2006-01-02T15:04:05.000Z07:00"))
		}
		if o.ll() && n >= last-1 {
			for p := range o.partsPerSegment() {
				fmt.Fprintf(&b, "#EXT-X-PART:DURATION=%.3f,URI=\"seg%d.%d%s\"%s\n", o.PartDuration.Seconds(), n, p, o.ext(), independent(p))
			}
		}
		fmt.Fprintf(&b, "#EXTINF:%.3f,\nseg%d%s\n", d.Seconds(), n, o.ext())
	}
	if o.ll() {
		next := o.completeParts(last + 1)
		for p := range next {
			fmt.Fprintf(&b, "#EXT-X-PART:DURATION=%.3f,URI=\"seg%d.%d%s\"%s\n", o.PartDuration.Seconds(), last+1, p, o.ext(), independent(p))
		}
		fmt.Fprintf(&b, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg%d.%d%s\"\n", last+1, next, o.ext())
	}
	if !o.Live {
		b.WriteString("#EXT-X-ENDLIST\n")
	}
	w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
	w.Write([]byte(b.String()))
}

func (o *Origin) ll() bool { return o.Live && o.PartDuration > 0 && o.PartDuration < o.segDur() }

func (o *Origin) partsPerSegment() int { return int(o.segDur() / o.PartDuration) }

func independent(p int) string {
	if p == 0 {
		return ",INDEPENDENT=YES"
	}
	return ""
}

// completeParts returns how many parts of segment n are complete now.
func (o *Origin) completeParts(n int) int {
	done := o.now().Sub(o.start.Add(time.Duration(n) * o.segDur()))
	if done < 0 {
		return 0
	}
	return min(o.partsPerSegment(), int(done/o.PartDuration))
}

func (o *Origin) partAvailable(n, p int) bool {
	return p < o.partsPerSegment() && o.completeParts(n) > p
}

// nextPart reports whether part p of segment n is the next part to be
// completed: the one an EXT-X-PRELOAD-HINT names.
func (o *Origin) nextPart(n, p int) bool {
	_, last := o.available()
	return n == last+1 && p == o.completeParts(n)
}

// wait blocks until ready returns true, for at most three segment
// durations of real time. It returns false after replying 503 on timeout,
// or without a reply when the client went away.
func (o *Origin) wait(w http.ResponseWriter, r *http.Request, ready func() bool) bool {
	deadline := time.Now().Add(3 * o.segDur())
	for !ready() {
		if time.Now().After(deadline) {
			http.Error(w, "timed out", http.StatusServiceUnavailable)
			return false
		}
		select {
		case <-r.Context().Done():
			return false
		case <-time.After(5 * time.Millisecond):
		}
	}
	return true
}

// block waits until the segment (or part) a blocking playlist request asks
// for exists. It returns false after replying with an error.
func (o *Origin) block(w http.ResponseWriter, r *http.Request) bool {
	q := r.URL.Query()
	msn, err := strconv.Atoi(q.Get("_HLS_msn"))
	part := -1
	if err == nil && q.Has("_HLS_part") {
		part, err = strconv.Atoi(q.Get("_HLS_part"))
	}
	if err != nil || msn < 0 || part < -1 || part >= o.partsPerSegment() {
		http.Error(w, "bad delivery directive", http.StatusBadRequest)
		return false
	}
	ready := func() bool {
		_, last := o.available()
		if part < 0 {
			return msn <= last
		}
		return msn <= last || o.partAvailable(msn, part)
	}
	if _, last := o.available(); msn > last+2 {
		http.Error(w, "msn too far ahead", http.StatusBadRequest)
		return false
	}
	return o.wait(w, r, ready)
}

// serveBytes writes size deterministic bytes derived from s.
func (o *Origin) serveBytes(w http.ResponseWriter, r *http.Request, ct string, size int, s uint64) {
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Length", strconv.Itoa(size))
	if r.Method == http.MethodHead {
		return
	}
	buf := make([]byte, 32<<10)
	for off := 0; off < size; {
		n := min(len(buf), size-off)
		fill(buf[:n], s, off)
		if _, err := w.Write(buf[:n]); err != nil {
			return
		}
		off += n
	}
}

// SegmentBytes returns the body the origin serves for segment n of the
// rendition named name, of the given size (see [Origin.SegmentSize]).
func SegmentBytes(name string, n, size int) []byte {
	b := make([]byte, size)
	fill(b, seed(name, n), 0)
	return b
}

func seed(name string, n int) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(name); i++ {
		h = (h ^ uint64(name[i])) * 1099511628211
	}
	return h ^ uint64(n+1)*0x9e3779b97f4a7c15
}

// fill writes the bytes at offsets off… of the stream for seed s: a
// TS-like sync byte every 188 bytes, a hash of (s, offset) elsewhere.
func fill(b []byte, s uint64, off int) {
	for i := range b {
		o := uint64(off + i)
		if o%188 == 0 {
			b[i] = 0x47
			continue
		}
		x := s ^ (o/8)*0xbf58476d1ce4e5b9
		x ^= x >> 31
		x *= 0x94d049bb133111eb
		b[i] = byte(x >> (8 * (o % 8)))
	}
}
