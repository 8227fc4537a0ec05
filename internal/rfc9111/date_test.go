package rfc9111

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseDate(t *testing.T) {
	want := time.Date(1994, time.November, 6, 8, 49, 37, 0, time.UTC)
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"imf_fixdate", "Sun, 06 Nov 1994 08:49:37 GMT", true},
		{"rfc850", "Sunday, 06-Nov-94 08:49:37 GMT", true},
		{"asctime", "Sun Nov  6 08:49:37 1994", true},
		{"empty", "", false},
		{"bad_month", "Sun, 06 Nox 1994 08:49:37 GMT", false},
		{"bad_day_of_month", "Sun, 31 Feb 1994 08:49:37 GMT", false},
		{"hour_24", "Sun, 06 Nov 1994 24:49:37 GMT", false},
		{"not_gmt", "Sun, 06 Nov 1994 08:49:37 UTC", false},
		{"number", "0", false},
		// RFC 9110 §5.6.7: HTTP-date is case-sensitive and has exactly one
		// SP between its parts; Go's time.Parse is more lenient on each
		// of these, and a lenient parse turns an invalid Expires into a
		// lifetime (RFC 9111 §5.3: invalid means already expired).
		{"one_digit_hour", "Sun, 06 Nov 1994 8:49:37 GMT", false},
		{"extra_space_after_comma", "Sun,  06 Nov 1994 08:49:37 GMT", false},
		{"extra_spaces_between_fields", "Sun, 06  Nov  1994 08:49:37 GMT", false},
		{"trailing_space", "Sun, 06 Nov 1994 08:49:37 GMT ", false},
		{"leading_space", " Sun, 06 Nov 1994 08:49:37 GMT", false},
		{"one_digit_day", "Sun, 6 Nov 1994 08:49:37 GMT", false},
		{"two_digit_year", "Sun, 06 Nov 94 08:49:37 GMT", false},
		{"no_comma", "Sun 06 Nov 1994 08:49:37 GMT", false},
		{"date_dashes", "Sun, 06-Nov-1994 08:49:37 GMT", false},
		{"time_periods", "Sun, 06 Nov 1994 08.49.37 GMT", false},
		{"upper_case_day_name", "SUN, 06 Nov 1994 08:49:37 GMT", false},
		{"upper_case_month", "Sun, 06 NOV 1994 08:49:37 GMT", false},
		{"lower_case_gmt", "Sun, 06 Nov 1994 08:49:37 gmt", true}, // a recipient may accept it
		{"mixed_case_gmt", "Sun, 06 Nov 1994 08:49:37 gMT", true},
		{"rfc850_pst", "Sunday, 06-Nov-94 08:49:37 PST", false},
		{"rfc850_short_day_name", "Sun, 06-Nov-94 08:49:37 GMT", false},
		{"rfc850_one_digit_hour", "Sunday, 06-Nov-94 8:49:37 GMT", false},
		{"rfc850_lower_case_gmt", "Sunday, 06-Nov-94 08:49:37 gmt", true},
		{"asctime_two_digit_day", "Sun Nov 06 08:49:37 1994", true},
		{"asctime_one_digit_day_no_pad", "Sun Nov 6 08:49:37 1994", false},
		{"asctime_extra_space", "Sun  Nov  6 08:49:37 1994", false},
		{"asctime_one_digit_hour", "Sun Nov  6 8:49:37 1994", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseDate(tt.in)
			if ok != tt.ok || (ok && !got.Equal(want)) {
				t.Errorf("parseDate(%q) = %v, %v; want %v, %v", tt.in, got, ok, want, tt.ok)
			}
		})
	}
}

func TestParseDateLeapSecond(t *testing.T) {
	// RFC 9110 §5.6.7: time-of-day runs from 00:00:00 to 23:59:60.
	got, ok := parseDate("Wed, 31 Dec 2008 23:59:60 GMT")
	if want := time.Date(2009, time.January, 1, 0, 0, 0, 0, time.UTC); !ok || !got.Equal(want) {
		t.Errorf("leap second = %v, %v; want %v, true", got, ok, want)
	}
	if _, ok := parseDate("Wed, 31 Dec 2008 12:00:60 GMT"); ok {
		t.Error("second 60 accepted outside 23:59")
	}
}

