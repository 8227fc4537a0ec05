package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/purge"
	"github.com/onioncdn/onioncdn/upstream/integrity"
)

// runPurge is the "origin purge" command: it signs a purge with the
// origin's key and submits it to the origin's purge log.
func runPurge(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("origin purge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keyFile := fs.String("sign-key", "", "the origin's signing key (PEM file, as given to the origin's -sign-key) (required)")
	base := fs.String("url", "http://127.0.0.1:8000", "the origin's base URL")
	path := fs.String("path", "", "purge the resource at this path (and query), e.g. /index.html")
	prefix := fs.String("prefix", "", "purge every resource whose path starts with this literal prefix, e.g. /video/")
	tag := fs.String("tag", "", "purge every object whose Surrogate-Key or Cache-Tag lists this tag")
	all := fs.Bool("all", false, "purge everything")
	soft := fs.Bool("soft", false, "mark stale (tiers revalidate) instead of removing")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: origin purge -sign-key FILE [-url URL] (-path P | -prefix P | -tag T | -all) [-soft]\n\nSigns a purge with the origin's key and adds it to the origin's purge log, which every tier follows.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *keyFile == "" {
		return errors.New("-sign-key is required")
	}
	var p cache.Purge
	n := 0
	for _, c := range []struct {
		set  bool
		kind cache.PurgeKind
		v    string
	}{{*path != "", cache.PurgeURL, *path}, {*prefix != "", cache.PurgePrefix, *prefix}, {*tag != "", cache.PurgeTag, *tag}, {*all, cache.PurgeAll, ""}} {
		if c.set {
			n++
			p = cache.Purge{Kind: c.kind, Value: c.v, Soft: *soft}
		}
	}
	if n != 1 {
		return errors.New("want exactly one of -path, -prefix, -tag and -all")
	}
	if _, err := p.Normalize(); err != nil {
		return err
	}
	if _, err := os.Stat(*keyFile); err != nil {
		return fmt.Errorf("-sign-key: %w", err) // never create a key here
	}
	key, _, err := integrity.LoadOrCreateSigningKey(*keyFile)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	e, err := purge.Submit(ctx, nil, strings.TrimSuffix(*base, "/")+purge.DefaultPath, key, p)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "purge %d of log %d: %s\n", e.Seq, e.Log, e.Purge)
	return nil
}
