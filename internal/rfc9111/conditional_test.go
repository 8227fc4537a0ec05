package rfc9111

import (
	"net/http"
	"testing"
	"time"
)

func TestValidationHeaders(t *testing.T) {
	lm := httpDate(t0.Add(-time.Hour))
	tests := []struct {
		name    string
		lines   []string
		wantINM string
		wantIMS string
	}{
		{name: "none", lines: []string{"Date: " + httpDate(t0)}},
		{name: "strong_etag", lines: []string{`ETag: "abc"`}, wantINM: `"abc"`},
		{name: "weak_etag", lines: []string{`ETag: W/"abc"`}, wantINM: `W/"abc"`},
		{name: "invalid_etag_not_sent", lines: []string{`ETag: abc`}},
		{name: "last_modified", lines: []string{"Last-Modified: " + lm}, wantIMS: lm},
		{name: "invalid_last_modified_not_sent", lines: []string{"Last-Modified: recently"}},
		{name: "both", lines: []string{`ETag: "v1"`, "Last-Modified: " + lm}, wantINM: `"v1"`, wantIMS: lm},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := ValidationHeaders(&Entry{Status: 200, Header: hdr(tt.lines...)})
			if got := h.Get("If-None-Match"); got != tt.wantINM {
				t.Errorf("If-None-Match = %q, want %q", got, tt.wantINM)
			}
			if got := h.Get("If-Modified-Since"); got != tt.wantIMS {
				t.Errorf("If-Modified-Since = %q, want %q", got, tt.wantIMS)
			}
			if len(h) > 2 {
				t.Errorf("extra headers: %v", h)
			}
		})
	}
}

