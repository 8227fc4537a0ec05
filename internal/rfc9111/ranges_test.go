package rfc9111

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestParseRange(t *testing.T) {
	tests := []struct {
		name    string
		header  string
		size    int64
		want    []Range
		wantErr error
	}{
		{name: "empty", header: "", size: 100},
		{name: "single", header: "bytes=0-9", size: 100, want: []Range{{0, 10}}},
		{name: "single_middle", header: "bytes=10-19", size: 100, want: []Range{{10, 10}}},
		{name: "one_byte", header: "bytes=5-5", size: 100, want: []Range{{5, 1}}},
		{name: "unit_case_insensitive", header: "Bytes=0-0", size: 100, want: []Range{{0, 1}}},
		{name: "whitespace", header: "bytes= 0-1 , 3-4 ", size: 100, want: []Range{{0, 2}, {3, 2}}},
		{name: "last_clamped", header: "bytes=90-200", size: 100, want: []Range{{90, 10}}},
		{name: "open_ended", header: "bytes=95-", size: 100, want: []Range{{95, 5}}},
		{name: "open_from_zero", header: "bytes=0-", size: 100, want: []Range{{0, 100}}},
		{name: "suffix", header: "bytes=-10", size: 100, want: []Range{{90, 10}}},
		{name: "suffix_larger_than_size", header: "bytes=-500", size: 100, want: []Range{{0, 100}}},
		{name: "multiple", header: "bytes=0-9,20-29,-5", size: 100, want: []Range{{0, 10}, {20, 10}, {95, 5}}},
		{name: "empty_list_elements", header: "bytes=,0-1,,", size: 100, want: []Range{{0, 2}}},
		{name: "unsatisfiable_dropped", header: "bytes=200-300,0-0", size: 100, want: []Range{{0, 1}}},
		{name: "huge_last_pos", header: "bytes=0-99999999999999999999999", size: 100, want: []Range{{0, 100}}},
		// Unsatisfiable.
		{name: "start_at_size", header: "bytes=100-", size: 100, wantErr: ErrUnsatisfiable},
		{name: "start_beyond", header: "bytes=200-300", size: 100, wantErr: ErrUnsatisfiable},
		{name: "huge_first_pos", header: "bytes=99999999999999999999999-", size: 100, wantErr: ErrUnsatisfiable},
		{name: "suffix_zero", header: "bytes=-0", size: 100, wantErr: ErrUnsatisfiable},
		{name: "all_unsatisfiable", header: "bytes=100-101,-0,500-", size: 100, wantErr: ErrUnsatisfiable},
		{name: "empty_representation", header: "bytes=0-0", size: 0, wantErr: ErrUnsatisfiable},
		{name: "empty_representation_suffix", header: "bytes=-5", size: 0},
		// Malformed: ignored.
		{name: "other_unit", header: "items=0-1", size: 100},
		{name: "no_equals", header: "bytes 0-1", size: 100},
		{name: "only_unit", header: "bytes=", size: 100},
		{name: "no_dash", header: "bytes=5", size: 100},
		{name: "last_before_first", header: "bytes=9-0", size: 100},
		{name: "negative_first", header: "bytes=--5", size: 100},
		{name: "letters", header: "bytes=a-b", size: 100},
		{name: "plus_sign", header: "bytes=+1-2", size: 100},
		{name: "dash_only", header: "bytes=-", size: 100},
		{name: "one_malformed_spoils_all", header: "bytes=0-1,x", size: 100},
		{name: "negative_size", header: "bytes=0-1", size: -1},
		// Abuse: ignored.
		{name: "overlapping_exceeds_size", header: "bytes=0-99,0-99", size: 100},
		{name: "many_small_overlaps", header: "bytes=" + strings.Repeat("0-10,", 20), size: 100},
		{name: "too_many_ranges", header: "bytes=" + manyRanges(MaxRanges+1), size: 10000},
		{name: "max_ranges_ok", header: "bytes=" + manyRanges(MaxRanges), size: 10000, want: manyWant(MaxRanges)},
		{name: "too_many_specs", header: "bytes=" + oneByteRanges(MaxRangeSpecs+1), size: 10000},
		{name: "max_specs_coalesced", header: "bytes=" + oneByteRanges(MaxRangeSpecs), size: 10000, want: []Range{{0, MaxRangeSpecs}}},
		// Issue 16: 1,000 one-byte ranges are served as the whole object.
		{name: "thousand_one_byte_ranges", header: "bytes=" + oneByteRanges(1000), size: 10240},
		// Coalescing (RFC 9110 §15.3.7.2).
		{name: "adjacent_coalesced", header: "bytes=0-0,1-1,2-2", size: 100, want: []Range{{0, 3}}},
		{name: "overlap_coalesced", header: "bytes=0-4,3-9", size: 100, want: []Range{{0, 10}}},
		{name: "coalesced_sorted", header: "bytes=50-59,5-9,0-4", size: 100, want: []Range{{0, 10}, {50, 10}}},
		{name: "disjoint_order_kept", header: "bytes=20-29,0-9", size: 100, want: []Range{{20, 10}, {0, 10}}},
		{name: "suffix_coalesced", header: "bytes=90-94,-5", size: 100, want: []Range{{90, 10}}},
		{name: "many_coalesce_to_few", header: "bytes=" + manyRanges(MaxRanges+1) + "," + "0-" + itoa64(int64(MaxRanges*10)), size: 10000, want: []Range{{0, int64(MaxRanges*10 + 2)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRange(tt.header, tt.size)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("ParseRange(%q, %d) error = %v, want %v", tt.header, tt.size, err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ParseRange(%q, %d) = %v, want %v", tt.header, tt.size, got, tt.want)
			}
		})
	}
}

func manyRanges(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(itoa64(int64(i*10)) + "-" + itoa64(int64(i*10+1)))
	}
	return b.String()
}

