package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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

func (l *lines) wait(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		l.mu.Lock()
		m := re.FindStringSubmatch(l.buf.String())
		l.mu.Unlock()
		if m != nil {
			return m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %v in the output", re)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-key", "k"}, // no upstream
		{"-upstream", "http://x"},
		{"-upstream", "http://x", "-listen", "127.0.0.1:0", "more"},
		{"-upstream", "http://x", "-listen", "127.0.0.1:0", "-verify-key", "nope"},
		{"-upstream", "http://x", "-listen", "127.0.0.1:0", "-metrics", "0.0.0.0:9100"},
		{"-upstream", "http://x", "-listen", "127.0.0.1:0", "-router", "http://r"}, // an edge flag
	} {
		if err := run(t.Context(), args, io.Discard); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	if err := run(t.Context(), []string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}

// TestTCPMode: a midtier on TCP in front of an origin: miss then hit with
// Cache-Status (it talks to edges), one origin request, graceful stop.
func TestTCPMode(t *testing.T) {
	var hits atomic.Int32
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Cache-Control", "public, max-age=60")
		io.WriteString(w, "segment")
	}))
	defer origin.Close()
	out := &lines{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-listen", "127.0.0.1:0", "-upstream", origin.URL, "-cache-dir", t.TempDir(), "-log-level", "warn"}, out)
	}()
	addr := out.wait(t, regexp.MustCompile(`serving (http://\S+)`))
	var statuses []string
	for range 2 {
		resp, err := http.Get(addr + "/a.ts")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "segment" {
			t.Fatalf("body %q", b)
		}
		statuses = append(statuses, resp.Header.Get("Cache-Status"))
		time.Sleep(100 * time.Millisecond)
	}
	if hits.Load() != 1 || !strings.Contains(statuses[0], "midtier; fwd=uri-miss") || !strings.HasPrefix(statuses[1], "midtier; hit") {
		t.Errorf("origin requests %d, Cache-Status %q", hits.Load(), statuses)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
