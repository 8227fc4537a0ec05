package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"defaults", nil, ""},
		{"short", []string{"-duration", "5s", "-players", "1", "-no-tor"}, ""},
		{"zero_players", []string{"-players", "0"}, "-players"},
		{"too_short", []string{"-duration", "10ms"}, "-duration"},
		{"bad_segment_duration", []string{"-segment-duration", "1h"}, "-segment-duration"},
		{"bad_log_level", []string{"-log-level", "loud"}, "-log-level"},
		{"extra_args", []string{"now"}, "unexpected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseFlags(tc.args, io.Discard)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if tc.name == "defaults" && (o.duration != 30*time.Second || o.players != 6 || o.noTor) {
					t.Fatalf("defaults %+v", o)
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
	for _, s := range []string{"go run ./examples/demo", "-no-tor", "(default 30s)", "(default 6)", "-failover"} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("-h lacks %q", s)
		}
	}
}

// TestDemoWithoutTor runs the demo over loopback TCP, as on a machine
// without tor: the first line says so, the players play without errors
// or stalls, both edges serve (round-robin front), the midtier serves the
// second edge from its cache, and everything stops.
func TestDemoWithoutTor(t *testing.T) {
	o, err := parseFlags([]string{"-no-tor", "-duration", "8s", "-players", "2", "-segment-duration", "1s",
		"-report", filepath.Join(t.TempDir(), "r.html"), "-log-level", "error"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(t.Context(), o, &out, io.Discard); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	text := out.String()
	t.Log(text)
	first, _, _ := strings.Cut(text, "\n")
	if !strings.Contains(first, "NO TOR") {
		t.Errorf("first line does not say the demo runs without Tor: %q", first)
	}
	for _, want := range []string{
		"players 2 (failed 0)", "errors 0", "stalls         0",
		"-- which edge served the segments",
		"-- router: 2 redirects (2 to group-1)",
		"HTML report written", "demo finished",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// Each player has its own connection, and the front alternates
	// connections between the edges: both served segments.
	_, section, _ := strings.Cut(text, "-- which edge served the segments (from Cache-Status) --\n")
	section, _, _ = strings.Cut(section, "--")
	for _, e := range []string{"edge-a", "edge-b"} {
		if !strings.Contains(section, e+" ") {
			t.Errorf("%s served no segment:\n%s", e, section)
		}
	}
	// The midtier served some request from its cache (the edges share it).
	if !strings.Contains(text, "midtier  hits ") || strings.Contains(text, "midtier  hits 0,") {
		t.Errorf("midtier never hit")
	}
}

func TestEdgeOf(t *testing.T) {
	for in, want := range map[string]string{
		"":                                   "unknown",
		"edge-a; hit":                        "edge-a",
		"midtier; hit, edge-b; fwd=uri-miss": "edge-b",
	} {
		if got := edgeOf(in); got != want {
			t.Errorf("edgeOf(%q) = %q, want %q", in, got, want)
		}
	}
}
