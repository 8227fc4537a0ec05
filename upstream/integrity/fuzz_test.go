package integrity

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func FuzzParseRecordDigest(f *testing.F) {
	for _, s := range []string{
		RecordDigest(nil),                        // no records
		RecordDigest(pattern(40 << 10)),          // three records
		"sha-256=:AAAA:;rs=16384;len=1",          // hash of the wrong size
		"sha-256=::;rs=-1;len=0",                 // negative record size
		"sha-256=::;rs=16384;len=-5",             // negative length
		"md5=:AA==:, sha-256=::;len=0;rs=1024",   // other algorithm first, params swapped
		"sha-256=::;rs=1024;len=999999999999999", // huge length, no hashes
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseRecordDigest(s)
		if err != nil {
			return
		}
		if d.rs < minRecordSize || d.length < 0 || d.count() != (d.length+d.rs-1)/d.rs {
			t.Fatalf("inconsistent digest accepted: rs %d len %d count %d", d.rs, d.length, d.count())
		}
		if d.count() > 0 && (d.size(d.count()-1) <= 0 || d.size(d.count()-1) > d.rs) {
			t.Fatalf("last record of %d bytes", d.size(d.count()-1))
		}
		// Round trip through the canonical form.
		again, err := parseRecordDigest(formatRecordDigest(d.sums, d.rs, d.length))
		if err != nil || again.rs != d.rs || again.length != d.length || !bytes.Equal(again.sums, d.sums) {
			t.Fatalf("round trip: %+v, %v", again, err)
		}
	})
}

func FuzzQueryParam(f *testing.F) {
	for _, s := range []string{
		"v=2",                                 // cache busting
		"_HLS_msn=10&_HLS_part=2&token=a%2Fb", // LL-HLS with a token
		"var=this%20is%20a%20big%0Avalue&bar=with+plus+whitespace&fa%C3%A7ade%22%3A%20=something", // RFC 9421 §2.2.8
		"a=1&a=2", // repeated
		"a&b=&=c", // odd shapes
		"%zz=1",   // bad escape
		"a=1;b=2", // semicolon
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		ps, ok := parseQuery(raw)
		if !ok {
			return
		}
		count := map[string]int{}
		for _, p := range ps {
			count[p.name]++
		}
		for _, p := range ps {
			enc := encodeQueryPart(p.name)
			for i := 0; i < len(enc); i++ {
				c := enc[i]
				if !(c == '%' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("*-._", c) >= 0) {
					t.Fatalf("encodeQueryPart(%q) = %q has %q", p.name, enc, c)
				}
			}
			if dec, err := url.PathUnescape(enc); err != nil || dec != p.name {
				t.Fatalf("encodeQueryPart(%q) = %q decodes to %q, %v", p.name, enc, dec, err)
			}
			v, once := queryParamValue(raw, enc)
			if once != (count[p.name] == 1) {
				t.Fatalf("queryParamValue(%q, %q): once=%v, name occurs %d times", raw, enc, once, count[p.name])
			}
			if once && v != encodeQueryPart(p.value) {
				t.Fatalf("queryParamValue(%q, %q) = %q, want %q", raw, enc, v, encodeQueryPart(p.value))
			}
		}
		// A signature binds the query it was made for.
		r := &http.Request{URL: &url.URL{RawQuery: raw}}
		cs := queryComponents(r, nil)
		if !queryBound(r, cs, []param{{"tag", profileTag}}, nil) {
			t.Fatalf("components %v do not bind the query %q they were made for", cs, raw)
		}
	})
}

// FuzzVerifiedBody feeds a tampered version of a signed body to the
// Transport: whatever it releases is a prefix of the genuine body, and a
// clean end means the genuine body, whole.
func FuzzVerifiedBody(f *testing.F) {
	f.Add([]byte("segment bytes"), uint16(1), byte(0), uint32(0), []byte(nil))            // genuine, one record
	f.Add([]byte("0123456789abcdef"), uint16(3000), byte(1), uint32(10), []byte(nil))     // flip byte 10 of 48 KB
	f.Add([]byte("0123456789abcdef"), uint16(9000), byte(1), uint32(140000), []byte(nil)) // flip in the last record
	f.Add([]byte("0123456789abcdef"), uint16(9000), byte(2), uint32(70000), []byte(nil))  // truncate
	f.Add([]byte("0123456789abcdef"), uint16(2000), byte(3), uint32(0), []byte("tail"))   // extend
	f.Add([]byte("0123456789abcdef"), uint16(2000), byte(4), uint32(0), []byte(""))       // empty
	f.Add([]byte("0123456789abcdef"), uint16(2000), byte(9), uint32(0), []byte("other"))  // replaced, unknown length
	s, tr := testSigner(f, time.Now())
	f.Fuzz(func(t *testing.T, seed []byte, rep uint16, op byte, pos uint32, extra []byte) {
		if len(seed) == 0 {
			seed = []byte{0}
		}
		genuine := bytes.Repeat(seed, int(rep)%(256<<10/len(seed)+1)+1)
		h, _, _ := signedResponse(t, s, "GET", "http://o/f", serveBytes("application/octet-stream", "max-age=60", genuine))
		sent := bytes.Clone(genuine)
		switch op % 5 {
		case 1:
			sent[int(pos)%len(sent)] ^= 1
		case 2:
			sent = sent[:int(pos)%len(sent)]
		case 3:
			sent = append(sent, extra...)
		case 4:
			sent = extra
		}
		length := int64(len(sent))
		if op&8 != 0 {
			length = -1
		}
		tr.Base = fixedTransport{header: h, status: 200, length: length, body: bodyOf(sent)}
		req, _ := http.NewRequest("GET", "http://o/f", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			if bytes.Equal(sent, genuine) {
				t.Fatalf("genuine body rejected: %v", err)
			}
			return
		}
		defer resp.Body.Close()
		var got []byte
		buf := make([]byte, 1+int(pos)%5000)
		for {
			n, err := resp.Body.Read(buf)
			got = append(got, buf[:n]...)
			if !bytes.HasPrefix(genuine, got) {
				t.Fatalf("released %d bytes that are not the genuine body's", len(got))
			}
			if err == io.EOF {
				if !bytes.Equal(got, genuine) {
					t.Fatalf("clean end after %d of %d genuine bytes", len(got), len(genuine))
				}
				if !bytes.Equal(sent, genuine) {
					t.Fatalf("tampered body (%d bytes) verified", len(sent))
				}
				return
			}
			if err != nil {
				if !errors.Is(err, ErrUnverified) {
					t.Fatalf("error %v, want ErrUnverified", err)
				}
				if bytes.Equal(sent, genuine) {
					t.Fatalf("genuine body failed: %v", err)
				}
				return
			}
		}
	})
}
