// Command origin serves a directory as the origin of an onioncdn CDN:
//
//	origin -listen 127.0.0.1:8000 -dir /srv/site
//
// Every file gets a Cache-Control that suits its type (media segments
// immutable for a year, VOD and master playlists an hour, live playlists
// one second, everything else five minutes), a strong ETag and
// Last-Modified, and range support; -allow-origin adds CORS headers so that
// players on the site's own onion can fetch media from the CDN's onions.
//
// -generate writes a synthetic HLS presentation (master.m3u8, three
// renditions 240p/480p/720p of -segments segments of -segment-duration) into
// -dir on start, for demos and tests.
//
// -sign-key FILE signs every response (RFC 9421 with ed25519, over an
// RFC 9530 Content-Digest; package upstream/integrity) so that no CDN tier
// can alter content unnoticed. FILE holds the ed25519 private key as a PEM
// "PRIVATE KEY" block (PKCS #8, as "openssl genpkey -algorithm ed25519"
// writes it), mode 0600; it is created if missing. The program prints the
// public key, which the tiers take as -verify-key. Keep the private key on
// the origin only.
//
// With -sign-key the origin also keeps a purge log (package purge) at
// /.well-known/onioncdn/purge, which midtiers follow and re-serve to edges;
// -purge-log FILE keeps it across restarts. Issue a purge, signed with the
// same key, from the origin machine:
//
//	origin purge -sign-key origin.pem -url http://127.0.0.1:8000 -prefix /video/ [-soft]
//	origin purge -sign-key origin.pem -url http://127.0.0.1:8000 -path /index.html
//	origin purge -sign-key origin.pem -url http://127.0.0.1:8000 -tag news -soft
//	origin purge -sign-key origin.pem -url http://127.0.0.1:8000 -all -soft
//
// A hard purge removes the objects from every tier; a soft one makes them
// stale, so that tiers revalidate them (stale-while-revalidate still
// applies).
//
// The origin listens on TCP only: it should not be an onion service the
// public can find. Run it on a loopback or private address that only the
// midtier can reach (over a VPN, an SSH tunnel, or an onion with client
// authorization that only the midtier knows). SIGINT or SIGTERM stop it
// gracefully.
package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/onioncdn/onioncdn/hls/hlstest"
	"github.com/onioncdn/onioncdn/origin"
	"github.com/onioncdn/onioncdn/purge"
	"github.com/onioncdn/onioncdn/upstream/integrity"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 && os.Args[1] == "purge" {
		err := runPurge(ctx, os.Args[2:], os.Stdout, os.Stderr)
		if err != nil && !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "origin purge:", err)
			os.Exit(1)
		}
		return
	}
	opts, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err == nil {
		err = run(ctx, opts, os.Stdout, nil)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "origin:", err)
		os.Exit(1)
	}
}

