package oniontest_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/oniontest"
)

var testNet oniontest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	testNet.Close()
	os.Exit(code)
}

// startOnionService starts a tor process configured only with the
// network's TorrcLines plus an onion service forwarding port 80 to
// backend, and returns the service's .onion hostname. The process is
// stopped on test cleanup.
func startOnionService(t *testing.T, n *oniontest.Network, backend string) string {
	t.Helper()
	torPath, err := exec.LookPath("tor")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "hs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	hsDir := filepath.Join(dir, "hs")
	lines := append(n.TorrcLines(),
		"DataDirectory "+strconv.Quote(dir),
		"Log notice file "+filepath.Join(dir, "notice.log"),
		"SocksPort 0",
		"HiddenServiceDir "+strconv.Quote(hsDir),
		"HiddenServicePort 80 "+backend,
	)
	torrc := filepath.Join(dir, "torrc")
	if err := os.WriteFile(torrc, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(torPath, "-f", torrc, "--hush", "--__OwningControllerProcess", strconv.Itoa(os.Getpid()))
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "notice.log"))
			t.Logf("onion service tor log:\n%s", log)
		}
	})
	// tor writes the hostname file right after parsing its config.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(filepath.Join(hsDir, "hostname")); err == nil {
			return strings.TrimSpace(string(b))
		}
		select {
		case <-done:
			t.Fatalf("onion service tor exited: %s", out)
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		case <-tick.C:
		}
	}
}

// TestOnionServiceFetch is the proof that the network carries onion
// services: a tor configured with nothing but TorrcLines publishes a
// service, and a fetch through the network's SOCKS port reaches it.
func TestOnionServiceFetch(t *testing.T) {
	n := testNet.Get(t)
	want := "hello from " + rand.Text()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, want)
	}))
	t.Cleanup(backend.Close)

	t0 := time.Now()
	host := startOnionService(t, n, backend.Listener.Addr().String())
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	attempt := 0
	var lastErr error
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		attempt++
		// A fresh SOCKS username per attempt: a fresh circuit.
		body, err := fetch(ctx, n.SocksAddr(), host, "attempt-"+strconv.Itoa(attempt))
		if err == nil {
			if body != want {
				t.Fatalf("body = %q, want %q", body, want)
			}
			t.Logf("onion service reachable %v after its tor started (%d attempts)", time.Since(t0).Round(time.Millisecond), attempt)
			return
		}
		lastErr = err
		select {
		case <-ctx.Done():
			t.Fatalf("onion service never reachable after %d attempts: %v", attempt, lastErr)
		case <-tick.C:
		}
	}
}

// fetch GETs http://host/ through the SOCKS proxy.
func fetch(ctx context.Context, proxy, host, user string) (string, error) {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return socksDial(ctx, proxy, addr, user)
		},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+"/", nil)
	if err != nil {
		return "", err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %s", resp.Status)
	}
	return string(b), nil
}

// alive reports whether pid is a running (not zombie) process.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	// state is the field after "(comm)".
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

func TestSharedNetworkPIDsAlive(t *testing.T) {
	n := testNet.Get(t)
	pids := n.PIDs()
	if len(pids) != 6 { // 5 authorities + client
		t.Fatalf("PIDs() = %v, want 6 processes", pids)
	}
	for _, pid := range pids {
		if !alive(pid) {
			t.Errorf("tor pid %d not running", pid)
		}
	}
	if _, port, err := net.SplitHostPort(n.SocksAddr()); err != nil || port == "0" || !strings.HasPrefix(n.SocksAddr(), "127.0.0.1:") {
		t.Errorf("SocksAddr() = %q, want 127.0.0.1:PORT", n.SocksAddr())
	}
}

// pidRecorder is a slog.Handler that records the pids of started tor
// processes and calls onStart after each.
type pidRecorder struct {
	mu      sync.Mutex
	pids    []int
	onStart func(n int)
}

func (h *pidRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *pidRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *pidRecorder) WithGroup(string) slog.Handler            { return h }
func (h *pidRecorder) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "oniontest: tor started" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "pid" {
			h.mu.Lock()
			h.pids = append(h.pids, int(a.Value.Int64()))
			n := len(h.pids)
			h.mu.Unlock()
			if h.onStart != nil {
				h.onStart(n)
			}
		}
		return true
	})
	return nil
}

func (h *pidRecorder) started() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]int(nil), h.pids...)
}

