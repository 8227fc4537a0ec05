package rfc9111

import "testing"

func TestVaryKey(t *testing.T) {
	tests := []struct {
		name   string
		reqHdr []string
		vary   []string
		want   string
		wantOK bool
	}{
		{name: "no_vary", reqHdr: []string{"Accept: a"}, want: "", wantOK: true},
		{name: "empty_vary", vary: []string{"Vary: "}, want: "", wantOK: true},
		{name: "star", vary: []string{"Vary: *"}, wantOK: false},
		{name: "star_in_list", vary: []string{"Vary: Accept, *"}, wantOK: false},
		{name: "one_field", reqHdr: []string{"Accept-Encoding: gzip"}, vary: []string{"Vary: Accept-Encoding"}, want: "accept-encoding:gzip", wantOK: true},
		{name: "absent_field", vary: []string{"Vary: Accept-Encoding"}, want: "accept-encoding", wantOK: true},
		{name: "empty_field", reqHdr: []string{"Accept-Encoding:"}, vary: []string{"Vary: Accept-Encoding"}, want: "accept-encoding:", wantOK: true},
		{name: "names_sorted_lowercased_deduplicated", reqHdr: []string{"Accept: x", "Accept-Encoding: br"}, vary: []string{"Vary: accept-encoding, ACCEPT", "Vary: Accept"}, want: "accept:x\naccept-encoding:br", wantOK: true},
		{name: "whitespace_normalised", reqHdr: []string{"Accept-Encoding: gzip ,\t br"}, vary: []string{"Vary: Accept-Encoding"}, want: "accept-encoding:gzip,br", wantOK: true},
		{name: "inner_whitespace_collapsed", reqHdr: []string{"User-Agent: a  \t b"}, vary: []string{"Vary: User-Agent"}, want: "user-agent:a b", wantOK: true},
		{name: "lines_combined", reqHdr: []string{"Accept-Encoding: gzip", "Accept-Encoding: br"}, vary: []string{"Vary: Accept-Encoding"}, want: "accept-encoding:gzip,br", wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := newReq("GET", "http://example.com/", tt.reqHdr...)
			got, ok := VaryKey(req, hdr(tt.vary...))
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("VaryKey = %q, %v; want %q, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestVaryKeyEquivalence(t *testing.T) {
	vary := hdr("Vary: Accept-Encoding, Accept-Language")
	same := [][]string{
		{"Accept-Encoding: gzip, br", "Accept-Language: en"},
		{"Accept-Encoding: gzip,br", "Accept-Language: en"},
		{"Accept-Encoding: gzip", "Accept-Encoding: br", "Accept-Language:  en "},
	}
	want, _ := VaryKey(newReq("GET", "http://example.com/", same[0]...), vary)
	for i, h := range same[1:] {
		if got, _ := VaryKey(newReq("GET", "http://example.com/", h...), vary); got != want {
			t.Errorf("equivalent request %d: key %q, want %q", i+1, got, want)
		}
	}
	different := [][]string{
		{"Accept-Encoding: br, gzip", "Accept-Language: en"}, // order matters
		{"Accept-Encoding: gzip, br"},                        // language absent
		{"Accept-Encoding: gzip, br", "Accept-Language: de"},
	}
	for i, h := range different {
		if got, _ := VaryKey(newReq("GET", "http://example.com/", h...), vary); got == want {
			t.Errorf("different request %d shares key %q", i, got)
		}
	}
}
