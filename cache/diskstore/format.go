package diskstore

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"os"
)

// Entry file layout: a fixed header, the meta, then the body.
//
//	off len field
//	  0   4 magic "ocds"
//	  4   2 format version (1), little endian
//	  6   2 flags: bit 0 (flagTags) = the meta region starts with tags
//	  8   4 meta length (of the whole meta region)
//	 12   4 CRC-32C of the meta
//	 16   8 body length
//	 24   4 CRC-32C of the body
//	 28   4 CRC-32C of bytes 0..27
//
// With flagTags, the meta region is the object's tags (see encodeRegion)
// followed by the cache's meta; otherwise it is the cache's meta alone.
//
// A file is valid only if its header checks out and its size is exactly
// headerLen + meta length + body length. While a file is being written its
// header is all zeros (invalid); the real header is written by Commit just
// before the file is synced and renamed into place.
const (
	headerLen     = 32
	formatVersion = 1
	// maxMetaLen bounds the meta of one object (a stored response head).
	maxMetaLen = 1 << 20
	// maxBodyLen bounds a body length read from disk (1 PiB), so that a
	// damaged header cannot make offsets overflow.
	maxBodyLen = 1 << 50
)

var (
	magic      = [4]byte{'o', 'c', 'd', 's'}
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

type header struct {
	flags   uint16
	metaLen uint32
	metaCRC uint32
	bodyLen int64
	bodyCRC uint32
}

func (h header) fileSize() int64 { return headerLen + int64(h.metaLen) + h.bodyLen }
func (h header) bodyOff() int64  { return headerLen + int64(h.metaLen) }

func (h header) marshal() []byte {
	b := make([]byte, headerLen)
	copy(b, magic[:])
	binary.LittleEndian.PutUint16(b[4:], formatVersion)
	binary.LittleEndian.PutUint16(b[6:], h.flags)
	binary.LittleEndian.PutUint32(b[8:], h.metaLen)
	binary.LittleEndian.PutUint32(b[12:], h.metaCRC)
	binary.LittleEndian.PutUint64(b[16:], uint64(h.bodyLen))
	binary.LittleEndian.PutUint32(b[24:], h.bodyCRC)
	binary.LittleEndian.PutUint32(b[28:], crc32.Checksum(b[:28], castagnoli))
	return b
}

// corruptError says why an entry file is invalid. Entries that fail with it
// are deleted; other errors (I/O) are returned to the caller.
type corruptError struct{ reason string }

func (e *corruptError) Error() string { return "diskstore: corrupt entry: " + e.reason }

func corrupt(reason string) error { return &corruptError{reason} }

func isCorrupt(err error) bool {
	var c *corruptError
	return errors.As(err, &c)
}

// parseHeader checks b (at least headerLen bytes) against a file of size
// bytes.
func parseHeader(b []byte, size int64) (header, error) {
	if len(b) < headerLen || size < headerLen {
		return header{}, corrupt("short header")
	}
	if [4]byte(b[:4]) != magic {
		return header{}, corrupt("bad magic")
	}
	if crc32.Checksum(b[:28], castagnoli) != binary.LittleEndian.Uint32(b[28:]) {
		return header{}, corrupt("header checksum mismatch")
	}
	if v := binary.LittleEndian.Uint16(b[4:]); v != formatVersion {
		return header{}, corrupt("unknown format version")
	}
	h := header{
		flags:   binary.LittleEndian.Uint16(b[6:]),
		metaLen: binary.LittleEndian.Uint32(b[8:]),
		metaCRC: binary.LittleEndian.Uint32(b[12:]),
		bodyCRC: binary.LittleEndian.Uint32(b[24:]),
	}
	bodyLen := binary.LittleEndian.Uint64(b[16:])
	if h.flags&^flagTags != 0 {
		return header{}, corrupt("unknown flags")
	}
	if h.metaLen > maxMetaLen || bodyLen > maxBodyLen {
		return header{}, corrupt("lengths out of range")
	}
	h.bodyLen = int64(bodyLen)
	if h.fileSize() != size {
		return header{}, corrupt("file size does not match header")
	}
	return h, nil
}

// checkBody streams the body of f and compares its checksum with h's.
func checkBody(f *os.File, h header, buf []byte) error {
	crc := crc32.New(castagnoli)
	n, err := io.CopyBuffer(crc, io.NewSectionReader(f, h.bodyOff(), h.bodyLen), buf)
	if err != nil {
		return err
	}
	if n != h.bodyLen {
		return corrupt("short body")
	}
	if crc.Sum32() != h.bodyCRC {
		return corrupt("body checksum mismatch")
	}
	return nil
}
