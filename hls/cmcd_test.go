package hls_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/hls"
	"github.com/onioncdn/onioncdn/hls/hlstest"
)

func TestParseCMCD(t *testing.T) {
	for _, tt := range []struct {
		name, payload string
		want          hls.CMCD
		err           bool
	}{
		{"empty", "", hls.CMCD{}, false},
		{"request_keys", `bl=21300,dl=18500,mtp=25400,nor="..%2F720p%2Fseg5.ts",nrr="12323-48763",su`,
			hls.CMCD{BufferLength: 21300 * time.Millisecond, Deadline: 18500 * time.Millisecond, MeasuredThroughput: 25400,
				Next: []string{"..%2F720p%2Fseg5.ts"}, NextRange: "12323-48763", Startup: true}, false},
		{"object_session_status", `br=3200,d=4004,ot=v,tb=6000,cid="faec5fc2-ac30-11eabb37-0242ac130002",pr=1.08,sf=h,sid="6e2fb550-c457-11e9-bb97-0800200c9a66",st=l,v=2,bs,rtp=15000`,
			hls.CMCD{Bitrate: 3200, Duration: 4004 * time.Millisecond, ObjectType: "v", TopBitrate: 6000, ContentID: "faec5fc2-ac30-11eabb37-0242ac130002",
				PlaybackRate: 1.08, StreamingFormat: "h", SessionID: "6e2fb550-c457-11e9-bb97-0800200c9a66", StreamType: "l", Version: 2,
				BufferStarvation: true, RequestedThroughput: 15000}, false},
		// Several headers joined, with optional white space.
		{"joined_headers", `br=800, ot=v , su,sid="s1"`, hls.CMCD{Bitrate: 800, ObjectType: "v", Startup: true, SessionID: "s1"}, false},
		// Version 2: inner lists with per-type parameters; nor may list several objects.
		{"v2_lists", `bl=(1500;v 900;a),nor=("seg6.m4s" "seg7.m4s"),br=(3000;v 128;a),v=2`,
			hls.CMCD{BufferLength: 900 * time.Millisecond, Next: []string{"seg6.m4s", "seg7.m4s"}, Bitrate: 128, Version: 2}, false},
		// Structured-field booleans and parameters on items.
		{"sf_booleans", `su=?0,bs=?1;x=1`, hls.CMCD{BufferStarvation: true}, false},
		// Escapes inside strings.
		{"escaped_string", `sid="a\"b\\c"`, hls.CMCD{SessionID: `a"b\c`}, false},
		// Values of the wrong type, negative numbers and custom keys are ignored.
		{"wrong_types_ignored", `bl="fast",br=-5,su=1,ot=7,sid=token,pr=5000,com.example-myKey=500`, hls.CMCD{}, false},
		// A duplicate key: the last one wins.
		{"duplicate_last_wins", `br=1,br=2`, hls.CMCD{Bitrate: 2}, false},
		// Malformed payloads: what came before the error is kept.
		{"unterminated_string", `br=5,sid="abc`, hls.CMCD{Bitrate: 5}, true},
		{"bad_escape", `sid="a\b"`, hls.CMCD{}, true},
		{"missing_comma", `br=5 bl=3`, hls.CMCD{Bitrate: 5}, true},
		{"empty_value", `br=`, hls.CMCD{}, true},
		{"empty_key", `=5`, hls.CMCD{}, true},
		{"unterminated_list", `nor=("a"`, hls.CMCD{}, true},
		{"too_long", "sid=\"" + strings.Repeat("x", 9000) + "\"", hls.CMCD{}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := hls.ParseCMCD(tt.payload)
			if (err != nil) != tt.err || err != nil && !errors.Is(err, hls.ErrCMCD) {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseCMCD(%q)\n got %+v\nwant %+v", tt.payload, got, tt.want)
			}
		})
	}
}

