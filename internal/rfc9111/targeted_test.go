package rfc9111

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseTargeted(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   []directive // nil: ok is false (the field is ignored)
	}{
		// RFC 9213 §2 and §3.1.
		{"rfc_max_age", []string{"max-age=60"}, []directive{{"max-age", "60", true}}},
		{"rfc_none_is_a_directive", []string{"none"}, []directive{{name: "none"}}},
		{"several_directives", []string{"max-age=600, stale-while-revalidate=30, must-revalidate"},
			[]directive{{"max-age", "600", true}, {"stale-while-revalidate", "30", true}, {name: "must-revalidate"}}},
		{"qualified_no_cache_string", []string{`no-cache="Set-Cookie, X-Foo"`}, []directive{{"no-cache", "Set-Cookie, X-Foo", true}}},
		{"private_string_with_escapes", []string{`private="a\"b\\c"`}, []directive{{"private", `a"b\c`, true}}},
		{"explicit_boolean_true", []string{"no-store=?1"}, []directive{{name: "no-store"}}},
		{"lines_combined", []string{"max-age=60", "public"}, []directive{{"max-age", "60", true}, {name: "public"}}},
		{"ows_around_commas", []string{"max-age=60 ,\tpublic"}, []directive{{"max-age", "60", true}, {name: "public"}}},
		{"leading_spaces", []string{"  max-age=60"}, []directive{{"max-age", "60", true}}},
		{"parameters_ignored", []string{"max-age=60;x=1;y, public;z=\"a\""}, []directive{{"max-age", "60", true}, {name: "public"}}},
		{"duplicate_last_value_first_position", []string{"max-age=60, public, max-age=120"}, []directive{{"max-age", "120", true}, {name: "public"}}},
		{"integer_leading_zeros", []string{"max-age=007"}, []directive{{"max-age", "007", true}}},
		{"integer_fifteen_digits", []string{"max-age=999999999999999"}, []directive{{"max-age", "999999999999999", true}}},
		{"extension_any_type", []string{`foobar, ext=tok/en:x, d=1.5, b=:aGk=:, f=?0, l=(a "b" 1);p, n=-3, max-age=3600`},
			[]directive{{name: "foobar"}, {"ext", "tok/en:x", true}, {"d", "1.5", true}, {"b", ":aGk=:", true}, {"f", "?0", true},
				{"l", `(a "b" 1)`, true}, {"n", "-3", true}, {"max-age", "3600", true}}},
		{"rfc9651_date_and_display_string", []string{`d=@1659578233, s=%"caf%c3%a9", max-age=1`},
			[]directive{{"d", "@1659578233", true}, {"s", `%"caf%c3%a9"`, true}, {"max-age", "1", true}}},

		// RFC 9213 §2.1: "If a targeted field in a given response is
		// empty, or a parsing error is encountered, that field MUST be
		// ignored by the cache".
		{"absent", nil, nil},
		{"empty", []string{""}, nil},
		{"only_spaces", []string{"   "}, nil},
		{"space_before_equals", []string{"max-age =100"}, nil},
		{"space_after_equals", []string{"max-age= 100"}, nil},
		{"upper_case_key", []string{"MaX-aGe=3600"}, nil},
		{"unknown_item_type", []string{"max-age=10000, &&&&&"}, nil},
		{"trailing_comma", []string{"max-age=60,"}, nil},
		{"empty_line_combined", []string{"max-age=60", ""}, nil},
		{"missing_comma", []string{"max-age=60 public"}, nil},
		{"integer_sixteen_digits", []string{"max-age=9999999999999999"}, nil},
		{"decimal_four_fraction_digits", []string{"x=1.2345"}, nil},
		{"decimal_thirteen_integer_digits", []string{"x=1234567890123.1"}, nil},
		{"decimal_trailing_dot", []string{"x=1."}, nil},
		{"unterminated_string", []string{`no-cache="a`}, nil},
		{"bad_string_escape", []string{`no-cache="a\b"`}, nil},
		{"non_ascii_in_string", []string{"no-cache=\"caf\xc3\xa9\""}, nil},
		{"bad_boolean", []string{"no-store=?2"}, nil},
		{"bad_byte_sequence", []string{"x=:a*b:"}, nil},
		{"unterminated_inner_list", []string{"x=(a b"}, nil},
		{"inner_list_without_space", []string{`x=(a"b")`}, nil},
		{"date_with_decimal", []string{"x=@1.5"}, nil},
		{"display_string_upper_hex", []string{`x=%"%C3%A9"`}, nil},
		{"display_string_invalid_utf8", []string{`x=%"%ff"`}, nil},
		{"semicolon_without_key", []string{"max-age=60;"}, nil},
		{"cache_control_quoted_max_age", []string{`max-age="60"`}, nil},

		// RFC 9213 §2.1: "Implementations SHOULD NOT consume values that
		// violate these inferred constraints" (the whole field is then
		// ignored, see ParseTargeted).
		{"max_age_string", []string{`max-age="10000"`}, nil},
		{"max_age_decimal", []string{"max-age=1.5"}, nil},
		{"max_age_negative", []string{"max-age=-1"}, nil},
		{"max_age_token", []string{"max-age=a"}, nil},
		{"max_age_boolean", []string{"max-age"}, nil},
		{"s_maxage_string", []string{`s-maxage="1"`}, nil},
		{"stale_while_revalidate_boolean", []string{"stale-while-revalidate"}, nil},
		{"stale_if_error_decimal", []string{"stale-if-error=1.0"}, nil},
		{"no_store_false", []string{"no-store=?0"}, nil},
		{"no_store_integer", []string{"no-store=1"}, nil},
		{"must_revalidate_string", []string{`must-revalidate="x"`}, nil},
		{"public_token", []string{"public=yes"}, nil},
		{"private_token", []string{"private=Set-Cookie"}, nil},
		{"no_cache_inner_list", []string{`no-cache=("a" "b")`}, nil},
		{"no_cache_false", []string{"no-cache=?0"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, ok := ParseTargeted(tt.values)
			if tt.want == nil {
				if ok {
					t.Errorf("ParseTargeted(%q) = %+v, true; want the field ignored", tt.values, d.list())
				}
				return
			}
			if !ok || !slices.Equal(d.list(), tt.want) {
				t.Errorf("ParseTargeted(%q) = %+v, %v; want %+v, true", tt.values, d.list(), ok, tt.want)
			}
		})
	}
}

