package tier_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/internal/tier"
	"github.com/onioncdn/onioncdn/route"
)

func parseProgram(t *testing.T, edge bool, args ...string) (*tier.Program, error) {
	t.Helper()
	p := &tier.Program{Name: "edge", Edge: edge}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	p.Register(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return p, p.Validate()
}

func TestProgramValidate(t *testing.T) {
	up := []string{"-upstream", "http://a.onion"}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"onion", append(up, "-key", "k"), ""},
		{"edge_with_agent", append(up, "-key", "k", "-router", "http://r.onion/x", "-group", "g", "-edge-id", "e", "-agent-key", "a.pem", "-watchdog", "30s"), ""},
		{"router_without_group", append(up, "-key", "k", "-router", "http://r.onion/x"), "-group"},
		{"router_not_url", append(up, "-key", "k", "-router", "r.onion", "-group", "g", "-edge-id", "e", "-agent-key", "a"), "-router"},
		{"watchdog_tcp", append(up, "-listen", "127.0.0.1:0", "-watchdog", "30s"), "-watchdog needs onion"},
		{"negative_watchdog", append(up, "-key", "k", "-watchdog", "-1s"), "-watchdog"},
		{"prefetch_without_hls", append(up, "-key", "k", "-prefetch", "2"), "-prefetch needs -hls"},
		{"negative_prefetch", append(up, "-key", "k", "-hls", "-prefetch", "-1"), "-prefetch"},
		{"empty_name", append(up, "-key", "k", "-name", ""), "-name"},
		{"zero_shutdown", append(up, "-key", "k", "-shutdown-timeout", "0s"), "-shutdown-timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseProgram(t, true, tc.args...)
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

// TestProgramEdgeTCP runs an edge Program in TCP mode with HLS prefetch
// and a router agent: the agent key is created, its public key printed,
// its reports accepted, and the edge stops cleanly.
func TestProgramEdgeTCP(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		io.WriteString(w, "x")
	}))
	defer origin.Close()
	keyFile := filepath.Join(t.TempDir(), "agent.pem")
	key, _, err := tier.LoadOrCreateSigningKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	rt := &route.Router{AllowNonOnion: true, Groups: []route.Group{{ID: "g", Onion: "127.0.0.1:1",
		Edges: []route.Edge{{ID: "e1", PublicKey: key.Public().(ed25519.PublicKey)}}}}}
	router := httptest.NewServer(rt)
	defer router.Close()

	p, err := parseProgram(t, true, "-listen", "127.0.0.1:0", "-upstream", origin.URL, "-hls", "-prefetch", "2",
		"-router", router.URL+route.DefaultReportPath, "-group", "g", "-edge-id", "e1", "-agent-key", keyFile,
		"-report-interval", "100ms")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	readyc := make(chan *tier.Running, 1)
	done := make(chan error, 1)
	var out bytes.Buffer
	go func() { done <- p.Run(ctx, &out, nil, func(r *tier.Running) { readyc <- r }) }()
	var r *tier.Running
	select {
	case r = <-readyc:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("edge did not start")
	}
	if r.Tier.Prefetcher == nil || r.Tier.Agent == nil || r.Tor != nil {
		t.Fatalf("running %+v", r)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if st, _ := rt.Stats(); st.Reports.Accepted > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no report accepted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	pub := tier.EncodePublicKey(key.Public().(ed25519.PublicKey))
	if !strings.Contains(out.String(), "agent public key "+pub) || !strings.Contains(out.String(), "edge: stopped") {
		t.Errorf("output:\n%s", out.String())
	}
	if st, _ := rt.Stats(); st.Groups[0].Healthy {
		t.Error("group still healthy after the edge stopped")
	}
}
