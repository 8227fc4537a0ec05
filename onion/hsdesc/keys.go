package hsdesc

import (
	"crypto/ed25519"
	"crypto/sha3"
	"crypto/sha512"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
)

// ed25519Basepoint is the string form of the ed25519 base point that the
// key-blinding hash takes (rend-spec-v3 A.2).
const ed25519Basepoint = "(15112221349535400772501151409588531511454012693041857206046113283949847762202, " +
	"46316835694926478169428394003475163141307993866256225615783033603165251855960)"

var onionEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// Address returns the v3 onion address ("<56 characters>.onion") of an
// ed25519 identity key.
func Address(identity ed25519.PublicKey) string {
	var b [35]byte
	copy(b[:], identity)
	c := addressChecksum(identity)
	b[32], b[33], b[34] = c[0], c[1], 3
	return strings.ToLower(onionEncoding.EncodeToString(b[:])) + ".onion"
}

func addressChecksum(pub []byte) [2]byte {
	h := sha3.New256()
	h.Write([]byte(".onion checksum"))
	h.Write(pub)
	h.Write([]byte{3})
	var s [32]byte
	h.Sum(s[:0])
	return [2]byte{s[0], s[1]}
}

// ParseAddress returns the identity key of a v3 onion address, given with
// or without ".onion" (subdomains are ignored). It checks the length, the
// version and the checksum.
func ParseAddress(addr string) (ed25519.PublicKey, error) {
	id := strings.ToLower(addr)
	if s, ok := strings.CutSuffix(id, ".onion"); ok {
		id = s
		if i := strings.LastIndexByte(id, '.'); i >= 0 {
			id = id[i+1:]
		}
	}
	if len(id) != 56 {
		return nil, fmt.Errorf("hsdesc: address %q: not a v3 onion address", addr)
	}
	b, err := onionEncoding.DecodeString(strings.ToUpper(id))
	if err != nil || len(b) != 35 {
		return nil, fmt.Errorf("hsdesc: address %q: not base32", addr)
	}
	if b[34] != 3 {
		return nil, fmt.Errorf("hsdesc: address %q: version %d, want 3", addr, b[34])
	}
	if c := addressChecksum(b[:32]); c[0] != b[32] || c[1] != b[33] {
		return nil, fmt.Errorf("hsdesc: address %q: bad checksum", addr)
	}
	if _, err := new(edwards25519.Point).SetBytes(b[:32]); err != nil {
		return nil, fmt.Errorf("hsdesc: address %q: key is not a curve point", addr)
	}
	return ed25519.PublicKey(b[:32]), nil
}

