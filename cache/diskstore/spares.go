package diskstore

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
)

// numSpares is the number of empty files kept ready in DIR/tmp.
const numSpares = 16

// spares keeps empty files pre-created in DIR/tmp, so that a write that
// needs a file (an entry growing past memWriteMax, an UpdateMeta) takes
// one instead of creating it on its way: creating a file allocates an
// inode, which on some file systems costs more CPU than the rest of a
// small fill. The pool is filled by Open and topped up by each Commit,
// after its entry is in place (by then its readers have the whole body),
// on the committing goroutine: no goroutine of its own, whose wake-ups
// would cost more than they save. A spare is an ordinary temporary file:
// one left behind by a crash is removed by the next Open.
type spares struct {
	s    *Store
	ch   chan *os.File
	seq  atomic.Uint64
	warn atomic.Bool // a failure to pre-create was logged
}

func (p *spares) start(s *Store) {
	p.s = s
	p.ch = make(chan *os.File, numSpares)
	for len(p.ch) < cap(p.ch) && p.topUp() {
	}
}

// topUp adds one spare if the pool is not full; it reports whether it
// did.
func (p *spares) topUp() bool {
	if len(p.ch) >= cap(p.ch) {
		return false
	}
	f, err := p.create()
	if err != nil {
		p.s.writeErrors.Add(1)
		if !p.warn.Swap(true) {
			p.s.log.Warn("diskstore: cannot pre-create temporary files", "err", err)
		}
		return false
	}
	select {
	case p.ch <- f:
		return true
	default:
		discardTemp(f)
		return false
	}
}

// take returns an empty file in DIR/tmp, open for reading and writing: a
// spare if there is one, else a new one.
func (p *spares) take() (*os.File, error) {
	select {
	case f := <-p.ch:
		return f, nil
	default:
	}
	return p.create()
}

// create makes a new empty file in DIR/tmp. It is opened with open(2)
// rather than os.OpenFile, which would try to register a regular file with
// the network poller (five more system calls, all useless).
func (p *spares) create() (*os.File, error) {
	name := filepath.Join(p.s.tmpDir, "w-"+strconv.FormatUint(p.seq.Add(1), 36))
	for {
		fd, err := syscall.Open(name, syscall.O_CREAT|syscall.O_EXCL|syscall.O_RDWR|syscall.O_CLOEXEC, 0o600)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "create", Path: name, Err: err}
		}
		return os.NewFile(uintptr(fd), name), nil
	}
}

// close removes the spares left.
func (p *spares) close() {
	for {
		select {
		case f := <-p.ch:
			discardTemp(f)
		default:
			return
		}
	}
}

func discardTemp(f *os.File) {
	f.Close()
	os.Remove(f.Name())
}

// importFile moves the finished file src into place as the entry file of
// hash h, replacing the current one. The 256 directories exist (see
// makeDirs); one removed behind the store's back is made again.
func (s *Store) importFile(src, h string) error {
	dst := s.path(h)
	err := rename(src, dst)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(filepath.Dir(dst), 0o700); err == nil {
			err = rename(src, dst)
		}
	}
	return err
}

// rename is rename(2): os.Rename would first lstat dst.
func rename(src, dst string) error {
	for {
		err := syscall.Rename(src, dst)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return &os.LinkError{Op: "rename", Old: src, New: dst, Err: err}
		}
		return nil
	}
}
