package onion

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	bed25519 "github.com/cretz/bine/torutil/ed25519"
	"github.com/onioncdn/onioncdn/internal/onionaddr"
)

// keyFileHeader is the 32-byte header of tor's hs_ed25519_secret_key file.
const keyFileHeader = "== ed25519v1-secret: type0 ==\x00\x00\x00"

// keyFileSize is the size of a hs_ed25519_secret_key file: header plus the
// 64-byte expanded secret key.
const keyFileSize = len(keyFileHeader) + 64

// AddressLen is the length of a v3 onion address without the ".onion" suffix.
const AddressLen = onionaddr.IDLen

// Key is the secret key of a v3 onion service. It is stored in tor's
// expanded form (the 64-byte SHA-512 digest of the seed, clamped), which is
// what tor keeps in a HiddenServiceDir's hs_ed25519_secret_key file, so keys
// move freely between this package and a plain tor configuration.
//
// A Key never prints its secret: its String method (and %v) give the onion
// address only.
type Key struct {
	expanded [64]byte
	public   [32]byte
}

// GenerateKey returns a new random key.
func GenerateKey() (*Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("onion: generate key: %w", err)
	}
	kp := bed25519.FromCryptoPrivateKey(priv)
	k := &Key{}
	copy(k.expanded[:], kp.PrivateKey())
	copy(k.public[:], kp.PublicKey())
	return k, nil
}

// keyFromExpanded builds a Key from tor's 64-byte expanded secret key,
// validating that the scalar is clamped as ed25519 requires.
func keyFromExpanded(b []byte) (*Key, error) {
	if len(b) != 64 {
		return nil, errors.New("onion: key: expanded secret key must be 64 bytes")
	}
	// A clamped scalar has the low 3 bits clear, bit 255 clear and bit 254 set.
	if b[0]&7 != 0 || b[31]&0x80 != 0 || b[31]&0x40 == 0 {
		return nil, errors.New("onion: key: secret key is not a clamped ed25519 scalar")
	}
	k := &Key{}
	copy(k.expanded[:], b)
	copy(k.public[:], bed25519.PrivateKey(k.expanded[:]).PublicKey())
	return k, nil
}

// ParseKeyFile parses the contents of a tor hs_ed25519_secret_key file.
// Errors never include key material.
func ParseKeyFile(data []byte) (*Key, error) {
	switch {
	case len(data) < len(keyFileHeader):
		return nil, fmt.Errorf("onion: key file truncated: %d bytes, want %d", len(data), keyFileSize)
	case !bytes.Equal(data[:len(keyFileHeader)], []byte(keyFileHeader)):
		return nil, errors.New(`onion: key file has no "== ed25519v1-secret: type0 ==" header`)
	case len(data) != keyFileSize:
		return nil, fmt.Errorf("onion: key file has %d bytes, want %d", len(data), keyFileSize)
	}
	return keyFromExpanded(data[len(keyFileHeader):])
}

// LoadKey reads a key from path, a file in tor's hs_ed25519_secret_key format
// (for example the file of that name in a HiddenServiceDir). A key file that
// its group or other users may read is refused: the key is the identity of
// the service. If no file exists at path, the error matches
// [io/fs.ErrNotExist] (see [LoadOrCreateKey]).
func LoadKey(path string) (*Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("onion: load key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("onion: load key: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("onion: load key %s: not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("onion: load key %s: file mode %#o is readable by group or others; chmod 600 it", path, perm)
	}
	data, err := io.ReadAll(io.LimitReader(f, int64(keyFileSize)+1))
	if err != nil {
		return nil, fmt.Errorf("onion: load key: %w", err)
	}
	k, err := ParseKeyFile(data)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return k, nil
}

// LoadOrCreateKey loads the key at path (see [LoadKey]) or, if no file
// exists there, generates a key and saves it there with mode 0600 (see
// [Key.Save]). created reports which. The file is created atomically and
// never replaced: when several processes start at once with the same path,
// they all end up with the key of the one that created it first.
//
// Copy the file to every machine that must publish the same address (the
// edges of a group); keep it readable by its owner only.
func LoadOrCreateKey(path string) (k *Key, created bool, err error) {
	if path == "" {
		return nil, false, errors.New("onion: load key: no file name")
	}
	k, err = LoadKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, false, err
	}
	if k, err = GenerateKey(); err != nil {
		return nil, false, err
	}
	tmp, err := k.saveTemp(filepath.Dir(path))
	if err != nil {
		return nil, false, err
	}
	defer os.Remove(tmp)
	// A hard link fails if path exists: unlike a rename, it never replaces
	// a key another process created meanwhile.
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			k, err = LoadKey(path)
			return k, false, err
		}
		return nil, false, fmt.Errorf("onion: save key: %w", err)
	}
	return k, true, nil
}

