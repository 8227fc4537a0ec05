package onion

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestKeyTorGenerated checks compatibility with tor itself: the key file and
// hostname in testdata/torkey were written by tor 0.4.9.11 for a configured
// service.
func TestKeyTorGenerated(t *testing.T) {
	data, err := os.ReadFile("testdata/torkey/hs_ed25519_secret_key")
	if err != nil {
		t.Fatal(err)
	}
	host, err := os.ReadFile("testdata/torkey/hostname")
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseKeyFile(data)
	if err != nil {
		t.Fatalf("ParseKeyFile(tor's file): %v", err)
	}
	if got, want := k.Address(), strings.TrimSpace(string(host)); got != want {
		t.Fatalf("Address() = %s, tor says %s", got, want)
	}
	if !bytes.Equal(k.MarshalFile(), data) {
		t.Fatal("MarshalFile() differs from tor's file")
	}
}

func TestKeySaveLoad(t *testing.T) {
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "hs_ed25519_secret_key")
	if err := k.Save(path); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("saved key mode %#o, want 0600", st.Mode().Perm())
	}
	if st.Size() != int64(keyFileSize) {
		t.Fatalf("saved key has %d bytes, want %d", st.Size(), keyFileSize)
	}
	k2, err := LoadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if k2.Address() != k.Address() || k2.expanded != k.expanded {
		t.Fatal("loaded key differs from saved key")
	}
	if _, err := ParseAddress(k.Address()); err != nil {
		t.Fatalf("ParseAddress(own address): %v", err)
	}
	// Save replaces an existing file and leaves no temporary files behind.
	k3, _ := GenerateKey()
	if err := k3.Save(path); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Fatalf("directory has %d entries after two saves, want 1", len(ents))
	}
	if k4, err := LoadKey(path); err != nil || k4.Address() != k3.Address() {
		t.Fatalf("LoadKey after overwrite: %v", err)
	}
}

func TestKeyNeverPrintsSecret(t *testing.T) {
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	secretHex := fmt.Sprintf("%x", k.expanded[:8])
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v", k), fmt.Sprintf("%+v", k), fmt.Sprintf("%#v", k), fmt.Sprintf("%s", k)} {
		if strings.Contains(s, secretHex) || strings.Contains(s, k.addOnionBlob()[11:20]) {
			t.Fatalf("formatted key reveals secret material: %q", s)
		}
		if !strings.Contains(s, k.ServiceID()) {
			t.Fatalf("formatted key %q does not name the address", s)
		}
	}
}

func TestLoadKeyErrors(t *testing.T) {
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	good := k.MarshalFile()
	secretHex := fmt.Sprintf("%x", k.expanded[:6])
	unclamped := bytes.Clone(good)
	unclamped[len(keyFileHeader)] |= 7
	wrongHeader := bytes.Clone(good)
	copy(wrongHeader, "== ed25519v1-public: type0 ==\x00\x00\x00")
	tests := []struct {
		name    string
		data    []byte // nil: do not create the file
		mode    fs.FileMode
		wantErr string
		wantIs  error
	}{
		{name: "missing", data: nil, wantIs: fs.ErrNotExist},
		{name: "empty", data: []byte{}, mode: 0o600, wantErr: "truncated"},
		{name: "header_only", data: []byte(keyFileHeader), mode: 0o600, wantErr: "has 32 bytes, want 96"},
		{name: "truncated", data: good[:len(good)-1], mode: 0o600, wantErr: "has 95 bytes, want 96"},
		{name: "too_long", data: append(bytes.Clone(good), 0), mode: 0o600, wantErr: "want 96"},
		{name: "wrong_header", data: wrongHeader, mode: 0o600, wantErr: "header"},
		{name: "text_file", data: []byte(strings.Repeat("not a key\n", 10)), mode: 0o600, wantErr: "header"},
		{name: "not_clamped", data: unclamped, mode: 0o600, wantErr: "clamped"},
		{name: "world_readable", data: good, mode: 0o644, wantErr: "readable by group or others"},
		{name: "group_readable", data: good, mode: 0o640, wantErr: "readable by group or others"},
		{name: "directory", mode: 0o700 | fs.ModeDir, wantErr: "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "key")
			switch {
			case tt.mode&fs.ModeDir != 0:
				if err := os.Mkdir(path, 0o700); err != nil {
					t.Fatal(err)
				}
			case tt.data != nil:
				if err := os.WriteFile(path, tt.data, tt.mode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, tt.mode); err != nil { // umask
					t.Fatal(err)
				}
			}
			_, err := LoadKey(path)
			if err == nil {
				t.Fatal("LoadKey succeeded, want error")
			}
			if !strings.HasPrefix(err.Error(), "onion: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %q is not %v", err, tt.wantIs)
			}
			if strings.Contains(err.Error(), secretHex) {
				t.Errorf("error %q contains key material", err)
			}
		})
	}
}

func TestSaveKeyErrors(t *testing.T) {
	k, _ := GenerateKey()
	err := k.Save(filepath.Join(t.TempDir(), "no", "such", "dir", "key"))
	if err == nil || !strings.HasPrefix(err.Error(), "onion: save key") {
		t.Fatalf("Save into missing directory: %v, want onion: save key error", err)
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "group.key")
	if _, err := LoadKey(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadKey of a missing file = %v, want fs.ErrNotExist", err)
	}
	k1, created, err := LoadOrCreateKey(path)
	if err != nil || !created {
		t.Fatalf("first LoadOrCreateKey = %v, created %v", err, created)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v", err, st.Mode())
	}
	k2, created, err := LoadOrCreateKey(path)
	if err != nil || created || k2.Address() != k1.Address() {
		t.Fatalf("second LoadOrCreateKey = %v, created %v, %s vs %s", err, created, k2, k1)
	}
	// Concurrent first starts agree on one key and create it once.
	path = filepath.Join(dir, "race.key")
	const n = 8
	addrs := make([]string, n)
	creators := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			k, c, err := LoadOrCreateKey(path)
			if err != nil {
				t.Error(err)
				return
			}
			addrs[i], creators[i] = k.Address(), c
		})
	}
	wg.Wait()
	nc := 0
	for i := range n {
		if addrs[i] != addrs[0] {
			t.Fatalf("processes disagree: %s vs %s", addrs[i], addrs[0])
		}
		if creators[i] {
			nc++
		}
	}
	if nc != 1 {
		t.Fatalf("%d creators, want 1", nc)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".onionkey-*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	if _, _, err := LoadOrCreateKey(""); err == nil {
		t.Fatal("empty path accepted")
	}
	// A key readable by others is still refused, not replaced.
	os.Chmod(path, 0o644)
	if _, _, err := LoadOrCreateKey(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("group-readable key: %v", err)
	}
}
