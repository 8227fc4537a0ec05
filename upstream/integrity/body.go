package integrity

import (
	"bytes"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"sync"
)

// inlineBytes is how much of a body the Transport reads and verifies
// inside RoundTrip, before it returns the response: a body (or first
// record) this small costs no latency worth mentioning, and a forged one
// is then refused before any header goes out (a cache answers 502 rather
// than abort a started response). Zero-length bodies are always
// verified there.
const inlineBytes = 64 << 10

// errBodyClosed is returned by Read after Close.
var errBodyClosed = errors.New("integrity: read on closed body")

// spool holds the bytes of one unit of a body (a record, or a whole body
// without record digests) until they are verified: in memory up to limit
// bytes, the rest in an unlinked temporary file.
type spool struct {
	limit   int // bytes held in memory at most
	dir     string
	mem     []byte
	file    *os.File
	scratch []byte // buffer for bytes on their way to the file
	n       int64  // bytes held
	out     int64  // bytes of them released
}

func (s *spool) reset() { s.mem, s.n, s.out = s.mem[:0], 0, 0 }

// readFrom appends bytes read from src until want bytes are held, hashing
// them into each h. It reports whether src ended (io.EOF) first.
func (s *spool) readFrom(src io.Reader, want int64, hs ...hash.Hash) (eof bool, err error) {
	for s.n < want {
		var buf []byte
		inMem := s.n == int64(len(s.mem)) && len(s.mem) < s.limit // nothing of this unit in the file yet
		if inMem {
			if len(s.mem) == cap(s.mem) {
				c := min(int64(s.limit), max(2*int64(cap(s.mem)), 32<<10), want)
				s.mem = append(make([]byte, 0, c), s.mem...)
			}
			buf = s.mem[len(s.mem):cap(s.mem)]
		} else {
			if s.scratch == nil {
				s.scratch = make([]byte, 32<<10)
			}
			buf = s.scratch
		}
		if rest := want - s.n; int64(len(buf)) > rest {
			buf = buf[:rest]
		}
		k, rerr := src.Read(buf)
		if k > 0 {
			for _, h := range hs {
				h.Write(buf[:k])
			}
			if inMem {
				s.mem = s.mem[:len(s.mem)+k]
			} else if err := s.writeFile(buf[:k]); err != nil {
				return false, err
			}
			s.n += int64(k)
		}
		if rerr == io.EOF {
			return true, nil
		}
		if rerr != nil {
			return false, rerr
		}
	}
	return false, nil
}

func (s *spool) writeFile(p []byte) error {
	if s.file == nil {
		f, err := os.CreateTemp(s.dir, "onioncdn-verify-*")
		if err != nil {
			return fmt.Errorf("integrity: spooling body: %w", err)
		}
		os.Remove(f.Name()) // unlinked: the file disappears when closed
		s.file = f
	}
	if _, err := s.file.WriteAt(p, s.n-int64(len(s.mem))); err != nil {
		return fmt.Errorf("integrity: spooling body: %w", err)
	}
	return nil
}

// read releases held bytes into p.
func (s *spool) read(p []byte) (int, error) {
	if m := int64(len(s.mem)); s.out < m {
		k := copy(p, s.mem[s.out:])
		s.out += int64(k)
		return k, nil
	}
	p = p[:min(int64(len(p)), s.n-s.out)]
	k, err := s.file.ReadAt(p, s.out-int64(len(s.mem)))
	s.out += int64(k)
	if k == len(p) {
		err = nil
	}
	if err != nil {
		return k, fmt.Errorf("integrity: reading spooled body: %w", err)
	}
	return k, nil
}

func (s *spool) release() {
	if s.file != nil {
		s.file.Close()
		s.file = nil
	}
	s.mem, s.scratch = nil, nil
}

// verifiedBody is the body of a response whose header verified. It
// releases only verified bytes: with a Content-Record-Digest, each record
// once its hash matches; without one, the whole body once its
// Content-Digest matches (held in a spool meanwhile). The last bytes are
// released, and io.EOF returned, only once the body has ended where the
// signature says. Any failure is sticky: every later Read returns the
// same error, and held bytes are dropped.
//
// With records, the whole-body Content-Digest is not computed again: the
// signed list of record hashes and the signed length determine the body
// as surely as one hash of it does (SHA-256 either way), at half the
// hashing cost.
type verifiedBody struct {
	t     *Transport
	req   *http.Request
	src   io.ReadCloser
	in    io.Reader     // src, read ahead past record boundaries (fewer, larger reads)
	whole hash.Hash     // Content-Digest of the whole body (without records)
	want  []byte        // its expected value
	rd    *recordDigest // nil: the whole body is one unit
	rec   hash.Hash     // hash of the current record
	clen  int64         // Content-Length, or -1
	max   int64         // largest unit held (Transport.MaxHold)

	end  int64 // with records: index of the record after the last one to read
	span int64 // with records: bytes in the records to read (the signed length, or a range's)

	mu      sync.Mutex
	hold    spool
	next    int64 // index of the next record to read
	read    int64 // bytes read from src
	partial bool  // hold has the start of a whole-body unit (see inline)
	done    bool  // verified to the end: io.EOF once hold is drained
	err     error // sticky failure
	closed  bool
}

