package rfc9111

import (
	"net/http"
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

// FuzzParseDate checks the IMF-fixdate fast path against http.ParseTime.
func FuzzParseDate(f *testing.F) {
	f.Add("Sun, 06 Nov 1994 08:49:37 GMT")  // IMF-fixdate
	f.Add("Mon, 29 Feb 2016 23:59:59 GMT")  // leap day
	f.Add("Tue, 29 Feb 2015 00:00:00 GMT")  // no such day
	f.Add("Wed, 00 Jan 2020 00:00:00 GMT")  // day zero
	f.Add("Thu, 01 Jan 0000 00:00:60 GMT")  // leap second, year zero
	f.Add("Sunday, 06-Nov-94 08:49:37 GMT") // RFC 850
	f.Fuzz(func(t *testing.T, s string) {
		fast, ok := parseIMFFixdate(s)
		ref, err := http.ParseTime(s)
		if ok && (err != nil || !fast.Equal(ref)) {
			t.Fatalf("parseIMFFixdate(%q) = %v, http.ParseTime = %v, %v", s, fast, ref, err)
		}
		got, ok := parseDate(s)
		if ok != (err == nil) || (ok && !got.Equal(ref)) {
			t.Fatalf("parseDate(%q) = %v, %v; http.ParseTime = %v, %v", s, got, ok, ref, err)
		}
	})
}
