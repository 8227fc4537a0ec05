package diskstore

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/onioncdn/onioncdn/cache"
)

// object is an open entry file. Its *os.File stays valid if the entry is
// deleted, replaced or evicted: the inode lives until the last close.
type object struct {
	f      *os.File
	meta   []byte
	tags   []string
	h      header
	pos    int64 // offset of f if known (set by load), else -1; guarded by the Reader contract
	closed atomic.Bool
}

func (o *object) Meta() []byte   { return o.meta }
func (o *object) Tags() []string { return o.tags }
func (o *object) Size() int64    { return o.h.bodyLen }

func (o *object) ReadAt(p []byte, off int64) (int, error) {
	if o.closed.Load() {
		return 0, errClosed()
	}
	return readBody(o.f, p, off, o.h.bodyOff(), o.h.bodyLen)
}

// readBody reads body bytes [off, off+len(p)) of f, where the body starts at
// base and avail bytes of it exist.
func readBody(f *os.File, p []byte, off, base, avail int64) (int, error) {
	if off < 0 {
		return 0, errors.New("diskstore: negative offset")
	}
	if off >= avail {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	short := false
	if int64(len(p)) > avail-off {
		p = p[:avail-off]
		short = true
	}
	n, err := f.ReadAt(p, base+off)
	switch {
	case err == io.EOF && n == len(p):
		err = nil
	case err == io.EOF:
		// The file is shorter than validated: someone truncated it.
		err = fmt.Errorf("diskstore: read: %w", io.ErrUnexpectedEOF)
	case err != nil:
		err = fmt.Errorf("diskstore: read: %w", err)
	}
	if err == nil && short {
		err = io.EOF
	}
	return n, err
}

// Reader returns an *io.LimitedReader over the object's *os.File, seeked to
// the body offset off, so that net/http can send it with sendfile(2). The
// readers of one object share its file offset: a call to Reader invalidates
// readers returned before it.
func (o *object) Reader(off, n int64) (io.Reader, error) {
	if o.closed.Load() {
		return nil, errClosed()
	}
	size := o.h.bodyLen
	if off < 0 || n < 0 || off > size || n > size-off {
		return nil, fmt.Errorf("diskstore: range %d+%d outside body of %d bytes", off, n, size)
	}
	// A fresh object's file is at the body offset already (see load):
	// the common full-body read needs no lseek(2).
	if start := o.h.bodyOff() + off; o.pos != start {
		if _, err := o.f.Seek(start, io.SeekStart); err != nil {
			return nil, fmt.Errorf("diskstore: reader: %w", err)
		}
	}
	o.pos = -1 // the reader moves it
	return &io.LimitedReader{R: o.f, N: n}, nil
}

func (o *object) Close() error {
	if o.closed.Swap(true) {
		return errClosed()
	}
	return o.f.Close()
}

// Writer states.
const (
	wOpen int32 = iota
	wCommitted
	wAborted
)

var errWriterDone = errors.New("diskstore: writer already committed or aborted")

// memWriteMax is the size up to which an entry (header, meta and body) is
// written in memory first: the fill of a small object then makes no
// system call until Commit, which writes the whole file at once.
const memWriteMax = 64 << 10

// writer writes a new entry: in memory first (see memWriteMax), then to a
// temporary file once it grows past that (and always at Commit, which
// writes the header, syncs and renames the file into place). ReadAt reads
// the memory buffer, or uses pread(2) on the file, so followers see bytes
// as soon as Write returns.
type writer struct {
	s    *Store
	sum  [32]byte
	hash string
	off  int64 // body offset in the file (and in buf)

	// buf holds the entry (a zero header, the meta region, the body
	// written so far) while it is written in memory. The slice stored
	// always holds at least the first written bytes of body: Write
	// stores a longer slice before raising written. Bytes within a
	// slice once stored are never written again (appends go past its
	// length, or to a new array), so readers may keep reading it.
	buf      atomic.Pointer[[]byte]
	fileMode atomic.Bool // the entry is in f: read it from there

	mu        sync.Mutex // serialises Write, Commit, Abort, Close
	f         *os.File
	tags      []string
	hdr       header
	err       error // sticky write error
	reserved  int64 // guarded by s.mu
	installed bool
	released  bool

	written atomic.Int64
	state   atomic.Int32
	closed  atomic.Bool
}

func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed.Load() || w.state.Load() != wOpen {
		return 0, errWriterDone
	}
	if w.err != nil {
		return 0, w.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	s := w.s
	s.mu.Lock()
	ok := s.reserveLocked(int64(len(p)), nil)
	if ok {
		w.reserved += int64(len(p))
	}
	s.mu.Unlock()
	if !ok {
		w.err = fmt.Errorf("diskstore: write: %d more bytes do not fit in MaxBytes %d", len(p), s.maxBytes)
		return 0, w.err
	}
	if !w.fileMode.Load() {
		if b := *w.buf.Load(); len(b)+len(p) <= memWriteMax {
			if len(b)+len(p) > cap(b) {
				nb := make([]byte, len(b), min(max(2*cap(b), len(b)+len(p)), memWriteMax))
				copy(nb, b)
				b = nb
			}
			b = append(b, p...)
			w.buf.Store(&b)
			w.hdr.bodyCRC = crc32.Update(w.hdr.bodyCRC, castagnoli, p)
			w.written.Add(int64(len(p)))
			return len(p), nil
		}
		if err := w.toFile(); err != nil {
			w.err = s.writeFailed("write", w.hash, err)
			return 0, w.err
		}
	}
	n, err := w.f.Write(p)
	w.hdr.bodyCRC = crc32.Update(w.hdr.bodyCRC, castagnoli, p[:n])
	w.written.Add(int64(n))
	if err != nil {
		w.err = s.writeFailed("write", w.hash, err)
		return n, w.err
	}
	return n, nil
}

// toFile moves the entry written in memory to a temporary file (w.mu
// held). Readers switch to the file before the body grows past the buffer.
func (w *writer) toFile() error {
	f, err := w.s.spares.take()
	if err != nil {
		return err
	}
	w.f = f
	if _, err := f.Write(*w.buf.Load()); err != nil {
		return err
	}
	w.fileMode.Store(true)
	return nil
}

func (w *writer) ReadAt(p []byte, off int64) (int, error) {
	if w.closed.Load() {
		return 0, errClosed()
	}
	if w.state.Load() == wAborted {
		return 0, errors.New("diskstore: writer aborted")
	}
	for !w.fileMode.Load() {
		n := w.written.Load()
		b := (*w.buf.Load())[w.off:]
		if n > int64(len(b)) {
			continue // moved to the file meanwhile: fileMode is set
		}
		return readMem(b[:n], p, off)
	}
	return readBody(w.f, p, off, w.off, w.written.Load())
}

// readMem is readBody for a body in memory.
func readMem(body, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("diskstore: negative offset")
	}
	if off >= int64(len(body)) {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	n := copy(p, body[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (w *writer) Commit(ctx context.Context) error {
	// Commit makes system calls that hold this goroutine's P; a reader
	// of the body that the last Write woke up is usually next in line
	// on it: let it send the end of the body first.
	runtime.Gosched()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed.Load() || w.state.Load() != wOpen {
		return errWriterDone
	}
	if w.err != nil {
		return w.err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("diskstore: commit: %w", err)
	}
	w.hdr.bodyLen = w.written.Load()
	var err error
	if w.fileMode.Load() {
		_, err = w.f.WriteAt(w.hdr.marshal(), 0)
	} else {
		// The whole entry, header first, in one write to a file made
		// ahead of time (see spares).
		b := *w.buf.Load()
		copy(b[:headerLen], w.hdr.marshal()) // bytes no reader reads
		if w.f, err = w.s.spares.take(); err == nil {
			_, err = w.f.Write(b)
		}
	}
	if err == nil && w.s.sync {
		err = w.f.Sync()
	}
	if err != nil {
		w.err = w.s.writeFailed("commit", w.hash, err)
		return w.err
	}
	if err := w.install(nil); err != nil {
		w.err = err
		return err
	}
	w.state.Store(wCommitted)
	w.s.spares.topUp() // for the next writer, now that this entry is in place
	return nil
}

// install moves the finished file into place and indexes it, replacing the
// current entry. If expect is not nil, the current entry must be expect
// (UpdateMeta), or install returns ErrNotFound.
func (w *writer) install(expect *entry) error {
	s := w.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed()
	}
	cur, _ := s.idx.Peek(w.sum)
	if expect != nil && cur != expect {
		return cache.ErrNotFound
	}
	if err := s.importFile(w.f.Name(), w.hash); err != nil {
		return s.writeFailed("commit", w.hash, err)
	}
	w.installed = true
	if cur != nil {
		s.dropLocked(cur)
	}
	e := &entry{sum: w.sum, size: w.reserved, metaLen: w.hdr.metaLen, tags: w.tags}
	s.idx.Put(w.sum, e)
	s.indexLocked(e)
	s.pending -= w.reserved
	w.reserved = 0
	return nil
}

// release closes the file, removes it unless installed and returns the
// reserved bytes. It runs once.
func (w *writer) release() {
	if w.released {
		return
	}
	w.released = true
	if w.f != nil {
		w.f.Close()
		if !w.installed {
			os.Remove(w.f.Name())
		}
	}
	s := w.s
	s.mu.Lock()
	s.releaseLocked(w.reserved)
	w.reserved = 0
	s.mu.Unlock()
}

func (w *writer) Abort() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state.Load() == wOpen {
		w.state.Store(wAborted)
		w.release()
	}
	return nil
}

func (w *writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed.Load() {
		return errClosed()
	}
	w.closed.Store(true)
	if w.state.Load() == wOpen {
		w.state.Store(wAborted)
	}
	w.release()
	return nil
}
