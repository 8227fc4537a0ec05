package rfc9111_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/onioncdn/onioncdn/internal/rfc9111"
)

func Example() {
	received := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	h := http.Header{}
	h.Set("Date", received.Format(http.TimeFormat))
	h.Set("Cache-Control", "max-age=60, stale-while-revalidate=30")
	h.Set("ETag", `"v1"`)

	req := httptest.NewRequest("GET", "http://example.com/live.m3u8", nil)
	ok, _ := rfc9111.Storable(req, 200, h, false, rfc9111.Options{})
	fmt.Println("storable:", ok)

	e := &rfc9111.Entry{Status: 200, Header: h, RequestTime: received, ResponseTime: received}
	for _, after := range []time.Duration{10 * time.Second, 70 * time.Second, 2 * time.Minute} {
		v, age := rfc9111.Evaluate(req, e, received.Add(after), rfc9111.Options{})
		fmt.Printf("after %v: %v (Age: %.0f)\n", after, v, age.Seconds())
	}
	fmt.Println("revalidate with If-None-Match:", rfc9111.ValidationHeaders(e).Get("If-None-Match"))
	// Output:
	// storable: true
	// after 10s: fresh (Age: 10)
	// after 1m10s: stale-while-revalidate (Age: 70)
	// after 2m0s: must-validate (Age: 120)
	// revalidate with If-None-Match: "v1"
}

func ExampleStorable() {
	req := httptest.NewRequest("GET", "http://example.com/account", nil)
	req.Header.Set("Authorization", "Bearer secret")
	h := http.Header{"Cache-Control": {"max-age=600"}}
	fmt.Println(rfc9111.Storable(req, 200, h, false, rfc9111.Options{}))
	h.Set("Cache-Control", "private, max-age=600")
	fmt.Println(rfc9111.Storable(httptest.NewRequest("GET", "/", nil), 200, h, false, rfc9111.Options{}))
	// Output:
	// false authorization
	// false private
}

func ExampleParseRange() {
	size := int64(1000)
	rs, err := rfc9111.ParseRange("bytes=0-99,-100", size)
	fmt.Println(err)
	for _, r := range rs {
		fmt.Println(rfc9111.ContentRange(r, size))
	}
	_, err = rfc9111.ParseRange("bytes=5000-", size)
	fmt.Println(err, rfc9111.ContentRangeUnsatisfiable(size))
	// Output:
	// <nil>
	// bytes 0-99/1000
	// bytes 900-999/1000
	// rfc9111: range not satisfiable bytes */1000
}

func ExampleParseCacheControl() {
	d := rfc9111.ParseCacheControl([]string{`Public, MAX-AGE="60", no-cache="Set-Cookie, X-Id"`})
	maxAge, _ := d.Seconds("max-age")
	fields, _ := d.FieldNames("no-cache")
	fmt.Println(d.Has("public"), maxAge, fields)
	fmt.Println(d.String())
	// Output:
	// true 1m0s [Set-Cookie X-Id]
	// public, max-age=60, no-cache="Set-Cookie, X-Id"
}

// A CDN tier honours CDN-Cache-Control (RFC 9213) in place of
// Cache-Control; other caches do not.
func ExampleResponseDirectives() {
	h := http.Header{}
	h.Set("Cache-Control", "no-store")
	h.Set("CDN-Cache-Control", "max-age=600")
	req := httptest.NewRequest("GET", "http://example.com/seg1.ts", nil)
	for _, o := range []rfc9111.Options{{}, {TargetedFields: []string{rfc9111.CDNCacheControl}}} {
		d, targeted := rfc9111.ResponseDirectives(h, o)
		ok, reason := rfc9111.Storable(req, 200, h, false, o)
		fmt.Printf("targets %q: directives %q (targeted %v), storable %v %q\n", o.TargetedFields, d.String(), targeted, ok, reason)
	}
	// An invalid targeted field is ignored as a whole.
	h.Set("CDN-Cache-Control", `max-age="600"`)
	d, targeted := rfc9111.ResponseDirectives(h, rfc9111.Options{TargetedFields: []string{rfc9111.CDNCacheControl}})
	fmt.Printf("invalid: directives %q (targeted %v)\n", d.String(), targeted)
	// Output:
	// targets []: directives "no-store" (targeted false), storable false "no-store"
	// targets ["Cdn-Cache-Control"]: directives "max-age=600" (targeted true), storable true ""
	// invalid: directives "no-store" (targeted false)
}

func ExampleForwardRange() {
	fmt.Println(rfc9111.ForwardRange("bytes=0-0,1-1,2-2,10-19"))
	fmt.Println(rfc9111.ForwardRange("bytes=0-99,-100")) // overlap unknown without the size
	// Output:
	// bytes=0-2,10-19 true
	//  false
}
