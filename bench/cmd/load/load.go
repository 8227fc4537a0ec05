// load: a small closed-loop HTTP load client, used by bench.sh when wrk is
// not installed. C connections each send GET URL over keep-alive, one
// request at a time, for the given duration; at the end it prints the same
// machine-readable line as conf/wrk-report.lua:
//
//	WRK requests= duration_s= rps= bytes= MBps= lat_p50_ms= lat_p99_ms= lat_max_ms=
//	    err_connect= err_read= err_write= err_status= err_timeout=
//
// bytes count the status line, header fields and body of each response, as
// wrk does. It costs more CPU per request than wrk: on a small machine,
// whose cores it shares with the server, absolute rates come out lower;
// ratios between servers measured the same way remain comparable.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"time"
)

func main() {
	conns := flag.Int("c", 64, "connections")
	dur := flag.Duration("d", 10*time.Second, "duration")
	flag.Int("t", 2, "ignored (wrk's thread count)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: load [-c N] [-d DURATION] URL")
		os.Exit(2)
	}
	u, err := url.Parse(flag.Arg(0))
	if err != nil || u.Hostname() != "127.0.0.1" {
		log.Fatalf("refusing non-127.0.0.1 URL %q", flag.Arg(0))
	}
	ctx, cancel := context.WithTimeout(context.Background(), *dur)
	defer cancel()
	type result struct {
		lat                                     []time.Duration
		bytes                                   int64
		errConnect, errRead, errStatus, timeout int
	}
	results := make([]result, *conns)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func(r *result) {
			defer wg.Done()
			tr := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 1, Proxy: nil}
			c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
			defer tr.CloseIdleConnections()
			for ctx.Err() == nil {
				t0 := time.Now()
				resp, err := c.Get(u.String())
				if err != nil {
					var ne net.Error
					switch {
					case ctx.Err() != nil:
					case errors.As(err, &ne) && ne.Timeout():
						r.timeout++
					default:
						r.errConnect++
					}
					continue
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil {
					if ctx.Err() == nil {
						r.errRead++
					}
					continue
				}
				h := int64(len(resp.Proto) + len(resp.Status) + 3)
				for k, vs := range resp.Header {
					for _, v := range vs {
						h += int64(len(k) + len(v) + 4)
					}
				}
				r.bytes += n + h + 2
				if resp.StatusCode >= 400 {
					r.errStatus++
				}
				r.lat = append(r.lat, time.Since(t0))
			}
		}(&results[i])
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	var all []time.Duration
	var bytes int64
	var ec, er, es, et int
	for _, r := range results {
		all = append(all, r.lat...)
		bytes += r.bytes
		ec, er, es, et = ec+r.errConnect, er+r.errRead, es+r.errStatus, et+r.timeout
	}
	slices.Sort(all)
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(len(all)-1, int(p*float64(len(all))))]) / 1e6
	}
	fmt.Printf("WRK requests=%d duration_s=%.3f rps=%.1f bytes=%d MBps=%.2f lat_p50_ms=%.3f lat_p99_ms=%.3f lat_max_ms=%.3f err_connect=%d err_read=%d err_write=0 err_status=%d err_timeout=%d\n",
		len(all), secs, float64(len(all))/secs, bytes, float64(bytes)/secs/1e6, pct(0.50), pct(0.99), pct(1), ec, er, es, et)
}
