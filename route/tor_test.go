package route

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/onion"
	"github.com/onioncdn/onioncdn/oniontest"
)

var testNet oniontest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	testNet.Close()
	os.Exit(code)
}

// TestOverTor runs the whole design on the private Tor network: a router
// onion and two edge-group onions, each edge with an agent that reports
// over Tor. Edge group a carries 40 in-flight requests, b none; every
// client following the router's redirects through Tor lands on b. The
// router's random source makes every pair of draws (a, b), so a router
// that ignored the reported load would send every client to a.
func TestOverTor(t *testing.T) {
	n := testNet.Get(t)
	ctx := t.Context()

	srv := &onion.Server{ExtraTorrc: n.TorrcLines(), DataDir: t.TempDir(), Logger: testLogger(t)}
	t.Cleanup(func() { srv.Close() })
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	listen := func() *onion.Listener {
		t.Helper()
		l, err := srv.Listen(ctx, onion.ListenConfig{})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	lr, la, lb := listen(), listen(), listen()

	ea, eb := newTestEdge(t, "a", "a1"), newTestEdge(t, "b", "b1")
	rt := &Router{
		Groups: []Group{
			{ID: "a", Onion: la.Onion(), Edges: []Edge{ea.edge()}},
			{ID: "b", Onion: lb.Onion(), Edges: []Edge{eb.edge()}},
		},
		Rand:   &alternatingSource{},
		Logger: testLogger(t),
	}
	serveOn(t, lr, rt)

	// Tor clients: each agent and each browsing client on circuits of
	// their own.
	d := &onion.Dialer{SocksAddr: n.SocksAddr(), Timeout: 60 * time.Second}
	torClient := func(tag string) *http.Client {
		return &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return d.DialIsolated(ctx, network, addr, tag)
			},
		}, Timeout: 90 * time.Second}
	}

	release := make(chan struct{})
	var blocked sync.WaitGroup
	entered := make(chan struct{}, 64)
	agents := map[string]*Agent{}
	for _, e := range []testEdge{ea, eb} {
		a := &Agent{
			URL:      "http://" + lr.Onion() + DefaultReportPath,
			Group:    e.group,
			Edge:     e.id,
			Key:      e.priv,
			Client:   torClient("agent-" + e.group),
			Interval: 3 * time.Second,
			Logger:   testLogger(t),
		}
		agents[e.group] = a
		group := e.group
		h := a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/block" {
				entered <- struct{}{}
				<-release
			}
			io.WriteString(w, "group "+group+" "+r.URL.RequestURI())
		}))
		l := la
		if group == "b" {
			l = lb
		}
		serveOn(t, l, h)
		if group == "a" {
			// 40 requests in flight at a's edge (local callers: only the
			// count matters).
			for range 40 {
				blocked.Go(func() {
					h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/block", nil))
				})
			}
			for range 40 {
				<-entered
			}
		}
	}
	t.Cleanup(func() {
		close(release)
		blocked.Wait()
	})

	actx, cancel := context.WithCancel(ctx)
	var running sync.WaitGroup
	for _, a := range agents {
		running.Go(func() { a.Run(actx) })
	}
	t.Cleanup(func() {
		cancel()
		running.Wait()
	})

	// Wait (bounded) until both groups' reports have come through Tor.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		st, _ := rt.Stats()
		if st.Groups[0].Healthy && st.Groups[1].Healthy {
			t.Logf("reports over tor: accepted %d; a %+v b %+v", st.Reports.Accepted, st.Groups[0].Load, st.Groups[1].Load)
			if st.Groups[0].Load.Active != 40 || st.Groups[1].Load.Active != 0 {
				t.Fatalf("reported load a=%d b=%d, want 40 and 0", st.Groups[0].Load.Active, st.Groups[1].Load.Active)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("groups not healthy after 3 min: %+v", st)
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}

	// Clients, each on a fresh circuit, follow the redirect through Tor.
	landed := map[string]int{}
	const clients = 4
	start := time.Now()
	for i := range clients {
		c := torClient(onion.NewIsolationTag())
		var body string
		var err error
		for attempt := 0; attempt < 4; attempt++ {
			body, err = getBody(ctx, c, "http://"+lr.Onion()+"/video/index.m3u8?_HLS_msn=3")
			if err == nil {
				break
			}
			t.Logf("client %d attempt %d: %v", i, attempt, err)
		}
		if err != nil {
			t.Fatal(err)
		}
		g, rest, ok := strings.Cut(strings.TrimPrefix(body, "group "), " ")
		if !ok || rest != "/video/index.m3u8?_HLS_msn=3" {
			t.Fatalf("client %d got %q", i, body)
		}
		if g != "b" {
			t.Fatalf("client %d landed on %q, want the less-loaded b", i, g)
		}
		landed[g]++
	}
	t.Logf("%d clients redirected and served through tor in %v", clients, time.Since(start).Round(time.Millisecond))
	st, _ := rt.Stats()
	if st.Redirects < clients || st.Groups[1].Redirects < uint64(landed["b"]) {
		t.Fatalf("router stats %+v disagree with %v", st, landed)
	}
}

func getBody(ctx context.Context, c *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func serveOn(t *testing.T, l net.Listener, h http.Handler) {
	s := &http.Server{Handler: h, ReadHeaderTimeout: time.Minute}
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
}
