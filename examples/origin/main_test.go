package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/upstream/integrity"
)

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string // substring of the error; "" = valid
	}{
		{"valid", []string{"-dir", "x"}, ""},
		{"missing_dir", nil, "-dir is required"},
		{"extra_args", []string{"-dir", "x", "y"}, "unexpected arguments"},
		{"bad_listen", []string{"-dir", "x", "-listen", "nohostport"}, "-listen"},
		{"bad_segments", []string{"-dir", "x", "-generate", "-segments", "0"}, "-segments"},
		{"bad_segment_duration", []string{"-dir", "x", "-generate", "-segment-duration", "1ms"}, "-segment-duration"},
		{"bad_log_format", []string{"-dir", "x", "-log-format", "xml"}, "-log-format"},
		{"bad_shutdown", []string{"-dir", "x", "-shutdown-timeout", "0s"}, "-shutdown-timeout"},
		{"unknown_flag", []string{"-nope"}, "not defined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseFlags(tc.args, io.Discard)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

func TestHelpDocumentsDefaults(t *testing.T) {
	var buf bytes.Buffer
	_, err := parseFlags([]string{"-h"}, &buf)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err %v", err)
	}
	for _, s := range []string{"Usage: origin", "-sign-key", `(default "127.0.0.1:8000")`, "(default 30)", "(default 2s)"} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("-h output lacks %q:\n%s", s, buf.String())
		}
	}
}

// TestServeGeneratedSigned runs the origin with -generate and -sign-key
// and checks what a tier would receive: typed Cache-Control, CORS, a
// signature that verifies with the printed public key, and a clean stop.
func TestServeGeneratedSigned(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(t.TempDir(), "origin.pem")
	o, err := parseFlags([]string{"-listen", "127.0.0.1:0", "-dir", filepath.Join(dir, "site"), "-generate", "-segments", "3",
		"-allow-origin", "http://site.onion", "-sign-key", keyFile, "-log-level", "error"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	addrc := make(chan string, 1)
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, o, &out, func(a string) { addrc <- a }) }()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("origin did not start")
	}
	key, created, err := integrity.LoadOrCreateSigningKey(keyFile)
	if err != nil || created {
		t.Fatalf("key file not written: %v", err)
	}
	pub := key.Public().(ed25519.PublicKey)
	verify := &integrity.Transport{Keys: map[string]ed25519.PublicKey{integrity.KeyID(pub): pub}}
	client := &http.Client{Transport: verify}
	for _, tc := range []struct{ path, cc string }{
		{"/master.m3u8", "max-age=3600"},
		{"/480p/index.m3u8", "max-age=3600"},
		{"/480p/seg1.ts", "immutable"},
	} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+tc.path, nil)
		req.Header.Set("Origin", "http://site.onion")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Cache-Control"), tc.cc) ||
			resp.Header.Get("Access-Control-Allow-Origin") != "http://site.onion" || resp.Header.Get("ETag") == "" {
			t.Errorf("%s: %d %v", tc.path, resp.StatusCode, resp.Header)
		}
	}
	if s := verify.Stats(); s.Verified != 3 || s.Rejected != 0 {
		t.Errorf("signatures: %+v", s)
	}
	if !strings.Contains(out.String(), "-verify-key "+integrity.EncodePublicKey(pub)) {
		t.Errorf("output does not print the public key:\n%s", out.String())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "origin stopped") {
		t.Errorf("no stop message:\n%s", out.String())
	}
}
