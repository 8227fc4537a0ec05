package balance_test

import (
	"context"
	"log"
	"net/http"
	"time"

	"github.com/onioncdn/onioncdn/onion"
	"github.com/onioncdn/onioncdn/onion/balance"
)

// A backend edge: its own onion service, run as an instance of the group,
// serving as usual. Needs tor.
func Example_backend() {
	ctx := context.Background()
	srv := new(onion.Server)
	defer srv.Close()
	group := "groupaddressxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.onion" // the group's address
	ln, err := srv.Listen(ctx, onion.ListenConfig{Frontend: group})
	if err != nil {
		log.Fatal(err)
	}
	log.Println("backend", ln.Onion(), "of", group)
	http.Serve(ln, http.FileServer(http.Dir("/srv/www")))
}

// A publisher for the group, next to any edge (run two or more, each on
// its own host, with different TakeoverDelays). Needs tor.
func ExamplePublisher() {
	ctx := context.Background()
	srv := new(onion.Server)
	defer srv.Close()
	key, err := onion.LoadKey("/var/lib/onioncdn/group/hs_ed25519_secret_key")
	if err != nil {
		log.Fatal(err)
	}
	p := &balance.Publisher{
		Server:   srv,
		Key:      key,
		Backends: []string{"backend-a.onion", "backend-b.onion", "backend-c.onion"}, // the backends' own addresses
		// TakeoverDelay: 20 * time.Second, // on the standby publishers
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := p.Up(ctx); err != nil {
		log.Fatal(err)
	}
	log.Println("group published at", p.Address())
	for range time.Tick(time.Minute) {
		s := p.Stats()
		log.Printf("backends up %d, reached %d, introduction points %d, rejected by tor %d", s.BackendsUp, s.Reached, s.IntroPoints, s.UploadRejected)
	}
}
