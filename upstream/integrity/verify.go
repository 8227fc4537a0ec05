package integrity

import (
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// Transport is an http.RoundTripper that verifies the origin's signature
// (see [Signer]) on every response it passes on. Put it around the
// transport a tier uses to reach the next tier up, below the cache: a
// response that does not verify never reaches the cache, so a compromised
// tier in between cannot poison the caches below it.
//
// A response is rejected, with an error wrapping [ErrUnverified] and its
// body closed, when it carries no signature from a key in Keys, the
// signature does not verify, it does not cover @status, @path;req,
// Content-Digest and every protected field present (Cache-Control,
// Content-Type, ETag, Set-Cookie…), it was created in the future or has
// expired, or the request was for another path. A cache or reverse proxy
// above answers such an error with 502.
//
// The body is checked as it streams: the read that completes it fails if
// its digest differs from Content-Digest, so a cache filling from it
// discards the object and aborts the responses it started, as for a broken
// upstream. Bodies of HEAD requests and of 304 responses are not checked
// (they have none); their headers are.
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

	// Now returns the current time. If nil, time.Now.
	Now func() time.Time

	// Logger receives a warning for every rejected response. If nil, logs
	// are discarded.
	Logger *slog.Logger

	verified, rejected atomic.Uint64
}

// Stats counts the responses a [Transport] verified and rejected.
type Stats struct {
	Verified uint64
	Rejected uint64 // signature, coverage, validity or digest failures
}

// Stats returns a snapshot of t's counters.
func (t *Transport) Stats() Stats {
	return Stats{Verified: t.verified.Load(), Rejected: t.rejected.Load()}
}

func (t *Transport) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

func (t *Transport) reject(req *http.Request, reason string) error {
	t.rejected.Add(1)
	if t.Logger != nil {
		t.Logger.Warn("integrity: response rejected", "reason", reason, "method", req.Method, "path", req.URL.Path)
	}
	return fmt.Errorf("%w: %s %s: %s", ErrUnverified, req.Method, req.URL.Path, reason)
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
	if reason := t.verifyHeaders(req, resp); reason != "" {
		resp.Body.Close()
		return nil, t.reject(req, reason)
	}
	if req.Method == http.MethodHead || resp.StatusCode == http.StatusNotModified {
		t.verified.Add(1)
		return resp, nil
	}
	h, want, err := parseContentDigest(resp.Header.Get("Content-Digest"))
	if err != nil {
		resp.Body.Close()
		return nil, t.reject(req, err.Error())
	}
	resp.Body = &digestReader{
		body: resp.Body, h: h, want: want, length: resp.ContentLength,
		fail: func(reason string) error { return t.reject(req, reason) },
	}
	t.verified.Add(1)
	return resp, nil
}

// verifyHeaders checks the signature of resp's header; it returns "" when
// one signature from a known key verifies, or the reason it does not.
func (t *Transport) verifyHeaders(req *http.Request, resp *http.Response) string {
	inputs := resp.Header.Values("Signature-Input")
	if len(inputs) == 0 {
		return "no signature"
	}
	ins, err := parseDictionary(strings.Join(inputs, ", "))
	if err != nil {
		return "Signature-Input: " + err.Error()
	}
	sigs, err := parseDictionary(strings.Join(resp.Header.Values("Signature"), ", "))
	if err != nil {
		return "Signature: " + err.Error()
	}
	reason := "no signature from a known key"
	for _, in := range ins {
		if !in.isList {
			continue
		}
		if r := t.verifyOne(req, resp, in, sigs); r == "" {
			return ""
		} else if r != "unknown key" {
			reason = r
		}
	}
	return reason
}

func (t *Transport) verifyOne(req *http.Request, resp *http.Response, in member, sigs []member) string {
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
				return "unsupported alg"
			}
		}
	}
	pub, ok := t.Keys[keyID]
	if !ok || len(pub) != ed25519.PublicKeySize {
		return "unknown key"
	}
	var sig []byte
	for _, s := range sigs {
		if s.key == in.key && s.isBytes {
			sig = s.bytes
		}
	}
	if sig == nil {
		return "no Signature for label " + in.key
	}
	if !haveCreated || !haveExpires {
		return "signature lacks created or expires"
	}
	now := t.now()
	skew := t.MaxSkew
	if skew <= 0 {
		skew = time.Minute
	}
	if time.Unix(created, 0).After(now.Add(skew)) {
		return "signature created in the future"
	}
	if !now.Before(time.Unix(expires, 0)) {
		return "signature expired"
	}
	covered := make(map[string]bool, len(in.list))
	for _, c := range in.list {
		covered[c.String()] = true
	}
	for _, c := range requiredComponents {
		if !covered[c] {
			return "signature does not cover " + c
		}
	}
	for k := range resp.Header {
		lk := strings.ToLower(k)
		if isProtected(lk) && !covered[`"`+lk+`"`] {
			return "signature does not cover " + lk
		}
	}
	base, err := signatureBase(in.list, in.params, message{req: req, status: resp.StatusCode, header: resp.Header})
	if err != nil {
		return err.Error()
	}
	if !ed25519.Verify(pub, []byte(base), sig) {
		return "bad signature"
	}
	return ""
}
