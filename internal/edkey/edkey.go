// Package edkey reads and writes ed25519 key files: private keys as PEM
// PKCS #8 (as "openssl genpkey -algorithm ed25519" writes them), public
// keys as base64 or PEM PKIX. Packages route (agent keys) and
// upstream/integrity (origin signing keys) build on it. Errors carry no
// package prefix: callers add theirs.
package edkey

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

const maxKeyFile = 16 << 10

// LoadOrCreate loads the ed25519 private key at path, a PEM
// "PRIVATE KEY" block holding PKCS #8 (as written by
// "openssl genpkey -algorithm ed25519"), or, if no file exists there,
// generates one and writes it with mode 0600. A key file that its group or
// others may read is refused. created reports whether the key is new.
func LoadOrCreate(path string) (key ed25519.PrivateKey, created bool, err error) {
	if path == "" {
		return nil, false, errors.New("no file name")
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = createSigningKey(path)
		return key, err == nil, err
	}
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	if !st.Mode().IsRegular() {
		return nil, false, fmt.Errorf("%s: not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, false, fmt.Errorf("%s: file mode %#o is readable by group or others; chmod 600 it", path, perm)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile))
	if err != nil {
		return nil, false, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, false, fmt.Errorf("%s: no PEM PRIVATE KEY block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, false, fmt.Errorf("%s: not PKCS #8", path)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, false, fmt.Errorf("%s: not an ed25519 key", path)
	}
	return ek, false, nil
}

func createSigningKey(path string) (ed25519.PrivateKey, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	werr := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := f.Sync(); werr == nil {
		werr = err
	}
	if err := f.Close(); werr == nil {
		werr = err
	}
	if werr != nil {
		os.Remove(path)
		return nil, werr
	}
	return key, nil
}

// EncodePublic returns pub in the form ParsePublic and the router's
// configuration file accept: standard base64 of the 32 key bytes.
func EncodePublic(pub ed25519.PublicKey) string {
	return base64.StdEncoding.EncodeToString(pub)
}

// ParsePublic parses an ed25519 public key given as base64 (standard
// or URL alphabet, padded or not) of its 32 bytes, or as the name of a
// file holding either that or a PEM "PUBLIC KEY" block (PKIX, as written
// by "openssl pkey -pubout").
//
// A string with a "/" that does not end in "=" padding is a file name,
// never a key: unpadded standard base64 and file names share their
// alphabet, and a missing file must be an error, not a random key. Keys
// as [EncodePublic] prints them (padded) or in the URL alphabet are not
// affected.
func ParsePublic(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	fileName := strings.Contains(s, "/") && !strings.HasSuffix(s, "=")
	if !fileName {
		if k, ok := decodeRawKey(s); ok {
			return k, nil
		}
	}
	f, err := os.Open(s)
	if err != nil {
		return nil, fmt.Errorf("not 32 bytes of base64, nor a readable file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile))
	if err != nil {
		return nil, err
	}
	if block, _ := pem.Decode(data); block != nil {
		if block.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("%s: PEM block %q, want PUBLIC KEY", s, block.Type)
		}
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s, err)
		}
		ek, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("%s: not an ed25519 key", s)
		}
		return ek, nil
	}
	if k, ok := decodeRawKey(strings.TrimSpace(string(data))); ok {
		return k, nil
	}
	return nil, fmt.Errorf("%s: neither PEM nor base64 of 32 bytes", s)
}

func decodeRawKey(s string) (ed25519.PublicKey, bool) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == ed25519.PublicKeySize {
			return ed25519.PublicKey(b), true
		}
	}
	return nil, false
}
