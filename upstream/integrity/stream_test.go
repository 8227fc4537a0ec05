package integrity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

// testSigner returns a Signer with a fresh key, and a Transport that
// trusts it, both on the clock now.
func testSigner(t testing.TB, now time.Time) (*Signer, *Transport) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	clock := func() time.Time { return now }
	return &Signer{Key: priv, Now: clock, TempDir: t.TempDir()},
		&Transport{Keys: map[string]ed25519.PublicKey{KeyID(pub): pub}, Now: clock, TempDir: t.TempDir()}
}

// signedResponse runs h behind s for a request to target and returns what
// the Signer sent.
func signedResponse(t testing.TB, s *Signer, method, target string, h http.HandlerFunc) (http.Header, int, []byte) {
	t.Helper()
	rec := httptest.NewRecorder()
	s.Handler(h).ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	if rec.Header().Get("Signature") == "" {
		t.Fatalf("Signer sent no signature: %d %v", rec.Code, rec.Header())
	}
	return rec.Header(), rec.Code, rec.Body.Bytes()
}

func serveBytes(ct, cc string, body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ct)
		w.Header().Set("Cache-Control", cc)
		w.Write(body)
	}
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + i>>8)
	}
	return b
}

// fixedTransport answers every request with a copy of header and status
// and the body returned by body.
type fixedTransport struct {
	header http.Header
	status int
	length int64
	body   func() io.ReadCloser
}

func (f fixedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: f.status, Header: f.header.Clone(), Body: f.body(),
		ContentLength: f.length, Request: r, ProtoMajor: 1, ProtoMinor: 1,
	}, nil
}

func bodyOf(b []byte) func() io.ReadCloser {
	return func() io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }
}

func TestRecordSize(t *testing.T) {
	for _, tc := range []struct {
		size, want int64
	}{
		{0, 16 << 10},
		{1, 16 << 10},
		{2_000_000, 16 << 10},           // 123 records
		{256 * 16 << 10, 16 << 10},      // exactly MaxRecords
		{256*16<<10 + 1, 32 << 10},      // one more byte doubles the record
		{100_000_000, 512 << 10},        // 191 records
		{1 << 40, 1 << 40 / MaxRecords}, // 4 GiB records: beyond MaxHold, refused by verifiers
	} {
		got := recordSize(tc.size, DefaultRecordSize)
		if n := (tc.size + got - 1) / got; n > MaxRecords || (got > DefaultRecordSize && (tc.size+got/2-1)/(got/2) <= MaxRecords) {
			t.Errorf("recordSize(%d) = %d: %d records; not the smallest doubling within %d", tc.size, got, n, MaxRecords)
		}
		if got != tc.want {
			t.Errorf("recordSize(%d) = %d, want %d", tc.size, got, tc.want)
		}
	}
}

func TestRecordDigestRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 16 << 10, 16<<10 + 1, 100_000, 256*16<<10 + 1} {
		body := pattern(n)
		v := RecordDigest(body)
		d, err := parseRecordDigest(v)
		if err != nil {
			t.Fatalf("%d bytes: parse %q: %v", n, v[:min(len(v), 80)], err)
		}
		if d.length != int64(n) || d.rs != recordSize(int64(n), DefaultRecordSize) {
			t.Errorf("%d bytes: len %d rs %d", n, d.length, d.rs)
		}
		for i := int64(0); i < d.count(); i++ {
			s := sha256.Sum256(body[i*d.rs : i*d.rs+d.size(i)])
			if !bytes.Equal(s[:], d.sum(i)) {
				t.Errorf("%d bytes: record %d hash differs", n, i)
			}
		}
		if len(v) > 11<<10 {
			t.Errorf("%d bytes: field of %d bytes", n, len(v))
		}
	}
	for _, bad := range []string{
		"",
		"sha-256=:AAAA:;rs=16384",   // no len
		"sha-256=::;rs=16384;len=1", // one record, no hash
		"sha-256=::;rs=512;len=0",   // record too small
		"sha-512=::;rs=16384;len=0", // unknown algorithm
		"sha-256=:" + strings.Repeat("A", 44) + ":;rs=16384;len=0", // a hash too many
		"sha-256=(a);rs=16384;len=0",                               // not bytes
	} {
		if d, err := parseRecordDigest(bad); err == nil {
			t.Errorf("parseRecordDigest(%q) = %+v, want error", bad, d)
		}
	}
}

