package diskstore_test

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/onioncdn/onioncdn/cache/diskstore"
)

// Objects written by one Store are served by the next Store opened on the
// same directory, as after a restart.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "diskstore-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	s, err := diskstore.Open(dir, diskstore.Options{MaxBytes: 100 << 20})
	if err != nil {
		panic(err)
	}
	w, err := s.Create(ctx, "GET https://example.onion/seg1.ts", []byte("HTTP/1.1 200 OK\r\n\r\n"))
	if err != nil {
		panic(err)
	}
	io.WriteString(w, "segment bytes\n")
	if err := w.Commit(ctx); err != nil {
		panic(err)
	}
	w.Close()
	s.Close()

	s, err = diskstore.Open(dir, diskstore.Options{MaxBytes: 100 << 20})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	o, err := s.Open(ctx, "GET https://example.onion/seg1.ts")
	if err != nil {
		panic(err)
	}
	defer o.Close()
	st := s.Stats()
	fmt.Printf("%d object, %d bytes on disk\n", st.Objects, st.Bytes)
	r, _ := o.Reader(0, o.Size()) // an *io.LimitedReader over an *os.File
	io.Copy(os.Stdout, r)
	// Output:
	// 1 object, 65 bytes on disk
	// segment bytes
}