func TestParseTargetedBounded(t *testing.T) {
	var b strings.Builder
	for i := 0; i < MaxDirectives; i++ {
		b.WriteString("x" + strconv.Itoa(i) + ", ")
	}
	b.WriteString("max-age=60")
	if _, ok := ParseTargeted([]string{b.String()}); ok {
		t.Errorf("a field with %d directives was used; want it ignored", MaxDirectives+1)
	}
	// Repeating a directive does not count twice.
	if d, ok := ParseTargeted([]string{strings.Repeat("max-age=1, ", 1000) + "max-age=60"}); !ok || d.Len() != 1 {
		t.Errorf("repeated directive: Len %d, ok %v; want 1, true", d.Len(), ok)
	}
}

// targets is a cache whose target list is [ExampleCDN-Cache-Control,
// CDN-Cache-Control], the example of RFC 9213 §2.2.
var targets = Options{TargetedFields: []string{"ExampleCDN-Cache-Control", CDNCacheControl}}

func TestResponseDirectives(t *testing.T) {
	tests := []struct {
		name         string
		lines        []string
		opts         Options
		wantTargeted bool
		wantMaxAge   string
	}{
		{"no_target_list", []string{"Cache-Control: max-age=1", "CDN-Cache-Control: max-age=2"}, Options{}, false, "1"},
		{"cdn_field", []string{"Cache-Control: max-age=1", "CDN-Cache-Control: max-age=2"}, targets, true, "2"},
		{"most_specific_first", []string{"Cache-Control: max-age=1", "CDN-Cache-Control: max-age=2", "ExampleCDN-Cache-Control: max-age=3"}, targets, true, "3"},
		{"invalid_specific_falls_to_cdn", []string{"Cache-Control: max-age=1", "CDN-Cache-Control: max-age=2", "ExampleCDN-Cache-Control: max-age=\"3\""}, targets, true, "2"},
		{"empty_specific_falls_to_cdn", []string{"Cache-Control: max-age=1", "CDN-Cache-Control: max-age=2", "ExampleCDN-Cache-Control:"}, targets, true, "2"},
		{"all_invalid_falls_to_cache_control", []string{"Cache-Control: max-age=1", "CDN-Cache-Control: max-age =2"}, targets, false, "1"},
		{"field_not_on_list_ignored", []string{"Cache-Control: max-age=1", "Other-Cache-Control: max-age=9"}, targets, false, "1"},
		{"non_canonical_target_name", []string{"Cache-Control: max-age=1", "CDN-Cache-Control: max-age=2"}, Options{TargetedFields: []string{"cdn-cache-control"}}, true, "2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, targeted := ResponseDirectives(hdr(tt.lines...), tt.opts)
			if v, _ := d.Value("max-age"); targeted != tt.wantTargeted || v != tt.wantMaxAge {
				t.Errorf("ResponseDirectives = max-age %q, targeted %v; want %q, %v", v, targeted, tt.wantMaxAge, tt.wantTargeted)
			}
		})
	}
}

