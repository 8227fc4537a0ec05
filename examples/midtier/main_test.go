package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/internal/tier"
)

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string // substring of the error; "" = valid
	}{
		{"onion_mode", []string{"-upstream", "http://127.0.0.1:8000", "-key", "k"}, ""},
		{"tcp_mode", []string{"-upstream", "http://127.0.0.1:8000", "-listen", "127.0.0.1:0"}, ""},
		{"onion_upstreams", []string{"-upstream", "http://a.onion,http://b.onion", "-listen", "127.0.0.1:0"}, ""},
		{"no_upstream", []string{"-key", "k"}, "-upstream"},
		{"bad_upstream", []string{"-upstream", "127.0.0.1:8000", "-key", "k"}, "-upstream"},
		{"no_key_no_listen", []string{"-upstream", "http://x"}, "-key FILE"},
		{"bad_listen", []string{"-upstream", "http://x", "-listen", "x"}, "-listen"},
		{"public_metrics", []string{"-upstream", "http://x", "-key", "k", "-metrics", "0.0.0.0:9100"}, "not a loopback"},
		{"bad_verify_key", []string{"-upstream", "http://x", "-key", "k", "-verify-key", "nope"}, "-verify-key"},
		{"bad_log_format", []string{"-upstream", "http://x", "-key", "k", "-log-format", "xml"}, "log format"},
		{"negative_max_bytes", []string{"-upstream", "http://x", "-key", "k", "-max-bytes", "-1"}, "-max-bytes"},
		{"bad_port", []string{"-upstream", "http://x", "-key", "k", "-port", "70000"}, "-port"},
		{"edge_flag", []string{"-upstream", "http://x", "-key", "k", "-router", "http://r"}, "not defined"},
		{"extra_args", []string{"-upstream", "http://x", "-key", "k", "more"}, "unexpected"},
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
	if _, err := parseFlags([]string{"-h"}, &buf); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err %v", err)
	}
	for _, s := range []string{"Usage: midtier", "-torrc-line", "-verify-key", `(default "midtier")`, "(default 80)", "(default 30s)", "-cache-status"} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("-h output lacks %q", s)
		}
	}
}

// TestTCPMode runs the midtier program in TCP mode with a disk cache in
// front of an origin and checks Cache-Status between tiers (on by
// default), the metrics endpoint and a graceful stop.
func TestTCPMode(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		io.WriteString(w, "body")
	}))
	defer origin.Close()
	p, err := parseFlags([]string{"-listen", "127.0.0.1:0", "-upstream", origin.URL, "-cache-dir", t.TempDir(),
		"-no-sync", "-metrics", "127.0.0.1:0"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	readyc := make(chan *tier.Running, 1)
	done := make(chan error, 1)
	var out bytes.Buffer
	go func() { done <- p.Run(ctx, &out, nil, func(r *tier.Running) { readyc <- r }) }()
	var r *tier.Running
	select {
	case r = <-readyc:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("midtier did not start")
	}
	var statuses []string
	for range 2 {
		resp, err := http.Get(r.Address + "/a.ts")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		statuses = append(statuses, resp.Header.Get("Cache-Status"))
		// Wait until the fill is committed, so that the next request is
		// a hit rather than joining the fill.
		if err := r.Tier.Cache.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.HasPrefix(statuses[0], "midtier; fwd=uri-miss") || !strings.HasPrefix(statuses[1], "midtier; hit") {
		t.Fatalf("Cache-Status %q", statuses)
	}
	resp, err := http.Get("http://" + r.Metrics.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `onioncdn_cache_requests_total{disposition="hit",tier="midtier"} 1`) {
		t.Errorf("metrics lack the hit:\n%s", b)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "midtier: stopped; hits 1, misses 1") {
		t.Errorf("output:\n%s", out.String())
	}
}
