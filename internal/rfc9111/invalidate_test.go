package rfc9111

import (
	"crypto/tls"
	"slices"
	"strings"
	"testing"
)

func TestInvalidationTargets(t *testing.T) {
	tests := []struct {
		name    string
		method  string
		target  string
		host    string // overrides the request's Host when set
		tls     bool
		status  int
		respHdr []string
		want    []string
	}{
		{name: "get_never", method: "GET", target: "http://example.com/a", status: 200},
		{name: "head_never", method: "HEAD", target: "http://example.com/a", status: 200},
		{name: "options_never", method: "OPTIONS", target: "http://example.com/a", status: 200},
		{name: "post_200", method: "POST", target: "http://example.com/a?x=1", status: 200, want: []string{"http://example.com/a?x=1"}},
		{name: "put_201", method: "PUT", target: "http://example.com/a", status: 201, want: []string{"http://example.com/a"}},
		{name: "delete_204", method: "DELETE", target: "http://example.com/a", status: 204, want: []string{"http://example.com/a"}},
		{name: "patch_303", method: "PATCH", target: "http://example.com/a", status: 303, want: []string{"http://example.com/a"}},
		{name: "custom_unsafe_method", method: "PURGE", target: "http://example.com/a", status: 200, want: []string{"http://example.com/a"}},
		{name: "post_404_error", method: "POST", target: "http://example.com/a", status: 404},
		{name: "post_500_error", method: "POST", target: "http://example.com/a", status: 500},
		{name: "post_100_not_final", method: "POST", target: "http://example.com/a", status: 100},
		{name: "host_lowercased", method: "POST", target: "http://example.com/a", host: "EXAMPLE.com", status: 200, want: []string{"http://example.com/a"}},
		{name: "tls_scheme", method: "POST", target: "/a", host: "example.com", tls: true, status: 200, want: []string{"https://example.com/a"}},
		{name: "escaped_path_kept", method: "POST", target: "http://example.com/a%2Fb", status: 200, want: []string{"http://example.com/a%2Fb"}},
		{name: "location_relative", method: "POST", target: "http://example.com/items/", status: 201, respHdr: []string{"Location: 42?v=1"}, want: []string{"http://example.com/items/", "http://example.com/items/42?v=1"}},
		{name: "location_absolute_same_origin", method: "POST", target: "http://example.com/a", status: 201, respHdr: []string{"Location: http://EXAMPLE.COM/b#frag"}, want: []string{"http://example.com/a", "http://example.com/b"}},
		{name: "location_default_port_same_origin", method: "POST", target: "http://example.com/a", status: 201, respHdr: []string{"Location: http://example.com:80/b"}, want: []string{"http://example.com/a", "http://example.com/b"}},
		{name: "location_other_host", method: "POST", target: "http://example.com/a", status: 201, respHdr: []string{"Location: http://evil.example/b"}, want: []string{"http://example.com/a"}},
		{name: "location_other_port", method: "POST", target: "http://example.com/a", status: 201, respHdr: []string{"Location: http://example.com:8080/b"}, want: []string{"http://example.com/a"}},
		{name: "location_other_scheme", method: "POST", target: "http://example.com/a", status: 201, respHdr: []string{"Location: https://example.com/b"}, want: []string{"http://example.com/a"}},
		{name: "location_scheme_relative_other_host", method: "POST", target: "http://example.com/a", status: 201, respHdr: []string{"Location: //evil.example/b"}, want: []string{"http://example.com/a"}},
		{name: "location_userinfo_trick", method: "POST", target: "http://example.com/a", status: 201, respHdr: []string{"Location: http://example.com@evil.example/b"}, want: []string{"http://example.com/a"}},
		{name: "content_location", method: "PUT", target: "http://example.com/a", status: 200, respHdr: []string{"Content-Location: /a.json"}, want: []string{"http://example.com/a", "http://example.com/a.json"}},
		{name: "both_deduplicated", method: "PUT", target: "http://example.com/a", status: 200, respHdr: []string{"Location: /a", "Content-Location: /c"}, want: []string{"http://example.com/a", "http://example.com/c"}},
		{name: "unparsable_location_ignored", method: "POST", target: "http://example.com/a", status: 201, respHdr: []string{"Location: http://[::1"}, want: []string{"http://example.com/a"}},
		{name: "target_with_port", method: "POST", target: "http://example.com:8080/a", status: 201, respHdr: []string{"Location: /b"}, want: []string{"http://example.com:8080/a", "http://example.com:8080/b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := newReq(tt.method, tt.target)
			if tt.host != "" {
				req.Host = tt.host
			}
			if tt.tls {
				req.TLS = &tls.ConnectionState{}
			}
			got := InvalidationTargets(req, tt.status, hdr(tt.respHdr...))
			if !slices.Equal(got, tt.want) {
				t.Errorf("InvalidationTargets = %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzInvalidationTargets(f *testing.F) {
	f.Add("/b", "c")                                 // relative paths
	f.Add("http://example.com:80/x#f", "")           // default port, fragment
	f.Add("//evil.example/", "http://evil.example")  // other origins
	f.Add("http://example.com@evil.example/", "%zz") // userinfo trick, bad escape
	f.Add("http://[::1", "javascript:x")             // unparsable, other scheme
	f.Fuzz(func(t *testing.T, loc, cloc string) {
		req := newReq("POST", "http://example.com/a")
		h := make(map[string][]string)
		h["Location"] = []string{loc}
		h["Content-Location"] = []string{cloc}
		got := InvalidationTargets(req, 201, h)
		if len(got) == 0 || got[0] != "http://example.com/a" || len(got) > 3 {
			t.Fatalf("targets %q", got)
		}
		for _, k := range got {
			if !strings.HasPrefix(k, "http://example.com/") {
				t.Fatalf("target %q (Location %q, Content-Location %q) is not same-origin", k, loc, cloc)
			}
		}
	})
}
