package balance

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/onion"
	"github.com/onioncdn/onioncdn/onion/hsdesc"
	"github.com/onioncdn/onioncdn/oniontest"
)

// Integration tests over a private Tor network (oniontest): tor must accept
// and serve what the Publisher uploads.

var testNet oniontest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	testNet.Close()
	os.Exit(code)
}

// newTor starts a tor joined to the network and waits for its bootstrap.
func newTor(t *testing.T, n *oniontest.Network, extra ...string) *onion.Server {
	t.Helper()
	s := &onion.Server{ExtraTorrc: append(n.TorrcLines(), extra...), DataDir: t.TempDir(), Logger: quietLogger(t)}
	t.Cleanup(func() { s.Close() })
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		info, err := s.GetInfo(t.Context(), "status/bootstrap-phase")
		if err == nil && strings.Contains(info["status/bootstrap-phase"], "PROGRESS=100") {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("tor did not bootstrap: %v %v", info, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func quietLogger(t *testing.T) *slog.Logger { return testLoggerLevel(t, slog.LevelWarn) }

// backendTor is one backend instance: its own tor, a listener with
// Frontend set, and an HTTP server answering its name.
type backendTor struct {
	name string
	srv  *onion.Server
	ln   *onion.Listener
}

func startBackend(t *testing.T, n *oniontest.Network, name, group string, pow bool) *backendTor {
	t.Helper()
	s := newTor(t, n)
	ln, err := s.Listen(t.Context(), onion.ListenConfig{Frontend: group, PoW: pow})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) })}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return &backendTor{name: name, srv: s, ln: ln}
}

// get fetches http://addr/ through the network's client on a fresh
// circuit.
func get(ctx context.Context, n *oniontest.Network, addr string) (string, error) {
	d := &onion.Dialer{SocksAddr: n.SocksAddr(), Timeout: 40 * time.Second}
	tag := onion.NewIsolationTag()
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			return d.DialIsolated(ctx, network, a, tag)
		},
		DisableKeepAlives: true,
	}}
	ctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/", nil)
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// ringOf reads the hash ring from s's consensus.
func ringOf(t *testing.T, s *onion.Server) *hsdesc.Ring {
	t.Helper()
	r, _, _, _, err := (&Publisher{tor: serverTor{s}}).readConsensus(t.Context(), "", map[string]ed25519.PublicKey{}, nil)
	if err != nil || r == nil {
		t.Fatalf("consensus: %v", err)
	}
	return r
}