// The Signer's records, hashed while the body is written, agree with a
// second pass for bodies whose record size grows, and with RecordDigest.
func TestSignerRecordDigest(t *testing.T) {
	s, _ := testSigner(t, time.Now())
	s.MaxMemory = 64 << 10 // larger bodies go through the temporary file
	for _, n := range []int{0, 10_000, 16 << 10, 2_000_000, 256*16<<10 + 5} {
		body := pattern(n)
		h, _, got := signedResponse(t, s, "GET", "http://o/x", serveBytes("application/octet-stream", "max-age=60", body))
		if !bytes.Equal(got, body) {
			t.Fatalf("%d bytes: body changed", n)
		}
		if v := h.Get(RecordDigestField); v != RecordDigest(body) {
			t.Errorf("%d bytes: Content-Record-Digest differs from RecordDigest", n)
		}
		if !strings.Contains(h.Get("Signature-Input"), `"content-record-digest"`) {
			t.Errorf("%d bytes: signature does not cover the record digest: %s", n, h.Get("Signature-Input"))
		}
	}
}

// blockingPipe delivers what the test writes, so that the test decides
// when each upstream byte arrives.
func blockingPipe() (*io.PipeReader, *io.PipeWriter) { return io.Pipe() }

// The Transport releases each record as soon as it verifies, and not one
// byte of a record that does not: a forged record 2 of a streamed body
// leaves the reader with exactly records 0 and 1, then an error.
func TestStreamReleasesVerifiedRecordsOnly(t *testing.T) {
	s, tr := testSigner(t, time.Now())
	body := pattern(100 << 10) // 7 records of 16 KiB (the last 4 KiB)
	h, status, _ := signedResponse(t, s, "GET", "http://o/v", serveBytes("application/octet-stream", "max-age=60", body))
	const rs = 16 << 10
	pr, pw := blockingPipe()
	tr.Base = fixedTransport{header: h, status: status, length: int64(len(body)), body: func() io.ReadCloser { return pr }}

	type got struct {
		resp *http.Response
		err  error
	}
	rt := make(chan got, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://o/v", nil)
		resp, err := tr.RoundTrip(req)
		rt <- got{resp, err}
	}()
	// RoundTrip verifies the first record before it returns.
	if _, err := pw.Write(body[:rs]); err != nil {
		t.Fatal(err)
	}
	r := <-rt
	if r.err != nil {
		t.Fatalf("RoundTrip: %v", r.err)
	}
	chunks := make(chan []byte, 100)
	readErr := make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := r.resp.Body.Read(buf)
			if n > 0 {
				chunks <- bytes.Clone(buf[:n])
			}
			if err != nil {
				readErr <- err
				close(chunks)
				return
			}
		}
	}()
	var received []byte
	waitFor := func(n int) {
		t.Helper()
		for len(received) < n {
			select {
			case c := <-chunks:
				received = append(received, c...)
			case <-time.After(30 * time.Second): // guards against a hang only
				t.Fatalf("received %d bytes, want %d: a verified record was not released", len(received), n)
			}
		}
	}
	// Record 0 was verified in RoundTrip; record 1 is released once it is
	// complete, while record 2 is still arriving.
	waitFor(rs)
	pw.Write(body[rs : 2*rs])
	pw.Write(body[2*rs : 2*rs+100])
	waitFor(2 * rs)
	forged := bytes.Clone(body[2*rs+100 : 3*rs])
	forged[0] ^= 1
	pw.Write(forged)
	err := <-readErr
	for c := range chunks {
		received = append(received, c...)
	}
	if !errors.Is(err, ErrUnverified) {
		t.Fatalf("read error %v, want ErrUnverified", err)
	}
	if len(received) != 2*rs || !bytes.Equal(received, body[:2*rs]) {
		t.Fatalf("released %d bytes before the failure, want exactly the %d verified ones", len(received), 2*rs)
	}
	if st := tr.Stats(); st.Digest != 1 || st.Rejected != 1 || st.Verified != 0 {
		t.Errorf("stats %+v, want one digest rejection", st)
	}
	pw.Close()
	r.resp.Body.Close()
	if _, err := r.resp.Body.Read(make([]byte, 1)); !errors.Is(err, errBodyClosed) {
		t.Errorf("Read after Close: %v", err)
	}
}

