package oniontest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/onioncdn/onioncdn/internal/torproc"
)

// certMinValidity is how long a cached authority certificate must still be
// valid to be reused.
const certMinValidity = 30 * 24 * time.Hour

// keySource returns a directory holding the keys of authority nick,
// taken from the key cache or generated (in the cache or in the network
// directory).
func (b *booter) keySource(ctx context.Context, nick string) (string, error) {
	if b.keyCache != "" {
		src, err := b.cachedKeySource(ctx, nick)
		if err == nil {
			return src, nil
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		// The cache is an optimisation: fall back to fresh keys.
		b.logger.Warn("oniontest: key cache unusable, generating keys", "node", nick, "err", err)
	}
	own := filepath.Join(b.dir, "keys", nick)
	if err := freshDir(own); err != nil {
		return "", err
	}
	return own, genKeys(ctx, b.torPath, b.gencertPath, nick, own)
}

// cachedKeySource returns the cache directory of nick's keys, generating
// them first if they are missing or about to expire. Concurrent Starts
// (also in other processes) may share the cache: keys are generated in a
// private directory and renamed into place.
func (b *booter) cachedKeySource(ctx context.Context, nick string) (string, error) {
	if err := os.MkdirAll(b.keyCache, 0o700); err != nil {
		return "", err
	}
	cached := filepath.Join(b.keyCache, nick)
	if cacheValid(cached, time.Now()) {
		return cached, nil
	}
	tmp, err := os.MkdirTemp(b.keyCache, ".new-"+nick+"-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp) // no-op once renamed
	if err := genKeys(ctx, b.torPath, b.gencertPath, nick, tmp); err != nil {
		return "", err
	}
	if _, err := os.Stat(cached); err == nil && !cacheValid(cached, time.Now()) {
		os.RemoveAll(cached) // expired or incomplete
	}
	if err := os.Rename(tmp, cached); err != nil && !cacheValid(cached, time.Now()) {
		return "", err
	}
	// Either ours or those of a concurrent Start that renamed first.
	return cached, nil
}

// installKeys gives a a fresh data directory holding the keys from src
// and fills in a.v3ident and a.fpr.
func (a *authority) installKeys(src string) error {
	if err := freshDir(a.dataDir); err != nil {
		return err
	}
	if err := copyKeys(src, a.dataDir); err != nil {
		return fmt.Errorf("oniontest: copying keys of %s: %w", a.nick, err)
	}
	var err error
	if a.v3ident, err = fieldAfter(filepath.Join(a.dataDir, "keys", "authority_certificate"), "fingerprint"); err != nil {
		return err
	}
	if a.fpr, err = fieldAfter(filepath.Join(a.dataDir, "fingerprint"), a.nick); err != nil {
		return err
	}
	return nil
}

// cacheValid reports whether dir holds complete keys whose authority
// certificate is valid for at least certMinValidity after now.
func cacheValid(dir string, now time.Time) bool {
	if _, err := os.Stat(filepath.Join(dir, "fingerprint")); err != nil {
		return false
	}
	data, err := os.ReadFile(filepath.Join(dir, "keys", "authority_certificate"))
	if err != nil {
		return false
	}
	exp, ok := certExpiry(data)
	return ok && exp.After(now.Add(certMinValidity))
}

// certExpiry returns the dir-key-expires time of an authority
// certificate.
func certExpiry(cert []byte) (time.Time, bool) {
	for line := range bytes.Lines(cert) {
		if v, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte("dir-key-expires ")); ok {
			t, err := time.Parse(time.DateTime, string(v))
			return t, err == nil
		}
	}
	return time.Time{}, false
}

// copyKeys copies the key files of a node (DIR/keys/* and
// DIR/fingerprint*) from src to dst with mode 0600.
func copyKeys(src, dst string) error {
	if err := os.MkdirAll(filepath.Join(dst, "keys"), 0o700); err != nil {
		return err
	}
	keys, err := os.ReadDir(filepath.Join(src, "keys"))
	if err != nil {
		return err
	}
	files := []string{"fingerprint", "fingerprint-ed25519"}
	for _, k := range keys {
		if k.Type().IsRegular() {
			files = append(files, filepath.Join("keys", k.Name()))
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, f), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// genKeys creates, in dir, the authority identity key, signing key and
// certificate (tor-gencert; dir/keys) and the relay keys (tor
// --list-fingerprint; dir/keys and dir/fingerprint) of node nick. The
// certificate carries no dir-address, so the keys do not depend on the
// ports and can be cached. tor-gencert is CPU bound (RSA-3072): callers
// run authorities in parallel.
func genKeys(ctx context.Context, torPath, gencertPath, nick, dir string) error {
	keys := filepath.Join(dir, "keys")
	if err := os.MkdirAll(keys, 0o700); err != nil {
		return fmt.Errorf("oniontest: %w", err)
	}
	gencert := exec.CommandContext(ctx, gencertPath,
		"--create-identity-key", "--passphrase-fd", "0", "-m", "24",
		"-i", filepath.Join(keys, "authority_identity_key"),
		"-s", filepath.Join(keys, "authority_signing_key"),
		"-c", filepath.Join(keys, "authority_certificate"))
	gencert.Dir = keys
	gencert.Stdin = strings.NewReader("\n") // empty passphrase
	if err := runQuiet(ctx, gencert); err != nil {
		return fmt.Errorf("oniontest: tor-gencert for %s: %w", nick, err)
	}
	fpr := exec.CommandContext(ctx, torPath,
		"--ignore-missing-torrc", "-f", os.DevNull,
		"--DataDirectory", dir,
		"--ORPort", "127.0.0.1:1", // any port: --list-fingerprint binds nothing
		"--Nickname", nick,
		"--list-fingerprint",
		"--Log", "err stderr")
	if err := runQuiet(ctx, fpr); err != nil {
		return fmt.Errorf("oniontest: tor --list-fingerprint for %s: %w", nick, err)
	}
	return nil
}

// runQuiet runs cmd (made with exec.CommandContext(ctx, ...)), returning
// its output in the error if it fails, or ctx's error if ctx ended.
func runQuiet(ctx context.Context, cmd *exec.Cmd) error {
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	torproc.Own(cmd)
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		tail := out.Bytes()
		if len(tail) > tailBytes {
			tail = tail[len(tail)-tailBytes:]
		}
		return fmt.Errorf("%w: %s", err, bytes.TrimSpace(tail))
	}
	return nil
}

// fieldAfter returns the word after key on the first line of path that
// starts with "key ".
func fieldAfter(path, key string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("oniontest: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == key {
			return f[1], nil
		}
	}
	return "", fmt.Errorf("oniontest: no %q line in %s", key, path)
}
