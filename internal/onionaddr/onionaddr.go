// Package onionaddr encodes and decodes v3 onion service ids (rend-spec-v3
// §6: base32 of public key, checksum and version). It is the one place the
// address checksum is computed; packages onion and route build on it.
package onionaddr

import (
	"crypto/sha3"
	"encoding/base32"
	"errors"
	"strings"
)

// IDLen is the length of a v3 service id (the address without ".onion").
const IDLen = 56

var encoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// Errors returned by Decode.
var (
	ErrLength   = errors.New("service id has the wrong length")
	ErrAlphabet = errors.New("not base32 (a-z, 2-7)")
	ErrVersion  = errors.New("version is not 3")
	ErrChecksum = errors.New("bad checksum")
)

// checksum returns the v3 checksum of pub: the first two bytes of
// SHA3-256(".onion checksum" || pub || 0x03).
func checksum(pub []byte) [2]byte {
	h := sha3.New256()
	h.Write([]byte(".onion checksum"))
	h.Write(pub)
	h.Write([]byte{3})
	var s [32]byte
	h.Sum(s[:0])
	return [2]byte{s[0], s[1]}
}

// Encode returns the lower-case service id of a 32-byte ed25519 public key.
func Encode(pub []byte) string {
	var b [35]byte
	copy(b[:], pub)
	c := checksum(pub)
	b[32], b[33], b[34] = c[0], c[1], 3
	return strings.ToLower(encoding.EncodeToString(b[:]))
}

// Decode checks a service id (56 base32 characters, lower case, no
// ".onion") and returns its public key.
func Decode(id string) ([]byte, error) {
	if len(id) != IDLen {
		return nil, ErrLength
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('a' <= c && c <= 'z' || '2' <= c && c <= '7') {
			return nil, ErrAlphabet
		}
	}
	b, err := encoding.DecodeString(strings.ToUpper(id))
	if err != nil || len(b) != 35 {
		return nil, ErrAlphabet
	}
	if b[34] != 3 {
		return nil, ErrVersion
	}
	if c := checksum(b[:32]); c[0] != b[32] || c[1] != b[33] {
		return nil, ErrChecksum
	}
	return b[:32], nil
}
