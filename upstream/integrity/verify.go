package integrity

import (
	"bufio"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Default values of [Transport] fields.
const (
	DefaultMaxMemory = 1 << 20   // bytes of one response held in memory while verifying
	DefaultMaxHold   = 256 << 20 // largest body (without record digests) or record held
)

// readAhead is the read buffer of a body verified by records.
const readAhead = 64 << 10

// Transport is an http.RoundTripper that verifies the origin's signature
// (see [Signer]) on every response it passes on, and releases no body byte
// before it is verified. Put it around the transport a tier uses to reach
// the next tier up, below the cache: a response that does not verify never
// reaches the cache, so a compromised tier in between can neither poison
// the caches below it nor show a client one forged byte.
//
// A response is rejected, with an error wrapping [ErrUnverified] and its
// body closed, when it carries no signature from a key in Keys, the
// signature does not verify, it does not cover @status, @path;req,
// Content-Digest, every protected field present (Cache-Control,
// Content-Type, ETag, Content-Record-Digest, Set-Cookie…) and the request's
// query (see IgnoreQuery), it was created in the future or has expired,
// the request was for another path or query, or its Content-Length differs
// from the signed length. A 304 is also rejected if its validator does not
// match the request's (a replayed 304 of another version). A cache or
// reverse proxy above answers such an error with 502.
//
// The body is verified before it is released: with a Content-Record-Digest
// (the Signer sends one), record by record, each released once its hash
// matches (at most one record, 16 KiB by default, of delay); without one
// (an older Signer), held whole (in memory up to MaxMemory, then in a
// temporary file, up to MaxHold) until its Content-Digest matches. The
// last bytes are released, and io.EOF returned, only once the body has
// ended at its signed length and every record (or the Content-Digest)
// matched: a reader never sees the clean end of a forged, truncated or
// extended body, only an error wrapping [ErrUnverified]. A body of up to 64 KiB, and the first
// record of a larger one, are verified inside RoundTrip, so that a forged
// small response (an emptied one included) is refused before its header
// goes anywhere. Bodies of HEAD requests and of 304 responses are not
// checked (they have none); their headers are, and a HEAD response's
// Content-Length must match the signed length. A response with record
// digests but without Content-Length (chunked, or delimited by the
// connection closing) gets the signed length as its ContentLength.
//
// A 304 verifies either with a signature over the 304 itself (the origin's,
// see [Signer]) or with a signature over the 200 response it validates: a
// cache answering a conditional request from its store sends the stored
// response's fields, signature included (RFC 9110 §15.4.5). Likewise a 206
// verifies with its own signature or, when a cache cut it from a signed
// 200, with the 200's and its record digests: a single range that starts
// and ends on record boundaries (or at the end) is verified by the records
// it spans; another range cannot be, and is rejected.
//
// Transport is safe for concurrent use. Its fields must not change once it
// is in use.
type Transport struct {
	// Base performs the requests. If nil, http.DefaultTransport.
	Base http.RoundTripper

	// Keys are the accepted public keys by key id (see [KeyID]).
	// With no keys every response is rejected.
	Keys map[string]ed25519.PublicKey

	// MaxSkew is how far in the future a signature's created time may be.
	// If zero, one minute.
	MaxSkew time.Duration

	// IgnoreQuery lists the query parameters a signature need not cover:
	// the same names as the Signer's IgnoreQuery (and the cache policy's
	// DropQuery, for instance HLS session tokens). If empty, every
	// parameter of the request must be covered.
	IgnoreQuery []string

	// MaxMemory is how many bytes of one response body are held in memory
	// until verified; more go to a temporary file. If zero,
	// DefaultMaxMemory (1 MiB).
	MaxMemory int64

	// MaxHold is the largest unit held until verified: a whole body
	// without a Content-Record-Digest, or one record. Larger ones are
	// rejected. If zero, DefaultMaxHold (256 MiB).
	MaxHold int64

	// TempDir holds the temporary files. If empty, os.TempDir().
	TempDir string

	// Now returns the current time. If nil, time.Now.
	Now func() time.Time

	// Logger receives a warning for every rejected response. If nil, logs
	// are discarded.
	Logger *slog.Logger

	stats [numKinds]atomic.Uint64
}

// kind is the outcome a Transport counts: verified, or the check that
// failed.
type kind int

const (
	kindVerified     kind = iota
	kindNoSignature       // no signature, or none from a known key
	kindMalformed         // unparsable or incomplete Signature-Input, Signature, digests
	kindBadSignature      // the signature does not verify (altered or swapped response)
	kindCoverage          // something that must be signed is not covered
	kindExpired           // expired, or created in the future
	kindValidator         // a 304 for another version than the request's
	kindDigest            // body bytes differ from the signed digests
	kindLength            // body shorter or longer than signed
	kindTooLarge          // body too large to hold until verified
	numKinds
)

var kindNames = [numKinds]string{"verified", "no-signature", "malformed", "bad-signature", "coverage", "expired", "validator", "digest", "length", "too-large"}

// Stats counts the responses a [Transport] verified and rejected, the
// rejections by the check that failed.
type Stats struct {
	Verified uint64 // responses verified completely (header, and body to its end)
	Rejected uint64 // responses rejected: the sum of the counters below

	NoSignature  uint64 // no signature, or none from a known key
	Malformed    uint64 // unparsable Signature-Input, Signature, Content-Digest or Content-Record-Digest
	BadSignature uint64 // signature does not verify: altered status or fields, other path or query, wrong key
	Coverage     uint64 // a required component, protected field or query parameter is not signed
	Expired      uint64 // signature expired (replay of an old response) or created in the future
	Validator    uint64 // 304 whose validator does not match the request's
	Digest       uint64 // body bytes differ from Content-Digest or a record digest
	Length       uint64 // body truncated (as an upstream tier's aborted response also looks), extended, or Content-Length differs from the signed length
	TooLarge     uint64 // body without record digests larger than MaxHold
}

// Stats returns a snapshot of t's counters.
func (t *Transport) Stats() Stats {
	var n [numKinds]uint64
	var rejected uint64
	for k := range n {
		n[k] = t.stats[k].Load()
		if kind(k) != kindVerified {
			rejected += n[k]
		}
	}
	return Stats{
		Verified: n[kindVerified], Rejected: rejected,
		NoSignature: n[kindNoSignature], Malformed: n[kindMalformed], BadSignature: n[kindBadSignature],
		Coverage: n[kindCoverage], Expired: n[kindExpired], Validator: n[kindValidator],
		Digest: n[kindDigest], Length: n[kindLength], TooLarge: n[kindTooLarge],
	}
}

func (t *Transport) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

// failure is a failed check: what kind, and the reason in words.
type failure struct {
	kind kind
	msg  string
}

// reject counts and logs a rejection and returns its error.
func (t *Transport) reject(req *http.Request, k kind, reason string) error {
	t.stats[k].Add(1)
	if t.Logger != nil {
		t.Logger.Warn("integrity: response rejected", "check", kindNames[k], "reason", reason, "method", req.Method, "path", req.URL.Path)
	}
	return fmt.Errorf("%w: %s %s: %s", ErrUnverified, req.Method, req.URL.Path, reason)
}

func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	fail := func(k kind, reason string) (*http.Response, error) {
		resp.Body.Close()
		return nil, t.reject(req, k, reason)
	}
	view, f := t.verifyHeaders(req, resp)
	if f != nil {
		return fail(f.kind, f.msg)
	}
	if resp.StatusCode == http.StatusNotModified {
		if reason := validatorMismatch(req, resp); reason != "" {
			return fail(kindValidator, reason)
		}
		t.stats[kindVerified].Add(1)
		return resp, nil
	}
	hasBody := req.Method != http.MethodHead && bodyAllowed(resp.StatusCode)
	var rd *recordDigest
	if v := resp.Header.Values(RecordDigestField); len(v) > 0 {
		if rd, err = parseRecordDigest(strings.Join(v, ", ")); err != nil {
			return fail(kindMalformed, err.Error())
		}
	}
	// The records to verify, [first, end), and the bytes they hold.
	var first, end, span int64
	if rd != nil {
		first, end, span = 0, rd.count(), rd.length
	}
	if view != resp.StatusCode { // a range of a signed 200 (see verifyHeaders)
		var reason string
		if first, end, span, reason = rangeRecords(resp, rd); reason != "" {
			return fail(kindCoverage, reason)
		}
	}
	if rd != nil && (hasBody || req.Method == http.MethodHead) {
		if resp.ContentLength >= 0 && resp.ContentLength != span {
			return fail(kindLength, fmt.Sprintf("Content-Length %d differs from the signed length %d", resp.ContentLength, span))
		}
		// The body ends at the signed length or fails: announce it, so
		// that a chunked or close-delimited response gets a length (a
		// cache can then serve ranges from its fill).
		resp.ContentLength = span
		resp.Header.Set("Content-Length", strconv.FormatInt(span, 10))
	}
	if !hasBody {
		t.stats[kindVerified].Add(1)
		return resp, nil
	}
	h, want, err := parseContentDigest(resp.Header.Get("Content-Digest"))
	if err != nil {
		return fail(kindMalformed, err.Error())
	}
	maxHold := t.MaxHold
	if maxHold <= 0 {
		maxHold = DefaultMaxHold
	}
	switch {
	case rd != nil && rd.rs > maxHold:
		return fail(kindTooLarge, fmt.Sprintf("records of %d bytes, more than MaxHold %d", rd.rs, maxHold))
	case rd == nil && resp.ContentLength > maxHold:
		return fail(kindTooLarge, fmt.Sprintf("body of %d bytes without record digests, more than MaxHold %d", resp.ContentLength, maxHold))
	}
	mem := t.MaxMemory
	if mem <= 0 {
		mem = DefaultMaxMemory
	}
	b := &verifiedBody{
		t: t, req: req, src: resp.Body, whole: h, want: want, rd: rd,
		next: first, end: end, span: span,
		clen: resp.ContentLength, max: maxHold,
		hold: spool{limit: int(min(mem, maxHold)), dir: t.TempDir},
	}
	b.in = b.src
	if rd != nil {
		b.rec = sha256.New()
		if span > rd.rs {
			// Records end where reads would not: read ahead, so that a
			// record does not cost a read of its own, or two.
			b.in = bufio.NewReaderSize(b.src, readAhead)
		}
	}
	if err := b.inline(); err != nil {
		b.Close()
		return nil, err
	}
	resp.Body = b
	return resp, nil
}