// unsigned re-signs h as a Signer without record digests (an older
// version) would have.
func withoutRecords(t *testing.T, s *Signer, target string, h http.Header) http.Header {
	t.Helper()
	h = h.Clone()
	h.Del(RecordDigestField)
	h.Del("Signature")
	h.Del("Signature-Input")
	if err := s.sign(httptest.NewRequest("GET", target, nil), http.StatusOK, h, ""); err != nil {
		t.Fatal(err)
	}
	return h
}

// Without a Content-Record-Digest the body is held until its
// Content-Digest matches: in memory, then in a temporary file; beyond
// MaxHold it is refused.
func TestWholeBodyHeldUntilVerified(t *testing.T) {
	s, tr := testSigner(t, time.Now())
	body := pattern(200 << 10)
	h, _, _ := signedResponse(t, s, "GET", "http://o/old", serveBytes("application/octet-stream", "max-age=60", body))
	h = withoutRecords(t, s, "http://o/old", h)
	tr.MaxMemory = 8 << 10 // most of it goes to the temporary file
	get := func(b []byte, length int64) ([]byte, error) {
		tr.Base = fixedTransport{header: h, status: 200, length: length, body: bodyOf(b)}
		req, _ := http.NewRequest("GET", "http://o/old", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		return io.ReadAll(resp.Body)
	}
	t.Run("genuine", func(t *testing.T) {
		for _, length := range []int64{int64(len(body)), -1} {
			got, err := get(body, length)
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("length %d: %d bytes, %v", length, len(got), err)
			}
		}
		if files, _ := os.ReadDir(tr.TempDir); len(files) != 0 {
			t.Errorf("%d temporary files left (they must be unlinked)", len(files))
		}
	})
	t.Run("last_byte_forged_releases_nothing", func(t *testing.T) {
		forged := bytes.Clone(body)
		forged[len(forged)-1] ^= 1
		got, err := get(forged, -1)
		if !errors.Is(err, ErrUnverified) || len(got) != 0 {
			t.Fatalf("released %d bytes, err %v; want none and ErrUnverified", len(got), err)
		}
	})
	t.Run("too_large", func(t *testing.T) {
		tr.MaxHold = 100 << 10
		defer func() { tr.MaxHold = 0 }()
		before := tr.Stats().TooLarge
		if _, err := get(body, int64(len(body))); !errors.Is(err, ErrUnverified) {
			t.Fatalf("known length: %v", err)
		}
		if got, err := get(body, -1); !errors.Is(err, ErrUnverified) || len(got) != 0 {
			t.Fatalf("unknown length: %d bytes, %v", len(got), err)
		}
		if n := tr.Stats().TooLarge - before; n != 2 {
			t.Errorf("TooLarge counted %d, want 2", n)
		}
	})
}

