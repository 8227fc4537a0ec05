package rfc9111

import (
	"net/http"
	"testing"
)

func TestStorable(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		reqHdr     []string
		status     int
		respHdr    []string
		ttl        bool
		opts       Options
		wantOK     bool
		wantReason string
	}{
		// Methods.
		{name: "get_200_plain", status: 200, wantOK: true},
		{name: "head_not_stored", method: "HEAD", status: 200, respHdr: []string{"Cache-Control: max-age=60"}, wantReason: ReasonMethod},
		{name: "post_not_stored", method: "POST", status: 200, respHdr: []string{"Cache-Control: max-age=60"}, wantReason: ReasonMethod},
		// Status classes.
		{name: "status_100_not_final", status: 100, respHdr: []string{"Cache-Control: max-age=60"}, wantReason: ReasonStatus},
		{name: "status_206_never", status: 206, respHdr: []string{"Cache-Control: max-age=60"}, wantReason: ReasonStatus},
		{name: "status_304_never", status: 304, respHdr: []string{"Cache-Control: max-age=60"}, wantReason: ReasonStatus},
		{name: "status_203_default_cacheable", status: 203, wantOK: true},
		{name: "status_204_default_cacheable", status: 204, wantOK: true},
		{name: "status_300_default_cacheable", status: 300, wantOK: true},
		{name: "status_301_default_cacheable", status: 301, wantOK: true},
		{name: "status_308_default_cacheable", status: 308, wantOK: true},
		{name: "status_404_default_cacheable", status: 404, wantOK: true},
		{name: "status_405_default_cacheable", status: 405, wantOK: true},
		{name: "status_410_default_cacheable", status: 410, wantOK: true},
		{name: "status_414_default_cacheable", status: 414, wantOK: true},
		{name: "status_501_default_cacheable", status: 501, wantOK: true},
		{name: "status_302_needs_freshness", status: 302, wantReason: ReasonNoFreshness},
		{name: "status_307_needs_freshness", status: 307, wantReason: ReasonNoFreshness},
		{name: "status_403_needs_freshness", status: 403, wantReason: ReasonNoFreshness},
		{name: "status_500_needs_freshness", status: 500, wantReason: ReasonNoFreshness},
		{name: "status_503_needs_freshness", status: 503, wantReason: ReasonNoFreshness},
		{name: "status_302_with_max_age", status: 302, respHdr: []string{"Cache-Control: max-age=60"}, wantOK: true},
		{name: "status_500_with_s_maxage", status: 500, respHdr: []string{"Cache-Control: s-maxage=5"}, wantOK: true},
		{name: "status_302_with_expires", status: 302, respHdr: []string{"Expires: " + httpDate(t0)}, wantOK: true},
		{name: "status_302_with_invalid_expires", status: 302, respHdr: []string{"Expires: 0"}, wantOK: true},
		{name: "status_403_with_public", status: 403, respHdr: []string{"Cache-Control: public"}, wantOK: true},
		{name: "status_503_policy_ttl", status: 503, ttl: true, wantOK: true},
		{name: "status_599_with_max_age", status: 599, respHdr: []string{"Cache-Control: max-age=5"}, wantOK: true},
		// no-store.
		{name: "request_no_store", reqHdr: []string{"Cache-Control: no-store"}, status: 200, wantReason: ReasonRequestNoStore},
		{name: "response_no_store", status: 200, respHdr: []string{"Cache-Control: max-age=60, no-store"}, wantReason: ReasonNoStore},
		{name: "response_no_store_case", status: 200, respHdr: []string{"Cache-Control: No-Store"}, wantReason: ReasonNoStore},
		{name: "response_no_store_second_line", status: 200, respHdr: []string{"Cache-Control: max-age=60", "Cache-Control: no-store"}, wantReason: ReasonNoStore},
		{name: "no_store_beats_ttl_override", status: 200, ttl: true, respHdr: []string{"Cache-Control: no-store"}, wantReason: ReasonNoStore},
		{name: "pragma_no_cache_still_storable", reqHdr: []string{"Pragma: no-cache"}, status: 200, wantOK: true},
		{name: "response_no_cache_storable", status: 200, respHdr: []string{"Cache-Control: no-cache"}, wantOK: true},
		// must-understand.
		{name: "must_understand_understood_ignores_no_store", status: 200, respHdr: []string{"Cache-Control: must-understand, no-store, max-age=60"}, wantOK: true},
		{name: "must_understand_unknown_status", status: 299, respHdr: []string{"Cache-Control: must-understand, no-store, max-age=60"}, wantReason: ReasonStatus},
		{name: "must_understand_307_understood", status: 307, respHdr: []string{"Cache-Control: must-understand, max-age=60"}, wantOK: true},
		// private.
		{name: "private", status: 200, respHdr: []string{"Cache-Control: private, max-age=60"}, wantReason: ReasonPrivate},
		// RFC 9111 §5.2.2.7: with field names, a shared cache "MAY store
		// the remainder of the response message without those fields".
		{name: "private_with_field_names", status: 200, respHdr: []string{`Cache-Control: private="X-User", max-age=60`}, wantOK: true},
		{name: "private_set_cookie_stored_without_it", status: 200, respHdr: []string{`Cache-Control: private="Set-Cookie", max-age=60`, "Set-Cookie: id=1"}, wantOK: true},
		{name: "private_other_field_keeps_set_cookie_rule", status: 200, respHdr: []string{`Cache-Control: private="X-User", max-age=60`, "Set-Cookie: id=1"}, wantReason: ReasonSetCookie},
		{name: "no_cache_set_cookie_not_stored", status: 200, respHdr: []string{`Cache-Control: no-cache="Set-Cookie", max-age=60`, "Set-Cookie: id=1"}, wantReason: ReasonSetCookie},
		{name: "private_empty_argument", status: 200, respHdr: []string{`Cache-Control: private="", max-age=60`}, wantReason: ReasonPrivate},
		{name: "private_bad_argument", status: 200, respHdr: []string{`Cache-Control: private="a b", max-age=60`}, wantReason: ReasonPrivate},
		{name: "private_beats_ttl_override", status: 200, ttl: true, respHdr: []string{"Cache-Control: private"}, wantReason: ReasonPrivate},
		{name: "private_beats_public", status: 200, respHdr: []string{"Cache-Control: public, private"}, wantReason: ReasonPrivate},
		// Authorization (§3.5).
		{name: "authorization_plain", reqHdr: []string{"Authorization: Basic eDp5"}, status: 200, respHdr: []string{"Cache-Control: max-age=60"}, wantReason: ReasonAuthorization},
		{name: "authorization_empty_value_counts", reqHdr: []string{"Authorization:"}, status: 200, respHdr: []string{"Cache-Control: max-age=60"}, wantReason: ReasonAuthorization},
		{name: "authorization_ttl_override_not_enough", reqHdr: []string{"Authorization: Basic eDp5"}, status: 200, ttl: true, wantReason: ReasonAuthorization},
		{name: "authorization_public", reqHdr: []string{"Authorization: Basic eDp5"}, status: 200, respHdr: []string{"Cache-Control: public"}, wantOK: true},
		{name: "authorization_s_maxage", reqHdr: []string{"Authorization: Basic eDp5"}, status: 200, respHdr: []string{"Cache-Control: s-maxage=10"}, wantOK: true},
		{name: "authorization_must_revalidate", reqHdr: []string{"Authorization: Basic eDp5"}, status: 200, respHdr: []string{"Cache-Control: must-revalidate"}, wantOK: true},
		{name: "authorization_proxy_revalidate_not_enough", reqHdr: []string{"Authorization: Basic eDp5"}, status: 200, respHdr: []string{"Cache-Control: proxy-revalidate, max-age=5"}, wantReason: ReasonAuthorization},
		// Set-Cookie.
		{name: "set_cookie_refused_by_default", status: 200, respHdr: []string{"Set-Cookie: id=1", "Cache-Control: public, max-age=60"}, wantReason: ReasonSetCookie},
		{name: "set_cookie_beats_ttl_override", status: 200, ttl: true, respHdr: []string{"Set-Cookie: id=1"}, wantReason: ReasonSetCookie},
		{name: "set_cookie_allowed", status: 200, respHdr: []string{"Set-Cookie: id=1", "Cache-Control: max-age=60"}, opts: Options{AllowSetCookie: true}, wantOK: true},
		// Vary.
		{name: "vary_star", status: 200, respHdr: []string{"Vary: *", "Cache-Control: max-age=60"}, wantReason: ReasonVaryStar},
		{name: "vary_star_in_list", status: 200, respHdr: []string{"Vary: Accept-Encoding, *"}, wantReason: ReasonVaryStar},
		{name: "vary_star_second_line", status: 200, respHdr: []string{"Vary: Accept", "Vary: *"}, wantReason: ReasonVaryStar},
		{name: "vary_field_ok", status: 200, respHdr: []string{"Vary: Accept-Encoding"}, wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.method
			if m == "" {
				m = http.MethodGet
			}
			req := newReq(m, "http://example.com/a", tt.reqHdr...)
			ok, reason := Storable(req, tt.status, hdr(tt.respHdr...), tt.ttl, tt.opts)
			if ok != tt.wantOK || reason != tt.wantReason {
				t.Errorf("Storable = %v, %q; want %v, %q", ok, reason, tt.wantOK, tt.wantReason)
			}
		})
	}
}

func TestRequestDirectiveHelpers(t *testing.T) {
	tests := []struct {
		name         string
		lines        []string
		noStore, oic bool
	}{
		{"none", nil, false, false},
		{"no_store", []string{"Cache-Control: no-store"}, true, false},
		{"no_store_case", []string{"Cache-Control: max-age=0, NO-STORE"}, true, false},
		{"only_if_cached", []string{"Cache-Control: only-if-cached"}, false, true},
		{"both_two_lines", []string{"Cache-Control: only-if-cached", "Cache-Control: no-store"}, true, true},
		{"pragma_ignored", []string{"Pragma: no-store"}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReq("GET", "http://example.com/", tt.lines...)
			if got := RequestNoStore(r); got != tt.noStore {
				t.Errorf("RequestNoStore = %v, want %v", got, tt.noStore)
			}
			if got := OnlyIfCached(r); got != tt.oic {
				t.Errorf("OnlyIfCached = %v, want %v", got, tt.oic)
			}
		})
	}
}