// rangeRecords returns the records [first, end) that a 206 with a single
// Content-Range of the signed 200 described by rd holds, and its length;
// or why it cannot be verified. Only a range that starts at a record
// boundary and ends at one (or at the end of the body) can be: the
// records it spans are then whole.
func rangeRecords(resp *http.Response, rd *recordDigest) (first, end, span int64, reason string) {
	if rd == nil {
		return 0, 0, 0, "range of a response without record digests"
	}
	var a, z, size int64
	cr := resp.Header.Get("Content-Range")
	if n, err := fmt.Sscanf(cr, "bytes %d-%d/%d", &a, &z, &size); n != 3 || err != nil || a < 0 || z < a || size != rd.length || z >= size {
		return 0, 0, 0, fmt.Sprintf("Content-Range %q does not fit the signed length %d", cr, rd.length)
	}
	if a%rd.rs != 0 || ((z+1)%rd.rs != 0 && z+1 != size) {
		return 0, 0, 0, fmt.Sprintf("range %d-%d is not aligned to the %d-byte records: it cannot be verified", a, z, rd.rs)
	}
	return a / rd.rs, (z + rd.rs) / rd.rs, z + 1 - a, ""
}

// verifyHeaders checks the signature of resp's header. It returns the
// status the verified signature covers (resp's own, or 200 for a 304 or a
// 206 a cache derived from a signed 200), or why no signature from a known
// key verifies.
func (t *Transport) verifyHeaders(req *http.Request, resp *http.Response) (int, *failure) {
	inputs := resp.Header.Values("Signature-Input")
	if len(inputs) == 0 {
		return 0, &failure{kindNoSignature, "no signature"}
	}
	ins, err := parseDictionary(strings.Join(inputs, ", "))
	if err != nil {
		return 0, &failure{kindMalformed, "Signature-Input: " + err.Error()}
	}
	sigs, err := parseDictionary(strings.Join(resp.Header.Values("Signature"), ", "))
	if err != nil {
		return 0, &failure{kindMalformed, "Signature: " + err.Error()}
	}
	result := &failure{kindNoSignature, "no signature from a known key"}
	for _, in := range ins {
		if !in.isList {
			continue
		}
		f := t.verifyOne(req, resp, resp.StatusCode, "", in, sigs)
		if f == nil {
			return resp.StatusCode, nil
		}
		switch resp.StatusCode {
		case http.StatusNotModified:
			// A cache's 304 carrying its stored 200's fields.
			if t.verifyOne(req, resp, http.StatusOK, "", in, sigs) == nil {
				return http.StatusOK, nil
			}
		case http.StatusPartialContent:
			// A cache's range of its stored 200: the same fields, plus
			// Content-Range (checked against the records, see
			// rangeRecords).
			if len(resp.Header.Values("Content-Range")) == 1 && t.verifyOne(req, resp, http.StatusOK, "content-range", in, sigs) == nil {
				return http.StatusOK, nil
			}
		}
		if f.msg != "unknown key" {
			result = f
		}
	}
	return 0, result
}

