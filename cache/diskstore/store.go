package diskstore

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/internal/lru"
)

// DefaultMaxBytes is the bound of a Store whose Options.MaxBytes is zero.
const DefaultMaxBytes = 1 << 30

// DefaultVerifyMaxBody is the body size up to which Open checks a body's
// checksum when Options.VerifyMaxBody is zero.
const DefaultVerifyMaxBody = 64 << 10

// Options configure a [Store]. The zero value is ready to use.
type Options struct {
	// MaxBytes bounds the bytes of the store's entry files, counted as in
	// [Store] ("Size bound"). If zero, DefaultMaxBytes (1 GiB) is used.
	// Negative values are an error.
	MaxBytes int64

	// NoSync, if true, skips the fsync of each entry file before Commit
	// and UpdateMeta move it into place. A process crash still never
	// leaves a partial entry visible (the move is atomic); after a power
	// loss an entry may be truncated or zero-filled, and validation then
	// discards it. If false (the default), entries are synced.
	NoSync bool

	// NoVerify, if true, makes Open check only headers, sizes and meta
	// checksums while rebuilding the index, not body checksums, which
	// requires reading every stored byte. If false (the default), every
	// body is checked.
	NoVerify bool

	// VerifyMaxBody is the largest body whose checksum [Store.Open]
	// checks on every open (it reads the whole entry in one read).
	// Larger bodies are checked when the index is rebuilt. If zero,
	// DefaultVerifyMaxBody (64 KiB); if negative, never on open.
	VerifyMaxBody int64

	// Logger receives warnings about discarded entries and I/O errors.
	// Keys are logged only as their SHA-256 hash. If nil, logs are
	// discarded.
	Logger *slog.Logger
}

// Stats is a snapshot of a [Store]'s gauges and counters.
type Stats struct {
	Objects          int64  // committed entries
	Bytes            int64  // bytes of committed entry files
	PendingBytes     int64  // bytes counted for open Writers and UpdateMeta copies
	Evictions        uint64 // entries evicted to stay within MaxBytes
	CorruptDiscarded uint64 // invalid entry and stray files deleted
	WriteErrors      uint64 // failed creates, writes, commits, removals
	ReadErrors       uint64 // failed opens and reads of entries (other than corruption)
}

// Store is a [cache.Store] on disk. Create one with [Open]; it is
// safe for concurrent use. See the package documentation for the layout.
//
// # Size bound
//
// An entry counts the size of its file: a 32-byte header, the meta and the
// body. A Writer counts the header, its meta and the body bytes written so
// far; UpdateMeta counts the copy it writes until it replaces the entry. At
// every moment the committed entries plus these pending bytes count at most
// MaxBytes: before Create, Write or UpdateMeta grows the total, the store
// evicts least recently used entries until the growth fits, and fails with
// an error if it cannot fit with no entry left. So no object larger than
// MaxBytes minus its header and meta is stored, and writes in progress
// together never exceed MaxBytes. Files of entries evicted, replaced or
// deleted while an [cache.Object] has them open take disk space, uncounted,
// until the Object is closed. Directories are not counted.
type Store struct {
	dir, objDir, tmpDir string
	maxBytes            int64
	verifyMax           int64
	sync, verify        bool
	log                 *slog.Logger
	lock                *os.File
	spares              spares

	mu      sync.Mutex
	idx     lru.List[[32]byte, *entry]     // most recently used first
	tagged  map[string]map[[32]byte]*entry // tag → entries carrying it (see cache.TagStore)
	used    int64                          // committed entries + pending
	pending int64
	closed  bool

	evictions, corrupt, writeErrors, readErrors atomic.Uint64

	bufs sync.Pool // *[]byte scratch buffers
}

type entry struct {
	sum     [32]byte
	size    int64 // file size
	metaLen uint32
	tags    []string
}

