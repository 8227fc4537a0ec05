package purge_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/purge"
	"github.com/onioncdn/onioncdn/upstream/integrity"
)

// An origin's purge log, a tier following it, and a purge submitted with
// the origin's key.
func Example() {
	pub, key, _ := ed25519.GenerateKey(nil)
	plog := &purge.Log{Key: key}
	origin := httptest.NewServer(plog) // at the origin: mux.Handle(purge.DefaultPath, plog)
	defer origin.Close()

	applied := make(chan purge.Entry, 1)
	c := &cache.Cache{}
	f := &purge.Follower{
		Cache:     c,
		Transport: http.DefaultTransport, // a tier's upstream.Transport
		URL:       origin.URL,
		Keys:      integrity.Keys(pub),
		Wait:      time.Second,
		OnApply:   func(e purge.Entry, _ time.Time) { applied <- e },
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go f.Run(ctx)

	if _, err := purge.Submit(ctx, nil, origin.URL, key, cache.Purge{Kind: cache.PurgePrefix, Value: "/video/", Soft: true}); err != nil {
		fmt.Println(err)
		return
	}
	e := <-applied
	fmt.Println(e.Seq, e.Purge, c.Stats().Purges)
	cancel()
	plog.Close()
	// Output: 1 prefix /video/ (soft) 1
}