func TestCMCDString(t *testing.T) {
	c := hls.CMCD{SessionID: `s"1`, BufferLength: 2500 * time.Millisecond, Next: []string{"seg2.ts"}, ObjectType: "v",
		Startup: true, Bitrate: 800, PlaybackRate: 1, StreamingFormat: "h", Version: 1}
	const want = `bl=2500,br=800,nor="seg2.ts",ot=v,pr=1,sf=h,sid="s\"1",su,v=1`
	if got := c.String(); got != want {
		t.Errorf("String = %s, want %s", got, want)
	}
	if got := c.Query(); got != "CMCD="+url.QueryEscape(want) {
		t.Errorf("Query = %s", got)
	}
	two := hls.CMCD{Next: []string{"a.ts", "b.ts"}}
	if got := two.String(); got != `nor=("a.ts" "b.ts")` {
		t.Errorf("two nor: %s", got)
	}
	if back, err := hls.ParseCMCD(c.String()); err != nil || !reflect.DeepEqual(back, c) {
		t.Errorf("round trip: %+v, %v", back, err)
	}
}

func TestCMCDNextURLs(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "http://edge.test/v/480p/seg4.ts?CMCD=x", nil)
	c := hls.CMCD{Next: []string{
		"seg5.ts",                    // same rendition
		"..%2F720p%2Fseg5.ts",        // URL-encoded, as CTA-5004 asks
		"seg6.ts?token=1#frag",       // query and fragment dropped
		"seg5.ts",                    // duplicate
		"//evil.test/x.ts",           // another host
		"http://evil.test/x.ts",      // another host, absolute
		"ftp://edge.test/x.ts",       // another scheme
		"http://u:p@edge.test/x.ts",  // user info
		"%zz",                        // bad escape
		"http://EDGE.test/v/seg9.ts", // same host, other case
	}}
	want := []string{
		"http://edge.test/v/480p/seg5.ts",
		"http://edge.test/v/720p/seg5.ts",
		"http://edge.test/v/480p/seg6.ts",
		"http://EDGE.test/v/seg9.ts",
	}
	if got := c.NextURLs(r); !slices.Equal(got, want) {
		t.Errorf("NextURLs =\n%q\nwant\n%q", got, want)
	}
	if got := (hls.CMCD{}).NextURLs(r); got != nil {
		t.Errorf("no nor: %q", got)
	}
}

func TestStripCMCD(t *testing.T) {
	payload := `bl=2000,nor="seg2.ts",sid="abc"`
	target := "/v/seg1.ts?a=1&CMCD=" + url.QueryEscape(payload) + "&b=x%20y&cmcd=su"
	r := httptest.NewRequest(http.MethodGet, target, nil)
	r.Header.Set("CMCD-Session", `cid="film",sf=h`)
	r.Header.Set("CMCD-Status", "bs")
	r.Header.Set("X-Other", "kept")
	c, ok := hls.StripCMCD(r)
	if !ok {
		t.Fatal("no CMCD found")
	}
	want := hls.CMCD{BufferLength: 2 * time.Second, Next: []string{"seg2.ts"}, SessionID: "abc", Startup: true, ContentID: "film", StreamingFormat: "h", BufferStarvation: true}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("parsed %+v\nwant %+v", c, want)
	}
	if r.URL.RawQuery != "a=1&b=x%20y" || r.RequestURI != "/v/seg1.ts?a=1&b=x%20y" {
		t.Errorf("query %q, RequestURI %q", r.URL.RawQuery, r.RequestURI)
	}
	for k := range r.Header {
		if strings.HasPrefix(strings.ToLower(k), "cmcd") {
			t.Errorf("header %s kept", k)
		}
	}
	if r.Header.Get("X-Other") != "kept" {
		t.Error("other header removed")
	}
	if _, ok := hls.StripCMCD(r); ok {
		t.Error("CMCD found twice")
	}
	only := httptest.NewRequest(http.MethodGet, "/s.ts?CMCD=su", nil)
	hls.StripCMCD(only)
	if only.URL.RawQuery != "" || only.RequestURI != "/s.ts" || only.URL.String() != "/s.ts" {
		t.Errorf("query %q, RequestURI %q, URL %s", only.URL.RawQuery, only.RequestURI, only.URL)
	}
	// A malformed payload is still removed.
	bad := httptest.NewRequest(http.MethodGet, "/s.ts", nil)
	bad.Header.Set("CMCD-Request", `sid="unterminated`)
	if c, ok := hls.StripCMCD(bad); !ok || !reflect.DeepEqual(c, hls.CMCD{}) || len(bad.Header) != 0 {
		t.Errorf("malformed: %v %+v %v", ok, c, bad.Header)
	}
}

