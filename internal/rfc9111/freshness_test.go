package rfc9111

import (
	"net/http"
	"testing"
	"time"
)

func TestFreshnessLifetime(t *testing.T) {
	date := "Date: " + httpDate(t0)
	tests := []struct {
		name          string
		status        int
		lines         []string
		ttl           time.Duration
		opts          Options
		want          time.Duration
		wantHeuristic bool
	}{
		{name: "nothing", status: 200, lines: []string{date}, want: 0},
		{name: "ttl_override_wins", status: 200, ttl: 5 * time.Minute, lines: []string{date, "Cache-Control: s-maxage=10, max-age=20"}, want: 5 * time.Minute},
		{name: "ttl_override_beats_no_freshness_status", status: 503, ttl: time.Second, want: time.Second},
		{name: "s_maxage_beats_max_age", status: 200, lines: []string{date, "Cache-Control: max-age=20, s-maxage=10"}, want: 10 * time.Second},
		{name: "s_maxage_zero", status: 200, lines: []string{date, "Cache-Control: max-age=20, s-maxage=0"}, want: 0},
		{name: "max_age_beats_expires", status: 200, lines: []string{date, "Cache-Control: max-age=20", "Expires: " + httpDate(t0.Add(time.Hour))}, want: 20 * time.Second},
		{name: "max_age_quoted", status: 200, lines: []string{`Cache-Control: max-age="20"`}, want: 20 * time.Second},
		{name: "invalid_max_age_is_stale", status: 200, lines: []string{date, "Cache-Control: max-age=ten", "Expires: " + httpDate(t0.Add(time.Hour))}, want: 0},
		{name: "conflicting_max_age_is_stale", status: 200, lines: []string{"Cache-Control: max-age=20, max-age=30"}, want: 0},
		{name: "max_age_overflow_clamps", status: 200, lines: []string{"Cache-Control: max-age=99999999999"}, want: MaxDelta},
		{name: "expires_minus_date", status: 200, lines: []string{date, "Expires: " + httpDate(t0.Add(90*time.Second))}, want: 90 * time.Second},
		{name: "expires_in_past", status: 200, lines: []string{date, "Expires: " + httpDate(t0.Add(-time.Hour))}, want: 0},
		{name: "expires_invalid_zero", status: 200, lines: []string{date, "Expires: 0", "Last-Modified: " + httpDate(t0.Add(-100*time.Hour))}, want: 0},
		{name: "expires_conflicting_values", status: 200, lines: []string{date, "Expires: " + httpDate(t0.Add(time.Hour)), "Expires: " + httpDate(t0.Add(2*time.Hour))}, want: 0},
		{name: "expires_identical_values", status: 200, lines: []string{date, "Expires: " + httpDate(t0.Add(time.Hour)), "Expires: " + httpDate(t0.Add(time.Hour))}, want: time.Hour},
		{name: "expires_rfc850_format", status: 200, lines: []string{date, "Expires: Sunday, 01-Mar-26 13:00:00 GMT"}, want: time.Hour},
		// RFC 9111 §5.3: "A cache recipient MUST interpret invalid date
		// formats, especially the value "0", as representing a time in
		// the past (i.e., "already expired")." Only the HTTP-date grammar
		// of RFC 9110 §5.6.7 is valid (GMT accepted in any case).
		{name: "expires_valid_next_day", status: 200, lines: []string{date, "Expires: Mon, 02 Mar 2026 09:00:00 GMT"}, want: 21 * time.Hour},
		{name: "expires_one_digit_hour_expired", status: 200, lines: []string{date, "Expires: Mon, 02 Mar 2026 9:00:00 GMT"}, want: 0},
		{name: "expires_extra_spaces_expired", status: 200, lines: []string{date, "Expires: Mon, 02  Mar  2026 09:00:00 GMT"}, want: 0},
		{name: "expires_upper_case_month_expired", status: 200, lines: []string{date, "Expires: Mon, 02 MAR 2026 09:00:00 GMT"}, want: 0},
		{name: "expires_other_zone_expired", status: 200, lines: []string{date, "Expires: Mon, 02 Mar 2026 09:00:00 UTC"}, want: 0},
		{name: "expires_lower_case_gmt", status: 200, lines: []string{date, "Expires: Mon, 02 Mar 2026 09:00:00 gmt"}, want: 21 * time.Hour},
		{name: "expires_asctime_format", status: 200, lines: []string{date, "Expires: Mon Mar  2 09:00:00 2026"}, want: 21 * time.Hour},
		{name: "expires_without_date_uses_response_time", status: 200, lines: []string{"Expires: " + httpDate(t0.Add(30*time.Second))}, want: 30 * time.Second},
		{name: "heuristic_ten_percent", status: 200, lines: []string{date, "Last-Modified: " + httpDate(t0.Add(-10*time.Hour))}, want: time.Hour, wantHeuristic: true},
		{name: "heuristic_custom_fraction", status: 200, opts: Options{HeuristicFraction: 0.5}, lines: []string{date, "Last-Modified: " + httpDate(t0.Add(-10*time.Hour))}, want: 5 * time.Hour, wantHeuristic: true},
		{name: "heuristic_capped_24h", status: 200, lines: []string{date, "Last-Modified: " + httpDate(t0.Add(-1000*time.Hour))}, want: 24 * time.Hour, wantHeuristic: true},
		{name: "heuristic_custom_cap", status: 200, opts: Options{MaxHeuristic: time.Minute}, lines: []string{date, "Last-Modified: " + httpDate(t0.Add(-10*time.Hour))}, want: time.Minute, wantHeuristic: true},
		{name: "heuristic_404", status: 404, lines: []string{date, "Last-Modified: " + httpDate(t0.Add(-10*time.Hour))}, want: time.Hour, wantHeuristic: true},
		{name: "heuristic_not_for_302", status: 302, lines: []string{date, "Last-Modified: " + httpDate(t0.Add(-10*time.Hour))}, want: 0},
		{name: "heuristic_not_for_500", status: 500, lines: []string{date, "Last-Modified: " + httpDate(t0.Add(-10*time.Hour))}, want: 0},
		{name: "heuristic_public_302", status: 302, lines: []string{date, "Cache-Control: public", "Last-Modified: " + httpDate(t0.Add(-10*time.Hour))}, want: time.Hour, wantHeuristic: true},
		{name: "heuristic_future_last_modified", status: 200, lines: []string{date, "Last-Modified: " + httpDate(t0.Add(time.Hour))}, want: 0, wantHeuristic: true},
		{name: "heuristic_invalid_last_modified", status: 200, lines: []string{date, "Last-Modified: yesterday"}, want: 0},
		{name: "no_heuristic_when_expires_present", status: 200, lines: []string{date, "Expires: garbage", "Last-Modified: " + httpDate(t0.Add(-10*time.Hour))}, want: 0},
		{name: "no_cache_does_not_change_lifetime", status: 200, lines: []string{"Cache-Control: no-cache, max-age=60"}, want: time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &Entry{Status: tt.status, Header: hdr(tt.lines...), RequestTime: t0, ResponseTime: t0, TTL: tt.ttl}
			got, heur := FreshnessLifetime(e, tt.opts)
			if got != tt.want || heur != tt.wantHeuristic {
				t.Errorf("FreshnessLifetime = %v, %v; want %v, %v", got, heur, tt.want, tt.wantHeuristic)
			}
		})
	}
}

