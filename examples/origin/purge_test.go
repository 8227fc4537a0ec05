package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/upstream/integrity"
)

// TestPurgeCommand runs the origin with -sign-key and -purge-log, issues
// purges with "origin purge", and reads them back from the log; bad
// invocations and another key are refused.
func TestPurgeCommand(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "origin.pem")
	logFile := filepath.Join(dir, "purge.log")
	o, err := parseFlags([]string{"-listen", "127.0.0.1:0", "-dir", dir, "-sign-key", keyFile, "-purge-log", logFile, "-log-level", "error"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	addrc, done := make(chan string, 1), make(chan error, 1)
	go func() { done <- run(ctx, o, io.Discard, func(a string) { addrc <- a }) }()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("origin did not start")
	}
	base := "http://" + addr
	for i, args := range [][]string{
		{"-prefix", "/video/", "-soft"},
		{"-path", "/index.html"},
		{"-tag", "news"},
		{"-all", "-soft"},
	} {
		var out bytes.Buffer
		if err := runPurge(t.Context(), append([]string{"-sign-key", keyFile, "-url", base}, args...), &out, io.Discard); err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		if !strings.HasPrefix(out.String(), "purge "+string(rune('1'+i))+" of log ") {
			t.Fatalf("%q: output %q", args, out.String())
		}
	}
	resp, err := http.Get(base + "/.well-known/onioncdn/purge?after=0")
	if err != nil {
		t.Fatal(err)
	}
	var feed struct{ Entries []string }
	json.NewDecoder(resp.Body).Decode(&feed)
	resp.Body.Close()
	if len(feed.Entries) != 4 {
		t.Fatalf("log holds %d entries, want 4", len(feed.Entries))
	}

	otherKey := filepath.Join(dir, "other.pem")
	if _, _, err := integrity.LoadOrCreateSigningKey(otherKey); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-sign-key", keyFile, "-url", base}, "exactly one of"},
		{[]string{"-sign-key", keyFile, "-url", base, "-tag", "a", "-all"}, "exactly one of"},
		{[]string{"-url", base, "-all"}, "-sign-key is required"},
		{[]string{"-sign-key", filepath.Join(dir, "missing.pem"), "-url", base, "-all"}, "-sign-key"},
		{[]string{"-sign-key", keyFile, "-url", base, "-prefix", "/video/*"}, "literal"},
		{[]string{"-sign-key", otherKey, "-url", base, "-all"}, "403"},
	} {
		if err := runPurge(t.Context(), tc.args, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.args, err, tc.want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := parseFlags([]string{"-dir", dir, "-purge-log", logFile}, io.Discard); err == nil {
		t.Error("-purge-log without -sign-key accepted")
	}
}