// blindingParam is h = SHA3-256(BLIND_STRING | A | B | N) with
// N = "key-blind" | INT_8(period) | INT_8(periodLength in minutes)
// (rend-spec-v3 A.2; no optional secret).
func blindingParam(identity ed25519.PublicKey, period uint64, periodMinutes uint64) [32]byte {
	h := sha3.New256()
	h.Write([]byte("Derive temporary signing key\x00"))
	h.Write(identity)
	h.Write([]byte(ed25519Basepoint))
	h.Write([]byte("key-blind"))
	var n [16]byte
	binary.BigEndian.PutUint64(n[:8], period)
	binary.BigEndian.PutUint64(n[8:], periodMinutes)
	h.Write(n[:])
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// blindingScalar clamps the blinding parameter as ed25519 clamps secret
// scalars and reduces it modulo the group order.
func blindingScalar(param [32]byte) *edwards25519.Scalar {
	s, err := new(edwards25519.Scalar).SetBytesWithClamping(param[:])
	if err != nil {
		panic("hsdesc: SetBytesWithClamping: " + err.Error()) // 32 bytes cannot fail
	}
	return s
}

// BlindPublicKey returns the blinded public key of identity for a time
// period: the key the service's descriptors for that period are signed
// with and stored under.
func BlindPublicKey(identity ed25519.PublicKey, period uint64, p Period) (ed25519.PublicKey, error) {
	if len(identity) != ed25519.PublicKeySize {
		return nil, errors.New("hsdesc: blind: identity key must be 32 bytes")
	}
	return blindPublicWithParam(identity, blindingParam(identity, period, p.minutes()))
}

// blindPublicWithParam is tor's ed25519_public_blind: A' = h·A.
func blindPublicWithParam(identity ed25519.PublicKey, param [32]byte) (ed25519.PublicKey, error) {
	A, err := new(edwards25519.Point).SetBytes(identity)
	if err != nil {
		return nil, fmt.Errorf("hsdesc: blind: identity key is not a curve point: %w", err)
	}
	return ed25519.PublicKey(new(edwards25519.Point).ScalarMult(blindingScalar(param), A).Bytes()), nil
}

// Subcredential returns the subcredential of a service for the period of
// blinded: SHA3-256("subcredential" | SHA3-256("credential" | identity) |
// blinded). It keys the descriptor's encryption and the introduction
// handshake.
func Subcredential(identity, blinded ed25519.PublicKey) [32]byte {
	c := sha3.New256()
	c.Write([]byte("credential"))
	c.Write(identity)
	var cred [32]byte
	c.Sum(cred[:0])
	s := sha3.New256()
	s.Write([]byte("subcredential"))
	s.Write(cred[:])
	s.Write(blinded)
	var out [32]byte
	s.Sum(out[:0])
	return out
}

// SigningKey is an ed25519 key in tor's expanded form (scalar and hash
// prefix), which is what onion-service identity keys are stored as and
// what key blinding produces. It signs like crypto/ed25519. Its String
// method never reveals the secret.
type SigningKey struct {
	scalar *edwards25519.Scalar
	prefix [32]byte
	public [32]byte
}

// NewSigningKey returns the key of tor's 64-byte expanded secret key (the
// 64 bytes after the 32-byte header of an hs_ed25519_secret_key file): a
// clamped scalar followed by the hash prefix.
func NewSigningKey(expanded []byte) (*SigningKey, error) {
	if len(expanded) != 64 {
		return nil, errors.New("hsdesc: expanded secret key must be 64 bytes")
	}
	if expanded[0]&7 != 0 || expanded[31]&0x80 != 0 || expanded[31]&0x40 == 0 {
		return nil, errors.New("hsdesc: secret key is not a clamped ed25519 scalar")
	}
	var wide [64]byte
	copy(wide[:], expanded[:32])
	s, err := new(edwards25519.Scalar).SetUniformBytes(wide[:])
	if err != nil {
		return nil, fmt.Errorf("hsdesc: secret key: %w", err)
	}
	k := &SigningKey{scalar: s}
	copy(k.prefix[:], expanded[32:])
	copy(k.public[:], new(edwards25519.Point).ScalarBaseMult(s).Bytes())
	return k, nil
}

// signingKeyFromStd converts a crypto/ed25519 private key.
func signingKeyFromStd(priv ed25519.PrivateKey) *SigningKey {
	h := sha512.Sum512(priv.Seed())
	s, err := new(edwards25519.Scalar).SetBytesWithClamping(h[:32])
	if err != nil {
		panic("hsdesc: SetBytesWithClamping: " + err.Error())
	}
	k := &SigningKey{scalar: s}
	copy(k.prefix[:], h[32:])
	copy(k.public[:], priv.Public().(ed25519.PublicKey))
	return k
}

// Public returns the key's public half.
func (k *SigningKey) Public() ed25519.PublicKey {
	return ed25519.PublicKey(append([]byte(nil), k.public[:]...))
}

// String describes the key by its public half only.
func (k *SigningKey) String() string {
	return "hsdesc.SigningKey(" + Address(k.public[:]) + ")"
}

// GoString is like String.
func (k *SigningKey) GoString() string { return k.String() }

// Sign returns the ed25519 signature of msg (RFC 8032, computed from the
// expanded key), which crypto/ed25519.Verify accepts.
func (k *SigningKey) Sign(msg []byte) []byte {
	h := sha512.New()
	h.Write(k.prefix[:])
	h.Write(msg)
	var d [64]byte
	r, err := new(edwards25519.Scalar).SetUniformBytes(h.Sum(d[:0]))
	if err != nil {
		panic("hsdesc: SetUniformBytes: " + err.Error())
	}
	R := new(edwards25519.Point).ScalarBaseMult(r).Bytes()
	h.Reset()
	h.Write(R)
	h.Write(k.public[:])
	h.Write(msg)
	kh, err := new(edwards25519.Scalar).SetUniformBytes(h.Sum(d[:0]))
	if err != nil {
		panic("hsdesc: SetUniformBytes: " + err.Error())
	}
	S := new(edwards25519.Scalar).MultiplyAdd(kh, k.scalar, r)
	return append(R, S.Bytes()...)
}

// Blind returns the blinded signing key for a time period (rend-spec-v3
// A.2): a' = h·a mod l, prefix' = SHA-512("Derive temporary signing key
// hash input" | prefix)[:32]. Its public half is BlindPublicKey of k's.
func (k *SigningKey) Blind(period uint64, p Period) *SigningKey {
	return k.blindWithParam(blindingParam(k.public[:], period, p.minutes()))
}

// blindWithParam is tor's ed25519_keypair_blind.
func (k *SigningKey) blindWithParam(param [32]byte) *SigningKey {
	h := blindingScalar(param)
	b := &SigningKey{scalar: new(edwards25519.Scalar).Multiply(k.scalar, h)}
	d := sha512.New()
	d.Write([]byte("Derive temporary signing key hash input"))
	d.Write(k.prefix[:])
	copy(b.prefix[:], d.Sum(nil))
	copy(b.public[:], new(edwards25519.Point).ScalarBaseMult(b.scalar).Bytes())
	return b
}

// expanded returns the 64-byte expanded form (for tests against tor's
// vectors).
func (k *SigningKey) expanded() []byte {
	return append(k.scalar.Bytes(), k.prefix[:]...)
}

// ed25519FromCurve25519 converts a curve25519 public key (Montgomery u) to
// the ed25519 public key with the given sign bit: y = (u-1)/(u+1). tor
// certifies an introduction point's curve25519 enc-key through this
// conversion with sign bit 0 (enc-key-cert).
func ed25519FromCurve25519(u []byte, signBit byte) ([]byte, error) {
	if len(u) != 32 {
		return nil, errors.New("hsdesc: curve25519 key must be 32 bytes")
	}
	var ue field.Element
	if _, err := ue.SetBytes(u); err != nil {
		return nil, err
	}
	var one, num, den, y field.Element
	one.One()
	num.Subtract(&ue, &one)
	den.Add(&ue, &one)
	y.Multiply(&num, den.Invert(&den))
	out := y.Bytes()
	out[31] = out[31]&0x7f | signBit<<7
	return out, nil
}
