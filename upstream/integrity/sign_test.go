package integrity

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

type signedOrigin struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	srv  *httptest.Server
	now  time.Time
}

// newSignedOrigin serves a few objects through a Signer.
func newSignedOrigin(t *testing.T) *signedOrigin {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	o := &signedOrigin{priv: priv, pub: pub, now: time.Unix(1_800_000_000, 0)}
	mux := http.NewServeMux()
	mux.HandleFunc("/a.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Header().Set("Content-Type", "text/javascript")
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, "alert('a');")
	})
	mux.HandleFunc("/b.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Header().Set("Content-Type", "text/javascript")
		io.WriteString(w, "alert('b');")
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Cache-Control", "max-age=86400, stale-while-revalidate=3600")
		// Several writes, more than MaxMemory: exercises the temp file.
		for i := 0; i < 64; i++ {
			w.Write(bytes.Repeat([]byte{byte(i)}, 4096))
		}
	})
	s := &Signer{Key: priv, Now: func() time.Time { return o.now }, MaxMemory: 10000, TempDir: t.TempDir()}
	o.srv = httptest.NewServer(s.Handler(mux))
	t.Cleanup(o.srv.Close)
	return o
}

func (o *signedOrigin) transport(base http.RoundTripper, now time.Time) *Transport {
	return &Transport{Base: base, Keys: map[string]ed25519.PublicKey{KeyID(o.pub): o.pub}, Now: func() time.Time { return now }}
}

func get(t *testing.T, rt http.RoundTripper, method, url string, hdr ...string) (*http.Response, []byte, error) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func TestSignedRoundTrip(t *testing.T) {
	o := newSignedOrigin(t)
	tr := o.transport(nil, o.now.Add(time.Second))
	for _, tc := range []struct {
		name, method, path string
		hdr                []string
		status             int
		body               string
	}{
		{"get", "GET", "/a.js", nil, 200, "alert('a');"},
		{"head", "HEAD", "/a.js", nil, 200, ""},
		{"not_modified", "GET", "/a.js", []string{"If-None-Match", `"v1"`}, 304, ""},
		{"not_found", "GET", "/missing", nil, 404, "404 page not found\n"},
		{"large_spooled", "GET", "/big", nil, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body, err := get(t, tr, tc.method, o.srv.URL+tc.path, tc.hdr...)
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if resp.StatusCode != tc.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.body != "" && string(body) != tc.body {
				t.Errorf("body = %q, want %q", body, tc.body)
			}
			if tc.path == "/big" && len(body) != 64*4096 {
				t.Errorf("big body length = %d", len(body))
			}
		})
	}
	// HEAD and 304 carry the digest of the full representation.
	full, _, _ := get(t, tr, "GET", o.srv.URL+"/a.js")
	head, _, _ := get(t, tr, "HEAD", o.srv.URL+"/a.js")
	nm, _, _ := get(t, tr, "GET", o.srv.URL+"/a.js", "If-None-Match", `"v1"`)
	want := ContentDigest([]byte("alert('a');"))
	for name, r := range map[string]*http.Response{"get": full, "head": head, "304": nm} {
		if got := r.Header.Get("Content-Digest"); got != want {
			t.Errorf("%s Content-Digest = %q, want %q", name, got, want)
		}
	}
	if head.ContentLength != int64(len("alert('a');")) {
		t.Errorf("HEAD Content-Length = %d", head.ContentLength)
	}
	if s := tr.Stats(); s.Verified != 8 || s.Rejected != 0 {
		t.Errorf("stats = %+v, want 8 verified", s)
	}
}

// tamper is a RoundTripper standing for a compromised tier between the
// origin and the verifier.
type tamper func(req *http.Request, resp *http.Response)

func (f tamper) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	f(req, resp)
	return resp, nil
}

func replaceBody(resp *http.Response, b []byte) {
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
}

