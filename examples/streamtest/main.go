// Command streamtest simulates HLS players against a stream and reports how
// it was delivered: startup time, stalls, per-segment delivery time ÷
// segment duration, throughput, rendition switches, errors and the cache
// dispositions the tiers report (Cache-Status).
//
//	streamtest [flags] URL
//
// URL is a master or media playlist. With -socks the players go through a
// tor SOCKS port, each on its own circuit (unless -shared-circuit), as
// distinct viewers would. -json prints the report as JSON; -report FILE
// writes a self-contained HTML page plotting each segment's delivery time
// against its duration, coloured by cache disposition.
//
// Examples:
//
//	streamtest -players 10 -duration 2m http://edge.example/master.m3u8
//	streamtest -socks 127.0.0.1:9050 -rendition 2 -report r.html http://xxxx.onion/master.m3u8
//	streamtest -speed 10 -json http://127.0.0.1:8080/v/master.m3u8 > r.json
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/onioncdn/onioncdn/hls"
	"github.com/onioncdn/onioncdn/onion"
)

func main() {
	players := flag.Int("players", 1, "number of simultaneous players")
	interval := flag.Duration("interval", 0, "delay between player starts")
	rendition := flag.Int("rendition", 0, "fixed rendition (1 = lowest bandwidth); 0 = ABR")
	duration := flag.Duration("duration", 0, "media time each player plays (0 = whole VOD, 1m live)")
	buffer := flag.Duration("buffer", 0, "maximum buffer ahead (0 = 30s)")
	speed := flag.Float64("speed", 1, "time scale: 10 plays ten times faster than real time")
	socks := flag.String("socks", "", "tor SOCKS address (host:port) to go through")
	shared := flag.Bool("shared-circuit", false, "with -socks, let all players share circuits")
	host := flag.String("host", "", "Host header to send (test a tier by address)")
	timeout := flag.Duration("timeout", 0, "give up after this long (0 = no limit)")
	asJSON := flag.Bool("json", false, "print the report as JSON")
	report := flag.String("report", "", "write an HTML report to this file")
	verbose := flag.Bool("v", false, "log player progress to stderr")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: streamtest [flags] URL\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	t := &hls.Tester{
		Players: *players, StartInterval: *interval, Rendition: *rendition, Duration: *duration,
		BufferAhead: *buffer, Speed: *speed, Host: *host,
	}
	if *verbose {
		t.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if *socks != "" {
		shareTag := onion.NewIsolationTag()
		t.ClientFor = func(player int) *http.Client {
			tag := shareTag
			if !*shared {
				tag = onion.NewIsolationTag()
			}
			d := &onion.Dialer{SocksAddr: *socks, Isolation: tag}
			return &http.Client{Transport: &http.Transport{
				DialContext:         d.DialContext,
				MaxIdleConnsPerHost: 4,
				IdleConnTimeout:     2 * time.Minute,
				DisableCompression:  true,
			}}
		}
	}
	rep, err := t.Run(ctx, flag.Arg(0))
	if rep == nil {
		fmt.Fprintln(os.Stderr, "streamtest:", err)
		os.Exit(1)
	}
	if *asJSON {
		rep.WriteJSON(os.Stdout)
	} else {
		rep.WriteText(os.Stdout)
	}
	if *report != "" {
		f, ferr := os.Create(*report)
		if ferr == nil {
			ferr = rep.WriteHTML(f)
			if cerr := f.Close(); ferr == nil {
				ferr = cerr
			}
		}
		if ferr != nil {
			fmt.Fprintln(os.Stderr, "streamtest: report:", ferr)
			os.Exit(1)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "streamtest:", err)
		os.Exit(1)
	}
	if rep.Summary.Failed > 0 {
		os.Exit(1)
	}
}