// Open opens (creating it if needed) the store in dir, removes the temporary
// files a crashed writer left behind, and rebuilds the index from the entry
// files, deleting those that fail validation. It then evicts least recently
// used entries if they exceed MaxBytes.
//
// Only one Store may use dir at a time (across processes too: dir/lock is
// held with flock(2) until [Store.Close]).
func Open(dir string, opts Options) (*Store, error) {
	if opts.MaxBytes < 0 {
		return nil, fmt.Errorf("diskstore: negative MaxBytes %d", opts.MaxBytes)
	}
	s := &Store{
		dir:       dir,
		objDir:    filepath.Join(dir, "objects"),
		tmpDir:    filepath.Join(dir, "tmp"),
		maxBytes:  cmp.Or(opts.MaxBytes, DefaultMaxBytes),
		verifyMax: cmp.Or(opts.VerifyMaxBody, DefaultVerifyMaxBody),
		sync:      !opts.NoSync,
		verify:    !opts.NoVerify,
		log:       opts.Logger,
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	for _, d := range []string{dir, s.objDir, s.tmpDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("diskstore: open: %w", err)
		}
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("diskstore: open: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("diskstore: open: directory in use by another store: %w", err)
	}
	s.lock = lock
	if err := s.cleanTemp(); err != nil {
		lock.Close()
		return nil, err
	}
	if err := s.makeDirs(); err != nil {
		lock.Close()
		return nil, err
	}
	if err := s.rebuild(); err != nil {
		lock.Close()
		return nil, err
	}
	s.spares.start(s)
	return s, nil
}

// makeDirs creates the 256 directories entries go into, so that no write
// ever has to (a directory costs an inode allocation: on some file systems
// as much as a whole small fill).
func (s *Store) makeDirs() error {
	for i := range 256 {
		d := filepath.Join(s.objDir, hex.EncodeToString([]byte{byte(i)}))
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("diskstore: open: %w", err)
		}
	}
	return nil
}

// cleanTemp removes everything in the temp directory: with the lock held,
// any file there belongs to a writer that died.
func (s *Store) cleanTemp() error {
	ents, err := os.ReadDir(s.tmpDir)
	if err != nil {
		return fmt.Errorf("diskstore: open: %w", err)
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(s.tmpDir, e.Name())); err != nil {
			return fmt.Errorf("diskstore: open: removing stale temp file: %w", err)
		}
	}
	if len(ents) > 0 {
		s.log.Info("diskstore: removed stale temp files", "count", len(ents))
	}
	return nil
}

// hashKey returns the SHA-256 of key and its hex form (the file name).
// Keys never reach the file system in any other form.
func hashKey(key string) ([32]byte, string) {
	sum := sha256.Sum256([]byte(key))
	return sum, hex.EncodeToString(sum[:])
}

func (s *Store) path(h string) string {
	return filepath.Join(s.objDir, h[0:2], h)
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

type found struct {
	e     *entry
	rank  int // position in the LRU snapshot, or -1
	mtime time.Time
}

// rebuild walks the objects directory, validating every entry file.
func (s *Store) rebuild() error {
	ranks := s.loadSnapshot()
	var all []found
	var oldDirs []string
	buf := make([]byte, 256<<10)
	err := filepath.WalkDir(s.objDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if rel, _ := filepath.Rel(s.objDir, p); len(rel) == 5 {
				oldDirs = append(oldDirs, p) // objects/ab/cd: the layout before 256 directories
			}
			return nil
		}
		rel, _ := filepath.Rel(s.objDir, p)
		name := d.Name()
		if !d.Type().IsRegular() || len(name) != 64 || !isHex(name) {
			s.discardFile(p, name, "stray file")
			return nil
		}
		switch rel {
		case filepath.Join(name[0:2], name):
		case filepath.Join(name[0:2], name[2:4], name):
			// An entry of the earlier layout: moved into place.
			if err := os.Rename(p, s.path(name)); err != nil {
				return err
			}
			p = s.path(name)
		default:
			s.discardFile(p, name, "stray file")
			return nil
		}
		info, err := os.Stat(p)
		if err != nil {
			return err
		}
		h, tags, err := s.checkFile(p, buf)
		if isCorrupt(err) {
			s.discardFile(p, name, err.(*corruptError).reason)
			return nil
		} else if err != nil {
			return err
		}
		var sum [32]byte
		hex.Decode(sum[:], []byte(name))
		rank, ok := ranks[sum]
		if !ok {
			rank = -1
		}
		all = append(all, found{&entry{sum: sum, size: h.fileSize(), metaLen: h.metaLen, tags: tags}, rank, info.ModTime()})
		return nil
	})
	if err != nil {
		return fmt.Errorf("diskstore: open: rebuilding index: %w", err)
	}
	for _, d := range oldDirs {
		os.Remove(d) // if empty
	}
	// Most recently used first: snapshot order, then entries missing from
	// the snapshot (it is written only by Close) by modification time.
	slices.SortFunc(all, func(a, b found) int {
		switch {
		case a.rank >= 0 && b.rank >= 0:
			return cmp.Compare(a.rank, b.rank)
		case a.rank >= 0:
			return -1
		case b.rank >= 0:
			return 1
		}
		return b.mtime.Compare(a.mtime)
	})
	s.mu.Lock()
	for _, f := range all {
		s.idx.PutOldest(f.e.sum, f.e)
		s.used += f.e.size
		s.indexLocked(f.e)
	}
	s.reserveLocked(0, nil)
	s.mu.Unlock()
	return nil
}

