package rfc9111

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"time"
)

// t0 is the reference time of the tests: the clock is always explicit.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func httpDate(t time.Time) string { return t.UTC().Format(http.TimeFormat) }

// hdr builds a header from "Name: value" lines; repeated names add values.
func hdr(lines ...string) http.Header {
	h := http.Header{}
	for _, l := range lines {
		k, v, _ := strings.Cut(l, ":")
		h.Add(k, strings.TrimSpace(v))
	}
	return h
}

func newReq(method, target string, lines ...string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	for k, vs := range hdr(lines...) {
		r.Header[k] = vs
	}
	return r
}