// introOwners maps the introduction points' auth keys of each backend's
// current descriptor (fetched through s) to the backend's name.
func introOwners(t *testing.T, s *onion.Server, bs ...*backendTor) map[string]string {
	t.Helper()
	out, err := fetchOwners(t.Context(), s, bs...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// fetchOwners is introOwners returning its error.
func fetchOwners(ctx context.Context, s *onion.Server, bs ...*backendTor) (map[string]string, error) {
	out := map[string]string{}
	for _, b := range bs {
		var text string
		var err error
		for range 5 {
			fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			text, _, err = s.FetchDescriptor(fctx, b.ln.Onion(), "")
			cancel()
			if err == nil {
				break
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s's descriptor: %w", b.name, err)
		}
		d, err := hsdesc.Parse(text, time.Now())
		if err != nil {
			return nil, fmt.Errorf("%s's descriptor: %w", b.name, err)
		}
		id, _ := hsdesc.ParseAddress(b.ln.Onion())
		c, err := d.Decrypt(id, time.Now(), hsdesc.Period{})
		if err != nil {
			return nil, fmt.Errorf("%s's descriptor: %w", b.name, err)
		}
		for _, ip := range c.IntroPoints {
			out[string(ip.AuthKey)] = b.name
		}
	}
	return out, nil
}

// ownedView is groupView with the owners of introduction points kept up
// to date: a live backend's tor may replace an introduction point (a new
// auth key) at any time, which the group descriptor then carries. When
// the view names an unknown introduction point, the live backends'
// descriptors are fetched again and merged into owners. last keeps the
// latest view, for failure messages.
type ownedView struct {
	t       *testing.T
	checker *onion.Server
	group   *onion.Key
	owners  map[string]string
	last    map[string][]string
}

func (v *ownedView) get(live ...*backendTor) map[string][]string {
	view, _ := groupView(v.t, v.checker, v.group, v.owners)
	unknown := false
	for _, names := range view {
		unknown = unknown || slices.Contains(names, "?")
	}
	if unknown {
		if fresh, err := fetchOwners(v.t.Context(), v.checker, live...); err == nil {
			maps.Copy(v.owners, fresh)
			view, _ = groupView(v.t, v.checker, v.group, v.owners)
		} else {
			v.t.Logf("refreshing introduction point owners: %v", err)
		}
	}
	v.last = view
	return view
}

// String describes the last view: the backends each HSDir's group
// descriptor lists.
func (v *ownedView) String() string {
	return fmt.Sprintf("; last view of the group descriptor, by HSDir: %v", v.last)
}

// groupView fetches the group's current descriptor from every HSDir
// clients fetch it from (through s, which checks it as a client does) and
// returns the backends each lists, by HSDir, plus the revision counters.
func groupView(t *testing.T, s *onion.Server, group *onion.Key, owners map[string]string) (map[string][]string, map[string]uint64) {
	t.Helper()
	r := ringOf(t, s)
	id, _ := hsdesc.ParseAddress(group.Address())
	tp := r.TimePeriod()
	blinded, _ := hsdesc.BlindPublicKey(id, tp, r.Schedule)
	out, revs := map[string][]string{}, map[string]uint64{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, d := range r.Fetch(blinded) {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			text, _, err := s.FetchDescriptor(ctx, group.Address(), d.Fingerprint)
			if err != nil {
				return
			}
			pd, err := hsdesc.Parse(text, time.Now())
			if err != nil {
				t.Errorf("group descriptor from %s: %v", d.Fingerprint, err)
				return
			}
			c, err := pd.Decrypt(id, time.Now(), r.Schedule, tp)
			if err != nil {
				t.Errorf("group descriptor from %s: %v", d.Fingerprint, err)
				return
			}
			var names []string
			for _, ip := range c.IntroPoints {
				name := owners[string(ip.AuthKey)]
				if name == "" {
					name = "?"
				}
				if !slices.Contains(names, name) {
					names = append(names, name)
				}
			}
			slices.Sort(names)
			mu.Lock()
			out[d.Fingerprint], revs[d.Fingerprint] = names, pd.RevisionCounter
			mu.Unlock()
		})
	}
	wg.Wait()
	return out, revs
}

// everyHSDir reports whether view has an entry for each of want HSDirs and
// each satisfies ok.
func everyHSDir(view map[string][]string, want int, ok func([]string) bool) bool {
	if len(view) < want {
		return false
	}
	for _, names := range view {
		if !ok(names) {
			return false
		}
	}
	return true
}

// requests makes n fresh-circuit requests to addr, par at a time, and
// returns the bodies (or "error: …").
func requests(ctx context.Context, nw *oniontest.Network, addr string, n, par int) []string {
	out := make([]string, n)
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			body, err := get(ctx, nw, addr)
			if err != nil {
				body = "error: " + err.Error()
			}
			out[i] = body
		})
	}
	wg.Wait()
	return out
}

func count(bodies []string) map[string]int {
	m := map[string]int{}
	for _, b := range bodies {
		if strings.HasPrefix(b, "error: ") {
			b = "error"
		}
		m[b]++
	}
	return m
}