// CompleteAtEOF reports true: Read returns io.EOF only once the body is
// verified complete. A cache may then store a response whose length was
// unknown (see cache.CompleteBody).
func (b *verifiedBody) CompleteAtEOF() bool { return true }

func (b *verifiedBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		switch {
		case b.closed:
			return 0, errBodyClosed
		case b.hold.out < b.hold.n && !b.partial:
			n, err := b.hold.read(p)
			if err != nil {
				b.hold.reset()
				b.err = err
			}
			return n, err
		case b.done:
			return 0, io.EOF
		case b.err != nil:
			return 0, b.err
		case len(p) == 0:
			return 0, nil
		}
		b.advance(-1)
	}
}

// Close closes the upstream body (unblocking a Read in progress) and drops
// what is held.
func (b *verifiedBody) Close() error {
	err := b.src.Close()
	b.mu.Lock()
	b.closed = true
	b.hold.release()
	b.mu.Unlock()
	return err
}

// inline verifies the start of the body before RoundTrip returns: all of
// it if it is at most inlineBytes long, else its first record. It returns
// the failure, if any.
func (b *verifiedBody) inline() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.rd != nil && b.span <= inlineBytes:
		b.advance(-1)
		for !b.done && b.err == nil {
			b.partial = true // append the next record to the held ones
			b.advance(-1)
		}
	case b.rd != nil:
		if b.rd.size(b.next) <= inlineBytes {
			b.advance(-1)
		}
	default:
		b.advance(inlineBytes + 1)
	}
	return b.err
}

// advance reads and verifies the next unit of the body. With stop > 0 (a
// whole-body unit only), it returns once stop bytes are held and leaves
// them held, unreleased, for the next call to continue. If b.partial is
// set, what is held stays held and the unit is appended to it.
func (b *verifiedBody) advance(stop int64) {
	if !b.partial {
		b.hold.reset()
	}
	b.partial = false
	if err := b.unit(stop); err != nil {
		b.hold.reset()
		b.partial = false
		b.err = err
	}
}

func (b *verifiedBody) unit(stop int64) error {
	if b.rd == nil {
		want := b.max + 1
		if stop > 0 {
			want = min(want, stop)
		}
		n0 := b.hold.n
		eof, err := b.hold.readFrom(b.in, want, b.whole)
		b.read += b.hold.n - n0
		if err != nil {
			return b.srcError(err)
		}
		if !eof && b.hold.n == want && want == stop {
			b.partial = true
			return nil
		}
		if !eof {
			return b.t.reject(b.req, kindTooLarge, fmt.Sprintf("body without record digests larger than %d bytes (MaxHold): cannot hold it until verified", b.max))
		}
		return b.finish(true)
	}
	i := b.next
	if i == b.end { // a body of length 0
		return b.finish(false)
	}
	size := b.rd.size(i)
	b.rec.Reset()
	start := b.hold.n
	eof, err := b.hold.readFrom(b.in, start+size, b.rec)
	b.read += b.hold.n - start
	if err != nil {
		return b.srcError(err)
	}
	if b.hold.n-start < size {
		return b.t.reject(b.req, kindLength, fmt.Sprintf("body ended at %d bytes, signed length %d", b.read, b.span))
	}
	if !bytes.Equal(b.rec.Sum(nil), b.rd.sum(i)) {
		return b.t.reject(b.req, kindDigest, fmt.Sprintf("content digest mismatch in record %d (bytes %d-%d)", i, i*b.rd.rs, i*b.rd.rs+size-1))
	}
	b.next++
	if b.next < b.end {
		return nil
	}
	return b.finish(eof)
}

// finish takes the verdict on the whole body once all of it was read
// (eof: src already reported its end).
func (b *verifiedBody) finish(eof bool) error {
	if !eof {
		var probe [1]byte
		n, err := io.ReadFull(b.in, probe[:])
		switch {
		case n > 0:
			return b.t.reject(b.req, kindLength, fmt.Sprintf("body longer than its signed length %d", b.read))
		case err != io.EOF:
			return b.srcError(err)
		}
	}
	if b.clen >= 0 && b.read != b.clen {
		return b.t.reject(b.req, kindLength, fmt.Sprintf("body of %d bytes, Content-Length %d", b.read, b.clen))
	}
	if b.rd == nil && !bytes.Equal(b.whole.Sum(nil), b.want) {
		return b.t.reject(b.req, kindDigest, "content digest mismatch")
	}
	b.done = true
	b.t.stats[kindVerified].Add(1)
	return nil
}

// srcError turns an error reading the upstream body into the body's
// error. A body cut short of its framing (io.ErrUnexpectedEOF) is a
// truncation, rejected like any other; other errors (reset, timeout,
// cancellation) are the upstream's failure, passed on.
func (b *verifiedBody) srcError(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return b.t.reject(b.req, kindLength, fmt.Sprintf("body truncated after %d bytes", b.read))
	}
	return fmt.Errorf("integrity: reading upstream body: %w", err)
}
