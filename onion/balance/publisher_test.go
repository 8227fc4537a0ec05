package balance

import (
	"crypto/sha512"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/onion"
	"github.com/onioncdn/onioncdn/onion/hsdesc"
)

func sha512Expand(seed []byte) []byte {
	h := sha512.Sum512(seed)
	h[0] &= 248
	h[31] &= 127
	h[31] |= 64
	return h[:]
}

func testLogger(t testing.TB) *slog.Logger { return testLoggerLevel(t, slog.LevelInfo) }

func testLoggerLevel(t testing.TB, l slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: l}))
}

// fastPublisher returns a Publisher on f with short intervals.
func fastPublisher(t testing.TB, f *fakeNet, key *onion.Key, backends []string) *Publisher {
	t.Helper()
	p := &Publisher{
		Key: key, Backends: backends, Logger: testLogger(t),
		FetchInterval: time.Second, ProbeInterval: 200 * time.Millisecond, ProbeTimeout: time.Second,
		MinUploadInterval: 300 * time.Millisecond, ObserveInterval: 300 * time.Millisecond,
		UploadTimeout: 5 * time.Second,
	}
	p.tor = f
	t.Cleanup(func() { p.Close() })
	return p
}

// eventually polls cond until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

func allReached(pub map[string][]string, want []string) bool {
	seen := map[string]bool{}
	for _, bs := range pub {
		for _, b := range bs {
			seen[b] = true
		}
	}
	for _, w := range want {
		if !seen[w] {
			return false
		}
	}
	return len(seen) == len(want)
}

func TestPublisherMergesAndDropsDeadBackend(t *testing.T) {
	f := newFakeNet(t, 5)
	key, _ := onion.GenerateKey()
	var backends []string
	for range 3 {
		backends = append(backends, f.addBackend(t, 3))
	}
	p := fastPublisher(t, f, key, backends)
	if err := p.Up(t.Context()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "every backend in every HSDir's descriptor", func() bool {
		pub := f.published(t, key)
		if len(pub) != 5 {
			return false
		}
		for _, bs := range pub {
			if len(bs) != 3 {
				return false
			}
		}
		return true
	})
	s := p.Stats()
	if s.BackendsUp != 3 || s.Reached != 3 || s.IntroPoints != 9 || s.Variants != 5 || !s.Active || s.UploadRejected != 0 {
		t.Fatalf("stats %+v", s)
	}
	f.setAlive(backends[1], false)
	d := eventually(t, 10*time.Second, "dead backend gone from every descriptor", func() bool {
		for _, bs := range f.published(t, key) {
			if slices.Contains(bs, backends[1]) || len(bs) != 2 {
				return false
			}
		}
		return true
	})
	t.Logf("dead backend dropped after %v", d)
	st := p.Status()
	if len(st) != 3 || st[slices.IndexFunc(st, func(b BackendStatus) bool { return b.Address == backends[1] })].Up {
		t.Fatalf("status %+v", st)
	}
	// It comes back.
	f.setAlive(backends[1], true)
	eventually(t, 10*time.Second, "backend back", func() bool { return allReached(f.published(t, key), backends) })
	// A new backend appears.
	added := f.addBackend(t, 2)
	if err := p.SetBackends(append(slices.Clone(backends), added)...); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "new backend published", func() bool {
		return allReached(f.published(t, key), append(slices.Clone(backends), added))
	})
	if r := p.Stats().UploadRejected; r != 0 || f.rejectedCount() != 0 {
		t.Fatalf("%d uploads rejected (fake HSDirs: %d)", r, f.rejectedCount())
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	if err := p.SetBackends(backends...); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("SetBackends after Close: %v", err)
	}
}

// With fewer introduction points per descriptor than backends, different
// HSDirs get different descriptors and together list every backend.
func TestPublisherSpreadsOverHSDirs(t *testing.T) {
	f := newFakeNet(t, 5)
	key, _ := onion.GenerateKey()
	var backends []string
	for range 12 {
		backends = append(backends, f.addBackend(t, 1))
	}
	p := fastPublisher(t, f, key, backends)
	p.MaxIntroPoints = 3
	if err := p.Up(t.Context()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "all 12 backends over 5 descriptors of 3", func() bool {
		pub := f.published(t, key)
		if len(pub) != 5 {
			return false
		}
		for _, bs := range pub {
			if len(bs) != 3 {
				return false
			}
		}
		return allReached(pub, backends)
	})
	if s := p.Stats(); s.Reached != 12 || s.Variants != 5 {
		t.Fatalf("stats %+v", s)
	}
	// 16 backends exceed 5 × 3: only 15 can be reached.
	for range 4 {
		backends = append(backends, f.addBackend(t, 1))
	}
	if err := p.SetBackends(backends...); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "15 of 16 reached", func() bool { return p.Stats().Reached == 15 })
}

