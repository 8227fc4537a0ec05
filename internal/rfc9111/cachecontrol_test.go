package rfc9111

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// list returns d's directives, for comparisons in tests.
func (d *Directives) list() []directive {
	out := make([]directive, d.n)
	for i := range out {
		out[i] = *d.at(i)
	}
	return out
}

func TestParseCacheControl(t *testing.T) {
	tests := []struct {
		name   string
		values []string
		want   []directive
	}{
		{"empty", nil, []directive{}},
		{"empty_string", []string{""}, []directive{}},
		{"single_token", []string{"no-store"}, []directive{{name: "no-store"}}},
		{"names_case_insensitive", []string{"Max-Age=60, NO-CACHE"}, []directive{{"max-age", "60", true}, {"no-cache", "", false}}},
		{"whitespace_and_tabs", []string{" \tpublic ,\tmax-age = 30 , "}, []directive{{"public", "", false}, {"max-age", "30", true}}},
		{"empty_elements", []string{",,public,,"}, []directive{{"public", "", false}}},
		{"quoted_value", []string{`max-age="60"`}, []directive{{"max-age", "60", true}}},
		{"quoted_with_comma", []string{`no-cache="Set-Cookie, X-Foo", public`}, []directive{{"no-cache", "Set-Cookie, X-Foo", true}, {"public", "", false}}},
		{"quoted_with_escapes", []string{`ext="a\"b\\c"`}, []directive{{"ext", `a"b\c`, true}}},
		{"junk_after_quote_ignored", []string{`a="x"junk, b`}, []directive{{"a", "x", true}, {"b", "", false}}},
		{"unterminated_quote_runs_to_end", []string{`a="x, b=1`}, []directive{{"a", "x, b=1", true}}},
		{"unterminated_quote_with_escape", []string{`a="x\`}, []directive{{"a", `x\`, true}}},
		{"empty_value", []string{"max-age="}, []directive{{"max-age", "", true}}},
		{"non_token_name_skipped", []string{"max age=1, (x), public"}, []directive{{"public", "", false}}},
		{"empty_name_skipped", []string{"=5, public"}, []directive{{"public", "", false}}},
		{"several_lines", []string{"public", "max-age=5"}, []directive{{"public", "", false}, {"max-age", "5", true}}},
		{"duplicates_kept_in_order", []string{"max-age=5, max-age=10"}, []directive{{"max-age", "5", true}, {"max-age", "10", true}}},
		{"token_value_keeps_inner_space", []string{"max-age=1 2"}, []directive{{"max-age", "1 2", true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := ParseCacheControl(tt.values)
			if got := d.list(); !slices.Equal(got, tt.want) {
				t.Errorf("ParseCacheControl(%q) = %+v, want %+v", tt.values, got, tt.want)
			}
		})
	}
}

func TestParseCacheControlBounded(t *testing.T) {
	many := strings.Repeat("a, ", 1000)
	d := ParseCacheControl([]string{many, "public"})
	if d.Len() != MaxDirectives {
		t.Errorf("Len = %d, want %d", d.Len(), MaxDirectives)
	}
	if d.Has("public") {
		t.Error("directive after the bound was kept")
	}
	// More than the inline capacity still works.
	d = ParseCacheControl([]string{"a, b, c, d, e, f, g, h, max-age=7"})
	if v, ok := d.Seconds("max-age"); !ok || v != 7*time.Second {
		t.Errorf("Seconds(max-age) past inline storage = %v, %v", v, ok)
	}
}

func TestDirectivesSeconds(t *testing.T) {
	tests := []struct {
		name        string
		cc          string
		want        time.Duration
		wantPresent bool
	}{
		{"absent", "public", 0, false},
		{"valid", "max-age=60", 60 * time.Second, true},
		{"zero", "max-age=0", 0, true},
		{"quoted", `max-age="120"`, 120 * time.Second, true},
		{"leading_zeros", "max-age=007", 7 * time.Second, true},
		{"case_insensitive_name", "MAX-AGE=3", 3 * time.Second, true},
		{"missing_argument_is_zero", "max-age", 0, true},
		{"empty_argument_is_zero", "max-age=", 0, true},
		{"negative_is_invalid", "max-age=-1", 0, true},
		{"non_numeric_is_invalid", "max-age=abc", 0, true},
		{"fraction_is_invalid", "max-age=1.5", 0, true},
		{"plus_sign_is_invalid", "max-age=+5", 0, true},
		{"clamps_at_2_31", "max-age=2147483649", MaxDelta, true},
		{"huge_clamps", "max-age=99999999999999999999999999999999", MaxDelta, true},
		{"exactly_2_31", "max-age=2147483648", MaxDelta, true},
		{"identical_duplicates_ok", "max-age=5, max-age=5", 5 * time.Second, true},
		{"conflicting_duplicates_stale", "max-age=5, max-age=10", 0, true},
		{"conflicting_duplicates_across_lines", "max-age=5\nmax-age=6", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := ParseCacheControl(strings.Split(tt.cc, "\n"))
			got, present := d.Seconds("max-age")
			if got != tt.want || present != tt.wantPresent {
				t.Errorf("Seconds(max-age) of %q = %v, %v; want %v, %v", tt.cc, got, present, tt.want, tt.wantPresent)
			}
		})
	}
}

func TestDirectivesHasValue(t *testing.T) {
	d := ParseCacheControl([]string{`Private, no-cache="a", s-maxage=3`})
	for name, want := range map[string]bool{"private": true, "PRIVATE": true, "no-cache": true, "s-maxage": true, "public": false, "max-age": false} {
		if got := d.Has(name); got != want {
			t.Errorf("Has(%q) = %v, want %v", name, got, want)
		}
	}
	if v, ok := d.Value("no-cache"); v != "a" || !ok {
		t.Errorf("Value(no-cache) = %q, %v", v, ok)
	}
	if v, ok := d.Value("public"); v != "" || ok {
		t.Errorf("Value(public) = %q, %v", v, ok)
	}
}

func TestDirectivesFieldNames(t *testing.T) {
	tests := []struct {
		name        string
		cc          string
		dir         string
		want        []string
		wantPresent bool
	}{
		{"absent", "public", "no-cache", nil, false},
		{"unqualified", "no-cache", "no-cache", nil, true},
		{"one_field", `private="set-cookie"`, "private", []string{"Set-Cookie"}, true},
		{"list_with_spaces", `no-cache="a-b,  x-FOO ,,"`, "no-cache", []string{"A-B", "X-Foo"}, true},
		{"token_form", `no-cache=etag`, "no-cache", []string{"Etag"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, present := ParseCacheControl([]string{tt.cc}).FieldNames(tt.dir)
			if !slices.Equal(got, tt.want) || present != tt.wantPresent {
				t.Errorf("FieldNames(%q) of %q = %q, %v; want %q, %v", tt.dir, tt.cc, got, present, tt.want, tt.wantPresent)
			}
		})
	}
}

func TestDirectivesString(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want string
	}{
		{"empty", nil, ""},
		{"canonical", []string{"Public,MAX-AGE=60"}, "public, max-age=60"},
		{"token_unquoted", []string{`max-age="60"`}, "max-age=60"},
		{"non_token_quoted", []string{`no-cache="a, b"`}, `no-cache="a, b"`},
		{"escapes", []string{`x="a\"b\\c"`}, `x="a\"b\\c"`},
		{"empty_value_quoted", []string{"max-age="}, `max-age=""`},
		{"lines_joined", []string{"a", "b=1"}, "a, b=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := ParseCacheControl(tt.in)
			got := d.String()
			if got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			d2 := ParseCacheControl([]string{got})
			if !slices.Equal(d.list(), d2.list()) {
				t.Errorf("round trip changed %+v to %+v", d.list(), d2.list())
			}
		})
	}
}

func FuzzParseCacheControl(f *testing.F) {
	seeds := []string{
		"",                                    // empty field
		"max-age=60, public",                  // common response
		"no-cache, no-store, must-revalidate", // common "never cache"
		`no-cache="Set-Cookie, X-Foo"`,        // qualified no-cache
		`private="a\"b\\c"`,                   // escapes in quoted-string
		`a="unterminated`,                     // unterminated quoted-string
		`x="y"trailing, z`,                    // junk after a quoted-string
		"MAX-AGE=007, s-maxage=99999999999999999999", // case, leading zeros, overflow
		"max-age=5, max-age=6",                       // conflicting duplicates
		"=, ,,=x, (bad)",                             // invalid names
		"a=\x00\xff, b=\"\t\"",                       // control and non-ASCII bytes
		"stale-while-revalidate=30, stale-if-error=86400",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := ParseCacheControl([]string{s})
		if d.Len() > MaxDirectives {
			t.Fatalf("kept %d directives, bound is %d", d.Len(), MaxDirectives)
		}
		for _, x := range d.list() {
			if !isToken(x.name) || x.name != strings.ToLower(x.name) {
				t.Fatalf("directive name %q is not a lower-case token", x.name)
			}
			if v, present := d.Seconds(x.name); !present || v < 0 || v > MaxDelta {
				t.Fatalf("Seconds(%q) = %v, %v", x.name, v, present)
			}
		}
		canon := d.String()
		if len(canon) > 3*len(s) {
			t.Fatalf("canonical form of %d bytes from %d input bytes", len(canon), len(s))
		}
		d2 := ParseCacheControl([]string{canon})
		if !slices.Equal(d.list(), d2.list()) {
			t.Fatalf("round trip of %q via %q: %+v != %+v", s, canon, d.list(), d2.list())
		}
		if again := d2.String(); again != canon {
			t.Fatalf("String not stable: %q then %q", canon, again)
		}
	})
}

func BenchmarkParseCacheControl(b *testing.B) {
	for _, bc := range []struct{ name, v string }{
		{"typical", "public, max-age=31536000, immutable"},
		{"quoted", `private, no-cache="Set-Cookie", max-age=0`},
		{"many", "public, max-age=60, s-maxage=120, stale-while-revalidate=30, stale-if-error=600, must-revalidate, no-transform, x=1"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			vs := []string{bc.v}
			b.ReportAllocs()
			for b.Loop() {
				d := ParseCacheControl(vs)
				if !d.Has("max-age") {
					b.Fatal("max-age missing")
				}
			}
		})
	}
}
