package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/onioncdn/onioncdn/internal/rfc9111"
)

// source is where a reply's body bytes come from.
type source interface {
	// reader returns a reader of n bytes from off (n < 0: to the end).
	// flush, if not nil, is called before the reader blocks.
	reader(ctx context.Context, off, n int64, flush func()) (io.Reader, error)
}

type objSource struct{ obj Object }

func (s objSource) reader(_ context.Context, off, n int64, _ func()) (io.Reader, error) {
	if n < 0 {
		n = s.obj.Size() - off
	}
	return s.obj.Reader(off, n)
}

type fillSource struct {
	f    *fill
	bufs *sync.Pool
}

func (s fillSource) reader(ctx context.Context, off, n int64, flush func()) (io.Reader, error) {
	end := int64(-1)
	if n >= 0 {
		end = off + n
	}
	return &fillReader{f: s.f, ctx: ctx, off: off, end: end, flush: flush, bufs: s.bufs}, nil
}

type passSource struct{ body io.Reader }

func (s passSource) reader(context.Context, int64, int64, func()) (io.Reader, error) {
	return s.body, nil
}

// reply is a response ready to be written, from the store, a fill or a
// pass-through upstream response.
type reply struct {
	fill   *fill // the fill the body comes from, if any
	status int
	header http.Header // owned by the reply
	inDst  bool        // header is the ResponseWriter's map already
	src    source      // nil: no body
	off, n int64       // the body bytes sent (n < 0: to the end, length unknown)
	ranges []rfc9111.Range
	size   int64     // full body size, -1 if unknown
	bound  string    // multipart boundary
	ctype  string    // Content-Type of the parts
	closer io.Closer // released by close: the object, fill or upstream body
	disp   Disposition
	stored bool
	meta   *meta // the stored head (nil for a pass-through response)
	ttl    time.Duration
	hasTTL bool
	fwd    int // upstream status, for Cache-Status fwd-status

	// strs backs the Age and Content-Length values of header, so that
	// they cost no allocation of their own.
	strs [2]string
}

func (rp *reply) close() {
	if rp.closer != nil {
		rp.closer.Close()
		rp.closer = nil
	}
}

// setAge sets the Age header of rp to age (RFC 9111 §5.1: whole seconds).
func (rp *reply) setAge(m *meta, age time.Duration) {
	rp.strs[0] = m.ageString(int64(max(age, m.minAge) / time.Second))
	rp.header["Age"] = rp.strs[0:1:1]
}

// setContentLength sets the Content-Length header of rp to n.
func (rp *reply) setContentLength(m *meta, n int64) {
	rp.strs[1] = m.lengthString(n)
	rp.header["Content-Length"] = rp.strs[1:2:2]
}

// releaser releases a fill reference (a reply's closer).
type releaser struct{ f *fill }

func (r releaser) Close() error { r.f.release(); return nil }

// replyHeader returns dst (the ResponseWriter's header map, in handler
// mode) or a new map, filled with a shallow copy of src. The values are
// shared: a reply only replaces them, never modifies them.
func replyHeader(dst, src http.Header) http.Header {
	if dst == nil {
		dst = make(http.Header, len(src)+4)
	}
	for k, v := range src {
		dst[k] = v
	}
	return dst
}

// storedReply serves a stored object; it takes over st's object. The
// header is built in dst if not nil.
func (c *Cache) storedReply(r *http.Request, st *stored, age time.Duration, disp Disposition, dst http.Header) *reply {
	obj, m := st.obj, st.meta
	st.obj = nil
	h := replyHeader(dst, m.header) // m is shared (see decode)
	if disp != Revalidated && disp != Collapsed {
		// Served without validation: not the fields of a qualified
		// no-cache (RFC 9111 §5.2.2.4).
		fields := m.noCacheFields
		if !m.derived {
			_, fields = rfc9111.NoCache(m.header, c.opts)
		}
		for _, f := range fields {
			delete(h, f)
		}
	}
	rp := &reply{
		status: m.status, header: h, inDst: dst != nil, src: objSource{obj}, size: obj.Size(),
		closer: obj, disp: disp, stored: true, meta: m,
	}
	rp.setAge(m, age)
	if c.CacheStatus { // ttl is only reported there
		lifetime := m.lifetime
		if !m.derived {
			lifetime, _ = rfc9111.FreshnessLifetime(m.entry(), c.opts)
		}
		rp.ttl, rp.hasTTL = lifetime-age, true
		if !m.notAfter.IsZero() {
			rp.ttl = min(rp.ttl, m.notAfter.Sub(c.now()))
		}
	}
	if disp == Revalidated {
		rp.fwd = http.StatusNotModified
	}
	c.shape(r, rp)
	return rp
}

