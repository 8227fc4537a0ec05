package balance

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
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

func startBackend(t *testing.T, n *oniontest.Network, name, group string, intros int) *backendTor {
	t.Helper()
	s := newTor(t, n)
	ln, err := s.Listen(t.Context(), onion.ListenConfig{Frontend: group, NumIntroPoints: intros})
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
	out := map[string]string{}
	for _, b := range bs {
		var text string
		var err error
		for range 5 {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			text, _, err = s.FetchDescriptor(ctx, b.ln.Onion(), "")
			cancel()
			if err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("%s's descriptor: %v", b.name, err)
		}
		d, err := hsdesc.Parse(text, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		id, _ := hsdesc.ParseAddress(b.ln.Onion())
		c, err := d.Decrypt(id, time.Now(), hsdesc.Period{})
		if err != nil {
			t.Fatal(err)
		}
		for _, ip := range c.IntroPoints {
			out[string(ip.AuthKey)] = b.name
		}
	}
	return out
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
// appearing; 60 fresh-circuit requests spread over the three; the primary
// publisher killed (kill -9 of its tor) with the group still answering;
// one backend killed (kill -9 of its tor): the standby takes over, drops it
// from every HSDir's descriptor, and ≥ 95 % of requests succeed; no upload
// refused by tor.
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
		wg.Go(func() { bs[i] = startBackend(t, n, name, group.Address(), 0) })
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
	owners := introOwners(t, checker, bs[:]...)

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
		view, _ := groupView(t, checker, group, owners)
		nHSDirs = len(view)
		return everyHSDir(view, 3, func(names []string) bool { return slices.Equal(names, []string{"edge-a", "edge-b", "edge-c"}) })
	})
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

	// The primary publisher dies.
	if s := standby.Stats(); s.Active || s.UploadRounds != 0 {
		t.Errorf("standby uploaded while the primary worked: %+v", s)
	}
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

	// A backend dies: the standby must notice, take over and drop it.
	kill := time.Now()
	if err := syscall.Kill(bs[2].srv.TorPID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Log("edge-c killed (kill -9 of its tor)")
	type result struct {
		at   time.Duration
		body string
	}
	var resMu sync.Mutex
	var results []result
	stop := make(chan struct{})
	var loadWG sync.WaitGroup
	loadWG.Go(func() {
		tick := time.NewTicker(1500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			at := time.Since(kill)
			loadWG.Go(func() {
				body, err := get(t.Context(), n, group.Address())
				if err != nil {
					body = "error: " + err.Error()
				}
				resMu.Lock()
				results = append(results, result{at, body})
				resMu.Unlock()
			})
		}
	})
	gone := poll(t, 60*time.Second, "edge-c gone from every HSDir's descriptor", func() bool {
		view, _ := groupView(t, checker, group, owners)
		return everyHSDir(view, nHSDirs, func(names []string) bool { return slices.Equal(names, []string{"edge-a", "edge-b"}) })
	})
	var down time.Duration
	for _, b := range standby.Status() {
		if b.Address == bs[2].ln.Onion() && !b.Up {
			down = b.Since.Sub(kill)
		}
	}
	t.Logf("MEASURE dead backend: marked down by the standby after %v, gone from every HSDir's descriptor after %v", down.Round(time.Millisecond), gone.Round(time.Millisecond))
	// Keep the load running to 60 s after the kill.
	time.Sleep(time.Until(kill.Add(60 * time.Second)))
	close(stop)
	loadWG.Wait()
	ok, total := 0, 0
	var failures []string
	for _, r := range results {
		if r.at > 60*time.Second {
			continue
		}
		total++
		if r.body == "edge-a" || r.body == "edge-b" {
			ok++
		} else {
			failures = append(failures, fmt.Sprintf("%v: %s", r.at.Round(time.Second), r.body))
		}
	}
	t.Logf("MEASURE requests in the 60 s after the kill: %d/%d succeeded (%.1f %%); failures: %v", ok, total, 100*float64(ok)/float64(total), failures)
	if total < 20 || float64(ok) < 0.95*float64(total) {
		t.Errorf("%d of %d requests succeeded after the backend died, want ≥ 95 %%", ok, total)
	}
	s := standby.Stats()
	t.Logf("standby stats: %+v", s)
	if !s.Active || s.Takeovers == 0 {
		t.Errorf("standby did not take over: %+v", s)
	}
	if s.UploadRejected != 0 || rejected != 0 {
		t.Errorf("tor rejected uploads: primary %d, standby %d", rejected, s.UploadRejected)
	}
}

// poll calls cond every second until it holds, and returns how long that
// took; it fails t after d.
func poll(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(time.Second)
	}
	return time.Since(start)
}
