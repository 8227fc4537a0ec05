package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/route"
)

type lines struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func TestFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-key", "k"}, "want -config"},
		{[]string{"-config", "config.example.json"}, "want -config"},
		{[]string{"-config", "nope.json", "-listen", "127.0.0.1:0"}, "no such file"},
		{[]string{"-config", "config.example.json", "-listen", "127.0.0.1:0", "-metrics", ":9100"}, "not a loopback"},
	} {
		if err := run(t.Context(), tc.args, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.args, err, tc.want)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"groups":[{"id":"g","onion":"not-an-onion","edges":[]}]}`), 0o600)
	if err := run(t.Context(), []string{"-config", bad, "-listen", "127.0.0.1:0"}, io.Discard); err == nil || !strings.Contains(err.Error(), "route:") {
		t.Errorf("invalid group accepted: %v", err)
	}
	if err := run(t.Context(), []string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}

// TestTCPMode runs the router on loopback with two groups: an edge agent
// reports for group b only, and every client is redirected there.
func TestTCPMode(t *testing.T) {
	pubA, _, _ := ed25519.GenerateKey(nil)
	pubB, privB, _ := ed25519.GenerateKey(nil)
	cfg := `{"groups":[
		{"id":"a","onion":"127.0.0.1:1001","edges":[{"id":"a1","public_key":"` + route.EncodePublicKey(pubA) + `"}]},
		{"id":"b","onion":"127.0.0.1:1002","edges":[{"id":"b1","public_key":"` + route.EncodePublicKey(pubB) + `"}]}]}`
	file := filepath.Join(t.TempDir(), "router.json")
	os.WriteFile(file, []byte(cfg), 0o600)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	out := &lines{}
	go func() {
		done <- run(ctx, []string{"-config", file, "-listen", "127.0.0.1:0", "-allow-non-onion", "-log-level", "error"}, out)
	}()
	re := regexp.MustCompile(`serving (http://\S+)`)
	var addr string
	for deadline := time.Now().Add(30 * time.Second); addr == ""; time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			addr = m[1]
		} else if time.Now().After(deadline) {
			t.Fatal("router did not start")
		}
	}
	a := &route.Agent{URL: addr + route.DefaultReportPath, Group: "b", Edge: "b1", Key: privB}
	if err := a.Report(t.Context()); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for range 5 {
		resp, err := client.Get(addr + "/live/master.m3u8")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "http://127.0.0.1:1002/live/master.m3u8" {
			t.Fatalf("%d Location %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "router: stopped; 5 redirects, 1 reports accepted") {
		t.Errorf("output:\n%s", out.String())
	}
}
