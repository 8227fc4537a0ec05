package rfc9111

import (
	"cmp"
	"errors"
	"slices"
	"strconv"
	"strings"
)

// Range is one satisfiable byte range of a representation.
type Range struct{ Start, Length int64 }

// ErrUnsatisfiable is returned by [ParseRange] when a valid Range field
// lists no range that overlaps the representation: answer 416 with
// Content-Range: [ContentRangeUnsatisfiable].
var ErrUnsatisfiable = errors.New("rfc9111: range not satisfiable")

// MaxRanges is the most ranges served (or forwarded) for one request, after
// overlapping and adjacent ranges have been coalesced. A Range field asking
// for more is ignored: the whole representation is served. Sixteen parts
// of multipart/byteranges cost at most about 2 KB of part headers.
const MaxRanges = 16

// MaxRangeSpecs is the most range-specs [ParseRange] and [ForwardRange]
// read in one field; a field with more is ignored.
const MaxRangeSpecs = 100

// ParseRange parses a Range field (RFC 9110 §14.1.2, §14.2) for a
// representation of size bytes and returns the satisfiable ranges in the
// order requested:
//
//   - "bytes=first-last" (last clamped to size−1), "bytes=first-"
//     (to the end), "bytes=-suffix" (the last suffix bytes, the whole
//     representation if suffix ≥ size), several separated by commas; the
//     unit is case-insensitive;
//   - ranges starting at or beyond size, and "-0", are unsatisfiable and
//     dropped; if none remains the error is [ErrUnsatisfiable]. For an
//     empty representation only a non-zero suffix range is satisfiable
//     (§14.1.1); it selects nothing, so (nil, nil) is returned: serve the
//     empty 200;
//   - an empty or malformed field (other unit, missing "=", non-digits,
//     last < first) is ignored: (nil, nil), serve the full 200;
//   - ranges that overlap or touch are coalesced (§15.3.7.2) into one and
//     the ranges are then returned in ascending order; without any
//     overlap, in the order requested;
//   - abuse (§14.2 lets a server ignore it): more than [MaxRangeSpecs]
//     range-specs, ranges whose lengths add up to more than size (overlaps
//     that would amplify the response), or more than [MaxRanges] ranges
//     after coalescing, are ignored: (nil, nil). The returned ranges are
//     therefore disjoint, at most MaxRanges, and add up to at most size.
//
// An empty header returns (nil, nil).
func ParseRange(header string, size int64) ([]Range, error) {
	if size < 0 {
		return nil, nil
	}
	eq := strings.IndexByte(header, '=')
	if eq < 0 || !strings.EqualFold(trimOWS(header[:eq]), "bytes") {
		return nil, nil
	}
	specs := header[eq+1:]
	var out []Range
	n := 0
	sawSuffix := false
	var total int64
	for spec := range strings.SplitSeq(specs, ",") {
		spec = trimOWS(spec)
		if spec == "" {
			continue // empty list elements are allowed (RFC 9110 §5.6.1)
		}
		if n++; n > MaxRangeSpecs {
			return nil, nil
		}
		dash := strings.IndexByte(spec, '-')
		if dash < 0 {
			return nil, nil
		}
		first, last := spec[:dash], spec[dash+1:]
		if first == "" {
			suffix, ok := parseInt(last)
			if !ok {
				return nil, nil
			}
			if suffix == 0 {
				continue
			}
			sawSuffix = true
			if size == 0 {
				continue
			}
			suffix = min(suffix, size)
			out = append(out, Range{Start: size - suffix, Length: suffix})
			total += suffix
		} else {
			start, ok := parseInt(first)
			if !ok {
				return nil, nil
			}
			end := int64(-1)
			if last != "" {
				if end, ok = parseInt(last); !ok || end < start {
					return nil, nil
				}
			}
			if start >= size {
				continue
			}
			if end < 0 || end >= size {
				end = size - 1
			}
			out = append(out, Range{Start: start, Length: end - start + 1})
			total += end - start + 1
		}
		if total > size {
			return nil, nil
		}
	}
	if len(out) == 0 {
		if n == 0 || (size == 0 && sawSuffix) {
			return nil, nil
		}
		return nil, ErrUnsatisfiable
	}
	out = coalesce(out)
	if len(out) > MaxRanges {
		return nil, nil
	}
	return out, nil
}

// coalesce merges ranges that overlap or touch. If none do, rs is returned
// as is (in the order requested); otherwise the merged ranges are returned
// in ascending order.
func coalesce(rs []Range) []Range {
	if len(rs) < 2 {
		return rs
	}
	sorted := slices.SortedFunc(slices.Values(rs), func(a, b Range) int { return cmp.Compare(a.Start, b.Start) })
	out := sorted[:1]
	for _, r := range sorted[1:] {
		last := &out[len(out)-1]
		if end := last.Start + last.Length; r.Start <= end {
			last.Length = max(end, r.Start+r.Length) - last.Start
			continue
		}
		out = append(out, r)
	}
	if len(out) == len(rs) {
		return rs
	}
	return out
}

