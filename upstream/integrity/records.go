package integrity

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
)

// Record digests let a tier release a large body as it streams, one
// verified record at a time, instead of holding it until the whole-body
// Content-Digest can be checked.
//
// The Signer cuts the body, as sent, into records of RS bytes (the last
// one shorter) and sends the SHA-256 of each, in order, with RS and the
// body's length, in one field covered by the signature:
//
//	Content-Record-Digest: sha-256=:<SHA-256 of record 0><SHA-256 of record 1>…:;rs=16384;len=2000000
//
// The field is an RFC 8941 dictionary, like Content-Digest (RFC 9530):
// one member per algorithm (only sha-256 is defined), whose byte sequence
// is the concatenation of the record hashes, with the integer parameters
// rs (record size) and len (body length). A body of length 0 has no
// records (an empty byte sequence). The body itself is unchanged: ranges,
// caches and clients see the same bytes as without it, and a tier that
// does not know the field still verifies the Content-Digest.
//
// RS is the smallest power-of-two multiple of the Signer's RecordSize
// (16 KiB by default) that keeps the list to at most MaxRecords hashes, so
// the field stays under 11 KB: a 2 MB object has 123 records of 16 KiB;
// a 100 MB one, 200 records of 512 KiB.
//
// A verifier checks the signature, then that len equals Content-Length
// (if any), and releases each record once its hash matches; it releases
// the last record only once the body has ended exactly at len. The signed
// list and length determine the body as surely as the whole-body
// Content-Digest does, so the verifier need not hash the body twice. A
// byte range is verified by the records it spans.

// RecordDigestField is the name of the record digest field.
const RecordDigestField = "Content-Record-Digest"

// Record sizes (see [Signer.RecordSize]).
const (
	DefaultRecordSize = 16 << 10 // the smallest record the Signer uses by default
	MaxRecords        = 256      // the Signer never sends more record hashes
	minRecordSize     = 1 << 10  // verifiers refuse smaller records (field size, overhead)
)

// recordSize returns the record size the Signer uses for a body of size
// bytes: min, doubled until the body has at most MaxRecords records.
func recordSize(size, min int64) int64 {
	rs := min
	for (size+rs-1)/rs > MaxRecords {
		rs *= 2
	}
	return rs
}

// recordDigest is a parsed Content-Record-Digest.
type recordDigest struct {
	rs     int64  // record size
	length int64  // body length
	sums   []byte // len/rs (rounded up) SHA-256 sums, concatenated
}

// count returns the number of records.
func (d *recordDigest) count() int64 { return int64(len(d.sums) / sha256.Size) }

// sum returns the expected hash of record i.
func (d *recordDigest) sum(i int64) []byte { return d.sums[i*sha256.Size : (i+1)*sha256.Size] }

// size returns the length of record i.
func (d *recordDigest) size(i int64) int64 { return min(d.rs, d.length-i*d.rs) }

// formatRecordDigest returns the Content-Record-Digest value for a body of
// length bytes cut into records of rs bytes with the given sums.
func formatRecordDigest(sums []byte, rs, length int64) string {
	return "sha-256=:" + base64.StdEncoding.EncodeToString(sums) + ":;rs=" +
		strconv.FormatInt(rs, 10) + ";len=" + strconv.FormatInt(length, 10)
}

// RecordDigest returns the Content-Record-Digest field value for body, with
// records of recordSize(len(body), DefaultRecordSize) bytes.
func RecordDigest(body []byte) string {
	rs := recordSize(int64(len(body)), DefaultRecordSize)
	var sums []byte
	for off := int64(0); off < int64(len(body)); off += rs {
		s := sha256.Sum256(body[off:min(off+rs, int64(len(body)))])
		sums = append(sums, s[:]...)
	}
	return formatRecordDigest(sums, rs, int64(len(body)))
}

// parseRecordDigest parses a Content-Record-Digest value and checks that
// it is consistent: a record size of at least minRecordSize, a length, and
// exactly one hash per record.
func parseRecordDigest(v string) (*recordDigest, error) {
	ms, err := parseDictionary(v)
	if err != nil {
		return nil, fmt.Errorf("content-record-digest: %w", err)
	}
	for _, m := range ms {
		if m.key != "sha-256" || !m.isBytes {
			continue
		}
		d := &recordDigest{rs: -1, length: -1, sums: m.bytes}
		for _, p := range m.params {
			n, ok := p.val.(int64)
			switch {
			case p.key == "rs" && ok:
				d.rs = n
			case p.key == "len" && ok:
				d.length = n
			}
		}
		switch {
		case d.rs < minRecordSize:
			return nil, fmt.Errorf("content-record-digest: record size %d", d.rs)
		case d.length < 0:
			return nil, errors.New("content-record-digest: no length")
		case int64(len(d.sums)) != (d.length+d.rs-1)/d.rs*sha256.Size:
			return nil, fmt.Errorf("content-record-digest: %d bytes of hashes for %d bytes in records of %d", len(d.sums), d.length, d.rs)
		}
		return d, nil
	}
	return nil, errors.New("content-record-digest: no sha-256 member")
}
