package hlstest_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/onioncdn/onioncdn/hls/hlstest"
)

func TestWriteDir(t *testing.T) {
	dir := t.TempDir()
	o := &hlstest.Origin{Segments: 3}
	files, size, err := o.WriteDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	// master + 3 renditions × (playlist + 3 segments)
	if files != 1+3*4 {
		t.Fatalf("wrote %d files", files)
	}
	seg, err := os.ReadFile(filepath.Join(dir, "480p", "seg2.ts"))
	if err != nil {
		t.Fatal(err)
	}
	r := hlstest.DefaultRenditions[1]
	if !bytes.Equal(seg, hlstest.SegmentBytes(r.Name, 2, o.SegmentSize(r))) {
		t.Fatal("segment bytes differ from the synthetic origin's")
	}
	if size < int64(len(seg)) {
		t.Fatalf("size %d", size)
	}
	if _, _, err := (&hlstest.Origin{Live: true}).WriteDir(dir); err == nil {
		t.Error("live presentation written")
	}
}
