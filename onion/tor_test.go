package onion

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
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
	// Every Server closed by its test's cleanup: no tor of ours may remain
	// (the shared network's own tors are still running here).
	if leaked := leakedTors(); len(leaked) > 0 {
		fmt.Fprintf(os.Stderr, "onion: tor processes leaked by the tests: %v\n", leaked)
		code = 1
	}
	testNet.Close()
	os.Exit(code)
}

// netPIDs is filled by newTestServer so leakedTors can tell the network's
// tors from ours.
var (
	netPIDsMu sync.Mutex
	netPIDs   []int
)

// leakedTors lists child processes of this test binary named "tor" that
// are not part of the shared network.
func leakedTors() []int {
	netPIDsMu.Lock()
	known := slices.Clone(netPIDs)
	netPIDsMu.Unlock()
	ents, _ := os.ReadDir("/proc")
	var out []int
	me := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || slices.Contains(known, pid) {
			continue
		}
		st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(st)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || !strings.Contains(s[:i], "(tor") {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 2 && f[0] != "Z" && f[1] == strconv.Itoa(me) {
			out = append(out, pid)
		}
	}
	return out
}

// alive reports whether pid is a running (not zombie) process.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	st, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	s := string(st)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && !strings.HasPrefix(strings.TrimSpace(s[i+1:]), "Z")
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// network returns the shared private network (skips without tor).
func network(t *testing.T) *oniontest.Network {
	n := testNet.Get(t)
	netPIDsMu.Lock()
	netPIDs = n.PIDs()
	netPIDsMu.Unlock()
	return n
}

// newTestServer returns a Server with its own tor joined to the network;
// it is closed on cleanup, and its tor must be gone afterwards.
func newTestServer(t *testing.T, n *oniontest.Network) *Server {
	t.Helper()
	s := &Server{ExtraTorrc: n.TorrcLines(), DataDir: t.TempDir(), Logger: testLogger(t)}
	t.Cleanup(func() {
		pid := s.TorPID()
		s.Close()
		if alive(pid) {
			t.Errorf("tor pid %d still running after Server.Close", pid)
		}
	})
	return s
}

// serve runs an http.Server on l answering body and recording circuit ids.
func serve(t *testing.T, l net.Listener, body string) {
	t.Helper()
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if id, ok := CircuitID(r.Context()); ok {
				w.Header().Set("X-Test-Circuit", strconv.FormatUint(uint64(id), 10))
			}
			io.WriteString(w, body)
		}),
		ConnContext: ConnContext,
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

// fetch GETs http://addr/ through the network's client on a circuit of its
// own (isolation tag tag), once, with a per-attempt timeout.
func fetch(ctx context.Context, n *oniontest.Network, addr, tag string) (body string, circuit string, err error) {
	d := &Dialer{SocksAddr: n.SocksAddr(), Timeout: 30 * time.Second}
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			return d.DialIsolated(ctx, network, a, tag)
		},
		DisableKeepAlives: true,
	}}
	ctx, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/", nil)
	resp, err := hc.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), resp.Header.Get("X-Test-Circuit"), err
}

// fetchRetry retries fetch (the first fetch after a publish is legitimately
// flaky on Tor) until it succeeds or the bound passes.
func fetchRetry(t *testing.T, n *oniontest.Network, addr string, bound time.Duration) (string, string) {
	t.Helper()
	deadline := time.Now().Add(bound)
	var err error
	for attempt := 1; time.Now().Before(deadline); attempt++ {
		var body, circ string
		body, circ, err = fetch(t.Context(), n, addr, NewIsolationTag())
		if err == nil {
			return body, circ
		}
		t.Logf("fetch attempt %d: %v", attempt, err)
		select {
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		case <-time.After(time.Second):
		}
	}
	t.Fatalf("fetch %s: no success within %v: %v", addr, bound, err)
	return "", ""
}

