package purge

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/upstream/integrity"
)

// Domain separation: what a signature covers starts with one of these, so
// that an entry, a request and an HTTP response signature
// (package integrity) can never be taken for one another.
const (
	entryDomain   = "onioncdn-purge-entry-v1\n"
	requestDomain = "onioncdn-purge-request-v1\n"
)

// maxSigned bounds an encoded entry or request.
const maxSigned = 16 << 10

// Entry is one statement of an origin's purge log, signed with the
// origin's key: "in log Log, the Seq-th purge is Purge".
type Entry struct {
	// Log identifies the log: its creation time in Unix nanoseconds. A
	// log with a larger id supersedes one with a smaller id (the origin
	// lost its log and started a new one); entries of a superseded log
	// are refused.
	Log uint64
	// Seq is the entry's position in its log: 1, 2, 3... without gaps.
	Seq uint64
	// Time is when the origin appended it (by the origin's clock): the
	// start of the propagation lag.
	Time time.Time
	// Purge is what to purge, normalized (see cache.Purge.Normalize).
	Purge cache.Purge
	// KeyID names the key that signed it (integrity.KeyID).
	KeyID string
}

// entryJSON is the signed payload of an Entry.
type entryJSON struct {
	Log   uint64 `json:"log"`
	Seq   uint64 `json:"seq"`
	Time  int64  `json:"time"` // Unix milliseconds
	Kind  string `json:"kind"`
	Value string `json:"value,omitempty"`
	Soft  bool   `json:"soft,omitempty"`
	KeyID string `json:"kid"`
}

// requestJSON is the signed payload of a purge request (see Submit).
type requestJSON struct {
	Kind  string `json:"kind"`
	Value string `json:"value,omitempty"`
	Soft  bool   `json:"soft,omitempty"`
	Time  int64  `json:"time"` // Unix milliseconds
	Nonce string `json:"nonce"`
	KeyID string `json:"kid"`
}

// Reason says why a purge entry or request was refused. Every refusal is
// counted by its reason and changes nothing.
type Reason string

// Reasons for refusing an entry (Follower) or a request (Log).
const (
	ReasonMalformed    Reason = "malformed"     // not an encoded, parsable statement
	ReasonUnknownKey   Reason = "unknown-key"   // signed with a key that is not accepted
	ReasonBadSignature Reason = "bad-signature" // the signature does not verify: forged or altered
	ReasonInvalid      Reason = "invalid"       // signed, but not a valid purge
	ReasonReplay       Reason = "replay"        // seen already (a sequence number or nonce used before)
	ReasonStaleLog     Reason = "stale-log"     // from a log that a newer one superseded
	ReasonExpired      Reason = "expired"       // a request whose time is too far from the origin's clock
)

// Reasons lists every Reason, in a fixed order (for metrics).
var Reasons = slices.Clone(reasonNames[:])

func reasonIndex(r Reason) int {
	for i, x := range reasonNames {
		if x == r {
			return i
		}
	}
	return 0
}

// RejectError is the error for a refused entry or request.
type RejectError struct {
	Reason Reason
	Err    error
}

func (e *RejectError) Error() string { return "purge: " + string(e.Reason) + ": " + e.Err.Error() }
func (e *RejectError) Unwrap() error { return e.Err }

func reject(r Reason, format string, args ...any) error {
	return &RejectError{Reason: r, Err: fmt.Errorf(format, args...)}
}

// reasonOf returns the Reason of err, or "" if it is not a RejectError.
func reasonOf(err error) Reason {
	var re *RejectError
	if errors.As(err, &re) {
		return re.Reason
	}
	return ""
}

var b64 = base64.RawURLEncoding

// sign returns the compact form of payload signed with key under domain:
// base64url(payload) "." base64url(signature).
func sign(key ed25519.PrivateKey, domain string, payload []byte) string {
	sig := ed25519.Sign(key, append([]byte(domain), payload...))
	return b64.EncodeToString(payload) + "." + b64.EncodeToString(sig)
}

// open verifies a compact signed statement and returns its payload and
// the key id it names (read from the payload by kid).
func open(s, domain string, keys map[string]ed25519.PublicKey, kid func([]byte) (string, error)) ([]byte, error) {
	if len(s) > maxSigned {
		return nil, reject(ReasonMalformed, "%d bytes exceed %d", len(s), maxSigned)
	}
	p, sg, ok := strings.Cut(strings.TrimSpace(s), ".")
	if !ok {
		return nil, reject(ReasonMalformed, "no signature")
	}
	payload, err := b64.DecodeString(p)
	if err != nil {
		return nil, reject(ReasonMalformed, "payload: %v", err)
	}
	sig, err := b64.DecodeString(sg)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, reject(ReasonMalformed, "signature encoding")
	}
	id, err := kid(payload)
	if err != nil {
		return nil, err
	}
	pub, ok := keys[id]
	if !ok || len(pub) != ed25519.PublicKeySize {
		return nil, reject(ReasonUnknownKey, "key id %q", id)
	}
	if !ed25519.Verify(pub, append([]byte(domain), payload...), sig) {
		return nil, reject(ReasonBadSignature, "entry signed by %q does not verify", id)
	}
	return payload, nil
}