func TestCurrentAge(t *testing.T) {
	tests := []struct {
		name     string
		lines    []string
		reqTime  time.Time // zero → t0
		respTime time.Time // zero → t0
		now      time.Time
		want     time.Duration
	}{
		{name: "fresh_from_origin", lines: []string{"Date: " + httpDate(t0)}, now: t0, want: 0},
		{name: "resident_time", lines: []string{"Date: " + httpDate(t0)}, now: t0.Add(42 * time.Second), want: 42 * time.Second},
		{name: "age_header", lines: []string{"Date: " + httpDate(t0), "Age: 100"}, now: t0.Add(10 * time.Second), want: 110 * time.Second},
		{name: "apparent_age_from_date", lines: []string{"Date: " + httpDate(t0.Add(-30*time.Second))}, now: t0, want: 30 * time.Second},
		{name: "apparent_age_beats_smaller_age_header", lines: []string{"Date: " + httpDate(t0.Add(-30*time.Second)), "Age: 5"}, now: t0, want: 30 * time.Second},
		{name: "age_header_beats_smaller_apparent", lines: []string{"Date: " + httpDate(t0.Add(-30*time.Second)), "Age: 50"}, now: t0, want: 50 * time.Second},
		{name: "response_delay_added_to_age", lines: []string{"Date: " + httpDate(t0), "Age: 10"}, reqTime: t0.Add(-3 * time.Second), now: t0, want: 13 * time.Second},
		{name: "response_delay_without_age", lines: []string{"Date: " + httpDate(t0)}, reqTime: t0.Add(-3 * time.Second), now: t0.Add(time.Second), want: 4 * time.Second},
		{name: "date_in_future_is_zero_apparent", lines: []string{"Date: " + httpDate(t0.Add(time.Hour))}, now: t0, want: 0},
		{name: "missing_date", lines: nil, now: t0.Add(5 * time.Second), want: 5 * time.Second},
		{name: "invalid_date", lines: []string{"Date: soon", "Age: 2"}, now: t0, want: 2 * time.Second},
		{name: "invalid_age_ignored", lines: []string{"Date: " + httpDate(t0), "Age: -5"}, now: t0, want: 0},
		{name: "age_list_uses_first", lines: []string{"Date: " + httpDate(t0), "Age: 7, 100"}, now: t0, want: 7 * time.Second},
		{name: "age_overflow_clamps", lines: []string{"Age: 99999999999999"}, now: t0.Add(time.Hour), want: MaxDelta},
		{name: "clock_step_back", lines: []string{"Date: " + httpDate(t0)}, now: t0.Add(-time.Hour), want: 0},
		{name: "request_after_response_ignored", lines: []string{"Date: " + httpDate(t0)}, reqTime: t0.Add(time.Second), now: t0, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &Entry{Status: 200, Header: hdr(tt.lines...), RequestTime: tt.reqTime, ResponseTime: tt.respTime}
			if e.RequestTime.IsZero() {
				e.RequestTime = t0
			}
			if e.ResponseTime.IsZero() {
				e.ResponseTime = t0
			}
			if got := CurrentAge(e, tt.now); got != tt.want {
				t.Errorf("CurrentAge = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestEvaluate(t *testing.T) {
	date := "Date: " + httpDate(t0)
	tests := []struct {
		name    string
		reqHdr  []string
		respHdr []string
		ttl     time.Duration
		swr     time.Duration
		opts    Options
		elapsed time.Duration // now − t0 (the response arrived at t0)
		want    Verdict
	}{
		// Freshness.
		{name: "fresh", respHdr: []string{date, "Cache-Control: max-age=60"}, elapsed: 59 * time.Second, want: Fresh},
		{name: "stale_at_lifetime", respHdr: []string{date, "Cache-Control: max-age=60"}, elapsed: 60 * time.Second, want: MustValidate},
		{name: "stale_after", respHdr: []string{date, "Cache-Control: max-age=60"}, elapsed: 61 * time.Second, want: MustValidate},
		{name: "age_header_counts", respHdr: []string{date, "Age: 50", "Cache-Control: max-age=60"}, elapsed: 11 * time.Second, want: MustValidate},
		{name: "ttl_override_fresh", respHdr: []string{date, "Cache-Control: max-age=1"}, ttl: time.Hour, elapsed: time.Minute, want: Fresh},
		{name: "no_freshness_must_validate", respHdr: []string{date}, elapsed: 0, want: MustValidate},
		{name: "heuristic_fresh", respHdr: []string{date, "Last-Modified: " + httpDate(t0.Add(-10*time.Hour))}, elapsed: 59 * time.Minute, want: Fresh},
		// Request directives.
		{name: "request_no_cache", reqHdr: []string{"Cache-Control: no-cache"}, respHdr: []string{date, "Cache-Control: max-age=60"}, want: MustValidate},
		{name: "request_pragma_no_cache", reqHdr: []string{"Pragma: no-cache"}, respHdr: []string{date, "Cache-Control: max-age=60"}, want: MustValidate},
		{name: "request_pragma_in_list", reqHdr: []string{"Pragma: foo, No-Cache"}, respHdr: []string{date, "Cache-Control: max-age=60"}, want: MustValidate},
		{name: "request_pragma_ignored_with_cache_control", reqHdr: []string{"Pragma: no-cache", "Cache-Control: max-stale"}, respHdr: []string{date, "Cache-Control: max-age=60"}, want: Fresh},
		{name: "request_pragma_other_value", reqHdr: []string{"Pragma: x"}, respHdr: []string{date, "Cache-Control: max-age=60"}, want: Fresh},
		{name: "request_max_age_older", reqHdr: []string{"Cache-Control: max-age=10"}, respHdr: []string{date, "Cache-Control: max-age=60"}, elapsed: 11 * time.Second, want: MustValidate},
		{name: "request_max_age_young_enough", reqHdr: []string{"Cache-Control: max-age=10"}, respHdr: []string{date, "Cache-Control: max-age=60"}, elapsed: 10 * time.Second, want: Fresh},
		{name: "request_max_age_zero", reqHdr: []string{"Cache-Control: max-age=0"}, respHdr: []string{date, "Cache-Control: max-age=60"}, elapsed: time.Second, want: MustValidate},
		{name: "request_max_age_invalid_is_zero", reqHdr: []string{"Cache-Control: max-age=x"}, respHdr: []string{date, "Cache-Control: max-age=60"}, elapsed: time.Second, want: MustValidate},
		{name: "request_max_age_beats_max_stale", reqHdr: []string{"Cache-Control: max-age=10, max-stale"}, respHdr: []string{date, "Cache-Control: max-age=5"}, elapsed: 20 * time.Second, want: MustValidate},
		{name: "request_min_fresh_ok", reqHdr: []string{"Cache-Control: min-fresh=20"}, respHdr: []string{date, "Cache-Control: max-age=60"}, elapsed: 40 * time.Second, want: Fresh},
		{name: "request_min_fresh_short", reqHdr: []string{"Cache-Control: min-fresh=20"}, respHdr: []string{date, "Cache-Control: max-age=60"}, elapsed: 41 * time.Second, want: MustValidate},
		{name: "request_max_stale_unbounded", reqHdr: []string{"Cache-Control: max-stale"}, respHdr: []string{date, "Cache-Control: max-age=60"}, elapsed: 1000 * time.Hour, want: StaleServable},
		{name: "request_max_stale_within", reqHdr: []string{"Cache-Control: max-stale=30"}, respHdr: []string{date, "Cache-Control: max-age=60"}, elapsed: 90 * time.Second, want: StaleServable},
		{name: "request_max_stale_exceeded", reqHdr: []string{"Cache-Control: max-stale=30"}, respHdr: []string{date, "Cache-Control: max-age=60"}, elapsed: 91 * time.Second, want: MustValidate},
		{name: "request_max_stale_invalid_is_zero", reqHdr: []string{"Cache-Control: max-stale=soon"}, respHdr: []string{date, "Cache-Control: max-age=60"}, elapsed: 61 * time.Second, want: MustValidate},
		{name: "request_max_stale_fresh_is_fresh", reqHdr: []string{"Cache-Control: max-stale"}, respHdr: []string{date, "Cache-Control: max-age=60"}, elapsed: time.Second, want: Fresh},
		// Response directives.
		{name: "response_no_cache", respHdr: []string{date, "Cache-Control: no-cache, max-age=60"}, want: MustValidate},
		// RFC 9111 §5.2.2.4: with field names, "a cache MAY use the
		// response to satisfy a subsequent request" (without the fields,
		// see NoCache).
		{name: "response_no_cache_fields", respHdr: []string{date, `Cache-Control: no-cache="Set-Cookie", max-age=60`}, want: Fresh},
		{name: "response_no_cache_fields_stale", respHdr: []string{date, `Cache-Control: no-cache="X-A, X-B", max-age=60`}, elapsed: time.Minute, want: MustValidate},
		{name: "response_no_cache_empty_argument", respHdr: []string{date, `Cache-Control: no-cache="", max-age=60`}, want: MustValidate},
		{name: "response_no_cache_bad_argument", respHdr: []string{date, `Cache-Control: no-cache="a b", max-age=60`}, want: MustValidate},
		{name: "response_no_cache_conflicting", respHdr: []string{date, `Cache-Control: no-cache="a", max-age=60`, "Cache-Control: no-cache"}, want: MustValidate},
		{name: "response_no_cache_beats_ttl", respHdr: []string{date, "Cache-Control: no-cache"}, ttl: time.Hour, want: MustValidate},
		{name: "must_revalidate_blocks_max_stale", reqHdr: []string{"Cache-Control: max-stale"}, respHdr: []string{date, "Cache-Control: max-age=60, must-revalidate"}, elapsed: 61 * time.Second, want: MustValidate},
		{name: "proxy_revalidate_blocks_max_stale", reqHdr: []string{"Cache-Control: max-stale"}, respHdr: []string{date, "Cache-Control: max-age=60, proxy-revalidate"}, elapsed: 61 * time.Second, want: MustValidate},
		{name: "s_maxage_blocks_max_stale", reqHdr: []string{"Cache-Control: max-stale"}, respHdr: []string{date, "Cache-Control: s-maxage=60"}, elapsed: 61 * time.Second, want: MustValidate},
		{name: "must_revalidate_fresh_ok", respHdr: []string{date, "Cache-Control: max-age=60, must-revalidate"}, elapsed: 59 * time.Second, want: Fresh},
		// stale-while-revalidate.
		{name: "swr_response_directive", respHdr: []string{date, "Cache-Control: max-age=60, stale-while-revalidate=30"}, elapsed: 90 * time.Second, want: StaleWhileRevalidate},
		{name: "swr_window_over", respHdr: []string{date, "Cache-Control: max-age=60, stale-while-revalidate=30"}, elapsed: 91 * time.Second, want: MustValidate},
		{name: "swr_operator_default", opts: Options{DefaultStaleWhileRevalidate: time.Minute}, respHdr: []string{date, "Cache-Control: max-age=60"}, elapsed: 120 * time.Second, want: StaleWhileRevalidate},
		{name: "swr_operator_default_over", opts: Options{DefaultStaleWhileRevalidate: time.Minute}, respHdr: []string{date, "Cache-Control: max-age=60"}, elapsed: 121 * time.Second, want: MustValidate},
		{name: "swr_zero_at_expiry", respHdr: []string{date, "Cache-Control: max-age=60, stale-while-revalidate=0"}, elapsed: 60 * time.Second, want: MustValidate},
		{name: "swr_response_beats_default", opts: Options{DefaultStaleWhileRevalidate: time.Hour}, respHdr: []string{date, "Cache-Control: max-age=60, stale-while-revalidate=0"}, elapsed: 61 * time.Second, want: MustValidate},
		{name: "swr_invalid_is_zero", opts: Options{DefaultStaleWhileRevalidate: time.Hour}, respHdr: []string{date, "Cache-Control: max-age=60, stale-while-revalidate=x"}, elapsed: 61 * time.Second, want: MustValidate},
		{name: "swr_override_beats_response", swr: time.Hour, respHdr: []string{date, "Cache-Control: max-age=60, stale-while-revalidate=1"}, elapsed: 30 * time.Minute, want: StaleWhileRevalidate},
		{name: "swr_blocked_by_must_revalidate", opts: Options{DefaultStaleWhileRevalidate: time.Hour}, respHdr: []string{date, "Cache-Control: max-age=60, must-revalidate, stale-while-revalidate=60"}, elapsed: 61 * time.Second, want: MustValidate},
		{name: "swr_blocked_by_s_maxage", swr: time.Hour, respHdr: []string{date, "Cache-Control: s-maxage=60"}, elapsed: 61 * time.Second, want: MustValidate},
		{name: "swr_blocked_by_request_no_cache", reqHdr: []string{"Cache-Control: no-cache"}, respHdr: []string{date, "Cache-Control: max-age=60, stale-while-revalidate=60"}, elapsed: 61 * time.Second, want: MustValidate},
		{name: "swr_preferred_over_max_stale", reqHdr: []string{"Cache-Control: max-stale"}, respHdr: []string{date, "Cache-Control: max-age=60, stale-while-revalidate=60"}, elapsed: 61 * time.Second, want: StaleWhileRevalidate},
		{name: "max_stale_after_swr_window", reqHdr: []string{"Cache-Control: max-stale"}, respHdr: []string{date, "Cache-Control: max-age=60, stale-while-revalidate=60"}, elapsed: 200 * time.Second, want: StaleServable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := newReq("GET", "http://example.com/x", tt.reqHdr...)
			e := &Entry{Status: 200, Header: hdr(tt.respHdr...), RequestTime: t0, ResponseTime: t0, TTL: tt.ttl, SWR: tt.swr}
			got, age := Evaluate(req, e, t0.Add(tt.elapsed), tt.opts)
			if got != tt.want {
				t.Errorf("Evaluate = %v, want %v", got, tt.want)
			}
			if wantAge := CurrentAge(e, t0.Add(tt.elapsed)); age != wantAge {
				t.Errorf("age = %v, want %v", age, wantAge)
			}
		})
	}
}

func TestStaleIfError(t *testing.T) {
	date := "Date: " + httpDate(t0)
	tests := []struct {
		name    string
		reqHdr  []string
		respHdr []string
		sie     time.Duration
		opts    Options
		elapsed time.Duration
		want    bool
	}{
		{name: "no_window", respHdr: []string{date, "Cache-Control: max-age=60"}, elapsed: 61 * time.Second, want: false},
		{name: "response_window", respHdr: []string{date, "Cache-Control: max-age=60, stale-if-error=60"}, elapsed: 120 * time.Second, want: true},
		{name: "response_window_over", respHdr: []string{date, "Cache-Control: max-age=60, stale-if-error=60"}, elapsed: 121 * time.Second, want: false},
		{name: "response_window_zero", opts: Options{DefaultStaleIfError: time.Hour}, respHdr: []string{date, "Cache-Control: max-age=60, stale-if-error=0"}, elapsed: 61 * time.Second, want: false},
		{name: "request_window", reqHdr: []string{"Cache-Control: stale-if-error=100"}, respHdr: []string{date, "Cache-Control: max-age=60"}, elapsed: 160 * time.Second, want: true},
		{name: "request_window_over", reqHdr: []string{"Cache-Control: stale-if-error=100"}, respHdr: []string{date, "Cache-Control: max-age=60"}, elapsed: 161 * time.Second, want: false},
		{name: "request_extends_response_window", reqHdr: []string{"Cache-Control: stale-if-error=100"}, respHdr: []string{date, "Cache-Control: max-age=60, stale-if-error=10"}, elapsed: 100 * time.Second, want: true},
		{name: "operator_default", opts: Options{DefaultStaleIfError: time.Hour}, respHdr: []string{date, "Cache-Control: max-age=60"}, elapsed: time.Hour, want: true},
		{name: "operator_default_over", opts: Options{DefaultStaleIfError: time.Hour}, respHdr: []string{date, "Cache-Control: max-age=60"}, elapsed: time.Hour + 61*time.Second, want: false},
		{name: "override_beats_response", sie: time.Hour, respHdr: []string{date, "Cache-Control: max-age=60, stale-if-error=1"}, elapsed: 30 * time.Minute, want: true},
		{name: "fresh_entry_with_window", respHdr: []string{date, "Cache-Control: max-age=60, stale-if-error=1"}, elapsed: time.Second, want: true},
		{name: "must_revalidate_never", sie: time.Hour, reqHdr: []string{"Cache-Control: stale-if-error=1000"}, respHdr: []string{date, "Cache-Control: max-age=60, must-revalidate, stale-if-error=600"}, elapsed: 61 * time.Second, want: false},
		{name: "proxy_revalidate_never", respHdr: []string{date, "Cache-Control: max-age=60, proxy-revalidate, stale-if-error=600"}, elapsed: 61 * time.Second, want: false},
		{name: "s_maxage_never", opts: Options{DefaultStaleIfError: time.Hour}, respHdr: []string{date, "Cache-Control: s-maxage=60, stale-if-error=600"}, elapsed: 61 * time.Second, want: false},
		{name: "response_no_cache_fields_allowed", respHdr: []string{date, `Cache-Control: max-age=60, no-cache="X-A", stale-if-error=600`}, elapsed: 61 * time.Second, want: true},
		{name: "response_no_cache_never", respHdr: []string{date, "Cache-Control: no-cache, stale-if-error=600"}, elapsed: time.Second, want: false},
		{name: "request_no_cache_never", reqHdr: []string{"Cache-Control: no-cache"}, respHdr: []string{date, "Cache-Control: max-age=60, stale-if-error=600"}, elapsed: 61 * time.Second, want: false},
		{name: "request_pragma_no_cache_never", reqHdr: []string{"Pragma: no-cache"}, respHdr: []string{date, "Cache-Control: max-age=60, stale-if-error=600"}, elapsed: 61 * time.Second, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := newReq("GET", "http://example.com/x", tt.reqHdr...)
			e := &Entry{Status: 200, Header: hdr(tt.respHdr...), RequestTime: t0, ResponseTime: t0, SIE: tt.sie}
			if got := StaleIfError(req, e, t0.Add(tt.elapsed), tt.opts); got != tt.want {
				t.Errorf("StaleIfError = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestVerdictString(t *testing.T) {
	for v, want := range map[Verdict]string{Fresh: "fresh", StaleServable: "stale-servable", StaleWhileRevalidate: "stale-while-revalidate", MustValidate: "must-validate", Verdict(9): "verdict(9)"} {
		if got := v.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(v), got, want)
		}
	}
}

func BenchmarkEvaluate(b *testing.B) {
	req := newReq("GET", "http://example.com/seg1.ts", "Accept: */*")
	e := &Entry{
		Status:       200,
		Header:       http.Header{"Date": {httpDate(t0)}, "Cache-Control": {"public, max-age=3600, stale-while-revalidate=60"}, "Age": {"10"}, "Content-Type": {"video/mp2t"}},
		RequestTime:  t0,
		ResponseTime: t0,
	}
	now := t0.Add(time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		if v, _ := Evaluate(req, e, now, Options{}); v != Fresh {
			b.Fatal(v)
		}
	}
}

func TestExplicitLifetime(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    http.Header
		want bool
	}{
		{"none", http.Header{}, false},
		{"public_only", http.Header{"Cache-Control": {"public"}}, false},
		{"max_age", http.Header{"Cache-Control": {"public, max-age=60"}}, true},
		{"s_maxage", http.Header{"Cache-Control": {"s-maxage=5"}}, true},
		{"no_cache", http.Header{"Cache-Control": {"no-cache"}}, true},
		// A quoted comma does not split directives (the old hls parser
		// split on every comma and saw "max-age" here).
		{"quoted_comma", http.Header{"Cache-Control": {`private="a, max-age=5"`}}, false},
		{"valid_expires", http.Header{"Expires": {"Wed, 21 Oct 2015 07:28:00 GMT"}}, true},
		{"invalid_expires", http.Header{"Expires": {"0"}}, false},
		{"targeted_max_age", http.Header{"Cdn-Cache-Control": {"max-age=60"}}, true},
		// The targeted field replaces Cache-Control and Expires.
		{"targeted_without_lifetime", http.Header{"Cdn-Cache-Control": {"public"}, "Cache-Control": {"max-age=60"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ExplicitLifetime(tc.h, Options{TargetedFields: []string{CDNCacheControl}}); got != tc.want {
				t.Errorf("ExplicitLifetime = %v, want %v", got, tc.want)
			}
		})
	}
}