// firstFetch starts a fetch with a fresh circuit every second (without
// waiting for earlier ones, which may hang on dead introduction points)
// until one satisfies done, and returns the time from start to that
// fetch's completion. It fails t after bound.
func firstFetch(t *testing.T, n *oniontest.Network, addr string, bound time.Duration, done func(body string, err error) bool) time.Duration {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), bound)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	hit := make(chan time.Duration, 1)
	var lastMu sync.Mutex
	var last string
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, _, err := fetch(ctx, n, addr, NewIsolationTag())
			if ctx.Err() != nil {
				return
			}
			lastMu.Lock()
			last = fmt.Sprintf("%q %v", body, err)
			lastMu.Unlock()
			if done(body, err) {
				select {
				case hit <- time.Since(start):
				default:
				}
			}
		}()
		select {
		case d := <-hit:
			return d
		case <-ctx.Done():
			lastMu.Lock()
			defer lastMu.Unlock()
			t.Fatalf("fetch %s: condition not met within %v (last: %s)", addr, bound, last)
		case <-tick.C:
		}
	}
}

// Test 1: publish an onion backed by an http.Server and fetch it through
// the network's client.
func TestPublishAndFetch(t *testing.T) {
	n := network(t)
	s := newTestServer(t, n)
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	// An ephemeral service with every option ADD_ONION carries.
	l, err := s.Listen(t.Context(), ListenConfig{Key: key, MaxStreams: 20, MaxStreamsCloseCircuit: true, PoW: true, PoWQueueRate: 50, PoWQueueBurst: 100})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cold start to published: %v", time.Since(start))
	if got := l.Onion(); got != key.Address() {
		t.Fatalf("Onion() = %s, want %s", got, key.Address())
	}
	if got, want := l.Addr().String(), key.Address()+":80"; got != want {
		t.Fatalf("Addr() = %s, want %s", got, want)
	}
	if l.Addr().Network() != "onion" {
		t.Fatalf("Addr().Network() = %s", l.Addr().Network())
	}
	serve(t, l, "hello from onion")
	start = time.Now()
	body, _ := fetchRetry(t, n, l.Onion(), 2*time.Minute)
	t.Logf("first fetch after publish: %v", time.Since(start))
	if body != "hello from onion" {
		t.Fatalf("body = %q", body)
	}
	// The Server's own SOCKS port works too.
	if s.SocksAddr() == "" {
		t.Fatal("SocksAddr empty")
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: s.Dialer().DialContext}}
	var resp *http.Response
	for range 5 {
		ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+l.Onion()+"/", nil)
		resp, err = hc.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			cancel()
			if string(b) != "hello from onion" {
				t.Fatalf("via Server.Dialer: body %q", b)
			}
			break
		}
		cancel()
		t.Logf("fetch via Server.Dialer: %v", err)
	}
	if err != nil {
		t.Fatalf("fetch via Server.Dialer: %v", err)
	}
	// Publishing the same key twice on one Server is refused.
	if _, err := s.Listen(t.Context(), ListenConfig{Key: key}); err == nil || !strings.Contains(err.Error(), "already published") {
		t.Fatalf("second Listen with same key: %v", err)
	}
	// Republish on a single publisher: the service answers afterwards.
	start = time.Now()
	if err := l.Republish(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Logf("republish: %v", time.Since(start))
	if body, _ := fetchRetry(t, n, l.Onion(), 2*time.Minute); body != "hello from onion" {
		t.Fatalf("after republish: body %q", body)
	}
}

// onionsCurrent returns tor's GETINFO onions/current for the Server's
// control connection (the ephemeral services it owns).
func onionsCurrent(t *testing.T, s *Server) string {
	t.Helper()
	resp, err := s.request("GETINFO onions/current")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(resp.Data, "\n")
}

// hsOptions returns tor's GETCONF HiddenServiceOptions through the control
// connection c.
func hsOptions(t *testing.T, s *Server) string {
	t.Helper()
	kvs, err := s.getConf("HiddenServiceOptions")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, kv := range kvs {
		b.WriteString(kv.Key + "=" + kv.Val + "\n")
	}
	return b.String()
}