// TestTargetedRFCExamples runs the examples of RFC 9213 §3.1 for a CDN
// cache (target list [CDN-Cache-Control]) and, for contrast, for a shared
// cache without a target list.
func TestTargetedRFCExamples(t *testing.T) {
	date := "Date: " + httpDate(t0)
	cdn := Options{TargetedFields: []string{CDNCacheControl}}
	tests := []struct {
		name         string
		lines        []string
		opts         Options
		wantStorable bool
		wantLifetime time.Duration
	}{
		// "instruct a CDN cache ... to consider the response fresh for
		// 600 seconds, other shared caches to consider the response fresh
		// for 120 seconds"
		{"fresh_600_for_cdn", []string{date, "Cache-Control: max-age=60, s-maxage=120", "CDN-Cache-Control: max-age=600"}, cdn, true, 600 * time.Second},
		{"fresh_120_for_other_shared", []string{date, "Cache-Control: max-age=60, s-maxage=120", "CDN-Cache-Control: max-age=600"}, Options{}, true, 120 * time.Second},
		// "instruct a CDN cache to consider the response fresh for 600
		// seconds, while all other caches would be prevented from storing
		// it"
		{"cdn_stores_despite_no_store", []string{date, "CDN-Cache-Control: max-age=600", "Cache-Control: no-store"}, cdn, true, 600 * time.Second},
		{"others_obey_no_store", []string{date, "CDN-Cache-Control: max-age=600", "Cache-Control: no-store"}, Options{}, false, 0},
		// "Because CDN-Cache-Control is not present, this header field
		// would prevent all caches from storing the response"
		{"no_cdn_field_no_store", []string{date, "Cache-Control: no-store"}, cdn, false, 0},
		// "these would prevent all caches except for CDN caches from
		// storing the response" ('none' avoids an empty, ignored field)
		{"cdn_none_stores", []string{date, "Cache-Control: no-store", "CDN-Cache-Control: none"}, cdn, true, 0},
		{"cdn_none_heuristic", []string{date, "Cache-Control: no-store", "CDN-Cache-Control: none", "Last-Modified: " + httpDate(t0.Add(-10*time.Hour))}, cdn, true, time.Hour},
		{"others_obey_no_store_with_none", []string{date, "Cache-Control: no-store", "CDN-Cache-Control: none"}, Options{}, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := hdr(tt.lines...)
			ok, reason := Storable(newReq("GET", "http://example.com/x"), 200, h, false, tt.opts)
			if ok != tt.wantStorable {
				t.Errorf("Storable = %v (%s), want %v", ok, reason, tt.wantStorable)
			}
			e := &Entry{Status: 200, Header: h, RequestTime: t0, ResponseTime: t0}
			if got, _ := FreshnessLifetime(e, tt.opts); got != tt.wantLifetime {
				t.Errorf("FreshnessLifetime = %v, want %v", got, tt.wantLifetime)
			}
		})
	}
}