// with adds fields (the private fields of the leader's response) to rp's
// header and returns rp.
func (rp *reply) with(fields http.Header) *reply {
	for k, v := range fields {
		rp.header[k] = v
	}
	return rp
}

// fillReply serves a fill in progress; f must have been acquired.
func (c *Cache) fillReply(r *http.Request, f *fill, disp Disposition, dst http.Header) *reply {
	h := replyHeader(dst, f.header) // f.header is read-only
	e := f.meta.entry()
	age := rfc9111.CurrentAge(e, c.now())
	rp := &reply{
		status: f.status, header: h, inDst: dst != nil, src: fillSource{f, &c.bufs}, size: f.size,
		closer: releaser{f}, disp: disp, stored: true, fwd: f.status, meta: f.meta, fill: f,
	}
	rp.setAge(f.meta, age)
	if c.CacheStatus {
		lifetime, _ := rfc9111.FreshnessLifetime(e, c.opts)
		rp.ttl, rp.hasTTL = lifetime-age, true
		if !f.meta.notAfter.IsZero() {
			rp.ttl = min(rp.ttl, f.meta.notAfter.Sub(c.now()))
		}
	}
	if disp == Collapsed {
		rp.fwd = 0
	}
	c.shape(r, rp)
	return rp
}

// passReply forwards an upstream response that is not stored.
func (c *Cache) passReply(r *http.Request, resp *http.Response, disp Disposition) *reply {
	rp := &reply{
		status: resp.StatusCode, header: resp.Header, src: passSource{resp.Body},
		off: 0, n: -1, size: resp.ContentLength, closer: resp.Body,
		disp: disp, fwd: resp.StatusCode,
	}
	if resp.ContentLength >= 0 {
		rp.n = resp.ContentLength
	}
	if !bodyAllowed(rp.status) || r.Method == http.MethodHead {
		rp.src = nil
	}
	return rp
}

func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// shape applies the client's conditionals and Range to a stored (or
// filling) response and sets the framing headers. Other fields are sent as
// stored, a Content-Range on a full response included (RFC 9111 §3.1);
// the responses made here replace it (206, 416) or drop it (304, and
// multipart/byteranges, whose top level never has one: RFC 9110 §14.6).
func (c *Cache) shape(r *http.Request, rp *reply) {
	h := rp.header
	rp.off, rp.n = 0, rp.size
	delete(h, "Content-Length")
	if rp.status == http.StatusOK {
		if rfc9111.NotModified(r, h) {
			rp.status = http.StatusNotModified
			rp.src = nil
			delete(h, "Content-Range")
			return
		}
		if rp.size >= 0 {
			if rh := r.Header.Get("Range"); rh != "" && r.Method == http.MethodGet && rfc9111.IfRangeMatches(r, h) {
				ranges, err := rfc9111.ParseRange(rh, rp.size)
				switch {
				case errors.Is(err, rfc9111.ErrUnsatisfiable):
					rp.status = http.StatusRequestedRangeNotSatisfiable
					h.Set("Content-Range", rfc9111.ContentRangeUnsatisfiable(rp.size))
					h.Set("Content-Length", "0")
					rp.src = nil
					return
				case err == nil && len(ranges) == 1:
					rp.status = http.StatusPartialContent
					rp.off, rp.n = ranges[0].Start, ranges[0].Length
					h.Set("Content-Range", rfc9111.ContentRange(ranges[0], rp.size))
				case err == nil && len(ranges) > 1:
					rp.status = http.StatusPartialContent
					rp.ranges = ranges
					delete(h, "Content-Range")
					rp.ctype = h.Get("Content-Type")
					rp.bound = multipart.NewWriter(io.Discard).Boundary()
					h.Set("Content-Type", "multipart/byteranges; boundary="+rp.bound)
					rp.n = -1
				}
			}
		}
	}
	if !bodyAllowed(rp.status) {
		rp.src = nil
		return
	}
	if rp.n >= 0 {
		rp.setContentLength(rp.meta, rp.n)
	}
	if r.Method == http.MethodHead {
		rp.src = nil
	}
}

