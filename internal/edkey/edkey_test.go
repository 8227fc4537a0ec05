package edkey

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSigningKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sign.pem")
	k1, created, err := LoadOrCreate(path)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	k2, created, err := LoadOrCreate(path)
	if err != nil || created || !k1.Equal(k2) {
		t.Fatalf("reload: %v %v", created, err)
	}
	// The public key round-trips through base64 and a PEM file.
	pub := k1.Public().(ed25519.PublicKey)
	if p, err := ParsePublic(EncodePublic(pub)); err != nil || !p.Equal(pub) {
		t.Fatalf("base64: %v", err)
	}
	der, _ := x509.MarshalPKIXPublicKey(pub)
	pemFile := filepath.Join(t.TempDir(), "pub.pem")
	os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644)
	if p, err := ParsePublic(pemFile); err != nil || !p.Equal(pub) {
		t.Fatalf("pem: %v", err)
	}
	// Keys whose base64 holds "/" still parse when padded (as printed) or
	// in the URL alphabet.
	slashy := ed25519.PublicKey(bytes.Repeat([]byte{0xff}, ed25519.PublicKeySize))
	for _, enc := range []string{EncodePublic(slashy), base64.RawURLEncoding.EncodeToString(slashy)} {
		if p, err := ParsePublic(enc); err != nil || !p.Equal(slashy) {
			t.Errorf("ParsePublic(%q) = %v", enc, err)
		}
	}
	// A missing file whose name is 43 characters of base64 alphabet (it
	// decodes to 32 bytes) is still a missing file.
	missing43 := "/tmp/" + strings.Repeat("a", 38)
	if _, err := base64.RawStdEncoding.DecodeString(missing43); err != nil || len(missing43) != 43 {
		t.Fatalf("test name %q does not decode as a key: %v", missing43, err)
	}
	for _, bad := range []string{"", "abc", filepath.Join(t.TempDir(), "missing"), missing43, path /* a private key */} {
		if _, err := ParsePublic(bad); err == nil {
			t.Errorf("ParsePublic(%q) accepted", bad)
		}
	}
	os.Chmod(path, 0o640)
	if _, _, err := LoadOrCreate(path); err == nil {
		t.Error("group-readable signing key accepted")
	}
	garbage := filepath.Join(t.TempDir(), "g.pem")
	os.WriteFile(garbage, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600)
	if _, _, err := LoadOrCreate(garbage); err == nil {
		t.Error("garbage PEM accepted")
	}
}
