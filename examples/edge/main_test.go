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
	"sync/atomic"
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
		{"tcp_mode", []string{"-upstream", "http://127.0.0.1:8000", "-listen", "127.0.0.1:0", "-cache-dir", "d"}, ""},
		{"failover_upstreams", []string{"-upstream", "http://a.onion,http://b.onion", "-key", "k", "-watchdog", "30s"}, ""},
		{"router", []string{"-upstream", "http://x", "-key", "k", "-router", "http://r.onion/.well-known/onioncdn/report", "-group", "eu", "-edge-id", "eu-1", "-agent-key", "a.pem"}, ""},
		{"no_upstream", []string{"-key", "k"}, "-upstream"},
		{"no_key_no_listen", []string{"-upstream", "http://x"}, "-key FILE"},
		{"public_metrics", []string{"-upstream", "http://x", "-key", "k", "-metrics", "0.0.0.0:9100"}, "not a loopback"},
		{"extra_args", []string{"-upstream", "http://x", "-key", "k", "more"}, "unexpected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parseFlags(tc.args, io.Discard)
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
	if _, _, err := parseFlags([]string{"-h"}, &buf); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err %v", err)
	}
	for _, s := range []string{"Usage: edge", "-watchdog", "-router", "-agent-key", "-prefetch", `(default "edge")`, "(default 2)", "-cpuprofile"} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("-h output lacks %q", s)
		}
	}
}

// TestTCPMode runs the edge in plain TCP mode in front of an origin: a miss
// then a hit (one origin request), no Cache-Status towards users by
// default, Age on the hit, and a graceful stop.
func TestTCPMode(t *testing.T) {
	var hits atomic.Int32
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Cache-Control", "public, max-age=60")
		io.WriteString(w, "segment")
	}))
	defer origin.Close()
	p, _, err := parseFlags([]string{"-listen", "127.0.0.1:0", "-upstream", origin.URL, "-cache-dir", t.TempDir(), "-no-sync"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	readyc := make(chan *tier.Running, 1)
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, io.Discard, nil, func(r *tier.Running) { readyc <- r }) }()
	var r *tier.Running
	select {
	case r = <-readyc:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("edge did not start")
	}
	var last *http.Response
	for range 2 {
		resp, err := http.Get(r.Address + "/v/seg1.ts")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "segment" {
			t.Fatalf("body %q", b)
		}
		last = resp
		if err := r.Tier.Cache.Shutdown(t.Context()); err != nil { // the fill is committed
			t.Fatal(err)
		}
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("origin saw %d requests, want 1", n)
	}
	if cs := last.Header.Get("Cache-Status"); cs != "" {
		t.Errorf("user-facing edge sent Cache-Status %q", cs)
	}
	if last.Header.Get("Age") == "" {
		t.Error("hit without Age")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