// cacheStatus returns this cache's RFC 9211 Cache-Status member for rp.
func (c *Cache) cacheStatus(rp *reply) string {
	var b strings.Builder
	b.WriteString(c.name())
	switch rp.disp {
	case Hit, HitStale:
		b.WriteString("; hit")
	case Revalidated, FwdStale:
		b.WriteString("; fwd=stale")
	case Collapsed:
		b.WriteString("; fwd=uri-miss; collapsed")
	case FwdVary:
		b.WriteString("; fwd=vary-miss")
	case FwdRequest:
		b.WriteString("; fwd=request")
	case FwdMethod:
		b.WriteString("; fwd=method")
	case OnlyIfCache:
		b.WriteString("; fwd=miss; detail=only-if-cached")
	case Shed:
		b.WriteString("; fwd=miss; detail=shed")
	default:
		b.WriteString("; fwd=uri-miss")
	}
	if rp.fwd != 0 {
		b.WriteString("; fwd-status=")
		b.WriteString(strconv.Itoa(rp.fwd))
	}
	if rp.hasTTL {
		b.WriteString("; ttl=")
		b.WriteString(strconv.FormatInt(int64(rp.ttl/time.Second), 10))
	}
	if rp.stored && rp.disp != Hit && rp.disp != HitStale && rp.disp != Collapsed && rp.disp != Revalidated {
		b.WriteString("; stored")
	}
	return b.String()
}

func (c *Cache) finishHeader(h http.Header, rp *reply) {
	if !c.ForwardTags {
		stripTags(h)
	}
	if c.CacheStatus {
		h["Cache-Status"] = append(slices.Clip(h["Cache-Status"]), c.cacheStatus(rp))
	} else {
		delete(h, "Cache-Status")
	}
}

// writeReply writes rp to w and returns a non-nil error if the response
// could not be completed, in which case the caller must abort it. start
// is when the request was received (for rec's Timing.FirstByte).
func (c *Cache) writeReply(w http.ResponseWriter, r *http.Request, rp *reply, rec *Record, start time.Time) error {
	h := w.Header()
	if !rp.inDst {
		for k, v := range rp.header {
			h[k] = v
		}
	}
	if _, ok := rp.header["Content-Type"]; !ok && rp.src != nil {
		h["Content-Type"] = nil // never sniff: send what upstream sent
	}
	c.finishHeader(h, rp)
	rec.Status = rp.status
	w.WriteHeader(rp.status)
	if rp.src == nil {
		return nil
	}
	var flush func()
	dst := io.Writer(w)
	var fw *firstByteWriter
	if _, stored := rp.src.(objSource); !stored {
		// Bytes arriving from upstream go out as they come.
		rc := http.NewResponseController(w)
		flush = func() { rc.Flush() }
		fw = &firstByteWriter{w: w, c: c}
		dst = fw
		defer func() {
			if !fw.at.IsZero() {
				rec.Timing.FirstByte = fw.at.Sub(start)
			}
		}()
	} else {
		rec.Timing.FirstByte = c.now().Sub(start) // stored: every byte is there
	}
	if rp.ranges != nil {
		cw := &countWriter{w: dst}
		err := c.writeMultipart(r.Context(), cw, rp, flush)
		rec.Bytes = cw.n
		if err != nil {
			rec.Err = err
		}
		return err
	}
	var err error
	var n int64
	rd, err := rp.src.reader(r.Context(), rp.off, rp.n, flush)
	if err == nil {
		// A stored body is copied with io.Copy, so that net/http sends a
		// body from a file (an *io.LimitedReader over an *os.File, see
		// Object.Reader) with sendfile(2). It is never flushed midway: a
		// server with package heldwrite sends it in one write or corked.
		switch _, isPass := rp.src.(passSource); {
		case isPass && rp.n < 0:
			n, err = copyFlushing(dst, rd, flush, c)
		case isPass:
			bp := c.getBuf() // dst has no ReadFrom: not io.Copy's own buffer
			n, err = io.CopyBuffer(dst, rd, *bp)
			c.putBuf(bp)
		default:
			n, err = io.Copy(dst, rd)
		}
	}
	rec.Bytes = n
	if err == nil && rp.n >= 0 && n != rp.n {
		err = fmt.Errorf("cache: body: wrote %d of %d bytes", n, rp.n)
	}
	if err != nil {
		rec.Err = err
	}
	return err
}

// copyFlushing copies a streamed body of unknown length, flushing after
// every read so that clients see bytes as upstream sends them.
func copyFlushing(w io.Writer, r io.Reader, flush func(), c *Cache) (int64, error) {
	bp := c.getBuf()
	defer c.putBuf(bp)
	return copyBuffer(w, r, *bp, flush)
}

// firstByteWriter notes when the first body byte of a response whose
// bytes arrive from upstream is written (Timing.FirstByte). It only
// writes: a stored body, which net/http may send with sendfile, never
// goes through it.
type firstByteWriter struct {
	w  io.Writer
	c  *Cache
	at time.Time // when the first byte was written
}