type options struct {
	listen       string
	dir          string
	generate     bool
	segments     int
	segDur       time.Duration
	allowOrigins []string
	signKey      string
	purgeLog     string
	logFormat    string
	logLevel     string
	shutdown     time.Duration
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("origin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	var allow string
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8000", "TCP address to serve on (keep it private: only the midtier should reach the origin)")
	fs.StringVar(&o.dir, "dir", "", "directory to serve (required)")
	fs.BoolVar(&o.generate, "generate", false, "write a synthetic HLS presentation (master.m3u8, 240p/480p/720p) into -dir on start")
	fs.IntVar(&o.segments, "segments", 30, "with -generate: segments per rendition")
	fs.DurationVar(&o.segDur, "segment-duration", 2*time.Second, "with -generate: duration of each segment")
	fs.StringVar(&allow, "allow-origin", "", "comma-separated origins (e.g. http://site.onion) whose pages may fetch media (CORS); * allows any; empty sends no CORS headers")
	fs.StringVar(&o.signKey, "sign-key", "", "sign responses with the ed25519 key in this PEM file (created with mode 0600 if missing); empty: do not sign")
	fs.StringVar(&o.purgeLog, "purge-log", "", "with -sign-key: keep the purge log in this file (without it, a restarted origin starts a new log and every tier revalidates everything once)")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.DurationVar(&o.shutdown, "shutdown-timeout", 10*time.Second, "how long a graceful shutdown waits for requests in progress")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: origin -dir DIR [flags]\n\nServes DIR as the origin of an onioncdn CDN (see the package documentation).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() != 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.dir == "" {
		return nil, errors.New("-dir is required")
	}
	if o.generate && (o.segments < 1 || o.segments > 100000) {
		return nil, fmt.Errorf("-segments %d: want 1 to 100000", o.segments)
	}
	if o.generate && (o.segDur < 100*time.Millisecond || o.segDur > time.Minute) {
		return nil, fmt.Errorf("-segment-duration %v: want 100ms to 1m", o.segDur)
	}
	if o.purgeLog != "" && o.signKey == "" {
		return nil, errors.New("-purge-log needs -sign-key (purges are signed with the origin's key)")
	}
	if o.shutdown <= 0 {
		return nil, fmt.Errorf("-shutdown-timeout %v: want a positive duration", o.shutdown)
	}
	for _, a := range strings.Split(allow, ",") {
		if a = strings.TrimSpace(a); a != "" {
			o.allowOrigins = append(o.allowOrigins, a)
		}
	}
	if _, _, err := net.SplitHostPort(o.listen); err != nil {
		return nil, fmt.Errorf("-listen %q: %w", o.listen, err)
	}
	if _, err := newLogger(io.Discard, o.logFormat, o.logLevel); err != nil {
		return nil, err
	}
	return o, nil
}

// newLogger returns a text or JSON logger at level.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("-log-format %q: want text or json", format)
}

// run serves until ctx ends. ready, if set, is called with the listening
// address once the origin serves.
func run(ctx context.Context, o *options, stdout io.Writer, ready func(addr string)) error {
	log, err := newLogger(os.Stderr, o.logFormat, o.logLevel)
	if err != nil {
		return err
	}
	if o.generate {
		if err := os.MkdirAll(o.dir, 0o755); err != nil {
			return err
		}
		start := time.Now()
		files, size, err := (&hlstest.Origin{Segments: o.segments, SegmentDuration: o.segDur}).WriteDir(o.dir)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "generated a synthetic HLS presentation in %s: %d files, %.1f MB, %v of media per rendition (%v)\n",
			o.dir, files, float64(size)/1e6, time.Duration(o.segments)*o.segDur, time.Since(start).Round(time.Millisecond))
	}
	st, err := os.Stat(o.dir)
	if err != nil {
		return fmt.Errorf("-dir: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("-dir %s: not a directory", o.dir)
	}
	var h http.Handler = &origin.Handler{FS: os.DirFS(o.dir), AllowedOrigins: o.allowOrigins, Logger: log}
	var plog *purge.Log
	if o.signKey != "" {
		key, created, err := integrity.LoadOrCreateSigningKey(o.signKey)
		if err != nil {
			return err
		}
		pub := key.Public().(ed25519.PublicKey)
		if created {
			fmt.Fprintf(stdout, "created signing key %s (mode 0600)\n", o.signKey)
		}
		fmt.Fprintf(stdout, "signing responses; tiers verify with -verify-key %s (key id %s)\n", integrity.EncodePublicKey(pub), integrity.KeyID(pub))
		h = (&integrity.Signer{Key: key, Logger: log}).Handler(h)
		// The purge log, next to the signed site: its entries are signed
		// one by one.
		plog = &purge.Log{Key: key, File: o.purgeLog, Logger: log}
		defer plog.Close()
		mux := http.NewServeMux()
		mux.Handle(purge.DefaultPath, plog)
		mux.Handle("/", h)
		h = mux
		if st := plog.Stats(); st.Log == 0 {
			return errors.New("purge log unusable (see the log)")
		}
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "origin serving %s on http://%s/\n", o.dir, ln.Addr())
	log.Info("origin listening", "addr", ln.Addr().String(), "dir", o.dir, "cors", len(o.allowOrigins) > 0, "signed", o.signKey != "")
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 5 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	go srv.Serve(ln)
	if ready != nil {
		ready(ln.Addr().String())
	}
	<-ctx.Done()
	if plog != nil {
		plog.Close() // ends the midtiers' long polls
	}
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdown)
	defer cancel()
	err = srv.Shutdown(sctx)
	fmt.Fprintln(stdout, "origin stopped")
	return err
}