// Small bodies, the emptied one included, are verified inside RoundTrip:
// a forged one is an error from RoundTrip, before any header goes out.
func TestSmallBodyVerifiedInRoundTrip(t *testing.T) {
	s, tr := testSigner(t, time.Now())
	for _, n := range []int{0, 10_000, 64 << 10} {
		body := pattern(n)
		h, _, _ := signedResponse(t, s, "GET", "http://o/s", serveBytes("text/plain", "max-age=60", body))
		for _, tc := range []struct {
			name   string
			body   []byte
			length int64
		}{
			{"genuine", body, int64(n)},
			{"genuine_chunked", body, -1},
			{"emptied", nil, 0},
			{"emptied_chunked", nil, -1},
			{"flipped", flip(body, n/2), int64(n)},
			{"extended", append(bytes.Clone(body), 'x'), -1},
		} {
			if n == 0 && tc.name == "flipped" {
				continue
			}
			tr.Base = fixedTransport{header: h, status: 200, length: tc.length, body: bodyOf(tc.body)}
			req, _ := http.NewRequest("GET", "http://o/s", nil)
			resp, err := tr.RoundTrip(req)
			genuine := strings.HasPrefix(tc.name, "genuine") || (n == 0 && strings.HasPrefix(tc.name, "emptied"))
			if genuine {
				if err != nil {
					t.Fatalf("%d bytes %s: %v", n, tc.name, err)
				}
				got, err := io.ReadAll(resp.Body)
				if err != nil || !bytes.Equal(got, body) {
					t.Errorf("%d bytes %s: %d bytes, %v", n, tc.name, len(got), err)
				}
				continue
			}
			if !errors.Is(err, ErrUnverified) {
				t.Errorf("%d bytes %s: RoundTrip err %v, want ErrUnverified before the response", n, tc.name, err)
			}
		}
	}
}

func flip(b []byte, i int) []byte {
	b = bytes.Clone(b)
	if i < len(b) {
		b[i] ^= 0x20
	}
	return b
}

// The signature binds the query: each parameter, except those both sides
// ignore.
func TestQueryBinding(t *testing.T) {
	for _, tc := range []struct {
		name         string
		signed, got  string   // query signed for, query requested
		signIgnore   []string // Signer.IgnoreQuery
		verifyIgnore []string // Transport.IgnoreQuery
		ok           bool
	}{
		{"same", "v=2", "v=2", nil, nil, true},
		{"other_value", "v=2", "v=1", nil, nil, false},      // the case
		{"added_param", "", "v=1", nil, nil, false},         // response for the plain URL
		{"removed_param", "v=2", "", nil, nil, false},       // response for ?v=2 served for the plain URL
		{"extra_param", "v=2", "v=2&x=1", nil, nil, false},  // response for fewer parameters
		{"reordered", "a=1&b=2", "b=2&a=1", nil, nil, true}, // the HLS key sorts parameters
		{"re_encoded", "a=x%20y", "a=x+y", nil, nil, true},  // same decoded value
		{"ignored_token_differs", "v=2&token=abc", "v=2&token=xyz", []string{"token"}, []string{"token"}, true},
		{"ignored_token_absent", "token=abc", "", []string{"token"}, []string{"token"}, true},
		{"ignored_but_v_differs", "v=2&token=abc", "v=1&token=abc", []string{"token"}, []string{"token"}, false},
		{"verifier_does_not_ignore", "v=2&token=abc", "v=2&token=xyz", []string{"token"}, nil, false},
		{"signer_does_not_ignore", "v=2&token=abc", "v=2&token=xyz", nil, []string{"token"}, false},
		{"repeated_param_whole_query", "a=1&a=2", "a=1&a=2", nil, nil, true},
		{"repeated_param_changed", "a=1&a=2", "a=2&a=1", nil, nil, false},
		{"hls_directives", "_HLS_msn=10&_HLS_part=2", "_HLS_msn=11&_HLS_part=2", nil, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, tr := testSigner(t, time.Now())
			s.IgnoreQuery, tr.IgnoreQuery = tc.signIgnore, tc.verifyIgnore
			h, status, body := signedResponse(t, s, "GET", "http://o/p?"+tc.signed, serveBytes("text/plain", "max-age=60", []byte("content")))
			tr.Base = fixedTransport{header: h, status: status, length: int64(len(body)), body: bodyOf(body)}
			u := "http://o/p"
			if tc.got != "" {
				u += "?" + tc.got
			}
			req, _ := http.NewRequest("GET", u, nil)
			resp, err := tr.RoundTrip(req)
			if tc.ok {
				if err != nil {
					t.Fatalf("rejected: %v (Signature-Input %s)", err, h.Get("Signature-Input"))
				}
				resp.Body.Close()
				return
			}
			if !errors.Is(err, ErrUnverified) {
				t.Fatalf("accepted a response signed for ?%s for ?%s (Signature-Input %s)", tc.signed, tc.got, h.Get("Signature-Input"))
			}
		})
	}
}

