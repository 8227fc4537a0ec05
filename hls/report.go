package hls

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"maps"
	"slices"
	"strings"
)

// WriteJSON writes r as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes a human-readable summary of r: the aggregate, then one
// line per player.
func (r *Report) WriteText(w io.Writer) error {
	s := r.Summary
	var b strings.Builder
	fmt.Fprintf(&b, "players %d (failed %d), segments %d, errors %d, switches %d\n", s.Players, s.Failed, s.Segments, s.Errors, s.Switches)
	fmt.Fprintf(&b, "startup        p50 %.2fs  p95 %.2fs  max %.2fs\n", s.Startup.P50, s.Startup.P95, s.Startup.Max)
	fmt.Fprintf(&b, "stalls         %d, total %.2fs, longest %.2fs, ratio %.2f%%\n", s.Stalls, s.StallTotal, s.StallLongest, 100*s.StallRatio)
	fmt.Fprintf(&b, "ttfb           p50 %.3fs  p95 %.3fs  max %.3fs\n", s.TTFB.P50, s.TTFB.P95, s.TTFB.Max)
	fmt.Fprintf(&b, "download       p50 %.3fs  p95 %.3fs  max %.3fs\n", s.Download.P50, s.Download.P95, s.Download.Max)
	fmt.Fprintf(&b, "download/dur   p50 %.3f   p95 %.3f   max %.3f   over 1.0: %.1f%%\n", s.Ratio.P50, s.Ratio.P95, s.Ratio.Max, 100*s.Ratio.Over1)
	fmt.Fprintf(&b, "throughput     %.0f kbit/s per player\n", s.Throughput/1000)
	if len(s.Dispositions) > 0 {
		fmt.Fprintf(&b, "dispositions   %s\n", formatCounts(s.Dispositions))
	}
	if l := s.Latency; l != nil {
		fmt.Fprintf(&b, "latency        p50 %.2fs  p95 %.2fs  max %.2fs  (target %.2fs; behind the live edge)\n", l.P50, l.P95, l.Max, s.TargetLatency)
	}
	if l := s.ProgramLatency; l != nil {
		fmt.Fprintf(&b, "program time   p50 %.2fs  p95 %.2fs  max %.2fs  (behind EXT-X-PROGRAM-DATE-TIME)\n", l.P50, l.P95, l.Max)
	}
	if s.Parts > 0 || s.BlockingReloads > 0 {
		fmt.Fprintf(&b, "ll-hls         parts %d (preload hints %d), blocking reloads %d\n", s.Parts, s.Hints, s.BlockingReloads)
	}
	for _, p := range r.Players {
		fmt.Fprintf(&b, "player %d: startup %.2fs, played %.1fs, stalls %d (%.2fs), ratio p95 %.3f, %.0f kbit/s, switches %d, errors %d",
			p.Player, p.Startup, p.Played, p.Stalls, p.StallTotal, p.Ratio.P95, p.Throughput/1000, p.Switches, p.Errors)
		if p.Latency != nil {
			fmt.Fprintf(&b, ", latency p50 %.2fs (target %.2fs)", p.Latency.P50, p.TargetLatency)
		}
		if p.LowLatency {
			fmt.Fprintf(&b, ", parts %d (hints %d, failed %d), blocking reloads %d, delta updates %d", p.Parts, p.Hints, p.HintErrors, p.BlockingReloads, p.DeltaUpdates)
		}
		if p.Err != "" {
			fmt.Fprintf(&b, ", ended: %s", p.Err)
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func formatCounts(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// dispositionColors colours the report's points.
var dispositionColors = map[string]string{
	"hit": "#2a9d2a", "collapsed": "#1f77b4", "miss": "#d62728", "stale": "#ff7f0e", "": "#7f7f7f",
}

func colorOf(d string) string {
	if c, ok := dispositionColors[d]; ok {
		return c
	}
	return "#9467bd"
}

// WriteHTML writes a self-contained HTML page (inline SVG, no scripts)
// plotting each segment's delivery time against its duration over the
// test's time line, coloured by cache disposition, followed by the text
// summary.
func (r *Report) WriteHTML(w io.Writer) error {
	var segs []SegmentStat
	for _, p := range r.Players {
		segs = append(segs, p.Segments...)
	}
	const W, H, L, T, R, B = 960.0, 420.0, 60.0, 20.0, 20.0, 40.0
	maxX, maxY := 1.0, 1.0
	for _, s := range segs {
		maxX = max(maxX, s.Start+s.Download)
		maxY = max(maxY, s.Download, s.Duration)
	}
	maxY *= 1.1
	x := func(v float64) float64 { return L + v/maxX*(W-L-R) }
	y := func(v float64) float64 { return H - B - v/maxY*(H-T-B) }
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>HLS stream test</title>\n")
	b.WriteString("<style>body{font-family:sans-serif;margin:1em}pre{background:#f6f6f6;padding:1em}</style></head><body>\n")
	b.WriteString("<h1>HLS stream test</h1>\n")
	fmt.Fprintf(&b, "<p>Delivery time of each segment (dot) against its duration (grey tick), by request time. %d players, %d segments.</p>\n", r.Summary.Players, len(segs))
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f">`+"\n", W, H, W, H)
	fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="#444"/>`+"\n", L, T, W-L-R, H-T-B)
	for i := 0; i <= 4; i++ {
		v := maxY * float64(i) / 4
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" font-size="11" text-anchor="end">%.2fs</text><line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", L-4, y(v)+4, v, L, W-R, y(v), y(v))
		t := maxX * float64(i) / 4
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" font-size="11" text-anchor="middle">%.1fs</text>`+"\n", x(t), H-B+16, t)
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-size="12" text-anchor="middle">request time since start</text>`+"\n", (W+L)/2, H-6)
	for _, s := range segs {
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#999" stroke-width="2"/>`, x(s.Start)-4, x(s.Start)+4, y(s.Duration), y(s.Duration))
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>player %d msn %d rendition %d: %.3fs for %.2fs (%s)</title></circle>`+"\n",
			x(s.Start), y(s.Download), colorOf(s.Disposition), s.Player, s.MSN, s.Rendition, s.Download, s.Duration, html.EscapeString(s.Disposition))
	}
	b.WriteString("</svg>\n<p>")
	seen := map[string]bool{}
	for _, s := range segs {
		if !seen[s.Disposition] {
			seen[s.Disposition] = true
		}
	}
	for _, d := range slices.Sorted(maps.Keys(seen)) {
		name := d
		if name == "" {
			name = "no Cache-Status"
		}
		fmt.Fprintf(&b, `<span style="color:%s">&#9679;</span> %s &nbsp; `, colorOf(d), html.EscapeString(name))
	}
	b.WriteString("</p>\n")
	r.latencyPlot(&b)
	b.WriteString("<pre>")
	var text strings.Builder
	r.WriteText(&text)
	b.WriteString(html.EscapeString(text.String()))
	b.WriteString("</pre>\n</body></html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// latencyPlot adds the live players' latency over the test's time line,
// with the target latency as a dashed line, when there are samples.
func (r *Report) latencyPlot(b *strings.Builder) {
	const W, H, L, T, R, B = 960.0, 260.0, 60.0, 20.0, 20.0, 40.0
	maxX, maxY, n := 1.0, r.Summary.TargetLatency, 0
	for _, p := range r.Players {
		for _, s := range p.LatencySamples {
			maxX, maxY = max(maxX, s.Time), max(maxY, s.Latency, s.Program)
			n++
		}
	}
	if n == 0 {
		return
	}
	maxY = max(maxY*1.1, 0.1)
	x := func(v float64) float64 { return L + v/maxX*(W-L-R) }
	y := func(v float64) float64 { return H - B - max(v, 0)/maxY*(H-T-B) }
	fmt.Fprintf(b, "<p>Latency of each live player behind the live edge (solid) and behind its program date-time (dotted), by time since start; dashed: the target (%.2fs).</p>\n", r.Summary.TargetLatency)
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f">`+"\n", W, H, W, H)
	fmt.Fprintf(b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="#444"/>`+"\n", L, T, W-L-R, H-T-B)
	for i := 0; i <= 4; i++ {
		v, t := maxY*float64(i)/4, maxX*float64(i)/4
		fmt.Fprintf(b, `<text x="%.0f" y="%.1f" font-size="11" text-anchor="end">%.2fs</text><line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", L-4, y(v)+4, v, L, W-R, y(v), y(v))
		fmt.Fprintf(b, `<text x="%.1f" y="%.0f" font-size="11" text-anchor="middle">%.1fs</text>`+"\n", x(t), H-B+16, t)
	}
	if tl := r.Summary.TargetLatency; tl > 0 {
		fmt.Fprintf(b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#d62728" stroke-dasharray="6 4"/>`+"\n", L, W-R, y(tl), y(tl))
	}
	palette := []string{"#1f77b4", "#2a9d2a", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2"}
	for i, p := range r.Players {
		if len(p.LatencySamples) == 0 {
			continue
		}
		var edge, prog strings.Builder
		for _, s := range p.LatencySamples {
			fmt.Fprintf(&edge, "%.1f,%.1f ", x(s.Time), y(s.Latency))
			if s.Program != 0 {
				fmt.Fprintf(&prog, "%.1f,%.1f ", x(s.Time), y(s.Program))
			}
		}
		c := palette[i%len(palette)]
		fmt.Fprintf(b, `<polyline fill="none" stroke="%s" points="%s"><title>player %d</title></polyline>`+"\n", c, edge.String(), p.Player)
		if prog.Len() > 0 {
			fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-dasharray="2 3" points="%s"/>`+"\n", c, prog.String())
		}
	}
	b.WriteString("</svg>\n")
}
