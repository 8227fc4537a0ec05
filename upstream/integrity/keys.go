package integrity

import (
	"crypto/ed25519"
	"fmt"

	"github.com/onioncdn/onioncdn/internal/edkey"
)

// LoadOrCreateSigningKey loads the origin's signing key ([Signer.Key])
// from path, a PEM "PRIVATE KEY" block holding PKCS #8 (as written by
// "openssl genpkey -algorithm ed25519"), or, if no file exists there,
// generates one and writes it with mode 0600. A key file that its group or
// others may read is refused. The key never leaves the origin: tiers
// verify with its public key ([EncodePublicKey], [ParsePublicKey]).
func LoadOrCreateSigningKey(path string) (key ed25519.PrivateKey, created bool, err error) {
	key, created, err = edkey.LoadOrCreate(path)
	if err != nil {
		return nil, false, fmt.Errorf("integrity: signing key: %w", err)
	}
	return key, created, nil
}

// EncodePublicKey returns the origin's public key in the form tiers are
// configured with ([ParsePublicKey]): standard base64 of the 32 bytes.
func EncodePublicKey(pub ed25519.PublicKey) string { return edkey.EncodePublic(pub) }

// ParsePublicKey parses a verification key given as base64 (standard or
// URL alphabet, padded or not) of its 32 bytes, or as the name of a file
// holding that or a PEM "PUBLIC KEY" block (as written by "openssl pkey
// -pubout"). A string with a "/" and no "=" padding is always a file name.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	k, err := edkey.ParsePublic(s)
	if err != nil {
		return nil, fmt.Errorf("integrity: public key: %w", err)
	}
	return k, nil
}

// Keys returns a key set for [Transport.Keys]: each public key under its
// [KeyID].
func Keys(pubs ...ed25519.PublicKey) map[string]ed25519.PublicKey {
	m := make(map[string]ed25519.PublicKey, len(pubs))
	for _, k := range pubs {
		m[KeyID(k)] = k
	}
	return m
}

// ParseKeys parses verification keys (see ParsePublicKey) into a key set
// for [Transport.Keys].
func ParseKeys(keys ...string) (map[string]ed25519.PublicKey, error) {
	pubs := make([]ed25519.PublicKey, 0, len(keys))
	for _, k := range keys {
		pub, err := ParsePublicKey(k)
		if err != nil {
			return nil, err
		}
		pubs = append(pubs, pub)
	}
	return Keys(pubs...), nil
}