// Test 3: Close removes the service, as tor reports it: an ephemeral
// service leaves onions/current; a configured one leaves
// HiddenServiceOptions (seen from another controller of the same tor, with
// that tor's own configured service preserved); the address stops
// answering; and Server.Close on an attached tor leaves that tor running.
func TestCloseRemovesService(t *testing.T) {
	n := network(t)
	out, err := exec.Command("tor", "--quiet", "--hash-password", "test-password").Output()
	if err != nil {
		t.Fatalf("tor --hash-password: %v", err)
	}
	hashed := strings.TrimSpace(string(out))
	owner := newTestServer(t, n)
	owner.ExtraTorrc = append(owner.ExtraTorrc, "HashedControlPassword "+hashed)
	// The owner's tor has a configured service of its own, which another
	// Server's SETCONF must not wipe out.
	ownL, err := owner.Listen(t.Context(), ListenConfig{ExportCircuitID: true})
	if err != nil {
		t.Fatal(err)
	}
	serve(t, ownL, "owner")

	// An ephemeral service on the owner's tor: Listener.Close removes it.
	eph, err := owner.Listen(t.Context(), ListenConfig{})
	if err != nil {
		t.Fatal(err)
	}
	serve(t, eph, "ephemeral")
	if cur := onionsCurrent(t, owner); !strings.Contains(cur, eph.key.ServiceID()) {
		t.Fatalf("onions/current before Close = %q, want %s", cur, eph.key.ServiceID())
	}
	if body, _ := fetchRetry(t, n, eph.Onion(), 2*time.Minute); body != "ephemeral" {
		t.Fatalf("body %q", body)
	}
	if err := eph.Close(); err != nil {
		t.Fatal(err)
	}
	if cur := onionsCurrent(t, owner); strings.Contains(cur, eph.key.ServiceID()) {
		t.Fatalf("onions/current after Close = %q, still lists the service", cur)
	}
	if err := eph.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close: %v, want net.ErrClosed", err)
	}
	if _, err := eph.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
	}
	// The address stops answering: tor reports an onion service error.
	d := firstFetch(t, n, eph.Onion(), 2*time.Minute, func(_ string, err error) bool {
		var se *SOCKSError
		return errors.As(err, &se)
	})
	t.Logf("closed service: tor reports an error after %v", d)

	ctrlAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(owner.tor.ControlPort))
	// Wrong credentials: a clear error, nothing published.
	for name, bad := range map[string]*Server{
		"wrong_password": {ControlAddr: ctrlAddr, ControlPassword: "not-the-password"},
		"missing_cookie": {ControlAddr: ctrlAddr, ControlCookie: filepath.Join(t.TempDir(), "nope")},
		"nothing_there":  {ControlAddr: "127.0.0.1:1"},
	} {
		_, err := bad.Listen(t.Context(), ListenConfig{})
		if err == nil || !strings.Contains(err.Error(), "control port") {
			t.Errorf("%s: Listen = %v, want a control port error", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "not-the-password") {
			t.Errorf("%s: error reveals the password: %v", name, err)
		}
		bad.Close()
	}

	// A second Server attached to the owner's tor through its control
	// port, with the cookie file; a third with the password.
	att := &Server{
		ControlAddr:   ctrlAddr,
		ControlCookie: filepath.Join(owner.dataDir, "tor", "control_auth_cookie"),
		DataDir:       t.TempDir(),
		Logger:        testLogger(t),
	}
	pwAtt := &Server{ControlAddr: ctrlAddr, ControlPassword: "test-password", Logger: testLogger(t)}
	t.Cleanup(func() { pwAtt.Close() })
	pwL, err := pwAtt.Listen(t.Context(), ListenConfig{})
	if err != nil {
		t.Fatalf("attach with password: %v", err)
	}
	if pwAtt.SocksAddr() != owner.SocksAddr() {
		t.Errorf("attached SocksAddr %q, owner's %q", pwAtt.SocksAddr(), owner.SocksAddr())
	}
	if cur := onionsCurrent(t, pwAtt); !strings.Contains(cur, pwL.key.ServiceID()) {
		t.Fatalf("password-attached Server's onions/current = %q, want its service", cur)
	}
	if err := pwAtt.Close(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { att.Close() })
	attL, err := att.Listen(t.Context(), ListenConfig{ExportCircuitID: true, NumIntroPoints: 4})
	if err != nil {
		t.Fatal(err)
	}
	serve(t, attL, "attached")
	if att.TorPID() != 0 {
		t.Fatal("attached Server reports a tor process of its own")
	}
	opts := hsOptions(t, owner)
	if !strings.Contains(opts, attL.hsDir) || !strings.Contains(opts, ownL.hsDir) {
		t.Fatalf("HiddenServiceOptions with both services:\n%s", opts)
	}
	if body, _ := fetchRetry(t, n, attL.Onion(), 2*time.Minute); body != "attached" {
		t.Fatalf("body %q", body)
	}
	if err := att.Close(); err != nil {
		t.Fatal(err)
	}
	opts = hsOptions(t, owner)
	if strings.Contains(opts, attL.hsDir) {
		t.Fatalf("HiddenServiceOptions after attached Server.Close still has its service:\n%s", opts)
	}
	if !strings.Contains(opts, ownL.hsDir) {
		t.Fatalf("attached Server.Close removed the owner's service:\n%s", opts)
	}
	if _, err := os.Stat(attL.hsDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("service dir with the key left behind: %v", err)
	}
	// The owner's tor keeps running and serving.
	if !alive(owner.TorPID()) {
		t.Fatal("attached Server.Close stopped the tor it attached to")
	}
	if body, _ := fetchRetry(t, n, ownL.Onion(), 2*time.Minute); body != "owner" {
		t.Fatalf("owner's service after attached Close: body %q", body)
	}
	if err := att.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Server.Close: %v, want net.ErrClosed", err)
	}
	// Server.Close stops its own tor (checked in newTestServer's cleanup).
	pid := owner.TorPID()
	if err := owner.Close(); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Fatalf("tor %d alive after Server.Close", pid)
	}
	if _, err := owner.Listen(t.Context(), ListenConfig{}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Listen after Close: %v, want net.ErrClosed", err)
	}
}