// A signature that binds no query (the Signer before the query was
// covered, or any signature without the profile tag) is refused.
func TestUntaggedSignatureWithoutQueryRefused(t *testing.T) {
	s, tr := testSigner(t, time.Now())
	h, status, body := signedResponse(t, s, "GET", "http://o/p", serveBytes("text/plain", "max-age=60", []byte("content")))
	// Re-sign without the tag, as the older Signer did.
	in := h.Get("Signature-Input")
	ms, err := parseDictionary(in)
	if err != nil {
		t.Fatal(err)
	}
	var ps []param
	for _, p := range ms[0].params {
		if p.key != "tag" {
			ps = append(ps, p)
		}
	}
	req := httptest.NewRequest("GET", "http://o/p", nil)
	base, err := signatureBase(ms[0].list, ps, message{req: req, status: status, header: h})
	if err != nil {
		t.Fatal(err)
	}
	h.Set("Signature-Input", ms[0].key+"="+serializeInnerList(ms[0].list, ps))
	h.Set("Signature", ms[0].key+"=:"+b64(ed25519.Sign(s.Key, []byte(base)))+":")
	tr.Base = fixedTransport{header: h, status: status, length: int64(len(body)), body: bodyOf(body)}
	for _, u := range []string{"http://o/p", "http://o/p?v=2"} {
		r, _ := http.NewRequest("GET", u, nil)
		if _, err := tr.RoundTrip(r); !errors.Is(err, ErrUnverified) || !strings.Contains(err.Error(), "query") {
			t.Errorf("%s: %v, want a rejection for the query", u, err)
		}
	}
	if st := tr.Stats(); st.Coverage != 2 {
		t.Errorf("stats %+v, want 2 coverage rejections", st)
	}
}

// A 304 must be for the validator the request carried; a cache's 304
// carrying its stored 200's fields and signature is accepted.
func TestNotModifiedChecks(t *testing.T) {
	s, tr := testSigner(t, time.Now())
	etag := `"v2"`
	h := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", etag)
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Type", "text/plain")
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, "version "+etag)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "http://o/a", nil)
	req.Header.Set("If-None-Match", `"v2"`)
	s.Handler(http.HandlerFunc(h)).ServeHTTP(rec, req)
	if rec.Code != 304 {
		t.Fatalf("origin answered %d", rec.Code)
	}
	nm := rec.Header()
	full, _, _ := signedResponse(t, s, "GET", "http://o/a", h)
	for _, tc := range []struct {
		name   string
		header http.Header
		inm    string // If-None-Match of the request
		ims    string // If-Modified-Since
		ok     bool
	}{
		{"origin_304", nm, `"v2"`, "", true},
		{"origin_304_weak_list", nm, `"v1", W/"v2"`, "", true},
		{"origin_304_star", nm, `*`, "", true},
		{"replayed_304_other_version", nm, `"v1"`, "", false},
		{"304_to_unconditional", nm, "", "", false},
		{"cache_304_from_stored_200", full, `"v2"`, "", true},
		{"cache_304_other_version", full, `"v1"`, "", false},
		{"if_modified_since_only", nm, "", http.TimeFormat, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr.Base = fixedTransport{header: tc.header, status: 304, length: 0, body: bodyOf(nil)}
			r, _ := http.NewRequest("GET", "http://o/a", nil)
			if tc.inm != "" {
				r.Header.Set("If-None-Match", tc.inm)
			}
			if tc.ims != "" {
				r.Header.Set("If-Modified-Since", time.Now().UTC().Format(tc.ims))
			}
			before := tr.Stats()
			resp, err := tr.RoundTrip(r)
			if tc.ok != (err == nil) {
				t.Fatalf("err %v, want ok=%v", err, tc.ok)
			}
			if err == nil {
				resp.Body.Close()
			} else if tr.Stats().Validator == before.Validator {
				t.Errorf("rejection %v not counted as a validator mismatch", err)
			}
		})
	}
}