func (fw *firstByteWriter) Write(p []byte) (int, error) {
	if fw.at.IsZero() && len(p) > 0 {
		fw.at = fw.c.now()
	}
	return fw.w.Write(p)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (cw *countWriter) Write(p []byte) (int, error) {
	n, err := cw.w.Write(p)
	cw.n += int64(n)
	return n, err
}

// writeMultipart writes rp's ranges as multipart/byteranges.
func (c *Cache) writeMultipart(ctx context.Context, w io.Writer, rp *reply, flush func()) error {
	mw := multipart.NewWriter(w)
	if err := mw.SetBoundary(rp.bound); err != nil {
		return err
	}
	for _, rg := range rp.ranges {
		ph := textproto.MIMEHeader{}
		if rp.ctype != "" {
			ph.Set("Content-Type", rp.ctype)
		}
		ph.Set("Content-Range", rfc9111.ContentRange(rg, rp.size))
		pw, err := mw.CreatePart(ph)
		if err != nil {
			return err
		}
		rd, err := rp.src.reader(ctx, rg.Start, rg.Length, flush)
		if err != nil {
			return err
		}
		n, err := io.Copy(pw, rd)
		if err == nil && n != rg.Length {
			err = fmt.Errorf("cache: body: range wrote %d of %d bytes", n, rg.Length)
		}
		if err != nil {
			return err
		}
	}
	return mw.Close()
}

// replyResponse turns rp into the response of RoundTrip.
func (c *Cache) replyResponse(r *http.Request, rp *reply, rec *Record, start time.Time) *http.Response {
	h := rp.header
	c.finishHeader(h, rp)
	rec.Status = rp.status
	resp := &http.Response{
		Status:     strconv.Itoa(rp.status) + " " + http.StatusText(rp.status),
		StatusCode: rp.status,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        h,
		Request:       r,
		ContentLength: -1,
	}
	if rp.src == nil {
		if r.Method == http.MethodHead || !bodyAllowed(rp.status) {
			if cl, err := strconv.ParseInt(h.Get("Content-Length"), 10, 64); err == nil {
				resp.ContentLength = cl
			}
		}
		if !bodyAllowed(rp.status) || rp.status == http.StatusRequestedRangeNotSatisfiable {
			resp.ContentLength = 0
		}
		resp.Body = http.NoBody
		rp.close()
		c.record(r, rec, start)
		return resp
	}
	body := &replyBody{c: c, r: r, rp: rp, rec: rec, start: start, want: rp.n}
	if rp.ranges != nil {
		pr, pw := io.Pipe()
		go func() {
			pw.CloseWithError(c.writeMultipart(r.Context(), pw, rp, nil))
		}()
		body.rd = pr
		body.closer = pr
	} else {
		rd, err := rp.src.reader(r.Context(), rp.off, rp.n, nil)
		if err != nil {
			rd = errReader{err}
		}
		body.rd = rd
		resp.ContentLength = rp.n
	}
	resp.Body = body
	return resp
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// replyBody is a RoundTrip response body; it releases the reply and
// records the request at EOF, on error or on Close. A body shorter than
// announced is an error, never an EOF.
type replyBody struct {
	c      *Cache
	r      *http.Request
	rp     *reply
	rec    *Record
	start  time.Time
	rd     io.Reader
	closer io.Closer
	want   int64
	n      int64
	done   bool
	err    error
}

func (b *replyBody) Read(p []byte) (int, error) {
	if b.done {
		if b.err != nil {
			return 0, b.err
		}
		return 0, io.EOF
	}
	n, err := b.rd.Read(p)
	if n > 0 && b.n == 0 {
		b.rec.Timing.FirstByte = b.c.now().Sub(b.start)
	}
	b.n += int64(n)
	if err == io.EOF && b.want >= 0 && b.n != b.want {
		err = fmt.Errorf("cache: body: %d of %d bytes: %w", b.n, b.want, io.ErrUnexpectedEOF)
	}
	if err != nil {
		if err != io.EOF {
			b.err = err
		}
		b.finish()
	}
	return n, err
}

func (b *replyBody) finish() {
	if b.done {
		return
	}
	b.done = true
	if b.closer != nil {
		b.closer.Close()
	}
	b.rp.close()
	if b.rp.fill != nil {
		b.rp.fill.timing(b.rec, b.start)
	}
	b.rec.Bytes = b.n
	b.rec.Err = b.err
	b.c.record(b.r, b.rec, b.start)
}

func (b *replyBody) Close() error {
	b.finish()
	return nil
}
