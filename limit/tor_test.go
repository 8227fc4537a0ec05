package limit_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/limit"
	"github.com/onioncdn/onioncdn/onion"
	"github.com/onioncdn/onioncdn/oniontest"
)

// Tests over the private Tor network (package oniontest). They skip when
// tor is not installed, and fail then with ONIONCDN_REQUIRE_TOR=1, as in CI.

var testNet oniontest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	testNet.Close()
	os.Exit(code)
}

// torClient is an HTTP client whose streams all use one Tor circuit (one
// isolation tag).
func torClient(n *oniontest.Network, tag string, conns int) *http.Client {
	d := &onion.Dialer{SocksAddr: n.SocksAddr(), Isolation: tag, Timeout: 90 * time.Second}
	return &http.Client{
		Transport: &http.Transport{
			DialContext:         d.DialContext,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			DisableCompression:  true,
		},
		Timeout: 2 * time.Minute,
	}
}

// fetch GETs u and returns the status and the time to the last byte.
func fetch(ctx context.Context, c *http.Client, u string) (int, time.Duration, error) {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, time.Since(start), err
}

func p95(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)*95+99)/100-1]
}

// switchHandler serves through the Limiter currently selected.
type switchHandler struct{ h atomic.Pointer[http.Handler] }

func (s *switchHandler) set(h http.Handler) { s.h.Store(&h) }
func (s *switchHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*s.h.Load()).ServeHTTP(w, r)
}