func TestNotModified(t *testing.T) {
	lm := t0.Add(-time.Hour)
	stored := []string{`ETag: "v1"`, "Last-Modified: " + httpDate(lm), "Date: " + httpDate(t0)}
	weakStored := []string{`ETag: W/"v1"`, "Date: " + httpDate(t0)}
	tests := []struct {
		name   string
		method string
		reqHdr []string
		stored []string
		want   bool
	}{
		{name: "no_conditionals", stored: stored, want: false},
		{name: "inm_match", reqHdr: []string{`If-None-Match: "v1"`}, stored: stored, want: true},
		{name: "inm_head", method: "HEAD", reqHdr: []string{`If-None-Match: "v1"`}, stored: stored, want: true},
		{name: "inm_post_never", method: "POST", reqHdr: []string{`If-None-Match: "v1"`}, stored: stored, want: false},
		{name: "inm_no_match", reqHdr: []string{`If-None-Match: "v2"`}, stored: stored, want: false},
		{name: "inm_list_match", reqHdr: []string{`If-None-Match: "a", "b" ,"v1"`}, stored: stored, want: true},
		{name: "inm_second_line_match", reqHdr: []string{`If-None-Match: "a"`, `If-None-Match: "v1"`}, stored: stored, want: true},
		{name: "inm_weak_request_strong_stored", reqHdr: []string{`If-None-Match: W/"v1"`}, stored: stored, want: true},
		{name: "inm_strong_request_weak_stored", reqHdr: []string{`If-None-Match: "v1"`}, stored: weakStored, want: true},
		{name: "inm_weak_both", reqHdr: []string{`If-None-Match: W/"v1"`}, stored: weakStored, want: true},
		{name: "inm_star", reqHdr: []string{`If-None-Match: *`}, stored: stored, want: true},
		{name: "inm_star_without_etag", reqHdr: []string{`If-None-Match: *`}, stored: []string{"Date: " + httpDate(t0)}, want: true},
		{name: "inm_without_stored_etag", reqHdr: []string{`If-None-Match: "v1"`}, stored: []string{"Date: " + httpDate(t0)}, want: false},
		{name: "inm_unquoted_garbage", reqHdr: []string{`If-None-Match: v1`}, stored: stored, want: false},
		{name: "inm_is_case_sensitive", reqHdr: []string{`If-None-Match: "V1"`}, stored: stored, want: false},
		{name: "inm_wins_over_ims", reqHdr: []string{`If-None-Match: "v2"`, "If-Modified-Since: " + httpDate(t0)}, stored: stored, want: false},
		{name: "ims_equal", reqHdr: []string{"If-Modified-Since: " + httpDate(lm)}, stored: stored, want: true},
		{name: "ims_later", reqHdr: []string{"If-Modified-Since: " + httpDate(t0)}, stored: stored, want: true},
		{name: "ims_earlier", reqHdr: []string{"If-Modified-Since: " + httpDate(lm.Add(-time.Second))}, stored: stored, want: false},
		{name: "ims_invalid_date", reqHdr: []string{"If-Modified-Since: yesterday"}, stored: stored, want: false},
		{name: "ims_two_values", reqHdr: []string{"If-Modified-Since: " + httpDate(t0), "If-Modified-Since: " + httpDate(t0)}, stored: stored, want: false},
		{name: "ims_uses_date_without_last_modified", reqHdr: []string{"If-Modified-Since: " + httpDate(t0)}, stored: []string{"Date: " + httpDate(t0)}, want: true},
		{name: "ims_date_later_than_ims", reqHdr: []string{"If-Modified-Since: " + httpDate(lm)}, stored: []string{"Date: " + httpDate(t0)}, want: false},
		{name: "ims_nothing_to_compare", reqHdr: []string{"If-Modified-Since: " + httpDate(t0)}, stored: []string{`ETag: "x"`}, want: false},
		{name: "ims_post_never", method: "POST", reqHdr: []string{"If-Modified-Since: " + httpDate(t0)}, stored: stored, want: false},
		{name: "if_match_not_evaluated", reqHdr: []string{`If-Match: "nope"`}, stored: stored, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.method
			if m == "" {
				m = http.MethodGet
			}
			req := newReq(m, "http://example.com/", tt.reqHdr...)
			if got := NotModified(req, hdr(tt.stored...)); got != tt.want {
				t.Errorf("NotModified = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestIfRangeMatches(t *testing.T) {
	lm := t0.Add(-time.Hour)
	stored := []string{`ETag: "v1"`, "Last-Modified: " + httpDate(lm), "Date: " + httpDate(t0)}
	tests := []struct {
		name   string
		reqHdr []string
		stored []string
		want   bool
	}{
		{name: "absent", stored: stored, want: true},
		{name: "strong_etag_match", reqHdr: []string{`If-Range: "v1"`}, stored: stored, want: true},
		{name: "strong_etag_mismatch", reqHdr: []string{`If-Range: "v2"`}, stored: stored, want: false},
		{name: "weak_request_etag", reqHdr: []string{`If-Range: W/"v1"`}, stored: stored, want: false},
		{name: "weak_stored_etag", reqHdr: []string{`If-Range: "v1"`}, stored: []string{`ETag: W/"v1"`}, want: false},
		{name: "no_stored_etag", reqHdr: []string{`If-Range: "v1"`}, stored: []string{"Date: " + httpDate(t0)}, want: false},
		{name: "malformed_etag", reqHdr: []string{`If-Range: "v1`}, stored: stored, want: false},
		{name: "date_exact_strong", reqHdr: []string{"If-Range: " + httpDate(lm)}, stored: stored, want: true},
		{name: "date_mismatch", reqHdr: []string{"If-Range: " + httpDate(lm.Add(time.Second))}, stored: stored, want: false},
		{name: "date_weak_last_modified", reqHdr: []string{"If-Range: " + httpDate(t0)}, stored: []string{"Last-Modified: " + httpDate(t0), "Date: " + httpDate(t0)}, want: false},
		{name: "date_without_stored_date", reqHdr: []string{"If-Range: " + httpDate(lm)}, stored: []string{"Last-Modified: " + httpDate(lm)}, want: false},
		{name: "date_without_last_modified", reqHdr: []string{"If-Range: " + httpDate(lm)}, stored: []string{"Date: " + httpDate(t0)}, want: false},
		{name: "garbage", reqHdr: []string{"If-Range: sometime"}, stored: stored, want: false},
		{name: "two_values", reqHdr: []string{`If-Range: "v1"`, `If-Range: "v1"`}, stored: stored, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := newReq("GET", "http://example.com/", tt.reqHdr...)
			if got := IfRangeMatches(req, hdr(tt.stored...)); got != tt.want {
				t.Errorf("IfRangeMatches = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestUpdate304(t *testing.T) {
	stored := hdr(
		"Content-Length: 1000",
		"Content-Type: video/mp2t",
		"Content-Encoding: gzip",
		"Content-Range: bytes 0-999/1000",
		"Date: "+httpDate(t0),
		`ETag: "v1"`,
		"Cache-Control: max-age=10",
		"X-Kept: old",
	)
	fresh := hdr(
		"Content-Length: 0",
		"Content-Type: text/html",
		"Content-Encoding: br",
		"Content-Range: bytes */5",
		"Transfer-Encoding: chunked",
		"Trailer: X-Sum",
		"Connection: keep-alive, X-Hop",
		"X-Hop: secret",
		"Keep-Alive: timeout=5",
		"Proxy-Authenticate: Basic",
		"Proxy-Authentication-Info: x",
		"Set-Cookie: id=tracking",
		"Date: "+httpDate(t0.Add(time.Hour)),
		`ETag: "v2"`,
		"Cache-Control: max-age=600",
		"Cache-Control: stale-if-error=60",
		"X-New: 1",
	)
	freshCopy := fresh.Clone()
	Update304(stored, fresh)

	want := map[string][]string{
		"Content-Length":   {"1000"},
		"Content-Type":     {"text/html"}, // metadata: updated (§3.2)
		"Content-Encoding": {"gzip"},
		"Content-Range":    {"bytes 0-999/1000"},
		"Date":             {httpDate(t0.Add(time.Hour))},
		"Etag":             {`"v2"`},
		"Cache-Control":    {"max-age=600", "stale-if-error=60"},
		"X-Kept":           {"old"},
		"X-New":            {"1"},
	}
	for k, v := range want {
		if got := stored[k]; !equalStrings(got, v) {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	for _, k := range []string{"Transfer-Encoding", "Trailer", "Connection", "X-Hop", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authentication-Info", "Set-Cookie"} {
		if v, ok := stored[k]; ok {
			t.Errorf("%s copied into stored response: %q", k, v)
		}
	}
	if len(stored) != len(want) {
		t.Errorf("stored has %d fields, want %d: %v", len(stored), len(want), stored)
	}
	if !equalHeader(fresh, freshCopy) {
		t.Errorf("Update304 modified the 304's header")
	}
	// The stored slices must not alias the 304's.
	fresh["Cache-Control"][0] = "no-store"
	if stored.Get("Cache-Control") != "max-age=600" {
		t.Error("stored header aliases the 304's values")
	}
}

func TestUpdate304NonCanonicalKey(t *testing.T) {
	stored := http.Header{"X-Foo": {"old"}}
	fresh := http.Header{"x-foo": {"new"}}
	Update304(stored, fresh)
	if got := stored["X-Foo"]; !equalStrings(got, []string{"new"}) || len(stored) != 1 {
		t.Errorf("stored = %v", stored)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalHeader(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !equalStrings(v, b[k]) {
			return false
		}
	}
	return true
}

// TestHEADUpdates follows RFC 9111 §4.3.5: a 200 response to HEAD updates
// a stored GET response only if the validators it carries match and its
// Content-Length, if any, is the stored body's.
func TestHEADUpdates(t *testing.T) {
	lm := "Last-Modified: " + httpDate(t0.Add(-time.Hour))
	stored := hdr(`ETag: "v1"`, lm, "Content-Length: 20")
	tests := []struct {
		name string
		head []string
		want bool
	}{
		{"etag_matches", []string{`ETag: "v1"`, "Content-Length: 20"}, true},
		{"etag_matches_no_length", []string{`ETag: "v1"`}, true},
		{"last_modified_matches", []string{lm}, true},
		{"last_modified_other_format", []string{"Last-Modified: " + t0.Add(-time.Hour).Format(time.ANSIC)}, true},
		{"both_match", []string{`ETag: "v1"`, lm}, true},
		{"etag_differs", []string{`ETag: "v2"`, "Content-Length: 20"}, false},
		{"etag_weakness_differs", []string{`ETag: W/"v1"`}, false},
		{"etag_matches_last_modified_differs", []string{`ETag: "v1"`, "Last-Modified: " + httpDate(t0)}, false},
		{"invalid_last_modified", []string{`ETag: "v1"`, "Last-Modified: yesterday"}, false},
		{"no_validator", []string{"Content-Length: 20"}, false},
		{"length_differs", []string{`ETag: "v1"`, "Content-Length: 21"}, false},
		{"length_invalid", []string{`ETag: "v1"`, "Content-Length: +20"}, false},
		{"length_twice", []string{`ETag: "v1"`, "Content-Length: 20", "Content-Length: 20"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := HEADUpdates(stored, 20, hdr(tt.head...)); got != tt.want {
				t.Errorf("HEADUpdates = %v, want %v", got, tt.want)
			}
		})
	}
	if HEADUpdates(hdr("Content-Length: 20"), 20, hdr(`ETag: "v1"`)) {
		t.Error("an ETag matched a stored response without one")
	}
}
