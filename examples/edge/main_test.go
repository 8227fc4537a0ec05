package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/onion"
	"github.com/onioncdn/onioncdn/oniontest"
	"github.com/onioncdn/onioncdn/route"
)

var testNet oniontest.Shared

// TestMain also lets the test binary run as the edge program itself
// (EDGE_MAIN=1), so that a test can run it as a process of its own.
func TestMain(m *testing.M) {
	if os.Getenv("EDGE_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	code := m.Run()
	testNet.Close()
	os.Exit(code)
}

// lines collects a program's output and reports lines matching a pattern.
type lines struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// wait returns the first submatch of re in the output, waiting up to d.
func (l *lines) wait(t *testing.T, re *regexp.Regexp, d time.Duration) string {
	t.Helper()
	return l.waitAll(t, re, d)[1]
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// waitAll returns the submatches of re's first match, waiting up to d.
func (l *lines) waitAll(t *testing.T, re *regexp.Regexp, d time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		l.mu.Lock()
		m := re.FindStringSubmatch(l.buf.String())
		out := l.buf.String()
		l.mu.Unlock()
		if m != nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %v in the output within %v:\n%s", re, d, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var servingRE = regexp.MustCompile(`serving (http://\S+)`)

func TestFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-key", "k"}, // no upstream
		{"-upstream", "http://x"},
		{"-upstream", "http://x", "-key", "k", "-listen", "127.0.0.1:0"},
		{"-upstream", "http://x", "-listen", "127.0.0.1:0", "more"},
		{"-upstream", "http://x", "-listen", "127.0.0.1:0", "-log-level", "loud"},
		{"-upstream", "http://x", "-listen", "127.0.0.1:0", "-metrics", "0.0.0.0:9100"},
	} {
		if err := run(t.Context(), args, io.Discard); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	if err := run(t.Context(), []string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}

// TestTCPMode runs the edge in plain TCP mode in front of an origin: a miss
// then a hit (one origin request), no Cache-Status towards users by
// default, no Server header from the origin, Age on the hit, and a
// graceful stop.
func TestTCPMode(t *testing.T) {
	var hits atomic.Int32
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Header().Set("Server", "Apache/2.4.41 (Ubuntu)")
		io.WriteString(w, "segment")
	}))
	defer origin.Close()
	out := &lines{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-listen", "127.0.0.1:0", "-upstream", origin.URL, "-cache-dir", t.TempDir(), "-no-sync", "-log-level", "warn"}, out)
	}()
	addr := out.wait(t, servingRE, 30*time.Second)
	var last *http.Response
	for range 2 {
		resp, err := http.Get(addr + "/v/seg1.ts")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "segment" {
			t.Fatalf("body %q", b)
		}
		last = resp
		time.Sleep(100 * time.Millisecond) // the fill is committed: the next request is a hit
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("origin saw %d requests, want 1", n)
	}
	for _, k := range []string{"Cache-Status", "Server"} {
		if v := last.Header.Get(k); v != "" {
			t.Errorf("user-facing edge sent %s: %q", k, v)
		}
	}
	if last.Header.Get("Age") == "" {
		t.Error("hit without Age")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestSIGINTToProcessGroup (issue 12): Ctrl-C in a terminal signals the
// whole foreground process group. The edge must drain before its tor
// stops: a large download over Tor in progress completes, the agent's
// final report reaches the router, and then tor exits, leaving no
// process.
func TestSIGINTToProcessGroup(t *testing.T) {
	n := testNet.Get(t)
	const size = 20 << 20
	chunk := strings.Repeat("x", 64<<10)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", strconv.Itoa(size))
		for i := 0; i < size/len(chunk); i++ {
			io.WriteString(w, chunk)
		}
	}))
	defer origin.Close()
	agentPub, _, _ := ed25519.GenerateKey(nil)
	dir := t.TempDir()
	// The edge creates its agent key; the router learns it from the
	// edge's output, as an operator would.
	var finalReport atomic.Bool
	var rt atomic.Pointer[route.Router]
	rt.Store(&route.Router{AllowNonOnion: true, Groups: []route.Group{{ID: "g", Onion: "127.0.0.1:1", Edges: []route.Edge{{ID: "e", PublicKey: agentPub}}}}})
	router := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rr := rt.Load()
		rr.ServeHTTP(w, r)
		if st, _ := rr.Stats(); st.Reports.Accepted > 0 && !st.Groups[0].Healthy {
			finalReport.Store(true)
		}
	}))
	defer router.Close()

	args := []string{"-key", filepath.Join(dir, "group.key"), "-upstream", origin.URL, "-tor-data", filepath.Join(dir, "tor"),
		"-router", router.URL + route.DefaultReportPath, "-group", "g", "-edge-id", "e", "-agent-key", filepath.Join(dir, "agent.pem"),
		"-watchdog", "0", "-log-level", "info",
		"-shutdown-timeout", "3m"} // the rest of 20 MB over a loaded private network may take more than the default 30 s
	for _, l := range n.TorrcLines() {
		args = append(args, "-torrc-line", l)
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "EDGE_MAIN=1")
	out := &lines{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // as a shell starts a foreground job
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}()
	pub := out.wait(t, regexp.MustCompile(`agent public key \(for the router's config\): (\S+)`), 2*time.Minute)
	pk, err := route.ParsePublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	rt.Store(&route.Router{AllowNonOnion: true, Groups: []route.Group{{ID: "g", Onion: "127.0.0.1:1", Edges: []route.Edge{{ID: "e", PublicKey: pk}}}}})
	m := out.waitAll(t, regexp.MustCompile(`serving (http://\S+\.onion) \(tor pid (\d+)\)`), 2*time.Minute)
	addr := m[1]
	torPID, _ := strconv.Atoi(m[2])
	if pgid, err := syscall.Getpgid(torPID); err != nil || pgid == cmd.Process.Pid {
		t.Fatalf("tor (pid %d) in process group %d, err %v: want a group of its own", torPID, pgid, err)
	}

	client := (&onion.Dialer{SocksAddr: n.SocksAddr(), Isolation: "sigint-test"}).HTTPClient()
	client.Timeout = 3 * time.Minute
	var resp *http.Response
	for attempt := 0; ; attempt++ { // the descriptor may take a moment to reach the HSDirs
		resp, err = client.Get(addr + "/big")
		if err == nil || attempt == 5 {
			break
		}
		time.Sleep(2 * time.Second)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	got, err := io.CopyN(io.Discard, br, 1<<20)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("first MiB: status %d, %d bytes, %v\n%s", resp.StatusCode, got, err, out)
	}
	// Wait for a healthy report, so that the final one is distinguishable.
	deadline := time.Now().Add(time.Minute)
	for st, _ := rt.Load().Stats(); st.Reports.Accepted == 0; st, _ = rt.Load().Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("no report accepted:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Ctrl-C: SIGINT to the edge's whole process group.
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	rest, err := io.Copy(io.Discard, br)
	if err != nil || got+rest != size {
		t.Fatalf("download cut by the shutdown: %d of %d bytes, err %v\n%s", got+rest, size, err, out)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("edge exited with %v\n%s", err, out)
		}
	case <-time.After(time.Minute):
		t.Fatalf("edge did not exit after SIGINT\n%s", out)
	}
	if !finalReport.Load() {
		t.Errorf("the agent's final (unhealthy) report did not reach the router\n%s", out)
	}
	if err := syscall.Kill(torPID, 0); err == nil {
		// Reaped children are gone; a zombie would still answer, but tor
		// is the edge's child and the edge has exited.
		t.Errorf("tor (pid %d) still running after the edge exited", torPID)
	}
	if err := syscall.Kill(-cmd.Process.Pid, 0); err == nil {
		t.Errorf("processes left in the edge's process group")
	}
}