// verifyOne checks the signature with input in against resp as a response
// with the given status; the protected field uncovered may be absent from
// the signature.
func (t *Transport) verifyOne(req *http.Request, resp *http.Response, status int, uncovered string, in member, sigs []member) *failure {
	var keyID string
	var created, expires int64
	var haveCreated, haveExpires bool
	for _, p := range in.params {
		switch p.key {
		case "keyid":
			keyID, _ = p.val.(string)
		case "created":
			created, haveCreated = p.val.(int64)
		case "expires":
			expires, haveExpires = p.val.(int64)
		case "alg":
			if a, _ := p.val.(string); a != "ed25519" {
				return &failure{kindMalformed, "unsupported alg"}
			}
		}
	}
	pub, ok := t.Keys[keyID]
	if !ok || len(pub) != ed25519.PublicKeySize {
		return &failure{kindNoSignature, "unknown key"}
	}
	var sig []byte
	for _, s := range sigs {
		if s.key == in.key && s.isBytes {
			sig = s.bytes
		}
	}
	if sig == nil {
		return &failure{kindNoSignature, "no Signature for label " + in.key}
	}
	if !haveCreated || !haveExpires {
		return &failure{kindMalformed, "signature lacks created or expires"}
	}
	now := t.now()
	skew := t.MaxSkew
	if skew <= 0 {
		skew = time.Minute
	}
	if time.Unix(created, 0).After(now.Add(skew)) {
		return &failure{kindExpired, "signature created in the future"}
	}
	if !now.Before(time.Unix(expires, 0)) {
		return &failure{kindExpired, "signature expired"}
	}
	covered := make(map[string]bool, len(in.list))
	for _, c := range in.list {
		covered[c.String()] = true
	}
	for _, c := range requiredComponents {
		if !covered[c] {
			return &failure{kindCoverage, "signature does not cover " + c}
		}
	}
	for k := range resp.Header {
		lk := strings.ToLower(k)
		if isProtected(lk) && !covered[`"`+lk+`"`] && lk != uncovered {
			return &failure{kindCoverage, "signature does not cover " + lk}
		}
	}
	if !queryBound(req, in.list, in.params, t.IgnoreQuery) {
		return &failure{kindCoverage, "signature does not cover the query"}
	}
	base, err := signatureBase(in.list, in.params, message{req: req, status: status, header: resp.Header})
	if err != nil {
		return &failure{kindBadSignature, err.Error()}
	}
	if !ed25519.Verify(pub, []byte(base), sig) {
		return &failure{kindBadSignature, "bad signature"}
	}
	return nil
}

