// Command warm fills a CDN tier's cache with HLS presentations before
// viewers arrive: it fetches the playlists, init sections and segments of
// the chosen renditions through the tier, retries failures and reports
// every object it could not fetch.
//
//	warm [flags] URL...
//
// Each URL is a master or media playlist on the tier. -host sends another
// Host header (warm an edge by address for the site it serves); -socks goes
// through a tor SOCKS port. A progress bar is drawn on a terminal, plain
// progress lines otherwise. The exit status is 1 if any object failed.
//
// Examples:
//
//	warm http://127.0.0.1:8080/v/master.m3u8
//	warm -socks 127.0.0.1:9050 -max-bandwidth 1500000 http://xxxx.onion/v/master.m3u8
//	warm -host site.onion -json http://10.0.0.5:8080/v/master.m3u8
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"github.com/onioncdn/onioncdn/hls"
	"github.com/onioncdn/onioncdn/onion"
)

func main() {
	conc := flag.Int("concurrency", hls.DefaultWarmConcurrency, "requests in flight")
	retries := flag.Int("retries", hls.DefaultWarmRetries, "retries per failed object (negative: none)")
	backoff := flag.Duration("backoff", hls.DefaultWarmBackoff, "wait before the first retry (doubles)")
	minBW := flag.Int("min-bandwidth", 0, "skip variants below this BANDWIDTH (bit/s)")
	maxBW := flag.Int("max-bandwidth", 0, "skip variants above this BANDWIDTH (bit/s); 0 = no limit")
	socks := flag.String("socks", "", "tor SOCKS address (host:port) to go through")
	host := flag.String("host", "", "Host header to send")
	asJSON := flag.Bool("json", false, "print the summary as JSON")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: warm [flags] URL...\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	w := &hls.Warmer{Concurrency: *conc, Retries: *retries, Backoff: *backoff, Host: *host}
	if *minBW > 0 || *maxBW > 0 {
		w.Select = func(v hls.Variant) bool {
			return v.Bandwidth >= *minBW && (*maxBW == 0 || v.Bandwidth <= *maxBW)
		}
	}
	if *socks != "" {
		d := &onion.Dialer{SocksAddr: *socks, Isolation: onion.NewIsolationTag()}
		w.Client = &http.Client{Transport: &http.Transport{
			DialContext: d.DialContext, MaxIdleConnsPerHost: *conc, DisableCompression: true,
		}}
	}
	tty := isTerminal(os.Stderr)
	w.Progress = progress(os.Stderr, tty)
	rep, err := w.Warm(ctx, flag.Args()...)
	if tty {
		fmt.Fprintln(os.Stderr)
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
		fmt.Printf("objects %d, %.1f MB, retried %d, failed %d\n", rep.Objects, float64(rep.Bytes)/1e6, rep.Retried, len(rep.Failures))
		if len(rep.Dispositions) > 0 {
			var parts []string
			for k, v := range rep.Dispositions {
				parts = append(parts, fmt.Sprintf("%s %d", k, v))
			}
			fmt.Printf("dispositions: %s\n", strings.Join(parts, ", "))
		}
		for _, f := range rep.Failures {
			fmt.Printf("FAILED %s after %d attempts: %s\n", f.Path, f.Attempts, f.Err)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "warm:", err)
		os.Exit(1)
	}
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progress returns a Warmer.Progress hook drawing a bar on a terminal, or
// printing a line every 5 seconds otherwise.
func progress(out io.Writer, tty bool) func(hls.WarmProgress) {
	var mu sync.Mutex
	var last time.Time
	return func(p hls.WarmProgress) {
		mu.Lock()
		defer mu.Unlock()
		if tty {
			const width = 40
			n := width * p.Done / max(p.Total, 1)
			fmt.Fprintf(out, "\r[%s%s] %d/%d  %.1f MB  failed %d", strings.Repeat("#", n), strings.Repeat(".", width-n), p.Done, p.Total, float64(p.Bytes)/1e6, p.Failed)
			return
		}
		if time.Since(last) >= 5*time.Second {
			last = time.Now()
			fmt.Fprintf(out, "progress %d/%d objects, %.1f MB, failed %d\n", p.Done, p.Total, float64(p.Bytes)/1e6, p.Failed)
		}
	}
}