// strictJSON decodes b into v, refusing unknown fields and trailing data.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

// SignEntry returns the signed, encoded form of e (whose KeyID is
// replaced by the id of key if empty). e.Purge must be normalized.
func SignEntry(key ed25519.PrivateKey, e Entry) (string, error) {
	if len(key) != ed25519.PrivateKeySize {
		return "", errors.New("purge: no valid ed25519 signing key")
	}
	if e.KeyID == "" {
		e.KeyID = integrity.KeyID(key.Public().(ed25519.PublicKey))
	}
	if e.Seq == 0 || e.Log == 0 {
		return "", errors.New("purge: entry without log or sequence number")
	}
	b, err := json.Marshal(entryJSON{Log: e.Log, Seq: e.Seq, Time: e.Time.UnixMilli(),
		Kind: e.Purge.Kind.String(), Value: e.Purge.Value, Soft: e.Purge.Soft, KeyID: e.KeyID})
	if err != nil {
		return "", fmt.Errorf("purge: %w", err)
	}
	return sign(key, entryDomain, b), nil
}

// ParseEntry verifies an encoded entry against keys (by key id, as
// integrity.Keys returns them) and returns it. A refused entry returns a
// *RejectError saying why: malformed, unknown key, bad signature (forged
// or altered), or invalid (a validly signed statement that is not a valid
// purge).
func ParseEntry(s string, keys map[string]ed25519.PublicKey) (Entry, error) {
	var j entryJSON
	_, err := open(s, entryDomain, keys, func(b []byte) (string, error) {
		if err := strictJSON(b, &j); err != nil {
			return "", reject(ReasonMalformed, "payload: %v", err)
		}
		return j.KeyID, nil
	})
	if err != nil {
		return Entry{}, err
	}
	if j.Log == 0 || j.Seq == 0 {
		return Entry{}, reject(ReasonInvalid, "no log or sequence number")
	}
	kind, err := cache.ParsePurgeKind(j.Kind)
	if err != nil {
		return Entry{}, reject(ReasonInvalid, "%v", err)
	}
	p, err := cache.Purge{Kind: kind, Value: j.Value, Soft: j.Soft}.Normalize()
	if err != nil {
		return Entry{}, reject(ReasonInvalid, "%v", err)
	}
	return Entry{Log: j.Log, Seq: j.Seq, Time: time.UnixMilli(j.Time), Purge: p, KeyID: j.KeyID}, nil
}

// request is a verified purge request.
type request struct {
	purge cache.Purge
	time  time.Time
	nonce string
}

// signRequest returns a signed purge request for p at now with nonce.
func signRequest(key ed25519.PrivateKey, p cache.Purge, now time.Time, nonce string) (string, error) {
	b, err := json.Marshal(requestJSON{Kind: p.Kind.String(), Value: p.Value, Soft: p.Soft, Time: now.UnixMilli(),
		Nonce: nonce, KeyID: integrity.KeyID(key.Public().(ed25519.PublicKey))})
	if err != nil {
		return "", fmt.Errorf("purge: %w", err)
	}
	return sign(key, requestDomain, b), nil
}

// parseRequest verifies a signed purge request.
func parseRequest(s string, keys map[string]ed25519.PublicKey) (request, error) {
	var j requestJSON
	_, err := open(s, requestDomain, keys, func(b []byte) (string, error) {
		if err := strictJSON(b, &j); err != nil {
			return "", reject(ReasonMalformed, "request: %v", err)
		}
		return j.KeyID, nil
	})
	if err != nil {
		return request{}, err
	}
	if len(j.Nonce) < 16 || len(j.Nonce) > 64 {
		return request{}, reject(ReasonInvalid, "nonce of %d characters, want 16 to 64", len(j.Nonce))
	}
	kind, err := cache.ParsePurgeKind(j.Kind)
	if err != nil {
		return request{}, reject(ReasonInvalid, "%v", err)
	}
	p, err := cache.Purge{Kind: kind, Value: j.Value, Soft: j.Soft}.Normalize()
	if err != nil {
		return request{}, reject(ReasonInvalid, "%v", err)
	}
	return request{purge: p, time: time.UnixMilli(j.Time), nonce: j.Nonce}, nil
}