// validatorMismatch returns why the 304 resp cannot validate the response
// req's cache holds, or "" if it can: with If-None-Match, the 304's (signed)
// ETag must be one of the listed tags (weak comparison, RFC 9110 §13.1.2);
// with If-Modified-Since only, its Last-Modified, if any, must not be
// later. Otherwise a tier could replay a genuine 304 of another version
// and have the cache merge that version's fields (digests included) into
// the body it holds.
func validatorMismatch(req *http.Request, resp *http.Response) string {
	if inm := req.Header.Values("If-None-Match"); len(inm) > 0 {
		etag := resp.Header.Get("ETag")
		if etag == "" {
			return "304 without ETag to a request with If-None-Match"
		}
		if !etagListMatch(strings.Join(inm, ","), etag) {
			return "304 for another ETag than the request's"
		}
		return ""
	}
	ims := req.Header.Get("If-Modified-Since")
	if ims == "" {
		return "304 to an unconditional request"
	}
	if lm := resp.Header.Get("Last-Modified"); lm != "" {
		tl, err1 := http.ParseTime(lm)
		ti, err2 := http.ParseTime(ims)
		if err1 != nil || err2 != nil || tl.After(ti) {
			return "304 with Last-Modified later than If-Modified-Since"
		}
	}
	return ""
}

// etagListMatch reports whether the entity tag etag weakly matches a
// member of the If-None-Match list (or the list is "*").
func etagListMatch(list, etag string) bool {
	opaque := func(s string) string { return strings.TrimPrefix(strings.TrimSpace(s), "W/") }
	want := opaque(etag)
	for list != "" {
		list = strings.TrimLeft(list, " \t,")
		switch {
		case list == "":
			return false
		case list[0] == '*':
			return true
		}
		s := strings.TrimPrefix(list, "W/")
		if s == "" || s[0] != '"' {
			return false
		}
		end := strings.IndexByte(s[1:], '"')
		if end < 0 {
			return false
		}
		if s[:end+2] == want {
			return true
		}
		list = s[end+2:]
	}
	return false
}
