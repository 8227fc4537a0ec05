package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"runtime"
	"sync"
	"time"
)

// errFillAborted is wrapped by the error a reader of a fill gets when the
// fill failed before the body was complete.
var errFillAborted = errors.New("cache: upstream fill aborted")

// A fill is one upstream response being written to the store while any
// number of clients read it. The leader's body copy (fill.run) writes through
// the Store's Writer and advances n; readers read [0, n) with Writer.ReadAt
// and wait on wake for more. Readers never block the writer and the writer
// never buffers for them: memory per reader is one copy buffer.
type fill struct {
	key     string      // store key the object is written under
	status  int         // upstream status
	header  http.Header // cleaned upstream header, as sent to clients; read-only
	meta    *meta       // what is stored (header shared with header)
	size    int64       // Content-Length, or -1 if unknown
	varyKey string      // the variant this fill stores ("" if the response has no Vary)
	w       Writer
	up      upstreamTiming // when the upstream exchange happened; read-only
	gen     uint64         // purges applied when its request was sent (see Cache.commitFill)

	mu     sync.Mutex
	n      int64         // bytes written so far
	done   bool          // body complete (n is final)
	err    error         // set when the fill failed; readers abort
	wake   chan struct{} // closed and replaced when n, done or err change
	refs   int           // readers plus the writer goroutine
	closed bool          // w closed
	first  time.Time     // first body byte received
	last   time.Time     // body complete (or failed)
}

// upstreamTiming is when one upstream exchange happened (see Timing).
type upstreamTiming struct {
	start, headers time.Time
	connWait       time.Duration
	connReused     bool
}

func newFill(key string, status int, h http.Header, m *meta, size int64, varyKey string, w Writer) *fill {
	return &fill{
		key: key, status: status, header: h, meta: m, size: size, varyKey: varyKey, w: w,
		// One reference for the writer goroutine, one for the request that
		// fetched the response (released by that request's reply).
		wake: make(chan struct{}), refs: 2,
	}
}

// acquire adds a reader reference. It reports false if the fill already
// failed, in which case the caller must not read it.
func (f *fill) acquire() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil || f.closed {
		return false
	}
	f.refs++
	return true
}

// release drops a reference; the last one closes the Writer.
func (f *fill) release() {
	f.mu.Lock()
	f.refs--
	last := f.refs == 0 && !f.closed
	if last {
		f.closed = true
	}
	f.mu.Unlock()
	if last {
		f.w.Close()
	}
}

func (f *fill) notifyLocked() {
	close(f.wake)
	f.wake = make(chan struct{})
}

// advance makes k more bytes, received at now, readable.
func (f *fill) advance(k int, now time.Time) {
	f.mu.Lock()
	if f.n == 0 {
		f.first = now
	}
	f.n += int64(k)
	if f.size >= 0 && f.n == f.size && !now.IsZero() {
		f.last = now // the last byte is in: readers may finish before finish runs
	}
	f.notifyLocked()
	f.mu.Unlock()
	// The readers just woken wait on this goroutine's P until it
	// blocks: let them send the bytes now rather than after the rest of
	// the fill (the next upstream read, the commit).
	runtime.Gosched()
}

// finish marks the fill complete (err == nil) or failed, at now.
func (f *fill) finish(err error, now time.Time) {
	f.mu.Lock()
	if f.last.IsZero() || err != nil {
		f.last = now
	}
	if err != nil {
		f.err = fmt.Errorf("%w: %w", errFillAborted, err)
	} else {
		f.done = true
	}
	f.notifyLocked()
	f.mu.Unlock()
}