// TestGroupOverTor is the acceptance run on the private network:
// three backend edges behind one group address with two publishers (a
// primary and a standby). It measures and checks, in order: a new backend
// appearing within 30 s; 60 fresh-circuit requests, each edge serving
// ≥ 15 %; one backend killed (kill -9 of its tor): gone from every HSDir's
// descriptor within 30 s, ≥ 95 % of requests succeeding meanwhile; the
// primary publisher killed (kill -9 of its tor) with the group still
// answering; the killed backend restarted, which the standby publishes by
// taking over; no upload refused by tor.
func TestGroupOverTor(t *testing.T) {
	n := testNet.Get(t)
	start := time.Now()
	group, err := onion.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	// Five tors: three backends, two publishers, started together.
	var bs [3]*backendTor
	var pubSrv [2]*onion.Server
	var wg sync.WaitGroup
	for i, name := range []string{"edge-a", "edge-b", "edge-c"} {
		wg.Go(func() { bs[i] = startBackend(t, n, name, group.Address(), false) })
	}
	for i := range pubSrv {
		wg.Go(func() { pubSrv[i] = newTor(t, n) })
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("5 tors up, backends published: %v", time.Since(start).Round(time.Millisecond))
	checker := pubSrv[1] // the standby's tor doubles as the test's HSDir reader
	owners := &ownedView{t: t, checker: checker, group: group, owners: introOwners(t, checker, bs[:]...)}

	settings := func(p *Publisher) *Publisher {
		p.FetchInterval, p.ProbeInterval, p.ProbeTimeout = 15*time.Second, 2*time.Second, 10*time.Second
		p.MinUploadInterval, p.ObserveInterval, p.UploadTimeout = 2*time.Second, 3*time.Second, 30*time.Second
		p.Logger = testLoggerLevel(t, slog.LevelInfo)
		t.Cleanup(func() { p.Close() })
		return p
	}
	two := []string{bs[0].ln.Onion(), bs[1].ln.Onion()}
	primary := settings(&Publisher{Server: pubSrv[0], Key: group, Backends: two})
	standby := settings(&Publisher{Server: pubSrv[1], Key: group, Backends: two, TakeoverDelay: 6 * time.Second})
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := primary.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if err := standby.Up(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("group published (2 backends): %v after the publishers started", time.Since(t0).Round(time.Millisecond))

	// A new backend appears.
	t0 = time.Now()
	three := append(slices.Clone(two), bs[2].ln.Onion())
	if err := primary.SetBackends(three...); err != nil {
		t.Fatal(err)
	}
	if err := standby.SetBackends(three...); err != nil {
		t.Fatal(err)
	}
	var nHSDirs int
	appear := poll(t, 60*time.Second, "edge-c in every HSDir's descriptor", func() bool {
		view := owners.get(bs[:]...)
		nHSDirs = len(view)
		return everyHSDir(view, 3, func(names []string) bool { return slices.Equal(names, []string{"edge-a", "edge-b", "edge-c"}) })
	}, owners)
	t.Logf("MEASURE new backend in every HSDir's descriptor (%d HSDirs): %v", nHSDirs, appear.Round(time.Millisecond))
	if appear > 30*time.Second {
		t.Errorf("new backend took %v to appear, want ≤ 30 s", appear)
	}

	// 60 requests on fresh circuits.
	t0 = time.Now()
	bodies := requests(t.Context(), n, group.Address(), 60, 6)
	c := count(bodies)
	t.Logf("MEASURE 60 fresh-circuit requests in %v: %v", time.Since(t0).Round(time.Millisecond), c)
	for _, name := range []string{"edge-a", "edge-b", "edge-c"} {
		if c[name] < 9 {
			t.Errorf("%s served %d of 60 requests, want ≥ 15 %% (9)", name, c[name])
		}
	}

	// A backend dies while the primary works.
	if s := standby.Stats(); s.Active || s.UploadRounds != 0 {
		t.Errorf("standby uploaded while the primary worked: %+v", s)
	}
	kill := time.Now()
	if err := syscall.Kill(bs[2].srv.TorPID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Log("edge-c killed (kill -9 of its tor)")
	const window = 40 * time.Second
	load := startLoad(t, n, group.Address(), 1500*time.Millisecond)
	gone := poll(t, 60*time.Second, "edge-c gone from every HSDir's descriptor", func() bool {
		view := owners.get(bs[:2]...)
		return everyHSDir(view, nHSDirs, func(names []string) bool { return slices.Equal(names, []string{"edge-a", "edge-b"}) })
	}, owners)
	t.Logf("MEASURE dead backend (primary publishing): marked down after %v, gone from every HSDir's descriptor after %v",
		downAfter(primary, bs[2].ln.Onion(), kill).Round(time.Millisecond), gone.Round(time.Millisecond))
	if gone > 30*time.Second {
		t.Errorf("dead backend left the descriptors after %v, want ≤ 30 s", gone)
	}
	time.Sleep(time.Until(kill.Add(window)))
	ok, total, failures := load.stop()
	t.Logf("MEASURE fresh-circuit requests in the %v after the kill: %d/%d succeeded (%.1f %%); failures: %v", window, ok, total, 100*float64(ok)/float64(total), failures)
	if total < 20 || float64(ok) < 0.95*float64(total) {
		t.Errorf("%d of %d requests succeeded after the backend died, want ≥ 95 %%", ok, total)
	}

	// The primary publisher dies; the group keeps answering.
	rejected := primary.Stats().UploadRejected
	if err := syscall.Kill(primary.Server.TorPID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	primary.Close()
	t.Log("primary publisher killed (kill -9 of its tor)")
	c = count(requests(t.Context(), n, group.Address(), 12, 6))
	t.Logf("MEASURE 12 requests after the primary's death: %v", c)
	if c["error"] > 0 {
		t.Errorf("group stopped answering after the primary died: %v", c)
	}

	// edge-c comes back (same key, new tor, new introduction points): the
	// standby must notice that the descriptors are out of date and take
	// over.
	back := time.Now()
	restarted := newTor(t, n)
	ln, err := restarted.Listen(t.Context(), onion.ListenConfig{Key: bs[2].ln.Key(), Frontend: group.Address()})
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "edge-c") })}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	published := time.Since(back)
	bs[2] = &backendTor{name: "edge-c", srv: restarted, ln: ln}
	maps.DeleteFunc(owners.owners, func(_, name string) bool { return name == "edge-c" }) // its old introduction points
	maps.Copy(owners.owners, introOwners(t, checker, bs[2]))
	again := poll(t, 60*time.Second, "restarted edge-c in every HSDir's descriptor", func() bool {
		view := owners.get(bs[:]...)
		return everyHSDir(view, nHSDirs, func(names []string) bool { return slices.Equal(names, []string{"edge-a", "edge-b", "edge-c"}) })
	}, owners)
	t.Logf("MEASURE restarted backend: own descriptor published %v after its restart, in every HSDir's group descriptor %v later (standby taking over)",
		published.Round(time.Millisecond), again.Round(time.Millisecond))
	s := standby.Stats()
	t.Logf("standby stats: %+v", s)
	if !s.Active || s.Takeovers == 0 {
		t.Errorf("standby did not take over: %+v", s)
	}
	if s.UploadRejected != 0 || rejected != 0 {
		t.Errorf("tor rejected uploads: primary %d, standby %d", rejected, s.UploadRejected)
	}
}

