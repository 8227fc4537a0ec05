package httpcachestore_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/gregjones/httpcache"
	"github.com/onioncdn/onioncdn/cache/diskstore"
	"github.com/onioncdn/onioncdn/cache/httpcachestore"
)

// An httpcache client whose cache lives in a bounded disk store.
func Example() {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		io.WriteString(w, "hello")
	}))
	defer origin.Close()

	dir, err := os.MkdirTemp("", "httpcachestore-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	s, err := diskstore.Open(dir, diskstore.Options{MaxBytes: 100 << 20})
	if err != nil {
		panic(err)
	}
	defer s.Close()

	client := httpcache.NewTransport(&httpcachestore.Cache{Store: s}).Client()
	for i := 0; i < 2; i++ {
		resp, err := client.Get(origin.URL)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%s (from cache: %q)\n", body, resp.Header.Get(httpcache.XFromCache))
	}
	fmt.Println(s.Stats().Objects, "object on disk")
	// Output:
	// hello (from cache: "")
	// hello (from cache: "1")
	// 1 object on disk
}
