package route

import (
	"crypto/ed25519"
	"fmt"

	"github.com/onioncdn/onioncdn/internal/edkey"
)

// LoadOrCreateAgentKey loads an edge agent's signing key ([Agent.Key])
// from path, a PEM "PRIVATE KEY" block holding PKCS #8 (as written by
// "openssl genpkey -algorithm ed25519"), or, if no file exists there,
// generates one and writes it with mode 0600. A key file that its group or
// others may read is refused. created reports whether the key is new: the
// router then needs its public key ([EncodePublicKey]) in the edge's
// configuration.
func LoadOrCreateAgentKey(path string) (key ed25519.PrivateKey, created bool, err error) {
	key, created, err = edkey.LoadOrCreate(path)
	if err != nil {
		return nil, false, fmt.Errorf("route: agent key: %w", err)
	}
	return key, created, nil
}

// EncodePublicKey returns an agent's public key in the form the router's
// configuration takes ([ParsePublicKey]): standard base64 of the 32 bytes.
func EncodePublicKey(pub ed25519.PublicKey) string { return edkey.EncodePublic(pub) }

// ParsePublicKey parses an agent's public key ([Edge.PublicKey]) given as
// base64 (standard or URL alphabet, padded or not) of its 32 bytes, or as
// the name of a file holding that or a PEM "PUBLIC KEY" block (as written
// by "openssl pkey -pubout"). A string with a "/" and no "=" padding is
// always a file name.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	k, err := edkey.ParsePublic(s)
	if err != nil {
		return nil, fmt.Errorf("route: public key: %w", err)
	}
	return k, nil
}