// downAfter returns how long after t0 p marked backend down (0 if not).
func downAfter(p *Publisher, backend string, t0 time.Time) time.Duration {
	for _, b := range p.Status() {
		if b.Address == backend && !b.Up {
			return b.Since.Sub(t0)
		}
	}
	return 0
}

// load makes a fresh-circuit request every interval until stopped.
type load struct {
	stopc   chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	results []string
}

func startLoad(t *testing.T, n *oniontest.Network, addr string, every time.Duration) *load {
	l := &load{stopc: make(chan struct{})}
	l.wg.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-l.stopc:
				return
			case <-tick.C:
			}
			l.wg.Go(func() {
				body, err := get(t.Context(), n, addr)
				if err != nil {
					body = "error: " + err.Error()
				}
				l.mu.Lock()
				l.results = append(l.results, body)
				l.mu.Unlock()
			})
		}
	})
	return l
}

// stop ends the load, waits for the requests in flight and counts the
// successes (answers other than errors).
func (l *load) stop() (ok, total int, failures []string) {
	close(l.stopc)
	l.wg.Wait()
	for _, r := range l.results {
		total++
		if strings.HasPrefix(r, "error: ") {
			failures = append(failures, r)
		} else {
			ok++
		}
	}
	return ok, total, failures
}

// poll calls cond every second until it holds, and returns how long that
// took; it fails t after d.
func poll(t *testing.T, d time.Duration, what string, cond func() bool, state ...fmt.Stringer) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v%v", what, d, state)
		}
		time.Sleep(time.Second)
	}
	return time.Since(start)
}