// A HEAD or GET whose Content-Length differs from the signed length is
// refused at once.
func TestContentLengthMustMatchSignedLength(t *testing.T) {
	s, tr := testSigner(t, time.Now())
	body := pattern(300 << 10)
	h, _, _ := signedResponse(t, s, "GET", "http://o/l", serveBytes("application/octet-stream", "max-age=60", body))
	for _, method := range []string{"HEAD", "GET"} {
		for _, length := range []int64{int64(len(body)) - 1, int64(len(body)) + 1, 0} {
			tr.Base = fixedTransport{header: h, status: 200, length: length, body: bodyOf(body[:min(int(length), len(body))])}
			r, _ := http.NewRequest(method, "http://o/l", nil)
			if _, err := tr.RoundTrip(r); !errors.Is(err, ErrUnverified) || !strings.Contains(err.Error(), "signed length") {
				t.Errorf("%s with Content-Length %d: %v", method, length, err)
			}
		}
	}
	if st := tr.Stats(); st.Length != 6 {
		t.Errorf("stats %+v, want 6 length rejections", st)
	}
}

func expiresIn(t *testing.T, h http.Header, created time.Time) time.Duration {
	t.Helper()
	_, e, ok := signatureWindow(h)
	if !ok {
		t.Fatalf("no signature window in %v", h)
	}
	return e.Sub(created.Truncate(time.Second))
}

// The Signer's lifetime rule: Validity for what changes, LongValidity (the
// HLS policy's 24 h) for what does not, the response's own lifetime if
// longer.
func TestSignatureLifetimeRule(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s, _ := testSigner(t, now)
	vod := "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:10,\nseg1.ts\n#EXT-X-ENDLIST\n"
	live := "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:5\n#EXTINF:10,\nseg5.ts\n"
	const m3u8 = "application/vnd.apple.mpegurl"
	for _, tc := range []struct {
		name, path, ct, cc, body string
		want                     time.Duration
	}{
		{"page", "/index.html", "text/html", "max-age=300", "<p>hi", DefaultValidity},
		{"page_long_max_age", "/index.html", "text/html", "max-age=7200, stale-if-error=600", "<p>hi", 7800 * time.Second},
		{"immutable", "/app.js", "text/javascript", "max-age=60, immutable", "x()", DefaultLongValidity},
		{"segment_by_path", "/v/seg1.ts", "application/octet-stream", "max-age=60", "ts", DefaultLongValidity},
		{"segment_by_type", "/v/chunk", "video/iso.segment", "", "m4s", DefaultLongValidity},
		{"vod_playlist", "/v/index.m3u8", m3u8, "max-age=3600", vod, DefaultLongValidity},
		{"live_playlist", "/v/live.m3u8", m3u8, "max-age=1", live, DefaultValidity},
		{"segment_year", "/v/seg2.ts", "video/mp2t", "max-age=31536000, immutable", "ts", 365 * 24 * time.Hour},
		{"page_named_ts", "/docs/types.ts", "text/javascript", "max-age=60", "let x", DefaultValidity},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _, _ := signedResponse(t, s, "GET", "http://o"+tc.path, serveBytes(tc.ct, tc.cc, []byte(tc.body)))
			if got := expiresIn(t, h, now); got != tc.want {
				t.Errorf("signature lifetime %v, want %v", got, tc.want)
			}
		})
	}
	s.LongValidity = -1
	h, _, _ := signedResponse(t, s, "GET", "http://o/v/seg1.ts", serveBytes("video/mp2t", "", []byte("ts")))
	if got := expiresIn(t, h, now); got != DefaultValidity {
		t.Errorf("LongValidity < 0: lifetime %v, want Validity", got)
	}
}

