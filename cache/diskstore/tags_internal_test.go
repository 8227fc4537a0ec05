package diskstore

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"slices"
	"testing"
)

// FixChecksums recomputes the meta and header checksums of an entry
// file's bytes (tests: damage that a checksum does not catch).
func FixChecksums(b []byte) {
	metaLen := binary.LittleEndian.Uint32(b[8:])
	binary.LittleEndian.PutUint32(b[12:], crc32.Checksum(b[headerLen:headerLen+int(metaLen)], castagnoli))
	binary.LittleEndian.PutUint32(b[28:], crc32.Checksum(b[:28], castagnoli))
}

// FuzzSplitRegion: meta regions come from disk. splitRegion must never
// panic, must bound what it returns by its input, and what it accepts
// must encode back to the same bytes.
func FuzzSplitRegion(f *testing.F) {
	_, r, _ := encodeRegion([]string{"a", "tag two", ""}, []byte("meta"))
	f.Add(r, uint16(flagTags))
	f.Add([]byte("plain meta"), uint16(0))
	f.Add([]byte{0x05, 0x01, 'a'}, uint16(flagTags))                    // list size beyond the region
	f.Add([]byte{0x03, 0x09, 'a', 'b', 'm'}, uint16(flagTags))          // tag length beyond the list
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, uint16(flagTags)) // varint overflow
	f.Add([]byte{}, uint16(flagTags))
	f.Add([]byte("\x03\x00\x80\x00"), uint16(15)) // overlong varint, other flag bits
	f.Fuzz(func(t *testing.T, region []byte, flags uint16) {
		tags, meta, err := splitRegion(region, flags)
		if err != nil {
			if !isCorrupt(err) {
				t.Fatalf("error %v is not a corruptError", err)
			}
			return
		}
		n := len(meta)
		for _, tg := range tags {
			n += len(tg)
		}
		if n > len(region) || len(tags) > maxTags {
			t.Fatalf("%d tags and %d bytes from a region of %d", len(tags), n, len(region))
		}
		if len(tags) == 0 {
			return // a flagged empty list re-encodes unflagged
		}
		// Varints may be written longer than needed: compare what they
		// say, not their bytes.
		fl, again, err := encodeRegion(tags, meta)
		if err != nil || fl != flagTags || len(again) > len(region) {
			t.Fatalf("does not round-trip: %v", err)
		}
		t2, m2, err := splitRegion(again, fl)
		if err != nil || !slices.Equal(t2, tags) || !bytes.Equal(m2, meta) {
			t.Fatal("re-encoded region reads back differently")
		}
	})
}
