// report: aggregate "RESULT label=... test=... k=v ..." lines (from bench.sh
// logs, files or stdin) into a markdown table: per label the mean over runs,
// the run-to-run spread ((max-min)/mean), and the ratio of the mean to the
// reference label's mean (default nginx). With -readme, the shorter table
// of the repository README's performance section instead (the labels
// nginx, varnish, origin and onioncdn, means only).
//
//	go run ./cmd/report -ref nginx -order nginx,varnish,origin,onioncdn [-readme] "$RUN"/results/*.log
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"os"
	"strconv"
	"strings"
)

type metric struct {
	test, key, desc string
}

var metrics = []metric{
	{"hit_small", "rps", "hit /small (10KB) req/s, higher=better"},
	{"hit_small", "MBps", "hit /small MB/s (1e6, incl. headers)"},
	{"hit_small", "lat_p99_ms", "hit /small wrk p99 latency ms"},
	{"hit_small", "proxy_cpu_us_per_req", "hit /small proxy CPU us/req (lower=better)"},
	{"hit_small", "foreign_cores", "hit /small: other tenants' CPU during run (cores)"},
	{"hit_seg", "rps", "hit /seg (2MB) req/s"},
	{"hit_seg", "MBps", "hit /seg MB/s (1e6)"},
	{"hit_seg", "lat_p99_ms", "hit /seg wrk p99 latency ms"},
	{"hit_seg", "proxy_cpu_us_per_req", "hit /seg proxy CPU us/req"},
	{"hit_seg", "foreign_cores", "hit /seg: other tenants' CPU during run (cores)"},
	{"collapse", "origin_reqs", "collapse: origin requests for 50 clients"},
	{"collapse", "hdr_p50_ms", "collapse: median client headers ms"},
	{"collapse", "fbb_first_ms", "collapse: first client first-body-byte ms"},
	{"collapse", "fbb_p50_ms", "collapse: median client first-body-byte ms"},
	{"collapse", "fbb_max_ms", "collapse: slowest client first-body-byte ms"},
	{"collapse", "total_first_ms", "collapse: first client total ms"},
	{"collapse", "total_p50_ms", "collapse: median client total ms"},
	{"collapse", "total_max_ms", "collapse: slowest client total ms"},
	{"coldmiss", "proxy_p50_ms", "cold /small via proxy p50 ms"},
	{"coldmiss", "origin_p50_ms", "cold /small direct p50 ms (same run)"},
	{"coldmiss", "overhead_p50_ms", "cold miss p50 overhead ms (proxy-origin)"},
}

func main() {
	ref := flag.String("ref", "nginx", "reference label for ratios")
	order := flag.String("order", "", "comma-separated label order (default: order of appearance)")
	readme := flag.Bool("readme", false, "print the README's performance table")
	flag.Parse()
	// data[label][test][key] = values in order
	data := map[string]map[string]map[string][]float64{}
	var labels []string
	read := func(r io.Reader) {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "RESULT ") {
				continue
			}
			kv := map[string]string{}
			for _, f := range strings.Fields(line[7:]) {
				if k, v, ok := strings.Cut(f, "="); ok {
					kv[k] = v
				}
			}
			l, t := kv["label"], kv["test"]
			if l == "" || t == "" {
				continue
			}
			if data[l] == nil {
				data[l] = map[string]map[string][]float64{}
				labels = append(labels, l)
			}
			if data[l][t] == nil {
				data[l][t] = map[string][]float64{}
			}
			for k, v := range kv {
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					data[l][t][k] = append(data[l][t][k], f)
				}
			}
		}
	}
	if flag.NArg() == 0 {
		read(os.Stdin)
	}
	for _, fn := range flag.Args() {
		f, err := os.Open(fn)
		if err != nil {
			log.Fatal(err)
		}
		read(f)
		f.Close()
	}
	if *order != "" {
		labels = strings.Split(*order, ",")
	}
	stat := func(v []float64) (mean, spread float64) {
		if len(v) == 0 {
			return math.NaN(), math.NaN()
		}
		mn, mx, s := v[0], v[0], 0.0
		for _, x := range v {
			mn, mx, s = min(mn, x), max(mx, x), s+x
		}
		mean = s / float64(len(v))
		if mean != 0 {
			spread = (mx - mn) / math.Abs(mean) * 100
		}
		return
	}
	fmtv := func(x float64) string {
		switch a := math.Abs(x); {
		case math.IsNaN(x):
			return "-"
		case a >= 1000:
			return strconv.FormatFloat(x, 'f', 0, 64)
		case a >= 10:
			return strconv.FormatFloat(x, 'f', 1, 64)
		default:
			return strconv.FormatFloat(x, 'f', 3, 64)
		}
	}
	if *readme {
		readmeTable(labels, *ref, func(l, test, key string) float64 { m, _ := stat(data[l][test][key]); return m }, fmtv)
		return
	}
	fmt.Printf("| metric |")
	for _, l := range labels {
		fmt.Printf(" %s |", l)
	}
	fmt.Printf("\n|---|")
	for range labels {
		fmt.Printf("---|")
	}
	fmt.Println()
	for _, m := range metrics {
		refMean, _ := stat(data[*ref][m.test][m.key])
		any := false
		row := fmt.Sprintf("| %s |", m.desc)
		for _, l := range labels {
			v := data[l][m.test][m.key]
			if len(v) == 0 {
				row += " - |"
				continue
			}
			any = true
			mean, sp := stat(v)
			runs := make([]string, len(v))
			for i, x := range v {
				runs[i] = fmtv(x)
			}
			cell := fmt.Sprintf(" %s", strings.Join(runs, " / "))
			if len(v) > 1 {
				cell += fmt.Sprintf(" (±%.0f%%)", sp/2)
			}
			if !math.IsNaN(refMean) && refMean != 0 {
				cell += fmt.Sprintf(" **×%.2f**", mean/refMean)
			}
			row += cell + " |"
		}
		if any {
			fmt.Println(row)
		}
	}
	fmt.Printf("\nCells: per-run values in run order, (±half the max-min spread as %% of mean), ×ratio of mean to %s's mean.\n", *ref)
}