// checkFile validates the entry file at p and returns its header and
// tags.
func (s *Store) checkFile(p string, buf []byte) (header, []string, error) {
	f, err := os.Open(p)
	if err != nil {
		return header{}, nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return header{}, nil, err
	}
	hb := make([]byte, headerLen)
	if _, err := f.ReadAt(hb, 0); err != nil {
		return header{}, nil, corrupt("short header")
	}
	h, err := parseHeader(hb, info.Size())
	if err != nil {
		return header{}, nil, err
	}
	meta := make([]byte, h.metaLen)
	if _, err := f.ReadAt(meta, headerLen); err != nil {
		return header{}, nil, err
	}
	if crc32.Checksum(meta, castagnoli) != h.metaCRC {
		return header{}, nil, corrupt("meta checksum mismatch")
	}
	tags, _, err := splitRegion(meta, h.flags)
	if err != nil {
		return header{}, nil, err
	}
	if s.verify {
		if err := checkBody(f, h, buf); err != nil {
			return header{}, nil, err
		}
	}
	return h, tags, nil
}

// discardFile deletes an invalid file found while rebuilding.
func (s *Store) discardFile(p, name, reason string) {
	s.corrupt.Add(1)
	if len(name) > 64 {
		name = name[:64]
	}
	if err := os.Remove(p); err != nil {
		s.writeErrors.Add(1)
		s.log.Warn("diskstore: cannot remove invalid entry", "file", name, "reason", reason, "err", err)
		return
	}
	s.log.Warn("diskstore: discarded invalid entry", "file", name, "reason", reason)
}

// Snapshot of the LRU order, written by Close and read (then removed) by
// Open: "ocdslru1", the count (uint32), the hashes, most recent first, and
// a CRC-32C of all that.
const snapshotMagic = "ocdslru1"

func (s *Store) snapshotPath() string { return filepath.Join(s.dir, "lru") }

func (s *Store) loadSnapshot() map[[32]byte]int {
	b, err := os.ReadFile(s.snapshotPath())
	os.Remove(s.snapshotPath())
	if err != nil {
		return nil
	}
	ranks, err := parseSnapshot(b)
	if err != nil {
		s.log.Warn("diskstore: ignoring invalid LRU snapshot", "err", err)
	}
	return ranks
}

// parseSnapshot returns the rank (0 = most recent) of every hash in an LRU
// snapshot.
func parseSnapshot(b []byte) (map[[32]byte]int, error) {
	if len(b) < len(snapshotMagic)+8 || string(b[:len(snapshotMagic)]) != snapshotMagic {
		return nil, errors.New("diskstore: bad LRU snapshot header")
	}
	body, tail := b[:len(b)-4], b[len(b)-4:]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(tail) {
		return nil, errors.New("diskstore: LRU snapshot checksum mismatch")
	}
	n := uint64(binary.LittleEndian.Uint32(body[len(snapshotMagic):]))
	hashes := body[len(snapshotMagic)+4:]
	if uint64(len(hashes)) != n*32 {
		return nil, errors.New("diskstore: LRU snapshot length mismatch")
	}
	ranks := make(map[[32]byte]int, n)
	for i := range int(n) {
		sum := [32]byte(hashes[i*32:])
		if _, dup := ranks[sum]; !dup {
			ranks[sum] = i
		}
	}
	return ranks, nil
}