// MarshalFile returns the key in tor's hs_ed25519_secret_key file format.
func (k *Key) MarshalFile() []byte {
	b := make([]byte, 0, keyFileSize)
	b = append(b, keyFileHeader...)
	return append(b, k.expanded[:]...)
}

// Save writes the key to path in tor's hs_ed25519_secret_key format with mode
// 0600. The file is written to a temporary name in the same directory and
// renamed, so a crash never leaves a truncated key behind. An existing file at
// path is replaced.
func (k *Key) Save(path string) error {
	tmp, err := k.saveTemp(filepath.Dir(path))
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("onion: save key: %w", err)
	}
	return nil
}

// saveTemp writes the key to a new file in dir with mode 0600, synced, and
// returns its name.
func (k *Key) saveTemp(dir string) (string, error) {
	tmp, err := os.CreateTemp(dir, ".onionkey-*")
	if err != nil {
		return "", fmt.Errorf("onion: save key: %w", err)
	}
	name := tmp.Name()
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(k.MarshalFile())
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", fmt.Errorf("onion: save key: %w", err)
	}
	return name, nil
}

// Address returns the service's address, "<56 base32 characters>.onion".
func (k *Key) Address() string { return serviceID(k.public[:]) + ".onion" }

// ServiceID returns the address without the ".onion" suffix, as tor's
// control port names services.
func (k *Key) ServiceID() string { return serviceID(k.public[:]) }

// String returns the onion address; it never reveals the secret key.
func (k *Key) String() string { return k.Address() }

// GoString is like String, so %#v does not reveal the secret key either.
func (k *Key) GoString() string { return "onion.Key(" + k.Address() + ")" }

// addOnionBlob is the key as ADD_ONION wants it. It must never be logged.
func (k *Key) addOnionBlob() string {
	return "ED25519-V3:" + base64.StdEncoding.EncodeToString(k.expanded[:])
}

func serviceID(pub []byte) string { return onionaddr.Encode(pub) }

// ParseAddress validates a v3 onion address and returns it normalised:
// lower case, with the ".onion" suffix, without any subdomain. It accepts
// the address with or without ".onion", in any letter case, and with
// subdomains ("www.<id>.onion"), which Tor ignores for routing. It checks
// the length, the base32 alphabet, the version byte (3) and the checksum.
func ParseAddress(s string) (string, error) {
	id := strings.ToLower(s)
	if strings.HasSuffix(id, ".onion") {
		id = strings.TrimSuffix(id, ".onion")
		if i := strings.LastIndexByte(id, '.'); i >= 0 {
			id = id[i+1:] // drop subdomains
		}
	} else if strings.Contains(id, ".") {
		return "", fmt.Errorf("onion: address %q: not a .onion name", s)
	}
	if len(id) != AddressLen {
		if len(id) == 16 {
			return "", fmt.Errorf("onion: address %q: v2 onion addresses are no longer supported", s)
		}
		return "", fmt.Errorf("onion: address %q: service id has %d characters, want %d", s, len(id), AddressLen)
	}
	switch _, err := onionaddr.Decode(id); {
	case errors.Is(err, onionaddr.ErrVersion):
		return "", fmt.Errorf("onion: address %q: version is not 3", s)
	case errors.Is(err, onionaddr.ErrChecksum):
		return "", fmt.Errorf("onion: address %q: bad checksum (mistyped?)", s)
	case err != nil:
		return "", fmt.Errorf("onion: address %q: not base32 (a-z, 2-7)", s)
	}
	return id + ".onion", nil
}