// cmcdOrigin records, per request, whether CMCD reached it.
type cmcdOrigin struct {
	next http.Handler
	mu   sync.Mutex
	seen []string // RawQuery + CMCD headers of each request
}

func (o *cmcdOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := r.URL.Path + "?" + r.URL.RawQuery
	for k, v := range r.Header {
		if strings.HasPrefix(strings.ToLower(k), "cmcd") {
			s += " " + k + ": " + strings.Join(v, ",")
		}
	}
	o.mu.Lock()
	o.seen = append(o.seen, s)
	o.mu.Unlock()
	o.next.ServeHTTP(w, r)
}

func (o *cmcdOrigin) requests() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.seen)
}

// At the entrance of a tier, CMCD is stripped before the cache: the origin
// never sees it, two sessions share one cache entry, and OnCMCD receives
// the data with the announced next object resolved. With Forward, the
// origin receives it but the cache key still leaves it out.
func TestCMCDFilterThroughCache(t *testing.T) {
	for _, forward := range []bool{false, true} {
		t.Run(map[bool]string{false: "strip", true: "forward"}[forward], func(t *testing.T) {
			origin := &cmcdOrigin{next: &hlstest.Origin{Segments: 3}}
			osrv := httptest.NewServer(origin)
			t.Cleanup(osrv.Close)
			up, _ := url.Parse(osrv.URL)
			c := &cache.Cache{Upstream: up, Policy: &hls.Policy{}}
			var mu sync.Mutex
			var hints []string
			f := &hls.CMCDFilter{Next: c, Forward: forward, OnCMCD: func(r *http.Request, d hls.CMCD) {
				mu.Lock()
				defer mu.Unlock()
				hints = append(hints, d.SessionID+" "+strings.Join(d.NextURLs(r), " "))
			}}
			srv := httptest.NewServer(f)
			t.Cleanup(srv.Close)
			get := func(target string, h http.Header) {
				t.Helper()
				req, _ := http.NewRequest(http.MethodGet, srv.URL+target, nil)
				for k, v := range h {
					req.Header[k] = v
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || n != 100_000 {
					t.Fatalf("%s: status %d, %d bytes", target, resp.StatusCode, n)
				}
			}
			get("/240p/seg0.ts?"+hls.CMCD{SessionID: "one", Next: []string{"seg1.ts"}}.Query(), nil)
			get("/240p/seg0.ts", http.Header{"Cmcd-Session": {`sid="two"`}, "Cmcd-Request": {`nor="seg1.ts"`}})
			get("/240p/seg0.ts", nil)
			reqs := origin.requests()
			if len(reqs) != 1 {
				t.Fatalf("origin saw %d requests, want 1 (CMCD must not split the key): %q", len(reqs), reqs)
			}
			hasCMCD := strings.Contains(reqs[0], "CMCD")
			if hasCMCD != forward {
				t.Errorf("origin request %q (forward %v)", reqs[0], forward)
			}
			mu.Lock()
			defer mu.Unlock()
			host := strings.TrimPrefix(srv.URL, "http://")
			want := []string{"one http://" + host + "/240p/seg1.ts", "two http://" + host + "/240p/seg1.ts"}
			if !slices.Equal(hints, want) {
				t.Errorf("OnCMCD got %q, want %q", hints, want)
			}
		})
	}
}

// Requests without CMCD cross the filter without an allocation, and the
// filter never modifies the caller's request.
func TestCMCDFilterPassThrough(t *testing.T) {
	var got *http.Request
	f := &hls.CMCDFilter{Next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r })}
	plain := httptest.NewRequest(http.MethodGet, "/v/seg1.ts?_HLS_msn=3&cmcdx=1", nil)
	plain.Header.Set("Accept", "*/*")
	w := httptest.NewRecorder()
	if n := testing.AllocsPerRun(100, func() { f.ServeHTTP(w, plain) }); n != 0 {
		t.Errorf("%.0f allocations for a request without CMCD", n)
	}
	if got != plain {
		t.Error("a request without CMCD was copied")
	}
	with := httptest.NewRequest(http.MethodGet, "/v/seg1.ts?CMCD=su", nil)
	f.ServeHTTP(w, with)
	if got == with || with.URL.RawQuery != "CMCD=su" || got.URL.RawQuery != "" {
		t.Errorf("caller's query %q, next saw %q", with.URL.RawQuery, got.URL.RawQuery)
	}
}