// TestParseDateTwoDigitYear checks the rfc850-date rule of RFC 9110
// §5.6.7: "Recipients of a timestamp value in rfc850-date format, which
// uses a two-digit year, MUST interpret a timestamp that appears to be
// more than 50 years in the future as representing the most recent year in
// the past that had the same last two digits."
func TestParseDateTwoDigitYear(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ref  time.Time
		want int // year
	}{
		{"no_ref_94", "Sunday, 06-Nov-94 08:49:37 GMT", time.Time{}, 1994},
		{"no_ref_68", "Sunday, 06-Nov-68 08:49:37 GMT", time.Time{}, 2068},
		{"no_ref_69", "Sunday, 06-Nov-69 08:49:37 GMT", time.Time{}, 1969},
		{"this_century", "Sunday, 01-Mar-26 08:49:37 GMT", t0, 2026},
		{"fifty_years_ahead", "Sunday, 01-Mar-76 11:00:00 GMT", t0, 2076},
		{"just_over_fifty_years", "Sunday, 01-Mar-76 12:00:01 GMT", t0, 1976},
		{"far_future_is_past", "Sunday, 06-Nov-94 08:49:37 GMT", t0, 1994},
		{"next_century", "Sunday, 06-Nov-10 08:49:37 GMT", time.Date(2090, 1, 1, 0, 0, 0, 0, time.UTC), 2110},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseDateAt(tt.in, tt.ref)
			if !ok || got.Year() != tt.want {
				t.Errorf("parseDateAt(%q, %v) = %v, %v; want year %d", tt.in, tt.ref, got, ok, tt.want)
			}
		})
	}
}

// FuzzParseDate checks parseDate against http.ParseTime, which is more
// lenient: whatever parseDate accepts, http.ParseTime accepts with the same
// result (once the zone is upper case and outside leap seconds), and every
// accepted date survives a round trip through the preferred format.
func FuzzParseDate(f *testing.F) {
	f.Add("Sun, 06 Nov 1994 08:49:37 GMT")  // IMF-fixdate
	f.Add("Mon, 29 Feb 2016 23:59:59 GMT")  // leap day
	f.Add("Tue, 29 Feb 2015 00:00:00 GMT")  // no such day
	f.Add("Wed, 00 Jan 2020 00:00:00 GMT")  // day zero
	f.Add("Thu, 01 Jan 0000 00:00:60 GMT")  // second 60 outside 23:59
	f.Add("Wed, 31 Dec 2008 23:59:60 GMT")  // leap second
	f.Add("Sunday, 06-Nov-94 08:49:37 GMT") // RFC 850
	f.Add("Sunday, 06-Nov-94 08:49:37 PST") // RFC 850 with another zone: invalid
	f.Add("Sun Nov  6 08:49:37 1994")       // asctime
	f.Add("Sun Nov 16 08:49:37 1994")       // asctime, two-digit day
	f.Add("Sun, 06 Nov 1994 8:49:37 GMT")   // one-digit hour: invalid
	f.Add("Sun, 06  Nov 1994 08:49:37 GMT") // two spaces: invalid
	f.Add("Sun, 06 Nov 1994 08:49:37 gmt")  // lower-case zone: accepted
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseDate(s)
		if !ok {
			return
		}
		if got.Location() != time.UTC {
			t.Fatalf("parseDate(%q) = %v, not UTC", s, got)
		}
		if u := strings.ToUpper(s[len(s)-3:]); u == "GMT" && !strings.Contains(s, ":60 ") {
			ref, err := http.ParseTime(s[:len(s)-3] + u)
			if err != nil || !ref.Equal(got) {
				t.Fatalf("parseDate(%q) = %v; http.ParseTime = %v, %v", s, got, ref, err)
			}
		}
		if got.Year() >= 0 && got.Year() <= 9999 {
			canon := got.Format(http.TimeFormat)
			if again, ok := parseDate(canon); !ok || !again.Equal(got) {
				t.Fatalf("round trip of %q via %q = %v, %v", s, canon, again, ok)
			}
		}
	})
}
