package onion_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/onioncdn/onioncdn/onion"
)

// Publish an HTTP server as an onion service. Needs tor.
func ExampleServer_Listen() {
	ctx := context.Background()
	srv := new(onion.Server) // starts tor from PATH on first use
	defer srv.Close()

	// The key is created (mode 0600) on the first run and reused after:
	// the address stays the same. Copy the file to publish it elsewhere.
	key, _, err := onion.LoadOrCreateKey("/var/lib/myservice/hs_ed25519_secret_key")
	if err != nil {
		log.Fatal(err)
	}
	ln, err := srv.Listen(ctx, onion.ListenConfig{
		Key:             key,
		ExportCircuitID: true,
		// Re-publish when the shared address stops answering.
		Watchdog: &onion.Watchdog{Interval: time.Minute},
	})
	if err != nil {
		log.Fatal(err)
	}
	log.Println("serving on", ln.Onion())
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if id, ok := onion.CircuitID(r.Context()); ok {
				_ = id // e.g. a per-circuit rate limit; never log or forward it
			}
			io.WriteString(w, "hello from an onion\n")
		}),
		ConnContext: onion.ConnContext,
	}
	log.Fatal(hs.Serve(ln))
}

// Generate a key, save it in tor's format, load it back, and check an
// address.
func ExampleKey() {
	dir, err := os.MkdirTemp("", "onion-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	key, err := onion.GenerateKey()
	if err != nil {
		log.Fatal(err)
	}
	path := filepath.Join(dir, "hs_ed25519_secret_key")
	if err := key.Save(path); err != nil { // mode 0600, tor's file format
		log.Fatal(err)
	}
	loaded, err := onion.LoadKey(path)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(loaded.Address() == key.Address())

	addr, err := onion.ParseAddress("WWW.STOJAIIA2I7G4EXOLVJ4TFHMKS2MPDJSEZ6FJFLEABQRZWBFTLUCYVYD.onion")
	fmt.Println(addr, err)
	_, err = onion.ParseAddress("stojaiia2i7g4exolvj4tfhmks2mpdjsez6fjfleabqrzwbftlucyvya.onion")
	fmt.Println(err)
	// Output:
	// true
	// stojaiia2i7g4exolvj4tfhmks2mpdjsez6fjfleabqrzwbftlucyvyd.onion <nil>
	// onion: address "stojaiia2i7g4exolvj4tfhmks2mpdjsez6fjfleabqrzwbftlucyvya.onion": version is not 3
}

// Fetch an onion site through tor's SOCKS port, on circuits of its own.
// Needs tor.
func ExampleDialer() {
	d := &onion.Dialer{SocksAddr: "127.0.0.1:9050", Isolation: "site-a"}
	client := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	resp, err := client.Get("http://stojaiia2i7g4exolvj4tfhmks2mpdjsez6fjfleabqrzwbftlucyvyd.onion/")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(os.Stdout, resp.Body)

	// A fresh circuit for one request:
	conn, err := d.DialIsolated(context.Background(), "tcp", "stojaiia2i7g4exolvj4tfhmks2mpdjsez6fjfleabqrzwbftlucyvyd.onion:80", onion.NewIsolationTag())
	if err != nil {
		log.Fatal(err)
	}
	conn.Close()
}