// Bad backend descriptors are skipped, counted by cause and logged; the
// good backends stay published.
func TestPublisherSkipsBadDescriptors(t *testing.T) {
	f := newFakeNet(t, 5)
	key, _ := onion.GenerateKey()
	good := f.addBackend(t, 3)
	other := f.backends[f.addBackend(t, 1)] // a stranger, for "wrong key"
	bad := map[string]func(b *fakeBackend, now time.Time) string{
		"malformed": func(*fakeBackend, time.Time) string { return "hs-descriptor 3\nthis is not a descriptor\n" },
		"expired": func(b *fakeBackend, now time.Time) string {
			d, _ := hsdesc.Build(&hsdesc.Spec{Identity: b.key, Period: f.tp(), Schedule: f.sched, Now: now.Add(-60 * time.Hour),
				Content: hsdesc.Content{IntroPoints: b.intros}})
			return d
		},
		"wrong_period": func(b *fakeBackend, now time.Time) string {
			d, _ := hsdesc.Build(&hsdesc.Spec{Identity: b.key, Period: f.tp() + 5, Schedule: f.sched, Now: now,
				Content: hsdesc.Content{IntroPoints: b.intros}})
			return d
		},
		"wrong_key": func(b *fakeBackend, now time.Time) string {
			d, _ := hsdesc.Build(&hsdesc.Spec{Identity: other.key, Period: f.tp(), Schedule: f.sched, Now: now,
				Content: hsdesc.Content{IntroPoints: b.intros}})
			return d
		},
		"bad_signature": func(b *fakeBackend, now time.Time) string {
			d, _ := hsdesc.Build(&hsdesc.Spec{Identity: b.key, Period: f.tp(), Schedule: f.sched, RevisionCounter: 7, Now: now,
				Content: hsdesc.Content{IntroPoints: b.intros}})
			return strings.Replace(d, "revision-counter 7", "revision-counter 8", 1)
		},
	}
	backends := []string{good}
	for name, mk := range bad {
		a := f.addBackend(t, 2)
		f.backends[a].desc = func(now time.Time) string { return mk(f.backends[a], now) }
		backends = append(backends, a)
		t.Logf("%s: %s", name, a)
	}
	logs := &lockedWriter{w: &strings.Builder{}}
	p := fastPublisher(t, f, key, backends)
	p.Logger = slog.New(slog.NewTextHandler(logs, nil))
	if err := p.Up(t.Context()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "every cause counted", func() bool {
		r := p.Stats().Rejected
		return r.Malformed > 0 && r.Expired > 0 && r.WrongPeriod > 0 && r.WrongKey > 0 && r.BadSignature > 0
	})
	for _, bs := range f.published(t, key) {
		if len(bs) != 1 || bs[0] != good {
			t.Fatalf("published backends %v, want only %s", bs, good)
		}
	}
	lw := logs.String()
	for cause := range bad {
		if !strings.Contains(lw, `msg="backend descriptor skipped"`) || !strings.Contains(lw, "cause="+cause) {
			t.Errorf("no log line for cause %s", cause)
		}
	}
	if s := p.Stats(); s.UploadRejected != 0 || s.Reached != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// Two publishers of one group: the standby uploads nothing while the
// primary keeps the descriptors current, takes over when the primary is
// gone and the view changes, and neither ever has an upload rejected.
func TestStandbyTakesOver(t *testing.T) {
	f := newFakeNet(t, 5)
	key, _ := onion.GenerateKey()
	var backends []string
	for range 3 {
		backends = append(backends, f.addBackend(t, 3))
	}
	primary := fastPublisher(t, f, key, backends)
	standby := fastPublisher(t, f, key, backends)
	standby.TakeoverDelay = time.Second
	if err := primary.Up(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := standby.Up(t.Context()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	if s := standby.Stats(); s.Active || s.UploadRounds != 0 || s.Takeovers != 0 || s.Observations == 0 {
		t.Fatalf("standby while the primary works: %+v", s)
	}
	// The primary dies; then a backend dies.
	primary.Close()
	f.setAlive(backends[0], false)
	d := eventually(t, 15*time.Second, "standby drops the dead backend", func() bool {
		pub := f.published(t, key)
		for _, bs := range pub {
			if slices.Contains(bs, backends[0]) {
				return false
			}
		}
		return len(pub) == 5
	})
	t.Logf("standby took over and dropped the dead backend after %v", d)
	if s := standby.Stats(); !s.Active || s.Takeovers != 1 || s.UploadRejected != 0 || f.rejectedCount() != 0 {
		t.Fatalf("standby after takeover: %+v (fake rejections %d)", s, f.rejectedCount())
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestPublisherConfigErrors(t *testing.T) {
	key, _ := onion.GenerateKey()
	for name, p := range map[string]*Publisher{
		"no_server":   {Key: key},
		"no_key":      {Server: &onion.Server{}},
		"bad_backend": {Server: &onion.Server{}, Key: key, Backends: []string{"example.com"}},
		"intros_21":   {Server: &onion.Server{}, Key: key, MaxIntroPoints: 21},
		"negative":    {Server: &onion.Server{}, Key: key, ProbeInterval: -1},
		"lifetime":    {Server: &onion.Server{}, Key: key, Lifetime: 13 * time.Hour},
		"own_address": {Server: &onion.Server{}, Key: key, Backends: []string{key.Address()}},
	} {
		if err := p.Start(); err == nil || !strings.HasPrefix(err.Error(), "balance: ") {
			t.Errorf("%s: Start = %v", name, err)
		}
		p.Close()
	}
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}