// parseInt parses 1*DIGIT; values beyond int64 saturate at MaxInt64 (a
// huge first-pos is then unsatisfiable, a huge last-pos or suffix covers
// the rest).
func parseInt(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (1<<63-1-9)/10 {
			n = 1<<63 - 1
			continue
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// ContentRange returns the Content-Range value for r of a representation
// of size bytes (RFC 9110 §14.4): "bytes first-last/size".
func ContentRange(r Range, size int64) string {
	return "bytes " + strconv.FormatInt(r.Start, 10) + "-" +
		strconv.FormatInt(r.Start+r.Length-1, 10) + "/" + strconv.FormatInt(size, 10)
}

// ContentRangeUnsatisfiable returns the Content-Range value of a 416
// response for a representation of size bytes: "bytes */size".
func ContentRangeUnsatisfiable(size int64) string {
	return "bytes */" + strconv.FormatInt(size, 10)
}

// ForwardRange returns the Range field to send upstream for a client's
// Range field when the representation's size is not known yet: a request
// passed through to the next tier or the origin instead of being served
// from a stored object. It applies the rule of [ParseRange] as far as it
// can without the size, so that no client can make an upstream send many
// times an object's size:
//
//   - one range-spec is forwarded as is (normalised);
//   - several are coalesced where they overlap or touch (then in ascending
//     order), several suffix ranges ("-N") become the largest one, and the
//     result is forwarded if it has at most [MaxRanges] ranges;
//   - a mix of suffix and other ranges (their overlap depends on the size),
//     more than MaxRanges ranges after coalescing, more than
//     [MaxRangeSpecs] range-specs, or a malformed field or other unit:
//     ok is false, drop the field and let the whole representation come
//     back (a server may always ignore Range).
//
// The ranges forwarded are therefore disjoint: an upstream answering them
// sends at most the representation's size plus MaxRanges part headers.
func ForwardRange(header string) (string, bool) {
	eq := strings.IndexByte(header, '=')
	if eq < 0 || !strings.EqualFold(trimOWS(header[:eq]), "bytes") {
		return "", false
	}
	type span struct{ first, last int64 } // last = maxInt64: to the end
	const maxInt64 = 1<<63 - 1
	var spans []span
	var suffix int64 // largest suffix length, 0 if none
	n := 0
	for spec := range strings.SplitSeq(header[eq+1:], ",") {
		spec = trimOWS(spec)
		if spec == "" {
			continue
		}
		if n++; n > MaxRangeSpecs {
			return "", false
		}
		dash := strings.IndexByte(spec, '-')
		if dash < 0 {
			return "", false
		}
		first, last := spec[:dash], spec[dash+1:]
		if first == "" {
			v, ok := parseInt(last)
			if !ok {
				return "", false
			}
			suffix = max(suffix, v) // "-0" selects nothing
			continue
		}
		a, ok := parseInt(first)
		if !ok {
			return "", false
		}
		b := int64(maxInt64)
		if last != "" {
			if b, ok = parseInt(last); !ok || b < a {
				return "", false
			}
		}
		spans = append(spans, span{a, b})
	}
	format := func(s span) string {
		if s.last == maxInt64 {
			return strconv.FormatInt(s.first, 10) + "-"
		}
		return strconv.FormatInt(s.first, 10) + "-" + strconv.FormatInt(s.last, 10)
	}
	switch {
	case n == 0:
		return "", false
	case suffix > 0 && len(spans) > 0:
		return "", false
	case len(spans) == 0:
		// Suffix ranges only; "-0" alone stays unsatisfiable (416).
		return "bytes=-" + strconv.FormatInt(suffix, 10), true
	}
	sorted := slices.SortedFunc(slices.Values(spans), func(a, b span) int { return cmp.Compare(a.first, b.first) })
	out := sorted[:1]
	for _, s := range sorted[1:] {
		last := &out[len(out)-1]
		if last.last == maxInt64 || s.first <= last.last+1 {
			last.last = max(last.last, s.last)
			continue
		}
		out = append(out, s)
	}
	if len(out) == len(spans) {
		out = spans // nothing coalesced: keep the order asked for
	}
	if len(out) > MaxRanges {
		return "", false
	}
	var b strings.Builder
	b.WriteString("bytes=")
	for i, s := range out {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(format(s))
	}
	return b.String(), true
}
