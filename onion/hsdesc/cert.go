package hsdesc

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Certificate types used in v3 onion-service descriptors (cert-spec A.1).
const (
	CertTypeSigningKey  = 0x08 // descriptor signing key, signed by the blinded key
	CertTypeIntroAuth   = 0x09 // introduction point auth key, signed by the descriptor signing key
	CertTypeIntroEncKey = 0x0B // introduction point enc key (as ed25519), signed by the descriptor signing key
)

// CertLifetime is how long tor makes descriptor certificates valid (54 h).
const CertLifetime = 54 * time.Hour

const (
	certExtSignedWithKey       = 4
	certExtFlagAffectsValidity = 1
	certKeyTypeEd25519         = 1
)

// Cert is a tor ed25519 certificate (cert-spec). Only the fields the
// descriptor format uses are kept; the encoded form is in Raw.
type Cert struct {
	Type         byte
	Expires      time.Time // a whole hour
	KeyType      byte
	CertifiedKey ed25519.PublicKey
	// SigningKey is the key from the signed-with-ed25519-key extension,
	// nil if the certificate has none.
	SigningKey ed25519.PublicKey
	Signature  []byte
	Raw        []byte
}

// ParseCert decodes a certificate as tor does (tor_cert_parse): version 1,
// well-formed extensions, at most one signed-with-key extension, no
// unknown extension that affects validation, no trailing bytes. It does
// not check the signature or the expiry (see Verify).
func ParseCert(b []byte) (*Cert, error) {
	// version, type, expiry, key type, key, n_extensions ... signature
	if len(b) < 1+1+4+1+32+1+64 {
		return nil, errors.New("hsdesc: certificate truncated")
	}
	if b[0] != 1 {
		return nil, fmt.Errorf("hsdesc: certificate version %d, want 1", b[0])
	}
	c := &Cert{
		Type:         b[1],
		Expires:      time.Unix(int64(binary.BigEndian.Uint32(b[2:6]))*3600, 0).UTC(),
		KeyType:      b[6],
		CertifiedKey: ed25519.PublicKey(append([]byte(nil), b[7:39]...)),
		Raw:          append([]byte(nil), b...),
	}
	n := int(b[39])
	rest := b[40:]
	for range n {
		if len(rest) < 4 {
			return nil, errors.New("hsdesc: certificate extension truncated")
		}
		l := int(binary.BigEndian.Uint16(rest[:2]))
		typ, flags := rest[2], rest[3]
		if len(rest) < 4+l {
			return nil, errors.New("hsdesc: certificate extension truncated")
		}
		data := rest[4 : 4+l]
		switch {
		case typ == certExtSignedWithKey:
			if l != 32 {
				return nil, errors.New("hsdesc: certificate signing-key extension is not 32 bytes")
			}
			if c.SigningKey != nil {
				return nil, errors.New("hsdesc: certificate has two signing-key extensions")
			}
			c.SigningKey = ed25519.PublicKey(append([]byte(nil), data...))
		case flags&certExtFlagAffectsValidity != 0:
			return nil, fmt.Errorf("hsdesc: certificate has unknown extension %d that affects validation", typ)
		}
		rest = rest[4+l:]
	}
	if len(rest) != 64 {
		return nil, errors.New("hsdesc: certificate has trailing bytes or a truncated signature")
	}
	c.Signature = append([]byte(nil), rest...)
	return c, nil
}

// Verify checks the certificate as tor's descriptor parser does: its type,
// that it carries its signing key, that it has not expired at now, and its
// signature by that key. If signer is not nil, the certificate must also
// be signed by signer (tor checks introduction-point certificates against
// the descriptor signing key).
func (c *Cert) Verify(typ byte, signer ed25519.PublicKey, now time.Time) error {
	if c.Type != typ {
		return fmt.Errorf("hsdesc: certificate type %#02x, want %#02x", c.Type, typ)
	}
	if c.SigningKey == nil {
		return errors.New("hsdesc: certificate does not include its signing key")
	}
	if signer != nil && !c.SigningKey.Equal(signer) {
		return errors.New("hsdesc: certificate signed by the wrong key")
	}
	if now.After(c.Expires) {
		return fmt.Errorf("hsdesc: certificate expired at %s", c.Expires.Format(time.RFC3339))
	}
	if !ed25519.Verify(c.SigningKey, c.Raw[:len(c.Raw)-64], c.Signature) {
		return errors.New("hsdesc: bad certificate signature")
	}
	return nil
}

// newCert makes a certificate of typ for certified, valid until the hour
// at or after expires, signed by signer and carrying signer's public key
// (tor_cert_create_ed25519 with CERT_FLAG_INCLUDE_SIGNING_KEY).
func newCert(typ byte, certified []byte, expires time.Time, signer *SigningKey) []byte {
	b := make([]byte, 0, 40+36+64)
	b = append(b, 1, typ)
	hours := (expires.Unix() + 3599) / 3600
	b = binary.BigEndian.AppendUint32(b, uint32(hours))
	b = append(b, certKeyTypeEd25519)
	b = append(b, certified...)
	b = append(b, 1)                         // one extension
	b = binary.BigEndian.AppendUint16(b, 32) // length
	b = append(b, certExtSignedWithKey, 0)   // type, flags
	b = append(b, signer.public[:]...)
	return append(b, signer.Sign(b)...)
}