// Issue 16: over Tor, with circuit-id export, one circuit flooding the
// edge as fast as it can gets 429s while three circuits fetching normally
// get none. Their p95 latency with and without the flood is logged, and
// for comparison with the flood when OnAbuse closes abusive circuits
// through tor's control port, and with no limits (timings are not
// asserted).
func TestTorCircuitFlood(t *testing.T) {
	n := testNet.Get(t)
	ctx := t.Context()

	// Origin over TCP: 10 KB objects; misses cost it 20 ms each.
	var originHits atomic.Int64
	body := make([]byte, 10<<10)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		originHits.Add(1)
		time.Sleep(20 * time.Millisecond)
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Write(body)
	}))
	t.Cleanup(origin.Close)
	up, _ := url.Parse(origin.URL)

	limited := &limit.Limiter{}
	unlimited := &limit.Limiter{RequestsPerSecond: -1, MaxConcurrent: -1, BytesPerSecond: -1,
		MaxInFlight: -1, MaxUpstream: -1, Strikes: -1}
	// The cache asks the first Limiter; requests through the others carry
	// none of its state, so it only checks its own (idle) saturation.
	c := &cache.Cache{Upstream: up, AdmitMiss: limited.AdmitMiss}
	t.Cleanup(func() { c.Shutdown(context.Background()) })
	sw := &switchHandler{}
	sw.set(limited.Handler(c))
	srv := &http.Server{Handler: sw, ConnContext: onion.ConnContext}
	limited.ConfigureServer(srv)

	dataDir := t.TempDir()
	osrv := &onion.Server{ExtraTorrc: n.TorrcLines(), DataDir: dataDir, Logger: testLogger(t)}
	t.Cleanup(func() { osrv.Close() })
	ln, err := osrv.Listen(ctx, onion.ListenConfig{ExportCircuitID: true})
	if err != nil {
		t.Fatalf("publish edge: %v", err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close(); ln.Close() })
	edge := "http://" + ln.Onion()

	// Warm the objects the normal clients fetch, and their circuits.
	const objects = 20
	normal := make([]*http.Client, 3)
	for i := range normal {
		normal[i] = torClient(n, "normal-"+strconv.Itoa(i), 1)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for i := 0; i < objects; {
		code, _, err := fetch(ctx, normal[i%3], edge+"/obj/"+strconv.Itoa(i))
		if err != nil || code != 200 {
			if time.Now().After(deadline) {
				t.Fatalf("warming /obj/%d: %d %v", i, code, err)
			}
			time.Sleep(time.Second) // the descriptor may not be reachable yet
			continue
		}
		i++
	}
	for _, cl := range normal {
		for i := range 3 {
			if code, _, err := fetch(ctx, cl, edge+"/obj/"+strconv.Itoa(i)); err != nil || code != 200 {
				t.Fatalf("warm-up: %d %v", code, err)
			}
		}
	}

	// measure has each normal client fetch rounds objects, one every
	// 100 ms, and returns all latencies and non-200 answers.
	const rounds = 60
	measure := func() (lat []time.Duration, bad map[int]int) {
		var mu sync.Mutex
		bad = map[int]int{}
		var wg sync.WaitGroup
		for ci, cl := range normal {
			wg.Go(func() {
				for i := range rounds {
					code, d, err := fetch(ctx, cl, edge+"/obj/"+strconv.Itoa((i+ci)%objects))
					mu.Lock()
					if err != nil {
						bad[-1]++
						t.Logf("normal client %d: %v", ci, err)
					} else if code != 200 {
						bad[code]++
					} else {
						lat = append(lat, d)
					}
					mu.Unlock()
					time.Sleep(100 * time.Millisecond)
				}
			})
		}
		wg.Wait()
		return lat, bad
	}

	// flood has one circuit request distinct misses with 16 streams as fast
	// as it can until stop is closed, counting the answers.
	flood := func(stop <-chan struct{}) (codes map[int]int, wait func()) {
		cl := torClient(n, "flooder", 16)
		codes = map[int]int{}
		var mu sync.Mutex
		var seq atomic.Int64
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					code, _, err := fetch(ctx, cl, edge+"/flood/"+strconv.FormatInt(seq.Add(1), 10))
					mu.Lock()
					if err != nil {
						codes[-1]++
					} else {
						codes[code]++
					}
					mu.Unlock()
				}
			})
		}
		return codes, func() { wg.Wait(); cl.CloseIdleConnections() }
	}

	base, badBase := measure()
	t.Logf("unflooded: p95 %v over %d fetches; non-200: %v", p95(base), len(base), badBase)

	stop := make(chan struct{})
	floodCodes, wait := flood(stop)
	time.Sleep(3 * time.Second) // the flooder spends its burst
	flooded, badFlooded := measure()
	close(stop)
	wait()
	st := limited.Stats()
	t.Logf("flooded (Limiter): p95 %v over %d fetches; non-200: %v", p95(flooded), len(flooded), badFlooded)
	t.Logf("flooder answers: %v; limiter stats %+v; origin requests %d", floodCodes, st, originHits.Load())

	if floodCodes[http.StatusTooManyRequests] == 0 {
		t.Errorf("the flooding circuit got no 429: %v", floodCodes)
	}
	if badFlooded[http.StatusTooManyRequests] != 0 || badBase[http.StatusTooManyRequests] != 0 {
		t.Errorf("normal circuits got 429s: %v, %v", badBase, badFlooded)
	}
	if len(flooded) < 3*rounds*9/10 {
		t.Errorf("normal circuits: only %d of %d fetches succeeded under the flood: %v", len(flooded), 3*rounds, badFlooded)
	}
	if st.Keys < 4 {
		t.Errorf("%d circuits tracked, want at least 4 (circuit ids exported?)", st.Keys)
	}
	if p95(base) > 0 {
		t.Logf("p95 ratio flooded/unflooded with the Limiter: %.2f", float64(p95(flooded))/float64(p95(base)))
	}

	// The same flood with OnAbuse asking tor to close an abusive circuit
	// (CLOSECIRCUIT with the exported id, tor's global circuit id). The
	// flooder's tor then builds a new circuit, which costs it a
	// rendezvous (and, with PoW on, work), and starts a fresh bucket.
	var closedOK, closedErr atomic.Int64
	var closing sync.WaitGroup
	closer := &limit.Limiter{OnAbuse: func(key string) {
		id, err := strconv.ParseUint(key[1:], 16, 32)
		if key[0] != 'c' || err != nil {
			return
		}
		closing.Go(func() {
			if err := closeCircuit(filepath.Join(dataDir, "tor"), uint32(id)); err != nil {
				closedErr.Add(1)
				t.Logf("CLOSECIRCUIT: %v", err)
				return
			}
			closedOK.Add(1)
		})
	}}
	sw.set(closer.Handler(c))
	stop = make(chan struct{})
	floodCodes, wait = flood(stop)
	time.Sleep(3 * time.Second)
	closedPhase, badClosed := measure()
	close(stop)
	wait()
	closing.Wait()
	cst := closer.Stats()
	t.Logf("flooded (Limiter, abusive circuits closed): p95 %v over %d fetches; non-200: %v; flooder answers %v; circuits closed %d (failed %d); limiter stats %+v",
		p95(closedPhase), len(closedPhase), badClosed, floodCodes, closedOK.Load(), closedErr.Load(), cst)
	if badClosed[http.StatusTooManyRequests] != 0 {
		t.Errorf("normal circuits got 429s: %v", badClosed)
	}
	if closedOK.Load() == 0 {
		t.Errorf("no abusive circuit was closed (%d attempts failed)", closedErr.Load())
	}

	// For comparison only: the same flood without per-circuit limits.
	sw.set(unlimited.Handler(c))
	stop = make(chan struct{})
	floodCodes, wait = flood(stop)
	time.Sleep(3 * time.Second)
	unprotected, badUnprotected := measure()
	close(stop)
	wait()
	t.Logf("flooded (no limits): p95 %v over %d fetches; non-200: %v; flooder answers %v; origin requests %d",
		p95(unprotected), len(unprotected), badUnprotected, floodCodes, originHits.Load())
	if p95(base) > 0 {
		t.Logf("p95 ratio flooded/unflooded without limits: %.2f", float64(p95(unprotected))/float64(p95(base)))
	}
}

// closeCircuit asks the tor whose data directory is dir (started by
// onion.Server through bine: a control-port-* file names its control
// port, control_auth_cookie holds its cookie) to close circuit id.
func closeCircuit(dir string, id uint32) error {
	cookie, err := os.ReadFile(filepath.Join(dir, "control_auth_cookie"))
	if err != nil {
		return err
	}
	files, _ := filepath.Glob(filepath.Join(dir, "control-port-*"))
	var addr string
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for line := range strings.Lines(string(b)) {
			if a, ok := strings.CutPrefix(strings.TrimSpace(line), "PORT="); ok {
				addr = a
			}
		}
	}
	if addr == "" {
		return fmt.Errorf("no control port file in %s", dir)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for _, cmd := range []string{
		"AUTHENTICATE " + hex.EncodeToString(cookie),
		"CLOSECIRCUIT " + strconv.FormatUint(uint64(id), 10),
	} {
		if _, err := io.WriteString(c, cmd+"\r\n"); err != nil {
			return err
		}
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.HasPrefix(line, "250") {
			return fmt.Errorf("%s: %s", strings.Fields(cmd)[0], strings.TrimSpace(line))
		}
	}
	return nil
}