// TestStartCancelled cancels Start once some authorities run: Start must
// return ctx's error promptly and leave no process behind.
func TestStartCancelled(t *testing.T) {
	oniontest.Require(t)
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cancelled := make(chan time.Time, 1)
	rec := &pidRecorder{onStart: func(n int) {
		if n == 3 {
			cancelled <- time.Now()
			cancel()
		}
	}}
	dir := filepath.Join(t.TempDir(), "net")
	n, err := oniontest.Start(ctx, oniontest.Config{Dir: dir, KeyCache: oniontest.KeyCache(), Logger: slog.New(rec)})
	if err == nil {
		n.Close()
		t.Fatal("Start succeeded after its context was cancelled")
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Start error = %v, want one wrapping context.Canceled", err)
	}
	if !strings.HasPrefix(err.Error(), "oniontest: ") {
		t.Errorf("error %q lacks the package prefix", err)
	}
	select {
	case at := <-cancelled:
		// Generous bound (SIGTERM grace is 5 s): guards against a hang.
		if d := time.Since(at); d > 30*time.Second {
			t.Errorf("Start returned %v after cancellation", d)
		} else {
			t.Logf("Start returned %v after cancellation: %v", d.Round(time.Millisecond), err)
		}
	default:
		t.Fatal("Start failed before cancellation")
	}
	pids := rec.started()
	if len(pids) < 3 {
		t.Fatalf("only %d tor processes were started before cancel", len(pids))
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("tor pid %d still running after Start failed", pid)
		}
	}
	// A caller-given Dir is kept, for post-mortems.
	if _, err := os.Stat(filepath.Join(dir, "a1", "torrc")); err != nil {
		t.Errorf("given Dir not kept: %v", err)
	}
}

func TestStartAlreadyCancelled(t *testing.T) {
	oniontest.Require(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	rec := &pidRecorder{}
	n, err := oniontest.Start(ctx, oniontest.Config{Logger: slog.New(rec)})
	if err == nil {
		n.Close()
		t.Fatal("Start succeeded with a cancelled context")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Start error = %v, want one wrapping context.Canceled", err)
	}
	if pids := rec.started(); len(pids) != 0 {
		t.Errorf("Start started tor processes %v", pids)
	}
}

// TestStartClose boots a second, 4-authority network: Close stops every
// process, removes the temporary directory and is idempotent.
func TestStartClose(t *testing.T) {
	oniontest.Require(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	n, err := oniontest.Start(ctx, oniontest.Config{Authorities: 4, Logger: slog.New(slog.NewTextHandler(tWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	pids := n.PIDs()
	if len(pids) != 5 {
		t.Errorf("PIDs() = %v, want 4 authorities + client", pids)
	}
	for _, pid := range pids {
		if !alive(pid) {
			t.Errorf("tor pid %d not running", pid)
		}
	}
	var dirAuths int
	lines := n.TorrcLines()
	for _, l := range lines {
		if strings.HasPrefix(l, "DirAuthority ") {
			dirAuths++
		}
	}
	if dirAuths != 4 || !slices.Contains(lines, "TestingTorNetwork 1") {
		t.Errorf("TorrcLines() = %q, want TestingTorNetwork and 4 DirAuthority lines", lines)
	}
	lines[0] = "mutated"
	if n.TorrcLines()[0] == "mutated" {
		t.Error("TorrcLines returns the network's own slice")
	}
	dir := networkDir(t, pids[0])

	if err := n.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("tor pid %d still running after Close", pid)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary network dir %s not removed: %v", dir, err)
	}
	if err := n.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close = %v, want net.ErrClosed", err)
	}
}

// networkDir returns the network directory of a running node, from the
// "-f DIR/NODE/torrc" argument on its command line.
func networkDir(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	args := strings.Split(string(b), "\x00")
	i := slices.Index(args, "-f")
	if i < 0 || i+1 >= len(args) {
		t.Fatalf("no -f in tor command line %q", args)
	}
	return filepath.Dir(filepath.Dir(args[i+1]))
}

// tWriter sends log output to t.Log.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// TestStartTorFails: when a tor exits during Start, the error says which
// and quotes its output.
func TestStartTorFails(t *testing.T) {
	oniontest.Require(t)
	fake := filepath.Join(t.TempDir(), "tor")
	script := "#!/bin/sh\necho 'fake tor: cannot start' >&2\nexit 3\n"
	if err := os.WriteFile(fake, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	// With cached keys the fake tor fails as an authority; without, it
	// fails in key generation (--list-fingerprint). Either way the error
	// must quote it.
	n, err := oniontest.Start(t.Context(), oniontest.Config{TorPath: fake, KeyCache: oniontest.KeyCache()})
	if err == nil {
		n.Close()
		t.Fatal("Start succeeded with a tor that exits")
	}
	if !strings.Contains(err.Error(), "fake tor: cannot start") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("error does not quote the failing tor: %v", err)
	}
}

func TestStartBadConfig(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-tor")
	for _, tc := range []struct {
		name string
		cfg  oniontest.Config
		want string
	}{
		{"tor_missing", oniontest.Config{TorPath: missing, GencertPath: os.Args[0]}, "tor binary not found"},
		{"gencert_missing", oniontest.Config{TorPath: os.Args[0], GencertPath: missing}, "tor-gencert binary not found"},
		{"too_few_authorities", oniontest.Config{Authorities: 3}, "at least 4"},
		{"dir_with_space", oniontest.Config{Dir: filepath.Join(t.TempDir(), "a b")}, "white space"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := oniontest.Start(t.Context(), tc.cfg)
			if err == nil {
				n.Close()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}
