package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/internal/tier"
	"github.com/onioncdn/onioncdn/route"
)

func TestExampleConfig(t *testing.T) {
	data, err := os.ReadFile("config.example.json")
	if err != nil {
		t.Fatal(err)
	}
	rt, err := parseConfig(data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Stats(); err != nil {
		t.Fatalf("example config invalid: %v", err)
	}
	if len(rt.Groups) != 2 || rt.Groups[0].Weight != 2 || len(rt.Groups[0].Edges) != 2 || rt.StickyCookie != "ocdn" || rt.StaleAfter != 30*time.Second {
		t.Fatalf("parsed %+v", rt)
	}
}

func TestConfigErrors(t *testing.T) {
	const key = "BTKULyH51rAbWQ3T4OkzGN3A9ADAOvYBZsh1NPe3m5I="
	const onionAddr = "73p25ie32j74o2scn4obbdjw7r73chqmrbuoqk3fr2d5ss6npxcxjyyd.onion"
	group := `{"id":"g","onion":"` + onionAddr + `","edges":[{"id":"e","public_key":"` + key + `"}]}`
	for _, tc := range []struct {
		name, json, want string
	}{
		{"not_json", `nope`, "invalid character"},
		{"unknown_field", `{"groups":[` + group + `],"colour":"red"}`, "unknown field"},
		{"no_groups", `{"groups":[]}`, "no groups"},
		{"bad_key", `{"groups":[{"id":"g","onion":"` + onionAddr + `","edges":[{"id":"e","public_key":"short"}]}]}`, "public key"},
		{"bad_duration", `{"stale_after":30,"groups":[` + group + `]}`, "durations are strings"},
		{"negative_duration", `{"stale_after":"-1s","groups":[` + group + `]}`, "negative"},
		{"trailing", `{"groups":[` + group + `]} {}`, "trailing"},
		{"negative_weight", `{"groups":[{"id":"g","onion":"` + onionAddr + `","weight":-1,"edges":[]}]}`, "negative weight"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig([]byte(tc.json))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	// Semantic errors surface from parseFlags through route's validation.
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"groups":[{"id":"g","onion":"not-an-onion","edges":[{"id":"e","public_key":"`+key+`"}]}]}`), 0o600)
	if _, err := parseFlags([]string{"-config", bad, "-listen", "127.0.0.1:0"}, io.Discard); err == nil || !strings.Contains(err.Error(), "route:") {
		t.Fatalf("invalid onion accepted: %v", err)
	}
}

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"valid", []string{"-config", "config.example.json", "-key", "k"}, ""},
		{"no_config", []string{"-key", "k"}, "-config is required"},
		{"missing_config", []string{"-config", "nope.json", "-key", "k"}, "no such file"},
		{"no_key_no_listen", []string{"-config", "config.example.json"}, "-key FILE"},
		{"public_metrics", []string{"-config", "config.example.json", "-key", "k", "-metrics", ":9100"}, "not a loopback"},
		{"bad_port", []string{"-config", "config.example.json", "-key", "k", "-port", "0"}, "-port"},
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
	var buf bytes.Buffer
	if _, err := parseFlags([]string{"-h"}, &buf); !errors.Is(err, flag.ErrHelp) {
		t.Fatal(err)
	}
	for _, s := range []string{"Usage: router", "-config", "(default 80)", "(default 10s)"} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("-h lacks %q", s)
		}
	}
}

// TestTCPMode runs the router on loopback with two groups: an edge agent
// reports for group b only, and every client is redirected there.
func TestTCPMode(t *testing.T) {
	pubA, _, _ := ed25519.GenerateKey(nil)
	pubB, privB, _ := ed25519.GenerateKey(nil)
	cfg := `{"groups":[
		{"id":"a","onion":"127.0.0.1:1001","edges":[{"id":"a1","public_key":"` + tier.EncodePublicKey(pubA) + `"}]},
		{"id":"b","onion":"127.0.0.1:1002","edges":[{"id":"b1","public_key":"` + tier.EncodePublicKey(pubB) + `"}]}]}`
	file := filepath.Join(t.TempDir(), "router.json")
	os.WriteFile(file, []byte(cfg), 0o600)
	o, err := parseFlags([]string{"-config", file, "-listen", "127.0.0.1:0", "-allow-non-onion", "-log-level", "error"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	var out bytes.Buffer
	go func() { done <- run(ctx, o, &out, func(a string) { addrc <- a }) }()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("router did not start")
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
