package integrity

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strings"
)

// ErrUnverified is wrapped by every error the verifying [Transport] returns
// for a response whose signature or content digest does not verify.
var ErrUnverified = errors.New("integrity: response not verified")

// protectedFields are the response fields that change how a response is
// cached, stored or interpreted. The [Signer] covers each one present; the
// verifying [Transport] rejects a response in which one is present but not
// covered, so a tier can neither alter nor add them.
var protectedFields = [...]string{
	"cache-control",
	"content-digest",
	"content-disposition",
	"content-encoding",
	"content-language",
	"content-location",
	"content-range",
	"content-record-digest",
	"content-type",
	"etag",
	"expires",
	"last-modified",
	"link",
	"location",
	"refresh",
	"set-cookie",
	"surrogate-key", // and cache-tag: the tags by which the origin purges (cache.Purge)
	"vary",
	"cache-tag",
}

// requiredComponents must be covered by every accepted signature.
var requiredComponents = [...]string{`"@status"`, `"@path";req`, `"content-digest"`}

// DefaultLabel is the signature label the [Signer] uses when none is set.
const DefaultLabel = "onioncdn"

// KeyID returns the key identifier used for pub when none is configured:
// the unpadded base64url SHA-256 of the raw public key.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// ContentDigest returns the Content-Digest field value (RFC 9530) for body
// with the sha-256 algorithm.
func ContentDigest(body []byte) string {
	sum := sha256.Sum256(body)
	return "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
}

// parseContentDigest returns a hash and the expected sum for the strongest
// supported algorithm (sha-512, then sha-256) in a Content-Digest field.
func parseContentDigest(v string) (hash.Hash, []byte, error) {
	ms, err := parseDictionary(v)
	if err != nil {
		return nil, nil, fmt.Errorf("content-digest: %w", err)
	}
	var h hash.Hash
	var want []byte
	for _, m := range ms {
		if !m.isBytes {
			continue
		}
		switch {
		case m.key == "sha-512" && len(m.bytes) == sha512.Size:
			return sha512.New(), m.bytes, nil
		case m.key == "sha-256" && len(m.bytes) == sha256.Size:
			h, want = sha256.New(), m.bytes
		}
	}
	if h == nil {
		return nil, nil, errors.New("content-digest: no sha-256 or sha-512 digest")
	}
	return h, want, nil
}

func isProtected(name string) bool {
	name = strings.ToLower(name)
	for _, f := range protectedFields {
		if f == name {
			return true
		}
	}
	return false
}
