package diskstore

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// numSpares is the number of empty files kept ready in DIR/tmp.
const numSpares = 16

// spares keeps empty files pre-created in DIR/tmp, so that a write takes
// one instead of creating a file on its way: creating a file allocates an
// inode, which on some file systems costs more CPU than the rest of a
// small fill. A goroutine tops the pool up after every take. A spare is
// an ordinary temporary file: one left behind by a crash is removed by the
// next Open, like any other.
type spares struct {
	s    *Store
	ch   chan *os.File
	kick chan struct{}
	stop chan struct{}
	done chan struct{}
	seq  atomic.Uint64
	warn atomic.Bool // a failure to pre-create was logged
}

func (p *spares) start(s *Store) {
	p.s = s
	p.ch = make(chan *os.File, numSpares)
	p.kick = make(chan struct{}, 1)
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	go p.run()
}

// Refills happen while no write is in progress: creating a file is a
// system call that keeps a CPU busy for up to a few hundred microseconds
// (and the kernel may not preempt it), which a request in progress would
// rather have. A pool down to lowSpares refills at once; one that stays
// busy refills after refillWait anyway.
const (
	refillWait = 50 * time.Millisecond
	lowSpares  = 4
)

func (p *spares) run() {
	defer close(p.done)
	lowPriority()
	var timer <-chan time.Time
	for {
		for len(p.ch) < cap(p.ch) {
			if p.s.writing.Load() > 0 && len(p.ch) >= lowSpares && timer != nil {
				break // busy: at the next kick (a writer released) or the timer
			}
			f, err := p.create()
			if err != nil {
				p.s.writeErrors.Add(1)
				if !p.warn.Swap(true) {
					p.s.log.Warn("diskstore: cannot pre-create temporary files", "err", err)
				}
				break // tried again at the next take
			}
			select {
			case p.ch <- f:
			default:
				discardTemp(f)
			}
			select {
			case <-p.stop:
				return
			default:
			}
		}
		if len(p.ch) == cap(p.ch) {
			timer = nil
		} else if timer == nil {
			timer = time.After(refillWait)
		}
		select {
		case <-p.kick:
		case <-timer:
			timer = nil
		case <-p.stop:
			return
		}
	}
}

// take returns an empty file in DIR/tmp, open for reading and writing: a
// spare if there is one, else a new one.
func (p *spares) take() (*os.File, error) {
	select {
	case f := <-p.ch:
		p.refill()
		return f, nil
	default:
	}
	p.refill()
	return p.create()
}

func (p *spares) refill() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
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

// close stops the refills and removes the spares left.
func (p *spares) close() {
	if p.stop == nil {
		return
	}
	close(p.stop)
	<-p.done
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