// TestTargetedDirectives checks that each directive RFC 9213 §2.2 requires
// (max-age, must-revalidate, no-store, no-cache, private) and the others
// this package implements have their Cache-Control meaning in a targeted
// field, and that Cache-Control and Expires are ignored while a targeted
// field is used ("MUST ignore the Cache-Control and Expires header fields
// in that response").
func TestTargetedDirectives(t *testing.T) {
	date := "Date: " + httpDate(t0)
	cdn := Options{TargetedFields: []string{CDNCacheControl}}
	tests := []struct {
		name         string
		reqHdr       []string
		lines        []string
		opts         Options
		wantStorable string // "" storable, else the reason
		elapsed      time.Duration
		wantVerdict  Verdict
		wantSIE      bool // StaleIfError at elapsed
	}{
		{name: "max_age_fresh", lines: []string{date, "Cache-Control: max-age=1", "CDN-Cache-Control: max-age=3600"}, elapsed: time.Hour - time.Second, wantVerdict: Fresh},
		{name: "short_cdn_max_age_wins", lines: []string{date, "Cache-Control: max-age=3600", "CDN-Cache-Control: max-age=1"}, elapsed: 2 * time.Second, wantVerdict: MustValidate},
		{name: "max_age_zero_future_expires", lines: []string{date, "CDN-Cache-Control: max-age=0", "Expires: " + httpDate(t0.Add(time.Hour))}, elapsed: time.Second, wantVerdict: MustValidate},
		{name: "max_age_past_expires", lines: []string{date, "CDN-Cache-Control: max-age=3600", "Expires: " + httpDate(t0.Add(-time.Hour))}, elapsed: time.Minute, wantVerdict: Fresh},
		{name: "max_age_invalid_expires", lines: []string{date, "CDN-Cache-Control: max-age=3600", "Expires: 0"}, elapsed: time.Minute, wantVerdict: Fresh},
		{name: "expires_ignored", lines: []string{date, "CDN-Cache-Control: must-revalidate", "Expires: " + httpDate(t0.Add(time.Hour))}, elapsed: time.Minute, wantVerdict: MustValidate},
		{name: "expires_used_without_targets", lines: []string{date, "CDN-Cache-Control: must-revalidate", "Expires: " + httpDate(t0.Add(time.Hour))}, opts: Options{}, elapsed: time.Minute, wantVerdict: Fresh},
		{name: "max_age_clamped", lines: []string{date, "CDN-Cache-Control: max-age=99999999999"}, elapsed: 1000 * time.Hour, wantVerdict: Fresh},
		{name: "age_beyond_max_age", lines: []string{date, "CDN-Cache-Control: max-age=3600", "Age: 7200"}, elapsed: 0, wantVerdict: MustValidate},
		{name: "s_maxage_beats_max_age", lines: []string{date, "CDN-Cache-Control: max-age=10, s-maxage=100"}, elapsed: 50 * time.Second, wantVerdict: Fresh},
		{name: "no_store", lines: []string{date, "Cache-Control: max-age=10000", "CDN-Cache-Control: no-store", "Expires: " + httpDate(t0.Add(time.Hour))}, wantStorable: ReasonNoStore},
		{name: "private", lines: []string{date, "CDN-Cache-Control: private", "Cache-Control: max-age=10000"}, wantStorable: ReasonPrivate},
		{name: "no_cache", lines: []string{date, "CDN-Cache-Control: no-cache", "Cache-Control: max-age=10000"}, elapsed: time.Second, wantVerdict: MustValidate},
		{name: "cache_control_no_cache_ignored", lines: []string{date, "CDN-Cache-Control: max-age=60", "Cache-Control: no-cache"}, elapsed: time.Second, wantVerdict: Fresh},
		{name: "cache_control_private_ignored", lines: []string{date, "CDN-Cache-Control: max-age=60", "Cache-Control: private"}, elapsed: time.Second, wantVerdict: Fresh},
		{name: "must_revalidate_no_stale", opts: Options{TargetedFields: []string{CDNCacheControl}, DefaultStaleWhileRevalidate: time.Hour},
			reqHdr: []string{"Cache-Control: max-stale"}, lines: []string{date, "CDN-Cache-Control: max-age=10, must-revalidate"}, elapsed: 20 * time.Second, wantVerdict: MustValidate},
		{name: "stale_while_revalidate", lines: []string{date, "CDN-Cache-Control: max-age=10, stale-while-revalidate=60", "Cache-Control: max-age=10"}, elapsed: 30 * time.Second, wantVerdict: StaleWhileRevalidate},
		{name: "cache_control_swr_ignored", lines: []string{date, "CDN-Cache-Control: max-age=10", "Cache-Control: max-age=10, stale-while-revalidate=60"}, elapsed: 30 * time.Second, wantVerdict: MustValidate},
		{name: "stale_if_error", lines: []string{date, "CDN-Cache-Control: max-age=10, stale-if-error=60"}, elapsed: 30 * time.Second, wantVerdict: MustValidate, wantSIE: true},
		{name: "cache_control_sie_ignored", lines: []string{date, "CDN-Cache-Control: max-age=10", "Cache-Control: stale-if-error=60"}, elapsed: 30 * time.Second, wantVerdict: MustValidate},
		{name: "authorization_needs_public_in_target", reqHdr: []string{"Authorization: Bearer x"}, lines: []string{date, "CDN-Cache-Control: max-age=60", "Cache-Control: public"}, wantStorable: ReasonAuthorization},
		{name: "authorization_public_in_target", reqHdr: []string{"Authorization: Bearer x"}, lines: []string{date, "CDN-Cache-Control: public, max-age=60", "Cache-Control: private"}, elapsed: time.Second, wantVerdict: Fresh},
		{name: "invalid_field_falls_back", lines: []string{date, `CDN-Cache-Control: max-age="10000"`, "Cache-Control: no-store"}, wantStorable: ReasonNoStore},
		{name: "unknown_item_falls_back", lines: []string{date, "CDN-Cache-Control: max-age=10000, &&&&&", "Cache-Control: no-store"}, wantStorable: ReasonNoStore},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			if opts.TargetedFields == nil && !strings.HasSuffix(tt.name, "without_targets") {
				opts.TargetedFields = cdn.TargetedFields
			}
			req := newReq("GET", "http://example.com/x", tt.reqHdr...)
			h := hdr(tt.lines...)
			ok, reason := Storable(req, 200, h, false, opts)
			if reason != tt.wantStorable || ok != (tt.wantStorable == "") {
				t.Fatalf("Storable = %v, %q; want reason %q", ok, reason, tt.wantStorable)
			}
			if !ok {
				return
			}
			e := &Entry{Status: 200, Header: h, RequestTime: t0, ResponseTime: t0}
			if v, _ := Evaluate(req, e, t0.Add(tt.elapsed), opts); v != tt.wantVerdict {
				t.Errorf("Evaluate = %v, want %v", v, tt.wantVerdict)
			}
			if got := StaleIfError(req, e, t0.Add(tt.elapsed), opts); got != tt.wantSIE {
				t.Errorf("StaleIfError = %v, want %v", got, tt.wantSIE)
			}
		})
	}
}