// Test 4 (tor part): cancelled publication, cancelled start, missing tor.
func TestBadInputTor(t *testing.T) {
	t.Run("tor_missing", func(t *testing.T) {
		s := &Server{TorPath: filepath.Join(t.TempDir(), "no-such-tor")}
		_, err := s.Listen(t.Context(), ListenConfig{})
		if err == nil || !strings.Contains(err.Error(), "not found") {
			t.Fatalf("err = %v, want tor binary not found", err)
		}
		if s.TorPID() != 0 {
			t.Fatal("a tor process was started")
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close after failed start: %v", err)
		}
		if s.SocksAddr() != "" {
			t.Fatal("SocksAddr of a failed Server not empty")
		}
	})
	n := network(t)
	t.Run("start_cancelled", func(t *testing.T) {
		s := &Server{ExtraTorrc: n.TorrcLines(), Logger: testLogger(t)}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		err := s.Start(ctx)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Start with cancelled ctx: %v, want context.Canceled", err)
		}
		if pid := s.TorPID(); alive(pid) {
			t.Fatalf("tor %d still running after failed Start", pid)
		}
		if err := s.Start(t.Context()); !errors.Is(err, context.Canceled) {
			t.Fatalf("second Start: %v, want the cached error", err)
		}
		s.Close()
	})
	t.Run("bad_torrc", func(t *testing.T) {
		s := &Server{ExtraTorrc: []string{"NoSuchTorOption 1"}, Logger: testLogger(t)}
		err := s.Start(t.Context())
		if err == nil || !strings.Contains(err.Error(), "NoSuchTorOption") {
			t.Fatalf("Start with bad torrc: %v, want tor's complaint", err)
		}
		if pid := s.TorPID(); alive(pid) {
			t.Fatalf("tor %d still running after failed Start", pid)
		}
		s.Close()
	})
	s := newTestServer(t, n)
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []struct {
		name string
		cfg  ListenConfig
	}{
		{"ephemeral", ListenConfig{}},
		{"configured", ListenConfig{ExportCircuitID: true}},
	} {
		t.Run("publish_cancelled_"+cfg.name, func(t *testing.T) {
			key, _ := GenerateKey()
			cfg.cfg.Key = key
			// Cancel as soon as tor has the service: the descriptor
			// upload takes longer than that.
			ctx, cancel := context.WithCancel(t.Context())
			go func() {
				for ctx.Err() == nil {
					if strings.Contains(onionsCurrentQuiet(s), key.ServiceID()) || strings.Contains(hsOptionsQuiet(s), filepath.Join(s.dataDir, "hs")) {
						cancel()
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
			}()
			done := make(chan error, 1)
			go func() {
				l, err := s.Listen(ctx, cfg.cfg)
				if l != nil {
					l.Close()
				}
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(2 * time.Minute):
				t.Fatal("Listen did not return after cancel")
			}
			cancel()
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Listen: %v, want context.Canceled", err)
			}
			if cur := onionsCurrent(t, s); strings.Contains(cur, key.ServiceID()) {
				t.Fatalf("cancelled service still in onions/current")
			}
			if opts := hsOptions(t, s); strings.Contains(opts, filepath.Join(s.dataDir, "hs")) {
				t.Fatalf("cancelled service still configured:\n%s", opts)
			}
			if ents, _ := os.ReadDir(filepath.Join(s.dataDir, "hs")); len(ents) != 0 {
				t.Fatalf("service dirs left behind: %v", ents)
			}
			// The key can be published afterwards.
			l, err := s.Listen(t.Context(), cfg.cfg)
			if err != nil {
				t.Fatal(err)
			}
			l.Close()
		})
	}
	t.Run("bad_config", func(t *testing.T) {
		for _, cfg := range []ListenConfig{
			{Ports: []int{0}},
			{Ports: []int{70000}},
			{NumIntroPoints: 21},
			{NumIntroPoints: 2},
			{MaxStreams: -1},
			{Watchdog: &Watchdog{Interval: -1}},
		} {
			if _, err := s.Listen(t.Context(), cfg); err == nil || !strings.HasPrefix(err.Error(), "onion: listen:") {
				t.Errorf("Listen(%+v) = %v, want a config error", cfg, err)
			}
		}
	})
}

