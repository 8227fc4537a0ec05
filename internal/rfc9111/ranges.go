package rfc9111

import (
	"errors"
	"strconv"
	"strings"
)

// Range is one satisfiable byte range of a representation.
type Range struct{ Start, Length int64 }

// ErrUnsatisfiable is returned by [ParseRange] when a valid Range field
// lists no range that overlaps the representation: answer 416 with
// Content-Range: [ContentRangeUnsatisfiable].
var ErrUnsatisfiable = errors.New("rfc9111: range not satisfiable")

// MaxRanges is the most range-specs [ParseRange] honours in one field.
const MaxRanges = 100

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
//   - abuse (§14.2 lets a server ignore it): more than [MaxRanges]
//     range-specs, or ranges whose lengths add up to more than size
//     (overlaps that would amplify the response), are ignored: (nil, nil).
//     The total length of the returned ranges is therefore at most size.
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
		if n++; n > MaxRanges {
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
	return out, nil
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