func TestRejected(t *testing.T) {
	o := newSignedOrigin(t)
	other, otherPriv, _ := ed25519.GenerateKey(nil)
	_ = other
	now := o.now.Add(time.Second)
	cases := []struct {
		name   string
		path   string
		rt     http.RoundTripper
		now    time.Time
		inBody bool // rejected while reading the body, not at RoundTrip
	}{
		{"tampered_body", "/a.js", tamper(func(_ *http.Request, r *http.Response) { replaceBody(r, []byte("alert('X');")) }), now, true},
		{"truncated_body_same_length_header", "/big", tamper(func(_ *http.Request, r *http.Response) {
			b, _ := io.ReadAll(r.Body)
			b[len(b)-1] ^= 1
			replaceBody(r, b)
		}), now, true},
		{"tampered_cache_control", "/a.js", tamper(func(_ *http.Request, r *http.Response) { r.Header.Set("Cache-Control", "public, max-age=31536000") }), now, false},
		{"added_set_cookie", "/a.js", tamper(func(_ *http.Request, r *http.Response) { r.Header.Set("Set-Cookie", "track=1") }), now, false},
		{"tampered_status", "/a.js", tamper(func(_ *http.Request, r *http.Response) { r.StatusCode = 404 }), now, false},
		{"missing_signature", "/a.js", tamper(func(_ *http.Request, r *http.Response) { r.Header.Del("Signature"); r.Header.Del("Signature-Input") }), now, false},
		{"missing_digest_field", "/a.js", tamper(func(_ *http.Request, r *http.Response) { r.Header.Del("Content-Digest") }), now, false},
		{"other_key", "/a.js", tamper(func(req *http.Request, r *http.Response) {
			// A tier re-signs with its own key, under the origin's key id.
			s := &Signer{Key: otherPriv, KeyID: KeyID(o.pub), Now: func() time.Time { return o.now }}
			r.Header.Del("Signature")
			r.Header.Del("Signature-Input")
			if err := s.sign(req, r.StatusCode, r.Header, ""); err != nil {
				panic(err)
			}
		}), now, false},
		{"swapped_path", "/b.js", tamper(func(req *http.Request, r *http.Response) {
			// Serve /a.js's signed response for /b.js.
			a, err := http.Get(strings.Replace(req.URL.String(), "/b.js", "/a.js", 1))
			if err != nil {
				panic(err)
			}
			r.Body.Close()
			*r = *a
		}), now, false},
		{"expired", "/a.js", http.DefaultTransport, o.now.Add(2 * time.Hour), false},
		{"created_in_future", "/a.js", http.DefaultTransport, o.now.Add(-10 * time.Minute), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := o.transport(tc.rt, tc.now)
			_, _, err := get(t, tr, "GET", o.srv.URL+tc.path)
			if !errors.Is(err, ErrUnverified) {
				t.Fatalf("err = %v, want ErrUnverified", err)
			}
			if s := tr.Stats(); s.Rejected != 1 {
				t.Errorf("Rejected = %d, want 1", s.Rejected)
			}
		})
	}
	t.Run("wrong_key_configured", func(t *testing.T) {
		tr := &Transport{Keys: map[string]ed25519.PublicKey{KeyID(other): other}, Now: func() time.Time { return now }}
		if _, _, err := get(t, tr, "GET", o.srv.URL+"/a.js"); !errors.Is(err, ErrUnverified) {
			t.Fatalf("err = %v, want ErrUnverified", err)
		}
	})
}

// A body that fails its digest fails the read that would complete it: a
// consumer that copies it (a cache fill) sees an error, never EOF. When the
// length is known, the bytes that would complete the body are withheld too,
// so nothing framed by Content-Length can look complete.
func TestStreamingMismatchFailsLastRead(t *testing.T) {
	const full = 64 * 4096
	for _, tc := range []struct {
		name   string
		length int64
	}{{"chunked", -1}, {"content_length", full}} {
		t.Run(tc.name, func(t *testing.T) {
			o := newSignedOrigin(t)
			tr := o.transport(tamper(func(_ *http.Request, r *http.Response) {
				b, _ := io.ReadAll(r.Body)
				b[len(b)-1] ^= 1
				r.Body = io.NopCloser(bytes.NewReader(b))
				r.ContentLength = tc.length
			}), o.now)
			req, _ := http.NewRequest("GET", o.srv.URL+"/big", nil)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			n, err := io.Copy(io.Discard, resp.Body)
			if !errors.Is(err, ErrUnverified) {
				t.Fatalf("copy err = %v, want ErrUnverified", err)
			}
			if tc.length >= 0 && n >= full {
				t.Errorf("copied %d bytes before the error, want fewer than %d", n, full)
			}
		})
	}
}

func TestSignerWithoutKey(t *testing.T) {
	h := (&Signer{}).Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "x") }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 500 || rec.Header().Get("Signature") != "" {
		t.Errorf("unkeyed signer: %d %v", rec.Code, rec.Header())
	}
}

func TestSignatureExpiresCoverCacheLifetime(t *testing.T) {
	o := newSignedOrigin(t)
	// /big is fresh for a day plus an hour of stale-while-revalidate: its
	// signature must stay valid that long, not just the 1 h default.
	tr := o.transport(nil, o.now.Add(24*time.Hour+30*time.Minute))
	if _, _, err := get(t, tr, "GET", o.srv.URL+"/big"); err != nil {
		t.Fatalf("long-lived object rejected within its cache lifetime: %v", err)
	}
	tr = o.transport(nil, o.now.Add(25*time.Hour+time.Minute))
	if _, _, err := get(t, tr, "GET", o.srv.URL+"/big"); !errors.Is(err, ErrUnverified) {
		t.Fatalf("err = %v after the cache lifetime, want ErrUnverified", err)
	}
}

// After a 304 a cache merges the 304's fields into its stored 200 (RFC 9111
// §4.3.4) and serves that to the tiers below, which verify it again.
func TestNotModifiedMergeStillVerifies(t *testing.T) {
	o := newSignedOrigin(t)
	tr := o.transport(nil, o.now)
	stored, body, err := get(t, tr, "GET", o.srv.URL+"/a.js")
	if err != nil {
		t.Fatal(err)
	}
	o.now = o.now.Add(30 * time.Minute) // a later revalidation: new signatures
	nm, _, err := get(t, o.transport(nil, o.now), "GET", o.srv.URL+"/a.js", "If-None-Match", `"v1"`)
	if err != nil {
		t.Fatalf("304 rejected: %v", err)
	}
	merged := stored.Header.Clone()
	for k, v := range nm.Header {
		if k != "Content-Length" {
			merged[k] = v
		}
	}
	if merged.Get("Signature-Input") == stored.Header.Get("Signature-Input") {
		t.Fatal("revalidation did not bring a new signature")
	}
	served := tamper(func(_ *http.Request, r *http.Response) {
		r.Header = merged
		replaceBody(r, body)
	})
	down := o.transport(served, o.now.Add(time.Minute))
	if _, got, err := get(t, down, "GET", o.srv.URL+"/a.js"); err != nil || string(got) != string(body) {
		t.Fatalf("merged response: %q, %v", got, err)
	}
}