// rawControl sends commands on a new control connection to s's tor and
// returns tor's reply lines for each.
func rawControl(t *testing.T, s *onion.Server, cmds ...string) [][]string {
	t.Helper()
	info, err := s.GetInfo(t.Context(), "net/listeners/control")
	if err != nil {
		t.Fatal(err)
	}
	cookie, err := os.ReadFile(filepath.Join(s.DataDir, "tor", "control_auth_cookie"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", strings.Trim(info["net/listeners/control"], `"`))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	var out [][]string
	for _, cmd := range append([]string{fmt.Sprintf("AUTHENTICATE %x", cookie)}, cmds...) {
		fmt.Fprintf(c, "%s\r\n", cmd)
		var lines []string
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v", cmd, err)
			}
			l = strings.TrimRight(l, "\r\n")
			lines = append(lines, l)
			if len(l) >= 4 && l[3] == ' ' {
				break
			}
		}
		out = append(out, lines)
	}
	return out[1:]
}

// fakeBackendsOn returns n backend keys whose descriptors (built on each
// fetch) list one introduction point on relay relays[i%len], or on a
// relay of its own if relays is empty.
type fakeBackends struct {
	mu    sync.Mutex
	keys  map[string]*hsdesc.SigningKey
	intro map[string]hsdesc.IntroPoint
	bad   map[string]func(k *hsdesc.SigningKey, now time.Time) string
	owner map[string]string // auth key → address
}

func newFakeBackends() *fakeBackends {
	return &fakeBackends{keys: map[string]*hsdesc.SigningKey{}, intro: map[string]hsdesc.IntroPoint{},
		bad: map[string]func(*hsdesc.SigningKey, time.Time) string{}, owner: map[string]string{}}
}

func (f *fakeBackends) add(t *testing.T, relay []byte) string {
	_, priv, _ := ed25519.GenerateKey(nil)
	k, err := hsdesc.NewSigningKey(sha512Expand(priv.Seed()))
	if err != nil {
		t.Fatal(err)
	}
	ip := fakeIntro()
	if relay != nil {
		ip.LinkSpecifiers = append([]byte{1, 2, 20}, relay...)
	}
	a := hsdesc.Address(k.Public())
	f.mu.Lock()
	f.keys[a], f.intro[a], f.owner[string(ip.AuthKey)] = k, ip, a
	f.mu.Unlock()
	return a
}

var testSched = hsdesc.NetworkPeriod(10*time.Second, true, 0) // oniontest votes every 10 s

func (f *fakeBackends) fetch(ctx context.Context, addr string) (string, error) {
	f.mu.Lock()
	k, ip, bad := f.keys[addr], f.intro[addr], f.bad[addr]
	f.mu.Unlock()
	now := time.Now()
	if bad != nil {
		return bad(k, now), nil
	}
	return hsdesc.Build(&hsdesc.Spec{Identity: k, Period: testSched.Num(now), Schedule: testSched, RevisionCounter: 1, Now: now,
		Content: hsdesc.Content{FlowControl: "1-2 31", IntroPoints: []hsdesc.IntroPoint{ip}}})
}

// TestReachOverTor measures how many backends one group address reaches
// on the private network, with descriptors tor accepts and decodes: fake
// backends (keys and descriptors made here, introduction points that are
// never used) behind a Publisher on a real tor. First with their
// introduction points on the network's 5 real relays, which allows one
// per relay in each descriptor; then on distinct relays as on the real
// network. Five bad backend descriptors are skipped and counted on the
// way, and tor refuses no upload.
func TestReachOverTor(t *testing.T) {
	n := testNet.Get(t)
	srv := newTor(t, n)
	ring := ringOf(t, srv)
	group, _ := onion.GenerateKey()
	fb := newFakeBackends()
	var onRelays []string
	for i := range 40 {
		id, _ := hex.DecodeString(ring.HSDirs[i%len(ring.HSDirs)].Fingerprint)
		onRelays = append(onRelays, fb.add(t, id))
	}
	other := fb.keys[fb.add(t, nil)]
	bad := map[string]func(k *hsdesc.SigningKey, now time.Time) string{
		"malformed": func(*hsdesc.SigningKey, time.Time) string { return "hs-descriptor 3\nnot a descriptor\n" },
		"expired": func(k *hsdesc.SigningKey, now time.Time) string {
			d, _ := hsdesc.Build(&hsdesc.Spec{Identity: k, Period: testSched.Num(now), Schedule: testSched, Now: now.Add(-60 * time.Hour),
				Content: hsdesc.Content{IntroPoints: []hsdesc.IntroPoint{fakeIntro()}}})
			return d
		},
		"wrong_period": func(k *hsdesc.SigningKey, now time.Time) string {
			d, _ := hsdesc.Build(&hsdesc.Spec{Identity: k, Period: testSched.Num(now) + 7, Schedule: testSched, Now: now,
				Content: hsdesc.Content{IntroPoints: []hsdesc.IntroPoint{fakeIntro()}}})
			return d
		},
		"wrong_key": func(k *hsdesc.SigningKey, now time.Time) string {
			d, _ := hsdesc.Build(&hsdesc.Spec{Identity: other, Period: testSched.Num(now), Schedule: testSched, Now: now,
				Content: hsdesc.Content{IntroPoints: []hsdesc.IntroPoint{fakeIntro()}}})
			return d
		},
		"bad_signature": func(k *hsdesc.SigningKey, now time.Time) string {
			d, _ := hsdesc.Build(&hsdesc.Spec{Identity: k, Period: testSched.Num(now), Schedule: testSched, RevisionCounter: 5, Now: now,
				Content: hsdesc.Content{IntroPoints: []hsdesc.IntroPoint{fakeIntro()}}})
			return strings.Replace(d, "revision-counter 5", "revision-counter 6", 1)
		},
	}
	var badAddrs []string
	for _, mk := range bad {
		a := fb.add(t, nil)
		fb.bad[a] = mk
		badAddrs = append(badAddrs, a)
	}
	p := &Publisher{Server: srv, Key: group, Backends: append(slices.Clone(onRelays), badAddrs...),
		Fetch: fb.fetch, Probe: func(context.Context, string) error { return nil },
		MinUploadInterval: time.Second, ObserveInterval: time.Hour, Logger: testLoggerLevel(t, slog.LevelWarn)}
	t.Cleanup(func() { p.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	union := func() (map[string]bool, int) {
		view, _ := groupView(t, srv, group, fb.owner)
		u := map[string]bool{}
		for _, names := range view {
			for _, a := range names {
				u[a] = true
			}
		}
		return u, len(view)
	}
	var reached map[string]bool
	var dirs int
	poll(t, 60*time.Second, "25 backends on 5 relays reached", func() bool {
		reached, dirs = union()
		return len(reached) == 5*len(ring.HSDirs) && p.Stats().Reached == len(reached)
	})
	t.Logf("MEASURE reach, introduction points on the network's %d relays: %d backends of %d over %d HSDirs (one introduction point per relay per descriptor)",
		len(ring.HSDirs), len(reached), len(onRelays), dirs)

	// Distinct relays, as on the real network: 20 per descriptor.
	var distinct []string
	for range 110 {
		distinct = append(distinct, fb.add(t, nil))
	}
	if err := p.SetBackends(append(distinct, badAddrs...)...); err != nil {
		t.Fatal(err)
	}
	poll(t, 90*time.Second, "100 backends on distinct relays reached", func() bool {
		reached, dirs = union()
		return len(reached) == 100
	})
	t.Logf("MEASURE reach, introduction points on distinct relays: %d backends of %d over %d HSDirs (20 per descriptor)", len(reached), len(distinct), dirs)
	s := p.Stats()
	t.Logf("stats: %+v", s)
	r := s.Rejected
	if r.Malformed == 0 || r.Expired == 0 || r.WrongPeriod == 0 || r.WrongKey == 0 || r.BadSignature == 0 {
		t.Errorf("bad descriptors not all counted: %+v", r)
	}
	if s.UploadRejected != 0 || s.Uploads == 0 {
		t.Errorf("uploads %d, rejected by tor %d", s.Uploads, s.UploadRejected)
	}
}

// TestPoWOverTor shows why the proof-of-work defence cannot be carried
// into the group's descriptor, with tor's own answer. A backend running
// the defence publishes pow-params for its own address; the Publisher
// leaves them out (Stats.PoWDropped) and the group works. Then a group
// descriptor that does carry the backend's pow-params (and a suggested
// effort, so clients solve the puzzle) is uploaded by hand: the client's
// solution is bound to the group's blinded key, the instance checks it
// against its own, logs "PoW INTRODUCE2 request failed to verify" and
// drops the introduction, and the connection fails.
func TestPoWOverTor(t *testing.T) {
	n := testNet.Get(t)
	group, _ := onion.GenerateKey()
	var b *backendTor
	var srv, cli *onion.Server
	var wg sync.WaitGroup
	wg.Go(func() { b = startBackend(t, n, "edge-pow", group.Address(), true) })
	wg.Go(func() { srv = newTor(t, n) })
	wg.Go(func() { cli = newTor(t, n) })
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	// ADD_ONION cannot make an instance: tor's answer, for the record.
	reply := rawControl(t, srv, "ADD_ONION NEW:ED25519-V3 Port=80,127.0.0.1:9 OnionBalanceInstance=1")[0]
	t.Logf("MEASURE tor's answer to ADD_ONION … OnionBalanceInstance=1: %q", reply)
	if !strings.HasPrefix(reply[len(reply)-1], "5") {
		t.Errorf("ADD_ONION accepted an instance flag: %q", reply)
	}

	id, _ := hsdesc.ParseAddress(b.ln.Onion())
	var own *hsdesc.Content
	poll(t, time.Minute, "backend descriptor with pow-params", func() bool {
		text, _, err := srv.FetchDescriptor(t.Context(), b.ln.Onion(), "")
		if err != nil {
			return false
		}
		d, err := hsdesc.Parse(text, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		own, err = d.Decrypt(id, time.Now(), hsdesc.Period{})
		return err == nil && own.PoW != nil
	})
	t.Logf("backend's pow-params: effort %d, expires %v", own.PoW.SuggestedEffort, own.PoW.Expires)

	p := &Publisher{Server: srv, Key: group, Backends: []string{b.ln.Onion()}, ProbeInterval: 2 * time.Second,
		MinUploadInterval: time.Second, Logger: testLoggerLevel(t, slog.LevelWarn)}
	t.Cleanup(func() { p.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	poll(t, 30*time.Second, "group published", func() bool { return p.Stats().Reached == 1 })
	if p.Stats().PoWDropped == 0 {
		t.Error("PoWDropped not counted")
	}
	ring := ringOf(t, srv)
	gid, _ := hsdesc.ParseAddress(group.Address())
	tp := ring.TimePeriod()
	blinded, _ := hsdesc.BlindPublicKey(gid, tp, ring.Schedule)
	fetchDirs := ring.Fetch(blinded)
	text, _, err := cli.FetchDescriptor(t.Context(), group.Address(), fetchDirs[0].Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := hsdesc.Parse(text, time.Now())
	if c, err := d.Decrypt(gid, time.Now(), ring.Schedule, tp); err != nil || c.PoW != nil {
		t.Fatalf("group descriptor: pow-params %v, %v", c, err)
	}
	if body, err := getVia(t.Context(), cli, group.Address(), 40*time.Second); body != "edge-pow" {
		t.Fatalf("group without pow-params: %q, %v", body, err)
	}

	// Now carry the pow-params, as a merging publisher would have to.
	p.Close()
	logPath := filepath.Join(b.srv.DataDir, "rend.log")
	rawControl(t, b.srv, `SETCONF Log="[rend]info file `+logPath+`"`)
	sk, _ := hsdesc.NewSigningKey(group.MarshalFile()[32:])
	pow := *own.PoW
	pow.SuggestedEffort = 50
	first, second := ring.ServicePeriods()
	for i, slot := range []uint64{first, second} {
		desc, err := hsdesc.Build(&hsdesc.Spec{Identity: sk, Period: slot, Schedule: ring.Schedule,
			RevisionCounter: uint64(time.Now().UnixMilli()) + 60_000,
			Content:         hsdesc.Content{FlowControl: own.FlowControl, PoW: &pow, IntroPoints: own.IntroPoints}})
		if err != nil {
			t.Fatal(err)
		}
		bk, _ := hsdesc.BlindPublicKey(gid, slot, ring.Schedule)
		for _, h := range ring.Store(bk, slot, i == 1) {
			if err := srv.PostDescriptor(t.Context(), group.Address(), desc, h.Fingerprint); err != nil {
				t.Fatalf("upload with pow-params: %v", err)
			}
		}
	}
	if _, _, err := cli.FetchDescriptor(t.Context(), group.Address(), fetchDirs[0].Fingerprint); err != nil {
		t.Fatal(err)
	}
	body, err := getVia(t.Context(), cli, group.Address(), 30*time.Second)
	t.Logf("MEASURE fetch through a group descriptor carrying pow-params: %q, %v", body, err)
	if err == nil {
		t.Errorf("the connection succeeded with carried pow-params")
	}
	logText, _ := os.ReadFile(logPath)
	var lines []string
	for l := range strings.Lines(string(logText)) {
		if strings.Contains(l, "PoW") {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	t.Logf("MEASURE the instance's tor: %q", lines)
	if !strings.Contains(string(logText), "PoW INTRODUCE2 request failed to verify") {
		t.Errorf("the instance did not log the failed PoW verification")
	}
}

// getVia fetches http://addr/ through s's tor on a fresh circuit.
func getVia(ctx context.Context, s *onion.Server, addr string, timeout time.Duration) (string, error) {
	d := s.Dialer()
	d.Timeout = timeout
	tag := onion.NewIsolationTag()
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			return d.DialIsolated(ctx, network, a, tag)
		},
		DisableKeepAlives: true,
	}}
	ctx, cancel := context.WithTimeout(ctx, timeout+5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/", nil)
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}