// marshalSnapshot encodes sums (most recent first) for parseSnapshot.
func marshalSnapshot(sums [][32]byte) []byte {
	b := make([]byte, 0, len(snapshotMagic)+4+32*len(sums)+4)
	b = append(b, snapshotMagic...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(sums)))
	for _, sum := range sums {
		b = append(b, sum[:]...)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func (s *Store) writeSnapshot(sums [][32]byte) error {
	b := marshalSnapshot(sums)
	tmp, err := os.CreateTemp(s.tmpDir, "lru-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	if err == nil && s.sync {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), s.snapshotPath())
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// Close writes the LRU order for the next Open and releases the directory.
// Objects and Writers opened earlier stay usable, but Commit then fails.
// Later calls return an error wrapping net.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("diskstore: %w", net.ErrClosed)
	}
	s.closed = true
	sums := make([][32]byte, 0, s.idx.Len())
	for sum := range s.idx.All() {
		sums = append(sums, sum)
	}
	s.mu.Unlock()
	s.spares.close()
	var errs []error
	if err := s.writeSnapshot(sums); err != nil {
		errs = append(errs, fmt.Errorf("diskstore: close: writing LRU snapshot: %w", err))
	}
	if err := s.lock.Close(); err != nil {
		errs = append(errs, fmt.Errorf("diskstore: close: %w", err))
	}
	return errors.Join(errs...)
}

// Stats returns a snapshot of the store's gauges and counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	st := Stats{Objects: int64(s.idx.Len()), Bytes: s.used - s.pending, PendingBytes: s.pending}
	s.mu.Unlock()
	st.Evictions = s.evictions.Load()
	st.CorruptDiscarded = s.corrupt.Load()
	st.WriteErrors = s.writeErrors.Load()
	st.ReadErrors = s.readErrors.Load()
	return st
}

func errClosed() error { return fmt.Errorf("diskstore: %w", net.ErrClosed) }

// reserveLocked counts n more pending bytes, evicting least recently used
// entries other than keep until they fit within MaxBytes. It reports
// whether they fit; if not, nothing is counted.
func (s *Store) reserveLocked(n int64, keep *entry) bool {
	for s.used+n > s.maxBytes {
		var victim *entry
		for _, e := range s.idx.Backward() {
			if e != keep {
				victim = e
				break
			}
		}
		if victim == nil {
			return false
		}
		s.removeLocked(victim)
		s.evictions.Add(1)
	}
	s.used += n
	s.pending += n
	return true
}

func (s *Store) releaseLocked(n int64) {
	s.used -= n
	s.pending -= n
}

// removeLocked drops e from the index and deletes its file.
func (s *Store) removeLocked(e *entry) error {
	s.idx.Remove(e.sum)
	s.used -= e.size
	s.unindexLocked(e)
	h := hex.EncodeToString(e.sum[:])
	if err := os.Remove(s.path(h)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.writeErrors.Add(1)
		s.log.Warn("diskstore: cannot remove entry", "hash", h, "err", err)
		return err
	}
	return nil
}

// dropLocked removes e from the index without touching the file system
// (its file was replaced by a rename).
func (s *Store) dropLocked(e *entry) {
	s.idx.Remove(e.sum)
	s.used -= e.size
	s.unindexLocked(e)
}

// discard deletes the entry e (found invalid by a reader) if it is still
// the current entry for its key.
func (s *Store) discard(e *entry, reason string) {
	s.corrupt.Add(1)
	h := hex.EncodeToString(e.sum[:])
	s.log.Warn("diskstore: discarded invalid entry", "hash", h, "reason", reason)
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, _ := s.idx.Peek(e.sum); cur == e {
		s.removeLocked(e)
	}
}

func (s *Store) getBuf(n int) *[]byte {
	if p, ok := s.bufs.Get().(*[]byte); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	b := make([]byte, n, max(n, 4096))
	return &b
}

func (s *Store) putBuf(p *[]byte) {
	if cap(*p) <= 256<<10 {
		s.bufs.Put(p)
	}
}

// Open implements [cache.Store]. The object's meta checksum, its header and
// its file size are checked on every open, and its body checksum too when
// the body is at most Options.VerifyMaxBody bytes.
func (s *Store) Open(ctx context.Context, key string) (cache.Object, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("diskstore: open: %w", err)
	}
	sum, h := hashKey(key)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errClosed()
	}
	e, ok := s.idx.Get(sum)
	if !ok {
		s.mu.Unlock()
		return nil, cache.ErrNotFound
	}
	s.mu.Unlock()

	o, err := s.openEntry(e, h)
	if err != nil {
		return nil, err
	}
	return o, nil
}

