package cache_test

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/onioncdn/onioncdn/cache"
)

// A MemoryStore needs no setup. A Writer's bytes can be read back while it
// writes; Open sees the object only after Commit.
func ExampleMemoryStore() {
	ctx := context.Background()
	s := &cache.MemoryStore{MaxBytes: 1 << 20}

	w, err := s.Create(ctx, "GET https://example.onion/hello.txt", []byte("HTTP/1.1 200 OK\r\n\r\n"))
	if err != nil {
		panic(err)
	}
	defer w.Close()
	io.WriteString(w, "hello, ")
	buf := make([]byte, 16)
	n, _ := w.ReadAt(buf, 0)
	fmt.Printf("while writing: %q\n", buf[:n])
	if _, err := s.Open(ctx, "GET https://example.onion/hello.txt"); err == cache.ErrNotFound {
		fmt.Println("not visible before Commit")
	}
	io.WriteString(w, "world\n")
	if err := w.Commit(ctx); err != nil {
		panic(err)
	}

	o, err := s.Open(ctx, "GET https://example.onion/hello.txt")
	if err != nil {
		panic(err)
	}
	defer o.Close()
	fmt.Printf("meta %q, %d body bytes\n", o.Meta(), o.Size())
	r, _ := o.Reader(0, o.Size())
	io.Copy(os.Stdout, r)
	// Output:
	// while writing: "hello, "
	// not visible before Commit
	// meta "HTTP/1.1 200 OK\r\n\r\n", 13 body bytes
	// hello, world
}
