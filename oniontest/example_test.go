package oniontest_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/onioncdn/onioncdn/oniontest"
)

// Boot a private network, then hand its torrc lines to an onion-service
// tor and its SOCKS address to clients. Needs tor, so it is compile-only.
func ExampleStart() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	n, err := oniontest.Start(ctx, oniontest.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer n.Close()
	for _, line := range n.TorrcLines() {
		fmt.Println(line) // TestingTorNetwork 1, DirAuthority ..., etc.
	}
	fmt.Println("SOCKS5 proxy:", n.SocksAddr())
}