// openEntry opens and validates the file of e. If it turns out invalid, it
// is discarded and ErrNotFound returned.
func (s *Store) openEntry(e *entry, h string) (*object, error) {
	f, err := openRead(s.path(h))
	if errors.Is(err, fs.ErrNotExist) {
		// Evicted or deleted since the lookup.
		return nil, cache.ErrNotFound
	} else if err != nil {
		s.readErrors.Add(1)
		return nil, fmt.Errorf("diskstore: open: %w", err)
	}
	o, err := s.load(f, e.metaLen)
	if err != nil {
		f.Close()
		if isCorrupt(err) {
			s.discard(e, err.(*corruptError).reason)
			return nil, cache.ErrNotFound
		}
		s.readErrors.Add(1)
		return nil, fmt.Errorf("diskstore: open: %w", err)
	}
	return o, nil
}

// openRead opens the file at path for reading, like os.Open but cheaper on
// the hit path: os.Open tries to register every file with the network
// poller, which for a regular file costs four fcntl(2) and a failing
// epoll_ctl(2); os.NewFile registers nothing (one fcntl(2)). Reads of a
// regular file block the thread either way.
func openRead(path string) (*os.File, error) {
	for {
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return os.NewFile(uintptr(fd), path), nil
	}
}

// load reads and validates the header and meta of the entry file f, and
// its body when small. metaLen is the expected meta length (a hint: the
// file may be a newer version of the entry). f must be at offset 0; it is
// read with read(2), so that it is left at the end of what was read (the
// body offset unless the whole file was read) and Reader need not seek.
func (s *Store) load(f *os.File, metaLen uint32) (*object, error) {
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := info.Size()
	if size < headerLen {
		return nil, corrupt("short header")
	}
	whole := s.verifyMax >= 0 && size <= headerLen+int64(metaLen)+s.verifyMax
	n := min(size, headerLen+int64(metaLen))
	if whole {
		n = size
	}
	bp := s.getBuf(int(n))
	defer s.putBuf(bp)
	b := *bp
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, err
	}
	pos := n
	h, err := parseHeader(b, size)
	if err != nil {
		return nil, err
	}
	var meta []byte
	if int64(len(b)) >= h.bodyOff() {
		meta = b[headerLen:h.bodyOff()]
	} else {
		// The meta length changed (newer version): read it.
		meta = make([]byte, h.metaLen)
		if _, err := f.ReadAt(meta, headerLen); err != nil {
			return nil, err
		}
	}
	if crc32.Checksum(meta, castagnoli) != h.metaCRC {
		return nil, corrupt("meta checksum mismatch")
	}
	if int64(len(b)) == size && crc32.Checksum(b[h.bodyOff():], castagnoli) != h.bodyCRC {
		return nil, corrupt("body checksum mismatch")
	}
	tags, meta, err := splitRegion(meta, h.flags)
	if err != nil {
		return nil, err
	}
	return &object{f: f, meta: append([]byte(nil), meta...), tags: tags, h: h, pos: pos}, nil
}

// Create implements [cache.Store]. The object is written to a temporary
// file that Commit moves into place.
func (s *Store) Create(ctx context.Context, key string, meta []byte) (cache.Writer, error) {
	return s.create(ctx, key, meta, nil)
}

func (s *Store) create(ctx context.Context, key string, meta []byte, tags []string) (cache.Writer, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("diskstore: create: %w", err)
	}
	flags, meta, err := encodeRegion(tags, meta)
	if err != nil {
		return nil, fmt.Errorf("diskstore: create: %w", err)
	}
	if len(meta) > maxMetaLen {
		return nil, fmt.Errorf("diskstore: create: meta of %d bytes exceeds %d", len(meta), maxMetaLen)
	}
	sum, h := hashKey(key)
	n := int64(headerLen + len(meta))
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errClosed()
	}
	ok := s.reserveLocked(n, nil)
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("diskstore: create: %d bytes do not fit in MaxBytes %d", n, s.maxBytes)
	}
	w := &writer{s: s, sum: sum, hash: h, reserved: n, off: n, tags: tags,
		hdr: header{flags: flags, metaLen: uint32(len(meta)), metaCRC: crc32.Checksum(meta, castagnoli)}}
	// A zero header: the entry is invalid until Commit writes the real
	// one. Written in memory first (see memWriteMax).
	b := make([]byte, headerLen, max(n+4096, min(2*n, memWriteMax)))
	b = append(b, meta...)
	w.buf.Store(&b)
	if n > memWriteMax/2 {
		w.mu.Lock()
		err := w.toFile()
		w.mu.Unlock()
		if err != nil {
			err = s.writeFailed("create", h, err)
			w.release()
			return nil, err
		}
	}
	return w, nil
}