// wait blocks until the fill is complete or failed, or ctx is done.
func (f *fill) wait(ctx context.Context) error {
	for {
		f.mu.Lock()
		done, err, wake := f.done, f.err, f.wake
		f.mu.Unlock()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// fillReader reads [off, end) of a fill's body as it arrives (end < 0: to
// the end of the body). It returns an error wrapping errFillAborted if the
// fill fails, and ctx.Err() if its reader's context ends while waiting.
type fillReader struct {
	f     *fill
	ctx   context.Context
	off   int64
	end   int64
	flush func()     // called before blocking, so buffered bytes reach the client
	bufs  *sync.Pool // of *[]byte, for WriteTo
}

// WriteTo copies the rest of the range to w through a pooled buffer, so
// that io.Copy (net/http, net.TCPConn) allocates none per response.
func (r *fillReader) WriteTo(w io.Writer) (int64, error) {
	bp := r.bufs.Get().(*[]byte)
	defer r.bufs.Put(bp)
	return copyBuffer(w, r, *bp, nil)
}

// copyBuffer copies r to w through buf until EOF, calling after (if not
// nil) after every write: the one copy loop of the package (io.CopyBuffer
// would defer to r's WriteTo or w's ReadFrom, which is what callers of
// this avoid or are).
func copyBuffer(w io.Writer, r io.Reader, buf []byte, after func()) (int64, error) {
	var n int64
	for {
		k, err := r.Read(buf)
		if k > 0 {
			m, werr := w.Write(buf[:k])
			n += int64(m)
			if werr != nil {
				return n, werr
			}
			if after != nil {
				after()
			}
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func (r *fillReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if r.end >= 0 && r.off >= r.end {
			return 0, io.EOF
		}
		f := r.f
		f.mu.Lock()
		n, done, err, wake := f.n, f.done, f.err, f.wake
		f.mu.Unlock()
		if err != nil {
			return 0, err
		}
		if r.off < n {
			avail := n - r.off
			if r.end >= 0 && r.end-r.off < avail {
				avail = r.end - r.off
			}
			if int64(len(p)) > avail {
				p = p[:avail]
			}
			k, rerr := f.w.ReadAt(p, r.off)
			r.off += int64(k)
			if k > 0 {
				return k, nil
			}
			if rerr == nil || rerr == io.EOF {
				rerr = io.ErrUnexpectedEOF
			}
			return 0, fmt.Errorf("cache: reading fill: %w", rerr)
		}
		if done {
			if r.end >= 0 && r.off < r.end {
				return 0, fmt.Errorf("%w: body shorter than expected", errFillAborted)
			}
			return 0, io.EOF
		}
		if r.flush != nil {
			r.flush()
		}
		select {
		case <-wake:
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
	}
}

// timing fills in rec's upstream timing from f, relative to start, the
// moment rec's request was received.
func (f *fill) timing(rec *Record, start time.Time) {
	t := &rec.Timing
	t.Joined = rec.Disposition == Collapsed
	t.ConnReused, t.ConnWait = f.up.connReused, f.up.connWait
	t.UpstreamStart = f.up.start.Sub(start)
	t.UpstreamHeaders = f.up.headers.Sub(start)
	f.mu.Lock()
	first, last, done, n := f.first, f.last, f.done, f.n
	complete := done || (f.size >= 0 && n == f.size && !last.IsZero() && f.err == nil)
	f.mu.Unlock()
	if !first.IsZero() {
		t.UpstreamFirstByte = first.Sub(start)
	}
	if complete {
		t.UpstreamLastByte, t.UpstreamBytes = last.Sub(start), n
	}
}

// connTrace records how long an upstream request waited for its
// connection, from the httptrace.ClientTrace GetConn and GotConn events
// of the Transport (see Timing.ConnWait).
type connTrace struct {
	mu     sync.Mutex
	asked  time.Time
	wait   time.Duration
	reused bool
}

// context returns ctx with a ClientTrace that records into t (after any
// trace ctx already has).
func (t *connTrace) context(ctx context.Context, c *Cache) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GetConn: func(string) {
			now := c.now()
			t.mu.Lock()
			t.asked = now
			t.mu.Unlock()
		},
		GotConn: func(info httptrace.GotConnInfo) {
			now := c.now()
			t.mu.Lock()
			if !t.asked.IsZero() {
				t.wait = now.Sub(t.asked)
			}
			t.reused = info.Reused || info.WasIdle
			t.mu.Unlock()
		},
	})
}

// timing returns the upstream timing of an exchange sent at start whose
// response header arrived at headers.
func (t *connTrace) timing(start, headers time.Time) upstreamTiming {
	t.mu.Lock()
	defer t.mu.Unlock()
	return upstreamTiming{start: start, headers: headers, connWait: t.wait, connReused: t.reused}
}