// oneByteRanges returns n adjacent one-byte range-specs: "0-0,1-1,…".
func oneByteRanges(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(itoa64(int64(i)) + "-" + itoa64(int64(i)))
	}
	return b.String()
}

func manyWant(n int) []Range {
	out := make([]Range, n)
	for i := range out {
		out[i] = Range{int64(i * 10), 2}
	}
	return out
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }

func TestContentRange(t *testing.T) {
	tests := []struct {
		name string
		r    Range
		size int64
		want string
	}{
		{"first_byte", Range{0, 1}, 100, "bytes 0-0/100"},
		{"middle", Range{10, 10}, 100, "bytes 10-19/100"},
		{"whole", Range{0, 100}, 100, "bytes 0-99/100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ContentRange(tt.r, tt.size); got != tt.want {
				t.Errorf("ContentRange = %q, want %q", got, tt.want)
			}
		})
	}
	if got := ContentRangeUnsatisfiable(100); got != "bytes */100" {
		t.Errorf("ContentRangeUnsatisfiable = %q", got)
	}
}

func FuzzParseRange(f *testing.F) {
	seeds := []struct {
		h    string
		size int64
	}{
		{"bytes=0-9", 100},                           // single
		{"bytes=0-9,20-29,-5", 100},                  // multiple incl. suffix
		{"bytes=95-", 100},                           // open-ended
		{"bytes=-500", 100},                          // suffix beyond size
		{"bytes=200-", 100},                          // unsatisfiable
		{"bytes=-5", 0},                              // empty representation
		{"bytes=9-0", 100},                           // last < first
		{"items=0-1", 100},                           // other unit
		{"bytes=0-99,0-99", 100},                     // overlap amplification
		{"bytes=0-99999999999999999999999", 1 << 40}, // overflow
		{"bytes=,,,", 10},                            // empty elements
	}
	for _, s := range seeds {
		f.Add(s.h, s.size)
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		rs, err := ParseRange(h, size)
		if err != nil {
			if !errors.Is(err, ErrUnsatisfiable) || rs != nil {
				t.Fatalf("ParseRange(%q, %d) = %v, %v", h, size, rs, err)
			}
			return
		}
		if len(rs) > MaxRanges {
			t.Fatalf("%d ranges, bound is %d", len(rs), MaxRanges)
		}
		var sum int64
		for i, r := range rs {
			for _, q := range rs[:i] {
				if r.Start < q.Start+q.Length && q.Start < r.Start+r.Length {
					t.Fatalf("ranges %v and %v overlap (header %q)", q, r, h)
				}
			}
			if r.Start < 0 || r.Length <= 0 || r.Start >= size || r.Length > size-r.Start {
				t.Fatalf("range %+v outside size %d (header %q)", r, size, h)
			}
			sum += r.Length
			if sum > size {
				t.Fatalf("ranges sum to more than size %d: %v", size, rs)
			}
			if cr := ContentRange(r, size); !strings.HasPrefix(cr, "bytes ") {
				t.Fatalf("ContentRange = %q", cr)
			}
		}
	})
}

