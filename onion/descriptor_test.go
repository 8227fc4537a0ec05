package onion

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/onion/hsdesc"
)

func TestNormHSDir(t *testing.T) {
	for in, want := range map[string]string{
		"$0123456789abcdef0123456789ABCDEF01234567~a1": "0123456789ABCDEF0123456789ABCDEF01234567",
		"$0123456789ABCDEF0123456789ABCDEF01234567=a1": "0123456789ABCDEF0123456789ABCDEF01234567",
		"0123456789ABCDEF0123456789ABCDEF01234567":     "0123456789ABCDEF0123456789ABCDEF01234567",
		"UNKNOWN": "",
	} {
		if got := normHSDir(in); got != want {
			t.Errorf("normHSDir(%q) = %q, want %q", in, got, want)
		}
	}
	if validHSDir("0123") || !validHSDir("0123456789ABCDEF0123456789ABCDEF01234567") {
		t.Error("validHSDir")
	}
}

func TestFrontendValidation(t *testing.T) {
	k, _ := GenerateKey()
	for name, cfg := range map[string]ListenConfig{
		"not_an_address": {Frontend: "example.com"},
		"own_address":    {Key: k, Frontend: k.Address()},
	} {
		if err := cfg.validate(); err == nil {
			t.Errorf("%s: validate accepted Frontend %q", name, cfg.Frontend)
		}
	}
	other, _ := GenerateKey()
	cfg := ListenConfig{Key: k, Frontend: strings.ToUpper(other.ServiceID())}
	if err := cfg.validate(); err != nil || !cfg.configured() {
		t.Fatalf("validate = %v, configured = %v", err, cfg.configured())
	}
}

// An instance service (ListenConfig.Frontend) answers connections made
// with a descriptor of the frontend's key that lists its introduction
// points: the descriptor is fetched with FetchDescriptor, rebuilt with
// package hsdesc, uploaded with PostDescriptor, and reached through tor.
// Also: tor's answers to a duplicate upload (the HSDir rejects it) and to
// garbage (tor rejects it), GetInfo and GetConf.
func TestInstanceFetchPost(t *testing.T) {
	n := network(t)
	backend := newTestServer(t, n)
	client := newTestServer(t, n)
	front, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	l, err := backend.Listen(t.Context(), ListenConfig{Frontend: front.Address()})
	if err != nil {
		t.Fatal(err)
	}
	serve(t, l, "instance")
	conf, err := os.ReadFile(filepath.Join(l.hsDir, "ob_config"))
	if err != nil || string(conf) != "MasterOnionAddress "+front.Address()+"\n" {
		t.Fatalf("ob_config = %q, %v", conf, err)
	}
	if opts := hsOptions(t, backend); !strings.Contains(opts, "HiddenServiceOnionBalanceInstance=1") {
		t.Fatalf("HiddenServiceOptions:\n%s", opts)
	}

	waitBootstrap(t, client)
	info, err := client.GetInfo(t.Context(), "consensus/valid-after", "version")
	if err != nil || info["consensus/valid-after"] == "" || info["version"] == "" {
		t.Fatalf("GetInfo = %v, %v", info, err)
	}
	if _, err := client.GetInfo(t.Context(), "no/such/key"); err == nil {
		t.Fatal("GetInfo of an unknown key succeeded")
	}
	if v, err := client.GetConf(t.Context(), "TestingTorNetwork"); err != nil || len(v) != 1 || v[0] != "1" {
		t.Fatalf("GetConf(TestingTorNetwork) = %v, %v", v, err)
	}

	// The backend's own descriptor, as tor's HSDirs serve it.
	var text, from string
	deadline := time.Now().Add(90 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		text, from, err = client.FetchDescriptor(ctx, l.Onion(), "")
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("FetchDescriptor: %v", err)
		}
		t.Logf("FetchDescriptor: %v", err)
		time.Sleep(time.Second)
	}
	if !validHSDir(from) {
		t.Fatalf("FetchDescriptor from %q", from)
	}
	d, err := hsdesc.Parse(text, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.Decrypt(l.key.public[:], time.Now(), hsdesc.Period{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.IntroPoints) == 0 {
		t.Fatal("backend descriptor without introduction points")
	}
	// The same HSDir again, by fingerprint.
	if _, from2, err := client.FetchDescriptor(t.Context(), l.Onion(), from); err != nil || from2 != from {
		t.Fatalf("FetchDescriptor from %s = %s, %v", from, from2, err)
	}

	// The frontend's descriptor for the current time period, listing the
	// backend's introduction points, uploaded to that HSDir.
	va, err := time.Parse(time.DateTime, info["consensus/valid-after"])
	if err != nil {
		t.Fatal(err)
	}
	sched := hsdesc.NetworkPeriod(10*time.Second, true, 0) // oniontest votes every 10 s
	fk, err := hsdesc.NewSigningKey(front.expanded[:])
	if err != nil {
		t.Fatal(err)
	}
	rev := uint64(time.Now().UnixMilli())
	desc, err := hsdesc.Build(&hsdesc.Spec{Identity: fk, Period: sched.Num(va), Schedule: sched, RevisionCounter: rev,
		Content: hsdesc.Content{FlowControl: c.FlowControl, IntroPoints: c.IntroPoints}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := client.PostDescriptor(ctx, front.Address(), desc, from); err != nil {
		t.Fatalf("PostDescriptor: %v", err)
	}
	// The same revision again: the HSDir keeps the copy it has.
	err = client.PostDescriptor(ctx, front.Address(), desc, from)
	if !errors.Is(err, ErrDescriptorRejected) || !strings.Contains(err.Error(), "UPLOAD_REJECTED") {
		t.Fatalf("duplicate PostDescriptor = %v, want the HSDir's UPLOAD_REJECTED", err)
	}
	t.Logf("duplicate upload: %v", err)
	err = client.PostDescriptor(ctx, front.Address(), "hs-descriptor 3\nnonsense\n", from)
	if !errors.Is(err, ErrDescriptorRejected) {
		t.Fatalf("garbage PostDescriptor = %v, want ErrDescriptorRejected", err)
	}
	t.Logf("garbage upload: %v", err)

	// The client fetches the frontend's descriptor from that HSDir and
	// reaches the backend through it.
	got, _, err := client.FetchDescriptor(ctx, front.Address(), from)
	if err != nil {
		t.Fatal(err)
	}
	if gd, err := hsdesc.Parse(got, time.Now()); err != nil || gd.RevisionCounter != rev {
		t.Fatalf("fetched frontend descriptor: %v", err)
	}
	var body string
	for attempt := 1; ; attempt++ {
		body, _, err = fetchVia(ctx, client.Dialer(), front.Address())
		if err == nil || attempt == 5 {
			break
		}
		t.Logf("fetch through the frontend, attempt %d: %v", attempt, err)
	}
	if err != nil || body != "instance" {
		t.Fatalf("fetch through the frontend: %q, %v", body, err)
	}
}

// fetchVia GETs http://addr/ through d on a fresh circuit.
func fetchVia(ctx context.Context, d *Dialer, addr string) (string, string, error) {
	tag := NewIsolationTag()
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

// waitBootstrap waits until s's tor has bootstrapped (GetInfo
// status/bootstrap-phase).
func waitBootstrap(t *testing.T, s *Server) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		info, err := s.GetInfo(t.Context(), "status/bootstrap-phase")
		if err == nil && strings.Contains(info["status/bootstrap-phase"], "PROGRESS=100") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tor did not bootstrap: %v %v", info, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