// TestTargetedAgePenalty is the example of RFC 9213 §2.3: a response
// stored by a CDN for 30 minutes is fresh for a cache honouring
// CDN-Cache-Control and stale for every other cache.
func TestTargetedAgePenalty(t *testing.T) {
	h := hdr("Date: "+httpDate(t0), "Age: 1800", "Cache-Control: max-age=600", "CDN-Cache-Control: max-age=3600")
	e := &Entry{Status: 200, Header: h, RequestTime: t0, ResponseTime: t0}
	req := newReq("GET", "http://example.com/x")
	if v, age := Evaluate(req, e, t0, Options{TargetedFields: []string{CDNCacheControl}}); v != Fresh || age != 1800*time.Second {
		t.Errorf("CDN cache: %v, age %v; want fresh, 30m", v, age)
	}
	if v, _ := Evaluate(req, e, t0, Options{}); v != MustValidate {
		t.Errorf("other cache: %v, want must-validate", v)
	}
}

func FuzzParseTargeted(f *testing.F) {
	seeds := []string{
		"max-age=60",                        // RFC 9213 §2 example
		"none",                              // RFC 9213 §3.1: a directive nobody knows
		"max-age=600, stale-if-error=86400", // several directives
		`no-cache="Set-Cookie, X-Foo"`,      // qualified no-cache
		`private="a\"b\\c"`,                 // escapes in a String
		"max-age=60;x=1;y, public;z=\"a\"",  // parameters (ignored)
		"max-age =100",                      // space before "=": invalid
		"MaX-aGe=3600",                      // upper-case key: invalid
		"max-age=10000, &&&&&",              // unknown item type: invalid
		`max-age="10000"`,                   // wrong type: invalid
		"x=1.234, y=-999999999999999, z=?0", // numbers and Booleans
		`l=(a "b" :aGk=: 1.5);p=1`,          // inner list with parameters
		`d=@-1, s=%"%c3%a9"`,                // RFC 9651 Date and Display String
		"a,",                                // trailing comma
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := ParseTargeted([]string{s})
		if !ok {
			if d.Len() != 0 {
				t.Fatalf("ignored field kept %d directives", d.Len())
			}
			return
		}
		if d.Len() == 0 || d.Len() > MaxDirectives {
			t.Fatalf("valid field with %d directives", d.Len())
		}
		// Round trip through a serialisation of the parsed directives:
		// Integers for the delta-seconds directives, Strings for every
		// other argument, no value for Boolean true.
		var b strings.Builder
		for i, x := range d.list() {
			if x.name == "" || x.name != strings.ToLower(x.name) {
				t.Fatalf("directive name %q", x.name)
			}
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(x.name)
			if !x.hasValue {
				continue
			}
			if _, err := strconv.ParseUint(x.value, 10, 64); err == nil && len(x.value) <= 15 && allowed(x.name, sfInteger) {
				b.WriteString("=" + x.value)
				continue
			}
			b.WriteString("=" + strconv.Quote(x.value))
		}
		d2, ok := ParseTargeted([]string{b.String()})
		if !ok || !slices.Equal(d.list(), d2.list()) {
			t.Fatalf("round trip of %q via %q: %+v, %v", s, b.String(), d2.list(), ok)
		}
	})
}

func BenchmarkParseTargeted(b *testing.B) {
	vs := []string{"max-age=600, stale-while-revalidate=30, stale-if-error=86400"}
	b.ReportAllocs()
	for b.Loop() {
		if d, ok := ParseTargeted(vs); !ok || !d.Has("max-age") {
			b.Fatal("max-age missing")
		}
	}
}

// BenchmarkEvaluateTargeted is BenchmarkEvaluate for a cache honouring
// CDN-Cache-Control on a response that carries it.
func BenchmarkEvaluateTargeted(b *testing.B) {
	req := newReq("GET", "http://example.com/seg1.ts", "Accept: */*")
	e := &Entry{
		Status: 200,
		Header: hdr("Date: "+httpDate(t0), "Cache-Control: public, max-age=60",
			"CDN-Cache-Control: max-age=3600, stale-while-revalidate=60", "Age: 10", "Content-Type: video/mp2t"),
		RequestTime:  t0,
		ResponseTime: t0,
	}
	now := t0.Add(time.Minute)
	o := Options{TargetedFields: []string{CDNCacheControl}}
	b.ReportAllocs()
	for b.Loop() {
		if v, _ := Evaluate(req, e, now, o); v != Fresh {
			b.Fatal(v)
		}
	}
}