func TestForwardRange(t *testing.T) {
	tests := []struct {
		name, header, want string
		ok                 bool
	}{
		{name: "single", header: "bytes=0-9", want: "bytes=0-9", ok: true},
		{name: "single_normalised", header: "Bytes = 10-19 ", want: "bytes=10-19", ok: true},
		{name: "open", header: "bytes=100-", want: "bytes=100-", ok: true},
		{name: "suffix", header: "bytes=-500", want: "bytes=-500", ok: true},
		{name: "suffix_zero", header: "bytes=-0", want: "bytes=-0", ok: true},
		{name: "two_disjoint_order_kept", header: "bytes=20-29,0-9", want: "bytes=20-29,0-9", ok: true},
		{name: "adjacent", header: "bytes=0-0,1-1,2-2", want: "bytes=0-2", ok: true},
		{name: "overlap_sorted", header: "bytes=50-60,0-9,5-20", want: "bytes=0-20,50-60", ok: true},
		{name: "open_absorbs", header: "bytes=10-,20-30,0-5", want: "bytes=0-5,10-", ok: true},
		{name: "suffixes_largest", header: "bytes=-5,-50,-7", want: "bytes=-50", ok: true},
		{name: "zero_suffix_ignored", header: "bytes=0-5,-0", want: "bytes=0-5", ok: true},
		{name: "huge_last", header: "bytes=0-99999999999999999999999", want: "bytes=0-", ok: true},
		{name: "max_ranges", header: "bytes=" + manyRanges(MaxRanges), want: "bytes=" + manyRanges(MaxRanges), ok: true},
		{name: "thousand_adjacent", header: "bytes=" + oneByteRanges(1000)},
		{name: "max_specs_adjacent", header: "bytes=" + oneByteRanges(MaxRangeSpecs), want: "bytes=0-" + itoa64(MaxRangeSpecs-1), ok: true},
		{name: "too_many_ranges", header: "bytes=" + manyRanges(MaxRanges+1)},
		{name: "suffix_and_positional", header: "bytes=0-99,-100"},
		{name: "other_unit", header: "items=0-1"},
		{name: "malformed", header: "bytes=0-1,x"},
		{name: "last_before_first", header: "bytes=9-0"},
		{name: "empty", header: ""},
		{name: "no_specs", header: "bytes=,,"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ForwardRange(tt.header)
			if got != tt.want || ok != tt.ok {
				t.Errorf("ForwardRange(%q) = %q, %v; want %q, %v", tt.header, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// servedBy returns the byte ranges a server that honours every range-spec
// of header as given (clamped to size, no other rule) would send.
func servedBy(header string, size int64) []Range {
	_, specs, _ := strings.Cut(header, "=")
	var out []Range
	for spec := range strings.SplitSeq(specs, ",") {
		first, last, _ := strings.Cut(spec, "-")
		if first == "" {
			n, _ := parseInt(last)
			n = min(n, size)
			if n > 0 {
				out = append(out, Range{size - n, n})
			}
			continue
		}
		a, _ := parseInt(first)
		b := size - 1
		if last != "" {
			b, _ = parseInt(last)
			b = min(b, size-1)
		}
		if a < size {
			out = append(out, Range{a, b - a + 1})
		}
	}
	return out
}

func FuzzForwardRange(f *testing.F) {
	for _, h := range []string{
		"bytes=0-9",                    // single
		"bytes=0-0,1-1,2-2",            // adjacent
		"bytes=-5,-50",                 // suffixes
		"bytes=0-99,-100",              // suffix and positional
		"bytes=10-,20-30",              // open-ended absorbs
		"bytes=" + oneByteRanges(200),  // too many specs
		"bytes=" + manyRanges(20),      // too many ranges
		"bytes=0-99999999999999999999", // saturation
		"Bytes = 5-6 , 1-2",            // spacing and case
		"bytes=--1",                    // malformed
	} {
		f.Add(h, int64(1000))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		out, ok := ForwardRange(h)
		if !ok {
			if out != "" {
				t.Fatalf("ForwardRange(%q) = %q, false", h, out)
			}
			return
		}
		again, ok2 := ForwardRange(out)
		if !ok2 || again != out {
			t.Fatalf("ForwardRange(%q) = %q, but ForwardRange of that = %q, %v", h, out, again, ok2)
		}
		if strings.Count(out, ",") >= MaxRanges {
			t.Fatalf("ForwardRange(%q) = %q: more than %d ranges", h, out, MaxRanges)
		}
		if size <= 0 || size > 1<<40 {
			return
		}
		// Even a server with no range rule of its own sends at most size
		// bytes for the forwarded field.
		var sum int64
		rs := servedBy(out, size)
		for i, r := range rs {
			sum += r.Length
			for _, q := range rs[:i] {
				if r.Start < q.Start+q.Length && q.Start < r.Start+r.Length {
					t.Fatalf("forwarded %q (from %q): ranges %v and %v overlap at size %d", out, h, q, r, size)
				}
			}
		}
		if sum > size {
			t.Fatalf("forwarded %q (from %q) selects %d bytes of %d", out, h, sum, size)
		}
	})
}
