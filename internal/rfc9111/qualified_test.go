package rfc9111

import (
	"slices"
	"testing"
)

func TestNoCache(t *testing.T) {
	cdn := Options{TargetedFields: []string{CDNCacheControl}}
	tests := []struct {
		name       string
		lines      []string
		opts       Options
		wantAlways bool
		wantFields []string
	}{
		{"absent", []string{"Cache-Control: max-age=60"}, Options{}, false, nil},
		{"unqualified", []string{"Cache-Control: no-cache"}, Options{}, true, nil},
		{"one_field", []string{`Cache-Control: no-cache="a"`, "Cache-Control: max-age=3600"}, Options{}, false, []string{"A"}},
		{"two_fields", []string{`Cache-Control: no-cache="a, X-Foo", max-age=3600`}, Options{}, false, []string{"A", "X-Foo"}},
		{"token_argument", []string{`Cache-Control: no-cache=set-cookie`}, Options{}, false, []string{"Set-Cookie"}},
		{"empty_argument", []string{`Cache-Control: no-cache=""`}, Options{}, true, nil},
		{"not_field_names", []string{`Cache-Control: no-cache="a b, c"`}, Options{}, true, nil},
		{"conflicting", []string{`Cache-Control: no-cache="a", no-cache="b"`}, Options{}, true, nil},
		{"targeted_string", []string{"Cache-Control: no-cache", `CDN-Cache-Control: no-cache="a", max-age=60`}, cdn, false, []string{"A"}},
		{"targeted_boolean", []string{`Cache-Control: no-cache="a"`, "CDN-Cache-Control: no-cache"}, cdn, true, nil},
		{"targeted_without_no_cache", []string{"Cache-Control: no-cache", "CDN-Cache-Control: max-age=60"}, cdn, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			always, fields := NoCache(hdr(tt.lines...), tt.opts)
			if always != tt.wantAlways || !slices.Equal(fields, tt.wantFields) {
				t.Errorf("NoCache = %v, %q; want %v, %q", always, fields, tt.wantAlways, tt.wantFields)
			}
		})
	}
}

func TestStripPrivate(t *testing.T) {
	cdn := Options{TargetedFields: []string{CDNCacheControl}}
	tests := []struct {
		name        string
		lines       []string
		opts        Options
		wantRemoved []string // names
		wantKept    []string
	}{
		{"none", []string{"Cache-Control: max-age=60", "X-User: a"}, Options{}, nil, []string{"X-User"}},
		{"unqualified_removes_nothing", []string{"Cache-Control: private", "X-User: a"}, Options{}, nil, []string{"X-User"}},
		{"one_field", []string{`Cache-Control: private="X-User", max-age=60`, "X-User: a", "X-Other: b"}, Options{}, []string{"X-User"}, []string{"X-Other", "Cache-Control"}},
		{"set_cookie_all_lines", []string{`Cache-Control: private="set-cookie"`, "Set-Cookie: a=1", "Set-Cookie: b=2"}, Options{}, []string{"Set-Cookie"}, nil},
		{"listed_field_absent", []string{`Cache-Control: private="X-User"`, "X-Other: b"}, Options{}, nil, []string{"X-Other"}},
		{"targeted", []string{`CDN-Cache-Control: private="X-User", max-age=60`, "Cache-Control: private", "X-User: a"}, cdn, []string{"X-User"}, []string{"Cache-Control"}},
		{"cache_control_ignored_when_targeted", []string{"CDN-Cache-Control: max-age=60", `Cache-Control: private="X-User"`, "X-User: a"}, cdn, nil, []string{"X-User"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := hdr(tt.lines...)
			before := h.Clone()
			removed := StripPrivate(h, tt.opts)
			var names []string
			for k, vs := range removed {
				names = append(names, k)
				if !slices.Equal(vs, before[k]) {
					t.Errorf("removed %s = %q, want %q", k, vs, before[k])
				}
				if _, ok := h[k]; ok {
					t.Errorf("%s still in the header", k)
				}
			}
			slices.Sort(names)
			if !slices.Equal(names, tt.wantRemoved) {
				t.Errorf("removed %q, want %q", names, tt.wantRemoved)
			}
			for _, k := range tt.wantKept {
				if _, ok := h[k]; !ok {
					t.Errorf("%s removed, want it kept", k)
				}
			}
			if tt.wantRemoved == nil && removed != nil {
				t.Errorf("StripPrivate = %v, want nil", removed)
			}
		})
	}
}
