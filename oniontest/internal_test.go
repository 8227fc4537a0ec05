package oniontest

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCountHSDirs(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      int
	}{
		{"empty", "", 0},
		{"all_hsdirs", "r a1 x\ns Authority Fast Guard HSDir Running V2Dir Valid\nr a2 x\ns Guard HSDir Running\n", 2},
		{"one_missing_flag", "r a1 x\ns Authority Guard Running\nr a2 x\ns HSDir\n", 1},
		{"flag_must_be_whole_word", "s HSDirs Running\ns XHSDir\n", 0},
		{"only_s_lines_count", "known-flags HSDir Guard\nrecommended-relay-protocols HSDir=2\ns HSDir\n", 1},
		{"crlf_lines", "s Guard HSDir\r\ns HSDir\r\n", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := countHSDirs([]byte(tc.doc)); got != tc.want {
				t.Errorf("countHSDirs = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestCacheValid(t *testing.T) {
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	cert := func(expires string) string {
		return "dir-key-certificate-version 3\nfingerprint ABCDEF\ndir-key-published 2026-11-26 10:00:00\ndir-key-expires " + expires + "\n"
	}
	for _, tc := range []struct {
		name        string
		cert        string
		fingerprint bool
		want        bool
	}{
		{"valid_two_years", cert("2028-11-26 10:00:00"), true, true},
		{"expires_within_a_month", cert("2026-12-10 10:00:00"), true, false},
		{"expired", cert("2025-01-01 00:00:00"), true, false},
		{"no_expiry_line", "fingerprint ABCDEF\n", true, false},
		{"bad_expiry", cert("soon"), true, false},
		{"no_fingerprint_file", cert("2028-11-26 10:00:00"), false, false},
		{"no_certificate", "", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.Mkdir(filepath.Join(dir, "keys"), 0o700); err != nil {
				t.Fatal(err)
			}
			if tc.cert != "" {
				os.WriteFile(filepath.Join(dir, "keys", "authority_certificate"), []byte(tc.cert), 0o600)
			}
			if tc.fingerprint {
				os.WriteFile(filepath.Join(dir, "fingerprint"), []byte("a1 ABC\n"), 0o600)
			}
			if got := cacheValid(dir, now); got != tc.want {
				t.Errorf("cacheValid = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestFileTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	os.WriteFile(path, []byte("line one\nline two\nline three\n"), 0o600)
	if got := fileTail(path, 14); got != "line three\n" {
		t.Errorf("fileTail = %q, want the last whole line", got)
	}
	if got := fileTail(path, 1000); !strings.HasPrefix(got, "line one") {
		t.Errorf("fileTail = %q, want the whole file", got)
	}
	if got := fileTail(filepath.Join(t.TempDir(), "missing"), 10); got != "" {
		t.Errorf("fileTail of a missing file = %q", got)
	}
}

// fakeControl serves one control connection with canned replies per
// command prefix.
func fakeControl(t *testing.T, replies map[string]string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			reply := "510 Unrecognized command\r\n"
			for prefix, rep := range replies {
				if strings.HasPrefix(line, prefix) {
					reply = rep
				}
			}
			c.Write([]byte(reply))
		}
	}()
	return l.Addr().String()
}

func TestControlConn(t *testing.T) {
	dir := t.TempDir()
	cookie := filepath.Join(dir, "cookie")
	os.WriteFile(cookie, []byte{0xde, 0xad}, 0o600)
	portFile := filepath.Join(dir, "port")
	addr := fakeControl(t, map[string]string{
		"AUTHENTICATE dead\r\n":          "250 OK\r\n",
		"GETINFO status/bootstrap-phase": "250-status/bootstrap-phase=NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY=\"Done\"\r\n250 OK\r\n",
		"GETINFO net/listeners/socks":    "250-net/listeners/socks=\"127.0.0.1:9050\"\r\n250 OK\r\n",
		"GETINFO config-text":            "250+config-text=\r\nSocksPort 9050\r\n.\r\n250 OK\r\n",
		"GETINFO bogus":                  "552 Unrecognized key \"bogus\"\r\n",
	})
	os.WriteFile(portFile, []byte("PORT="+addr+"\n"), 0o600)
	if got := readControlAddr(portFile); got != addr {
		t.Fatalf("readControlAddr = %q, want %q", got, addr)
	}
	ctx := t.Context()
	cc, err := dialControl(ctx, readControlAddr(portFile), cookie)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	for _, tc := range []struct{ key, want, wantErr string }{
		{"status/bootstrap-phase", `NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"`, ""},
		{"net/listeners/socks", "127.0.0.1:9050", ""},
		{"config-text", "\nSocksPort 9050", ""},
		{"bogus", "", "552"},
	} {
		got, err := cc.getInfo(ctx, tc.key)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("getInfo(%s) error = %v, want %s", tc.key, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("getInfo(%s) = %q, %v; want %q", tc.key, got, err, tc.want)
		}
	}
}

func TestControlConnCancelled(t *testing.T) {
	// A control port that reads the command but never answers: cancelling
	// ctx must end the wait.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if _, err := bufio.NewReader(c).ReadString('\n'); err == nil {
			cancel() // the client is now waiting for a reply
		}
		io.Copy(io.Discard, c) // until the client hangs up
	}()
	cookie := filepath.Join(t.TempDir(), "cookie")
	os.WriteFile(cookie, []byte{1}, 0o600)
	_, err = dialControl(ctx, l.Addr().String(), cookie)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("dialControl error = %v, want context.Canceled", err)
	}
}