// readmeNames are the README's column names for the harness's labels.
var readmeNames = map[string]string{"nginx": "nginx", "varnish": "Varnish", "origin": "net/http from memory", "onioncdn": "onioncdn"}

// readmeTable prints the README's performance table: means, and ratios to
// ref where the README gives them.
func readmeTable(labels []string, ref string, mean func(l, test, key string) float64, fmtv func(float64) string) {
	fmt.Printf("| metric |")
	for _, l := range labels {
		name := readmeNames[l]
		if name == "" {
			name = l
		}
		fmt.Printf(" %s |", name)
	}
	fmt.Printf("\n|---|")
	for range labels {
		fmt.Printf("---|")
	}
	fmt.Println()
	ratio := func(l, test, key string) string {
		v, r := mean(l, test, key), mean(ref, test, key)
		if math.IsNaN(v) {
			return "-"
		}
		if math.IsNaN(r) || r == 0 {
			return fmtv(v)
		}
		return fmt.Sprintf("%s (×%.2f)", fmtv(v), v/r)
	}
	plain := func(l, test, key string) string { return fmtv(mean(l, test, key)) }
	// Rows that make no sense for the origin itself (it is not a cache).
	cache := func(f func(l, test, key string) string) func(l, test, key string) string {
		return func(l, test, key string) string {
			if l == "origin" {
				return "—"
			}
			return f(l, test, key)
		}
	}
	rows := []struct {
		desc      string
		test, key string
		cell      func(l, test, key string) string
	}{
		{"10 KB hits, req/s", "hit_small", "rps", ratio},
		{"10 KB hits, proxy CPU µs/req", "hit_small", "proxy_cpu_us_per_req", plain},
		{"2 MB hits, req/s", "hit_seg", "rps", ratio},
		{"2 MB hits, proxy CPU µs/req", "hit_seg", "proxy_cpu_us_per_req", plain},
		{"collapse, 50 clients on a cold 2 MB object: origin requests", "collapse", "origin_reqs", plain},
		{"collapse: first / median / slowest client's first body byte, ms", "collapse", "", cache(func(l, test, _ string) string {
			return fmtv(mean(l, test, "fbb_first_ms")) + " / " + fmtv(mean(l, test, "fbb_p50_ms")) + " / " + fmtv(mean(l, test, "fbb_max_ms"))
		})},
		{"cold miss overhead p50, ms", "coldmiss", "overhead_p50_ms", cache(ratio)},
	}
	for _, r := range rows {
		fmt.Printf("| %s |", r.desc)
		for _, l := range labels {
			fmt.Printf(" %s |", r.cell(l, r.test, r.key))
		}
		fmt.Println()
	}
	fmt.Printf("\nMeans over the rounds run; ×ratio of the mean to %s's.\n", ref)
}