func (s *Store) writeFailed(op, h string, err error) error {
	s.writeErrors.Add(1)
	s.log.Warn("diskstore: write failed", "op", op, "hash", h, "err", err)
	return fmt.Errorf("diskstore: %s: %w", op, err)
}

// UpdateMeta implements [cache.Store]. If the meta of the entry stored
// under key is byte-equal to prev, it writes a new entry file with the new
// meta and a copy of the body (copy_file_range(2) where available) and
// moves it into place. If the meta differs (the object the caller saw was
// replaced or updated), it writes nothing and returns an error wrapping
// [cache.ErrNotFound]. If the object is replaced, updated or deleted while
// UpdateMeta copies it, that newer change wins: UpdateMeta then discards
// its copy and also returns an error wrapping [cache.ErrNotFound].
func (s *Store) UpdateMeta(ctx context.Context, key string, prev, meta []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("diskstore: update meta: %w", err)
	}
	if len(meta) > maxMetaLen {
		return fmt.Errorf("diskstore: update meta: meta of %d bytes exceeds %d", len(meta), maxMetaLen)
	}
	sum, h := hashKey(key)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errClosed()
	}
	e, ok := s.idx.Peek(sum)
	s.mu.Unlock()
	if !ok {
		return cache.ErrNotFound
	}
	old, err := s.openEntry(e, h)
	if err != nil {
		return err
	}
	defer old.Close()
	if !bytes.Equal(old.Meta(), prev) {
		return errChanged
	}
	flags, meta, err := encodeRegion(old.tags, meta) // the object keeps its tags
	if err != nil {
		return fmt.Errorf("diskstore: update meta: %w", err)
	}
	if len(meta) > maxMetaLen {
		return fmt.Errorf("diskstore: update meta: meta of %d bytes exceeds %d", len(meta), maxMetaLen)
	}

	nh := old.h
	nh.flags = flags
	nh.metaLen = uint32(len(meta))
	nh.metaCRC = crc32.Checksum(meta, castagnoli)
	n := nh.fileSize()
	s.mu.Lock()
	ok = s.reserveLocked(n, e)
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("diskstore: update meta: %d bytes do not fit in MaxBytes %d", n, s.maxBytes)
	}
	w := &writer{s: s, sum: sum, hash: h, reserved: n, hdr: nh, tags: old.tags}
	w.fileMode.Store(true)
	defer w.release()
	f, err := s.spares.take()
	if err != nil {
		return s.writeFailed("update meta", h, err)
	}
	w.f = f
	_, err = f.Write(append(nh.marshal(), meta...))
	var body io.Reader
	if err == nil {
		body, err = old.Reader(0, old.h.bodyLen)
	}
	if err == nil {
		var c int64
		c, err = f.ReadFrom(body)
		if err == nil && c != old.h.bodyLen {
			err = fmt.Errorf("copied %d of %d body bytes", c, old.h.bodyLen)
		}
	}
	if err == nil && s.sync {
		err = f.Sync()
	}
	if err != nil {
		return s.writeFailed("update meta", h, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("diskstore: update meta: %w", err)
	}
	if err := w.install(e); err != nil {
		if errors.Is(err, cache.ErrNotFound) {
			// A newer Commit, UpdateMeta or Delete replaced e.
			return errChanged
		}
		return err
	}
	return nil
}

// errChanged is UpdateMeta's error when the entry under the key is no
// longer the one whose meta the caller passed as prev.
var errChanged = fmt.Errorf("diskstore: update meta: object replaced or changed meanwhile: %w", cache.ErrNotFound)

// Delete implements [cache.Store].
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("diskstore: delete: %w", err)
	}
	sum, _ := hashKey(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed()
	}
	e, ok := s.idx.Peek(sum)
	if !ok {
		return cache.ErrNotFound
	}
	if err := s.removeLocked(e); err != nil {
		return fmt.Errorf("diskstore: delete: %w", err)
	}
	return nil
}
