package diskstore

import (
	"bytes"
	"crypto/sha256"
	"slices"
	"testing"
)

// FuzzParseHeader: entry headers come from disk and may be damaged in any
// way. parseHeader must never panic, must accept only headers whose lengths
// fit the file, and what it accepts must marshal back to the same bytes.
func FuzzParseHeader(f *testing.F) {
	valid := header{metaLen: 5, metaCRC: 1, bodyLen: 100, bodyCRC: 2}
	f.Add(valid.marshal(), valid.fileSize())   // a valid header for its file size
	f.Add(valid.marshal(), valid.fileSize()-1) // truncated file
	f.Add(valid.marshal(), valid.fileSize()+1) // file with trailing bytes
	tagged := header{flags: flagTags, metaLen: 9, bodyLen: 3}
	f.Add(tagged.marshal(), tagged.fileSize()) // a header of an entry with tags
	unknown := header{flags: 2, metaLen: 1}
	f.Add(unknown.marshal(), unknown.fileSize())     // unknown flag
	f.Add(make([]byte, headerLen), int64(headerLen)) // zeroed (uncommitted) header
	f.Add([]byte("ocds"), int64(4))                  // magic only
	f.Add([]byte{}, int64(0))                        // empty file
	huge := header{metaLen: maxMetaLen + 1, bodyLen: 1}
	f.Add(huge.marshal(), huge.fileSize()) // meta length beyond the limit
	neg := header{bodyLen: -1}
	f.Add(neg.marshal(), int64(headerLen-1))                   // body length with the top bit set
	f.Add(bytes.Repeat([]byte{0xff}, headerLen), int64(1<<62)) // all ones
	f.Fuzz(func(t *testing.T, b []byte, size int64) {
		h, err := parseHeader(b, size)
		if err != nil {
			if !isCorrupt(err) {
				t.Fatalf("parseHeader error %v is not a corruptError", err)
			}
			return
		}
		if h.fileSize() != size || h.bodyLen < 0 || h.metaLen > maxMetaLen || h.bodyOff() > size {
			t.Fatalf("accepted inconsistent header %+v for size %d", h, size)
		}
		if !bytes.Equal(h.marshal(), b[:headerLen]) {
			t.Fatalf("header %+v does not round-trip", h)
		}
	})
}

// FuzzParseSnapshot: the LRU snapshot is read from disk. parseSnapshot must
// never panic or allocate beyond its input, and must round-trip what
// marshalSnapshot writes.
func FuzzParseSnapshot(f *testing.F) {
	a, b := sha256.Sum256([]byte("a")), sha256.Sum256([]byte("b"))
	f.Add(marshalSnapshot(nil))                                              // empty snapshot
	f.Add(marshalSnapshot([][32]byte{a, b}))                                 // two entries
	f.Add(marshalSnapshot([][32]byte{a, a}))                                 // duplicate entry
	f.Add([]byte(snapshotMagic))                                             // magic only
	f.Add(append([]byte(snapshotMagic), 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0)) // huge count, bad checksum
	f.Fuzz(func(t *testing.T, data []byte) {
		ranks, err := parseSnapshot(data)
		if err != nil {
			return
		}
		if len(ranks)*32 > len(data) {
			t.Fatalf("%d ranks from %d bytes", len(ranks), len(data))
		}
		// Ranks are distinct; re-encoding in rank order round-trips.
		order := make([][32]byte, 0, len(ranks))
		for sum := range ranks {
			order = append(order, sum)
		}
		slices.SortFunc(order, func(x, y [32]byte) int { return ranks[x] - ranks[y] })
		for i := 1; i < len(order); i++ {
			if ranks[order[i-1]] == ranks[order[i]] {
				t.Fatalf("two hashes share rank %d", ranks[order[i]])
			}
		}
		again, err := parseSnapshot(marshalSnapshot(order))
		if err != nil {
			t.Fatal(err)
		}
		for i, sum := range order {
			if again[sum] != i {
				t.Fatalf("re-encoded rank %d, want %d", again[sum], i)
			}
		}
	})
}
