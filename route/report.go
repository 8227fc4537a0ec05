package route

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
)

// SignatureHeader is the request header that carries a report's signature:
// the unpadded base64url encoding of the 64-byte ed25519 signature over
// signatureContext followed by the exact request body bytes.
const SignatureHeader = "Onioncdn-Signature"

// signatureContext separates report signatures from anything else an edge
// key might ever sign.
const signatureContext = "onioncdn-route-report-v1\x00"

// reportVersion is the only wire version this package writes and accepts.
const reportVersion = 1

// Limits on report fields. They bound what a decoded report can hold and
// reject values no real edge produces.
const (
	maxIDLen      = 64
	maxActive     = 1 << 30
	maxRate       = 1e15
	nonceBytes    = 16
	nonceTextLen  = 22 // base64url without padding of 16 bytes
	signatureText = 86 // base64url without padding of 64 bytes
)

// Load is what an edge reports about itself. The router routes on Active
// and BytesPerSecond (see [Router]); the other fields are informational and
// shown in [Router.Stats].
type Load struct {
	// Active is the number of requests in flight at the edge when sampled.
	Active int64 `json:"active"`
	// RequestsPerSecond is the rate of finished requests since the previous
	// report.
	RequestsPerSecond float64 `json:"rps"`
	// BytesPerSecond is the rate of response body bytes written to clients
	// since the previous report.
	BytesPerSecond float64 `json:"bps"`
	// ErrorRatio is the share of requests since the previous report that
	// ended with a 5xx status, in [0, 1].
	ErrorRatio float64 `json:"error_ratio"`
	// HitRatio is the cache hit ratio since the previous report, in [0, 1];
	// zero when unknown.
	HitRatio float64 `json:"hit_ratio"`
}

// report is the signed wire form of one load report. Its JSON encoding is
// the request body; the signature covers those exact bytes, so the encoding
// need not be canonical for verification, but the decoder is strict.
type report struct {
	V       int    `json:"v"`
	Group   string `json:"group"`
	Edge    string `json:"edge"`
	TS      int64  `json:"ts"` // Unix milliseconds
	Nonce   string `json:"nonce"`
	Healthy bool   `json:"healthy"`
	Load    Load   `json:"load"`
}

// errMalformed wraps every decoding failure.
var errMalformed = errors.New("route: malformed report")

// decodeReport parses and validates a report body. It never panics and
// rejects unknown fields, trailing data, out-of-range numbers and ids that
// are not short tokens.
func decodeReport(body []byte) (report, [nonceBytes]byte, error) {
	var rep report
	var nonce [nonceBytes]byte
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		return report{}, nonce, fmt.Errorf("%w: %w", errMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return report{}, nonce, fmt.Errorf("%w: trailing data", errMalformed)
	}
	if rep.V != reportVersion {
		return report{}, nonce, fmt.Errorf("%w: unsupported version %d", errMalformed, rep.V)
	}
	if !validID(rep.Group) || !validID(rep.Edge) {
		return report{}, nonce, fmt.Errorf("%w: bad group or edge id", errMalformed)
	}
	if rep.TS <= 0 {
		return report{}, nonce, fmt.Errorf("%w: bad timestamp", errMalformed)
	}
	if len(rep.Nonce) != nonceTextLen {
		return report{}, nonce, fmt.Errorf("%w: bad nonce", errMalformed)
	}
	n, err := base64.RawURLEncoding.Strict().DecodeString(rep.Nonce)
	if err != nil || len(n) != nonceBytes {
		return report{}, nonce, fmt.Errorf("%w: bad nonce", errMalformed)
	}
	copy(nonce[:], n)
	if err := rep.Load.validate(); err != nil {
		return report{}, nonce, fmt.Errorf("%w: %w", errMalformed, err)
	}
	return rep, nonce, nil
}

func (l Load) validate() error {
	if l.Active < 0 || l.Active > maxActive {
		return errors.New("active out of range")
	}
	for _, f := range [...]struct {
		v, max float64
	}{{l.RequestsPerSecond, maxRate}, {l.BytesPerSecond, maxRate}, {l.ErrorRatio, 1}, {l.HitRatio, 1}} {
		if math.IsNaN(f.v) || f.v < 0 || f.v > f.max {
			return errors.New("rate or ratio out of range")
		}
	}
	return nil
}

// validID reports whether s is a usable group or edge id: 1 to 64 bytes of
// ASCII letters, digits, '.', '_' or '-'.
func validID(s string) bool {
	if len(s) == 0 || len(s) > maxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// signReport returns the signature header value for body.
func signReport(key ed25519.PrivateKey, body []byte) string {
	msg := make([]byte, 0, len(signatureContext)+len(body))
	msg = append(msg, signatureContext...)
	msg = append(msg, body...)
	return base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, msg))
}

// parseSignature decodes a signature header value.
func parseSignature(v string) ([]byte, bool) {
	if len(v) != signatureText {
		return nil, false
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(v)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, false
	}
	return sig, true
}

// verifyReport reports whether sig is pub's signature over body.
func verifyReport(pub ed25519.PublicKey, body, sig []byte) bool {
	msg := make([]byte, 0, len(signatureContext)+len(body))
	msg = append(msg, signatureContext...)
	msg = append(msg, body...)
	return ed25519.Verify(pub, msg, sig)
}
