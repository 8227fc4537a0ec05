// Package diskstore is a [cache.Store] on the local file system, for caches
// that must survive restarts and serve large bodies without holding them
// in memory. (It was built on github.com/peterbourgon/diskv/v3, whose
// directory handling cost a cold miss more system calls than the rest of
// the fill: see "Writes" below.)
//
// # Overview
//
// [Open] returns a [Store] rooted in a directory it owns:
//
//	DIR/lock                  flock(2)ed while a Store has DIR open
//	DIR/objects/ab/abcd…      one file per object, in 256 directories
//	DIR/tmp/                  objects being written, and spare empty files
//	DIR/lru                   LRU order, written by Close, read by Open
//
// An object's file name is the hex SHA-256 of its cache key, in the
// directory named by the hash's first byte; the key itself is stored
// nowhere. (Open moves the files of the earlier two-level layout,
// objects/ab/cd/abcd…, into place.)
// The file holds a 32-byte header (magic, format version, flags, meta and
// body lengths, CRC-32C checksums of meta, body and header), the meta, then
// the body. An object created with tags ([Store.CreateTagged], the
// surrogate keys a cache.Cache purges by) has them at the start of its
// meta region, under the meta checksum.
//
// The store is a cache.TagStore: it keeps an in-memory index from each tag
// to the entries carrying it, updated under the same lock as the entries
// themselves (an entry replaced, deleted, evicted or discarded leaves the
// index with it) and rebuilt by Open from the files, so
// [Store.DeleteTag] removes every object with a tag without reading a
// file.
//
// # Writes
//
// A [cache.Writer] from [Store.Create] keeps the entry in memory up to
// 64 KiB (header, meta and body), and moves it to a temporary file in
// DIR/tmp when it grows past that; bytes written can be read back at once
// with ReadAt (from memory, or pread(2) on the file), so clients that join
// a fill in progress follow it. Commit writes the header (with a small
// entry, the whole file in one write), fsyncs the file (unless
// Options.NoSync) and renames it into place: a reader sees the old object
// or the new one, never a mix, and a process that dies mid-write leaves at
// most a temporary file, removed by the next Open. The directory is not
// fsynced after the rename: after a power loss a just-committed object may
// be missing (the previous version, or nothing, is served), never partial.
//
// So that a cold miss costs little more than on the memory store, the
// write path avoids what costs most on a file system: the fill of a small
// object makes no system call until Commit (which comes after its last
// byte was handed to the clients reading it); the 256 directories are
// made once, by Open; and files are not created on the way but taken from
// a small pool of empty files in DIR/tmp, which each Commit tops up once
// its entry is in place: creating a file allocates an inode, which
// measured 10 to 250 µs of kernel CPU per file on the development
// machine's ext4, more than the rest of a small fill. (A goroutine of its
// own refilling the pool measured no faster: on that machine a thread
// switch costs as much as the work it would move.) [Store.Open] returns an object whose
// [cache.Object.Reader] is an *io.LimitedReader over its own *os.File, so
// net/http sends hits with sendfile(2); the file stays readable when the
// object is replaced, deleted or evicted meanwhile.
//
// The store is bounded by Options.MaxBytes and evicts least recently used
// objects; see [Store] for exactly what is counted. The in-memory index is
// rebuilt by Open from the files (a restarted process serves what it
// stored), with the LRU order restored from DIR/lru after a clean Close, or
// from modification times after a crash. Every entry is validated then:
// header, lengths against the file size, meta checksum and (unless
// Options.NoVerify) body checksum. An invalid entry is deleted and counted
// in [Stats], never served. Open checks header, size and meta checksum on
// every open, and the body checksum too for bodies up to
// Options.VerifyMaxBody (64 KiB).
//
// Write errors (a full disk, a read-only file system, a file size limit)
// are returned by Create, Write, Commit and UpdateMeta, wrapped as
// "diskstore: OP: %w", counted in [Stats] and logged; nothing half-written
// becomes visible, and the previous object under the key stays. The cache
// then serves the response uncached.
//
// A Store is safe for concurrent use. It is not a general key-value store:
// keys cannot be listed, and only one Store (in any process) may use a
// directory at a time.
//
// # Usage
//
//	s, err := diskstore.Open("/var/cache/onioncdn", diskstore.Options{
//		MaxBytes: 10 << 30,
//		Logger:   logger,
//	})
//	if err != nil {
//		return err
//	}
//	defer s.Close()
//	c := &cache.Cache{Store: s}
//
// # Security
//
// Keys (which contain URLs and query strings) are hashed before they reach
// the file system, so no key can name a path outside DIR/objects, and they
// are never written to disk or to logs: log lines name entries by hash.
// Bodies and response heads are stored in clear; DIR and its files are
// created with mode 0700/0600 and should live on a disk that is as trusted
// as the process. Checksums detect accidental damage (bit rot, torn writes),
// not tampering by someone who can write DIR.
package diskstore