func onionsCurrentQuiet(s *Server) string {
	resp, err := s.request("GETINFO onions/current")
	if err != nil {
		return ""
	}
	return strings.Join(resp.Data, "\n")
}

func hsOptionsQuiet(s *Server) string {
	resp, err := s.request("GETCONF HiddenServiceOptions")
	if err != nil {
		return ""
	}
	return strings.Join(resp.DataWithReply(), "\n")
}

// Test 5: with circuit-id export, handlers see the circuit id; different
// client circuits give different ids.
func TestCircuitIDExport(t *testing.T) {
	n := network(t)
	s := newTestServer(t, n)
	l, err := s.Listen(t.Context(), ListenConfig{
		ExportCircuitID: true, Ports: []int{80, 8080},
		// Every other option of a configured service, too.
		NumIntroPoints: 4, MaxStreams: 10, MaxStreamsCloseCircuit: true, IntroDoSDefense: true, PoW: true, PoWQueueRate: 50, PoWQueueBurst: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	serve(t, l, "circuits")
	opts := hsOptions(t, s)
	for _, want := range []string{
		"HiddenServiceDir=" + l.hsDir, "HiddenServiceExportCircuitID=haproxy", "HiddenServiceNumIntroductionPoints=4",
		"HiddenServiceMaxStreams=10", "HiddenServiceMaxStreamsCloseCircuit=1", "HiddenServiceEnableIntroDoSDefense=1",
		"HiddenServicePoWDefensesEnabled=1", "HiddenServicePoWQueueRate=50", "HiddenServicePoWQueueBurst=100",
	} {
		if !strings.Contains(opts, want+"\n") {
			t.Errorf("tor's HiddenServiceOptions lack %s:\n%s", want, opts)
		}
	}
	_, c1 := fetchRetry(t, n, l.Onion(), 2*time.Minute)
	_, c2 := fetchRetry(t, n, l.Onion(), 2*time.Minute)
	_, c3 := fetchRetry(t, n, l.Onion()+":8080", 2*time.Minute)
	t.Logf("circuit ids seen: %s %s %s", c1, c2, c3)
	if c1 == "" || c2 == "" || c3 == "" {
		t.Fatalf("handler did not see circuit ids: %q %q %q", c1, c2, c3)
	}
	if c1 == c2 || c2 == c3 || c1 == c3 {
		t.Fatalf("different client circuits share a circuit id: %s %s %s", c1, c2, c3)
	}
}

// Test 2: two publishers of one key; kill -9 the one answering. Without a
// watchdog the address stays dead until a survivor uploads; Republish and
// the watchdog bring it back.
func TestSharedKeyFailover(t *testing.T) {
	n := network(t)
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	addr := key.Address()
	id := key.ServiceID()
	s1, s2 := newTestServer(t, n), newTestServer(t, n)
	up2 := trackUploads(t, s2)
	l1, err := s1.Listen(t.Context(), ListenConfig{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	serve(t, l1, "one")
	l2, err := s2.Listen(t.Context(), ListenConfig{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	serve(t, l2, "two")
	// Once all of s2's uploads are done, every HSDir holds s2's descriptor
	// (the later revision), so s2 is the one clients reach. The test's
	// client has not fetched this address before: no stale cache.
	if failed := up2.settled(t, id); failed > 0 {
		t.Logf("%d of s2's descriptor uploads failed; some HSDirs may still serve s1's", failed)
	}
	body, _ := fetchRetry(t, n, addr, 2*time.Minute)
	t.Logf("answering before the kill: %q", body)
	if body != "two" {
		t.Fatalf("before the kill the last publisher should answer: got %q, want \"two\"", body)
	}
	dead, surv, survBody := l2, l1, "one"
	// Watch the survivor's uploads: tor re-uploads by itself at the next
	// time period (4 min on this network), which ends the outage early.
	uploads := surv.s.addWaiter(surv.id, "UPLOADED")
	defer surv.s.removeWaiter(uploads)
	killTor(t, dead.s)

	// Without a watchdog: probes with fresh circuits, one started every
	// second for 30 s (each bounded to 15 s), all fail.
	start := time.Now()
	var (
		wg                  sync.WaitGroup
		resMu               sync.Mutex
		probes, okBeforeUpl int
		firstErr            error
		selfUpload          time.Duration
	)
	for time.Since(start) < 30*time.Second {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
			defer cancel()
			_, _, err := fetch(ctx, n, addr, NewIsolationTag())
			resMu.Lock()
			defer resMu.Unlock()
			probes++
			select {
			case <-uploads.ch:
				selfUpload = time.Since(start)
			default:
			}
			if err == nil && selfUpload == 0 {
				okBeforeUpl++
			}
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}()
		time.Sleep(time.Second)
	}
	wg.Wait()
	if selfUpload > 0 {
		t.Logf("survivor re-uploaded on its own %v after the kill (time period change), which ends an outage", selfUpload)
	}
	if okBeforeUpl > 0 {
		t.Fatalf("%d of %d probes reached the address after the kill without any re-upload", okBeforeUpl, probes)
	}
	t.Logf("without watchdog: %d probes over %v after kill -9, none answered (e.g. %v)", probes, time.Since(start).Round(time.Second), firstErr)

	// Republish on the survivor restores the address.
	start = time.Now()
	if err := surv.Republish(t.Context()); err != nil {
		t.Fatal(err)
	}
	repub := time.Since(start)
	answered := firstFetch(t, n, addr, 2*time.Minute, func(body string, err error) bool { return err == nil && body == survBody })
	t.Logf("manual failover: Republish took %v, address answering %v after it returned", repub.Round(time.Millisecond), answered.Round(time.Millisecond))

	// With the watchdog: a third publisher with a watchdog; the survivor
	// publishes last (answers) and is killed; the watchdog brings the
	// address back on the third.
	s3 := newTestServer(t, n)
	wd := &Watchdog{Interval: 3 * time.Second, Failures: 2, Jitter: time.Second, Timeout: 10 * time.Second}
	l3, err := s3.Listen(t.Context(), ListenConfig{Key: key, Watchdog: wd})
	if err != nil {
		t.Fatal(err)
	}
	serve(t, l3, "three")
	up1 := trackUploads(t, s1)
	if err := surv.Republish(t.Context()); err != nil {
		t.Fatal(err)
	}
	if failed := up1.settled(t, id); failed > 0 {
		t.Logf("%d of the survivor's descriptor uploads failed", failed)
	}
	// The survivor's descriptor is now the latest everywhere.
	firstFetch(t, n, addr, 2*time.Minute, func(body string, err error) bool { return err == nil && body == survBody })
	before := l3.WatchdogStats()
	killTor(t, surv.s)
	failover := firstFetch(t, n, addr, 2*time.Minute, func(body string, err error) bool { return err == nil && body == "three" })
	st := l3.WatchdogStats()
	t.Logf("watchdog failover: address answered again %v after kill -9 (interval %v × %d failures, jitter ≤ %v); stats %+v", failover.Round(time.Millisecond), wd.Interval, wd.Failures, wd.Jitter, st)
	if st.Republishes <= before.Republishes || st.ProbeFailures <= before.ProbeFailures {
		t.Fatalf("watchdog stats %+v (before %+v): no failed probe or republish recorded", st, before)
	}
	// Close stops the watchdog (Close waits for its goroutine).
	if err := l3.Close(); err != nil {
		t.Fatal(err)
	}
	after := l3.WatchdogStats()
	time.Sleep(2 * wd.Interval)
	if l3.WatchdogStats() != after {
		t.Fatal("watchdog still probing after Close")
	}
}

// uploadTracker follows HS_DESC events of a Server's tor on a control
// connection of its own, to tell when every descriptor upload tor started
// for a service has finished.
type uploadTracker struct {
	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every event
	pending  map[string]int
	uploaded map[string]int
	failed   map[string]int
}

func trackUploads(t *testing.T, s *Server) *uploadTracker {
	t.Helper()
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	c, nc, err := s.dialControl(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SendRequest("SETEVENTS HS_DESC"); err != nil {
		t.Fatal(err)
	}
	u := &uploadTracker{changed: make(chan struct{}), pending: map[string]int{}, uploaded: map[string]int{}, failed: map[string]int{}}
	done := make(chan struct{})
	t.Cleanup(func() { nc.Close(); <-done })
	go func() {
		defer close(done)
		for {
			resp, err := c.ReadResponse()
			if err != nil {
				return
			}
			f := strings.Fields(resp.Reply)
			if len(f) < 3 || f[0] != "HS_DESC" {
				continue
			}
			u.mu.Lock()
			switch f[1] {
			case "UPLOAD":
				u.pending[f[2]]++
			case "UPLOADED":
				u.pending[f[2]]--
				u.uploaded[f[2]]++
			case "FAILED":
				if strings.Contains(resp.Reply, "REASON=UPLOAD") || u.pending[f[2]] > 0 {
					u.pending[f[2]]--
					u.failed[f[2]]++
				}
			}
			close(u.changed)
			u.changed = make(chan struct{})
			u.mu.Unlock()
		}
	}()
	return u
}

// settled waits until tor has finished every upload it started for id
// (at least one of them successfully) and returns how many failed.
func (u *uploadTracker) settled(t *testing.T, id string) int {
	t.Helper()
	timeout := time.After(2 * time.Minute)
	for {
		u.mu.Lock()
		ok := u.uploaded[id] > 0 && u.pending[id] <= 0
		failed := u.failed[id]
		ch := u.changed
		u.mu.Unlock()
		if ok {
			return failed
		}
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("descriptor uploads for %s did not finish within 2 min", id)
		}
	}
}

// reset forgets the counts for id (before a republish).
func (u *uploadTracker) reset(id string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.pending[id], u.uploaded[id], u.failed[id] = 0, 0, 0
}

// killTor kills a Server's tor with SIGKILL, as a crash would.
func killTor(t *testing.T, s *Server) {
	t.Helper()
	pid := s.TorPID()
	if pid == 0 {
		t.Fatal("no tor to kill")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.proc.p.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("killed tor did not exit")
	}
}