// FuzzParseCMCD: no panic, bounded output, and whatever parses survives
// String and a second parse unchanged.
func FuzzParseCMCD(f *testing.F) {
	for _, s := range []string{
		``,
		`bl=21300,br=3200,bs,cid="faec5fc2-ac30-11eabb37-0242ac130002",d=4004,dl=18500,mtp=48100,nor="..%2F300kbps%2Ftrack.m4v",nrr="12323-48763",ot=v,pr=1.08,rtp=12000,sf=d,sid="6e2fb550-c457-11e9-bb97-0800200c9a66",st=v,su,tb=6000`, // the CTA-5004 example, all v1 keys
		`bl=(1500;v 900;a),nor=("seg6.m4s" "seg7.m4s"),v=2`, // version 2 inner lists
		`sid="a\"b\\c"`,           // escapes
		`su=?0,bs=?1;x=1`,         // structured-field booleans, a parameter
		`com.example-myKey=500`,   // custom key
		`br=99999999999999999999`, // integer overflow
		`pr=1.5e3,bl=-1,ot=1v`,    // exponent, negative, token starting with a digit
		`nor=("a"`,                // unterminated list
		`sid="\`,                  // dangling escape
		"ot=\x00,sid=\"\xff\"",    // control and non-UTF-8 bytes
		`nor=(("a")),nor=()`,      // nested and empty lists
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		c, err := hls.ParseCMCD(payload)
		if len(c.Next) > 8 || c.BufferLength < 0 || c.Duration < 0 || c.Deadline < 0 || c.BufferLength > 24*time.Hour {
			t.Fatalf("out of bounds: %+v", c)
		}
		if err != nil {
			return
		}
		s := c.String()
		back, err := hls.ParseCMCD(s)
		if err != nil {
			t.Fatalf("String of a parsed payload does not parse: %q: %v", s, err)
		}
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip through %q:\n got %+v\nwant %+v", s, back, c)
		}
	})
}

// FuzzStripCMCD: no panic; afterwards no CMCD is left, and the other query
// parameters are kept in order.
func FuzzStripCMCD(f *testing.F) {
	f.Add("a=1&CMCD=bl%3D100&b=2", `sid="x"`)  // query and header
	f.Add("CMCD&cmcd=&CmCd=su", "")            // bare names, any case
	f.Add("CMCD=%zz&x=%zz", "su,")             // bad escapes, trailing comma
	f.Add("_HLS_msn=3&_HLS_part=1", "nor=(\"") // nothing in the query, broken header
	f.Fuzz(func(t *testing.T, rawQuery, header string) {
		r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/a/s.ts", RawQuery: rawQuery}, Header: http.Header{}, Host: "o.test"}
		if header != "" {
			r.Header["Cmcd-Request"] = []string{header}
		}
		var want []string
		for part := range strings.SplitSeq(rawQuery, "&") {
			name, _, _ := strings.Cut(part, "=")
			if !strings.EqualFold(name, "CMCD") {
				want = append(want, part)
			}
		}
		c, _ := hls.StripCMCD(r)
		if _, ok := hls.RequestCMCD(r); ok {
			t.Fatalf("CMCD left in %q %v", r.URL.RawQuery, r.Header)
		}
		if got := r.URL.RawQuery; got != strings.Join(want, "&") {
			t.Fatalf("query %q, want %q", got, strings.Join(want, "&"))
		}
		for _, u := range c.NextURLs(r) {
			if !strings.HasPrefix(u, "http://o.test/") || strings.ContainsAny(u, "?#") {
				t.Fatalf("next URL %q", u)
			}
		}
	})
}

// The Tester's players send CMCD as hls.js does: a session id each, the
// object type, and the next object they will request, which is indeed
// the next one they request. Behind a CMCDFilter the origin sees none.
func TestTesterSendsCMCD(t *testing.T) {
	for _, mode := range []hls.CMCDMode{hls.CMCDQuery, hls.CMCDHeaders} {
		t.Run(map[hls.CMCDMode]string{hls.CMCDQuery: "query", hls.CMCDHeaders: "headers"}[mode], func(t *testing.T) {
			origin := &cmcdOrigin{next: &hlstest.Origin{Segments: 4, FMP4: true}}
			type seen struct {
				path, ot string
				next     []string
				su       bool
				bl       time.Duration
			}
			var mu sync.Mutex
			bySession := map[string][]seen{}
			f := &hls.CMCDFilter{Next: origin, OnCMCD: func(r *http.Request, c hls.CMCD) {
				var next []string
				for _, u := range c.NextURLs(r) {
					pu, _ := url.Parse(u)
					next = append(next, pu.Path)
				}
				mu.Lock()
				bySession[c.SessionID] = append(bySession[c.SessionID], seen{r.URL.Path, c.ObjectType, next, c.Startup, c.BufferLength})
				mu.Unlock()
			}}
			srv := httptest.NewServer(f)
			t.Cleanup(srv.Close)
			rep, err := (&hls.Tester{Players: 2, Speed: 50, Rendition: 2, CMCD: mode}).Run(t.Context(), srv.URL+"/master.m3u8")
			if err != nil || rep.Summary.Segments != 8 {
				t.Fatalf("%v, %d segments", err, rep.Summary.Segments)
			}
			for _, r := range origin.requests() {
				if strings.Contains(r, "CMCD") || strings.Contains(strings.ToLower(r), "cmcd-") {
					t.Errorf("origin saw CMCD: %s", r)
				}
			}
			if len(bySession) != 2 {
				t.Fatalf("%d sessions, want 2: %v", len(bySession), bySession)
			}
			for sid, reqs := range bySession {
				if sid == "" {
					t.Fatal("request without a session id")
				}
				var media []seen
				for _, r := range reqs {
					switch {
					case strings.HasSuffix(r.path, ".m3u8"):
						if r.ot != "m" {
							t.Errorf("%s: ot=%s", r.path, r.ot)
						}
					case strings.HasSuffix(r.path, "init.mp4"):
						if r.ot != "i" {
							t.Errorf("%s: ot=%s", r.path, r.ot)
						}
					default:
						media = append(media, r)
					}
				}
				if len(media) != 4 || !media[0].su || media[1].su || media[3].bl == 0 {
					t.Fatalf("session %s media requests %+v", sid, media)
				}
				for i, r := range media {
					want := []string(nil)
					if i+1 < len(media) {
						want = []string{media[i+1].path}
					}
					if r.ot != "av" || !slices.Equal(r.next, want) {
						t.Errorf("session %s request %s: ot=%s, nor → %v, want %v", sid, r.path, r.ot, r.next, want)
					}
				}
			}
		})
	}
}