func TestBoundPolicyNotAfter(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s, _ := testSigner(t, now)
	h, _, _ := signedResponse(t, s, "GET", "http://o/a", serveBytes("text/plain", "max-age=60", []byte("a")))
	p := &BoundPolicy{}
	if got, want := p.NotAfter(h), now.Add(DefaultValidity-DefaultMargin); !got.Equal(want) {
		t.Errorf("NotAfter = %v, want %v", got, want)
	}
	p.Margin = 2 * time.Hour // more than half the lifetime: half
	if got, want := p.NotAfter(h), now.Add(DefaultValidity/2); !got.Equal(want) {
		t.Errorf("NotAfter with a large margin = %v, want %v", got, want)
	}
	// Two signatures (a merged 304): the earlier expiry wins.
	later := h.Clone()
	s.Now = func() time.Time { return now.Add(10 * time.Minute) }
	h2, _, _ := signedResponse(t, s, "GET", "http://o/a", serveBytes("text/plain", "max-age=60", []byte("a")))
	in2 := strings.Replace(h2.Get("Signature-Input"), DefaultLabel+"=", "second=", 1)
	later.Add("Signature-Input", in2)
	if got, want := (&BoundPolicy{}).NotAfter(later), now.Add(DefaultValidity-DefaultMargin); !got.Equal(want) {
		t.Errorf("NotAfter of two signatures = %v, want the earlier %v", got, want)
	}
	if got := (&BoundPolicy{}).NotAfter(http.Header{"Cache-Control": {"max-age=60"}}); !got.IsZero() {
		t.Errorf("NotAfter of an unsigned response = %v, want zero", got)
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// Records larger than MaxMemory are held in the temporary file; the body
// comes out whole and genuine, and a forged record releases nothing of
// itself.
func TestRecordsSpillToFile(t *testing.T) {
	s, tr := testSigner(t, time.Now())
	s.RecordSize = 64 << 10
	tr.MaxMemory = 5000 // not a multiple of anything: records straddle memory and file
	body := pattern(300_000)
	h, _, _ := signedResponse(t, s, "GET", "http://o/big", serveBytes("application/octet-stream", "max-age=60", body))
	for _, forgedAt := range []int{-1, 200_000} {
		sent := body
		if forgedAt >= 0 {
			sent = flip(body, forgedAt)
		}
		tr.Base = fixedTransport{header: h, status: 200, length: int64(len(sent)), body: bodyOf(sent)}
		req, _ := http.NewRequest("GET", "http://o/big", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(iotestHalf{resp.Body})
		resp.Body.Close()
		if forgedAt < 0 {
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("genuine: %d bytes, %v", len(got), err)
			}
			continue
		}
		if !errors.Is(err, ErrUnverified) || len(got) != 3*(64<<10) || !bytes.Equal(got, body[:len(got)]) {
			t.Fatalf("forged at %d: released %d bytes, %v; want the 3 records before it", forgedAt, len(got), err)
		}
	}
}

// iotestHalf reads with buffers of odd sizes.
type iotestHalf struct{ r io.Reader }

func (h iotestHalf) Read(p []byte) (int, error) { return h.r.Read(p[:min(len(p), 777)]) }
