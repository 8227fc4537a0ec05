package balance

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/onion"
	"github.com/onioncdn/onioncdn/onion/hsdesc"
)

// fakeNet is a Tor network in memory for unit tests: a consensus with a
// few HSDirs that store what is posted to them under tor's rules (the
// revision counter must grow), backends whose descriptors hsdesc builds,
// and dials that succeed for live backends only.
type fakeNet struct {
	mu       sync.Mutex
	hsdirs   []hsdesc.HSDir
	stored   map[string]map[string]string // hsdir → blinded key → descriptor
	revs     map[string]map[string]uint64
	backends map[string]*fakeBackend // by address
	sched    hsdesc.Period
	va       time.Time
	posts    int
	rejected int
}

type fakeBackend struct {
	key    *hsdesc.SigningKey
	intros []hsdesc.IntroPoint
	alive  bool
	// desc, if set, is returned instead of a built descriptor.
	desc func(now time.Time) string
}

func newFakeNet(t testing.TB, nHSDirs int) *fakeNet {
	t.Helper()
	f := &fakeNet{
		stored: map[string]map[string]string{}, revs: map[string]map[string]uint64{},
		backends: map[string]*fakeBackend{}, sched: hsdesc.NetworkPeriod(10*time.Second, true, 0),
		va: time.Now().Truncate(10 * time.Second),
	}
	for range nHSDirs {
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		fpr := make([]byte, 20)
		rand.Read(fpr)
		f.hsdirs = append(f.hsdirs, hsdesc.HSDir{Fingerprint: strings.ToUpper(hex.EncodeToString(fpr)), Identity: pub})
	}
	return f
}

func fakeIntro() hsdesc.IntroPoint {
	r := func(n int) []byte {
		b := make([]byte, n)
		rand.Read(b)
		return b
	}
	ls := append([]byte{2, 2, 20}, r(20)...)
	ls = append(append(ls, 3, 32), r(32)...)
	auth, _, _ := ed25519.GenerateKey(rand.Reader)
	return hsdesc.IntroPoint{LinkSpecifiers: ls, OnionKey: r(32), AuthKey: auth, EncKey: r(32)}
}

// addBackend adds a live backend with n introduction points and returns
// its address.
func (f *fakeNet) addBackend(t testing.TB, n int) string {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	h := sha512Expand(priv.Seed())
	k, err := hsdesc.NewSigningKey(h)
	if err != nil {
		t.Fatal(err)
	}
	b := &fakeBackend{key: k, alive: true}
	for range n {
		b.intros = append(b.intros, fakeIntro())
	}
	addr := hsdesc.Address(k.Public())
	f.mu.Lock()
	f.backends[addr] = b
	f.mu.Unlock()
	return addr
}

func (f *fakeNet) setAlive(addr string, alive bool) {
	f.mu.Lock()
	f.backends[addr].alive = alive
	f.mu.Unlock()
}

func (f *fakeNet) tp() uint64 { return f.sched.Num(f.va) }

// backendDesc builds a backend's descriptor for the current period.
func (f *fakeNet) backendDesc(b *fakeBackend, now time.Time) (string, error) {
	if b.desc != nil {
		return b.desc(now), nil
	}
	return hsdesc.Build(&hsdesc.Spec{Identity: b.key, Period: f.tp(), Schedule: f.sched, RevisionCounter: 1, Now: now,
		Content: hsdesc.Content{FlowControl: "1-2 31", IntroPoints: b.intros}})
}

func (f *fakeNet) FetchDescriptor(ctx context.Context, addr, hsdir string) (string, string, error) {
	a, err := onion.ParseAddress(addr)
	if err != nil {
		return "", "", err
	}
	f.mu.Lock()
	b := f.backends[a]
	f.mu.Unlock()
	if b != nil {
		d, err := f.backendDesc(b, time.Now())
		return d, hsdir, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	id, _ := hsdesc.ParseAddress(a)
	blinded, _ := hsdesc.BlindPublicKey(id, f.tp(), f.sched)
	if d, ok := f.stored[hsdir][string(blinded)]; ok {
		return d, hsdir, nil
	}
	return "", hsdir, fmt.Errorf("onion: HSFETCH: no descriptor (NOT_FOUND)")
}

func (f *fakeNet) PostDescriptor(ctx context.Context, addr, desc, hsdir string) error {
	d, err := hsdesc.Parse(desc, time.Now())
	f.mu.Lock()
	defer f.mu.Unlock()
	f.posts++
	if err != nil {
		f.rejected++
		return fmt.Errorf("%w by tor: %v", onion.ErrDescriptorRejected, err)
	}
	k := string(d.BlindedKey)
	if f.revs[hsdir] == nil {
		f.revs[hsdir], f.stored[hsdir] = map[string]uint64{}, map[string]string{}
	}
	if old, ok := f.revs[hsdir][k]; ok && old >= d.RevisionCounter {
		f.rejected++
		return fmt.Errorf("%w by the HSDir: UPLOAD_REJECTED", onion.ErrDescriptorRejected)
	}
	f.revs[hsdir][k], f.stored[hsdir][k] = d.RevisionCounter, desc
	return nil
}

func (f *fakeNet) GetInfo(ctx context.Context, keys ...string) (map[string]string, error) {
	out := map[string]string{}
	for _, k := range keys {
		switch {
		case k == "consensus/valid-after":
			out[k] = f.va.UTC().Format(time.DateTime)
		case k == "dir/status-vote/current/consensus-microdesc":
			out[k] = f.consensusText()
		case strings.HasPrefix(k, "md/id/"):
			for _, d := range f.hsdirs {
				if d.Fingerprint == k[len("md/id/"):] {
					out[k] = "onion-key\nntor-onion-key AAAA\nid ed25519 " + base64.RawStdEncoding.EncodeToString(d.Identity) + "\n"
				}
			}
			if out[k] == "" {
				return nil, errors.New("552 unrecognized key")
			}
		default:
			return nil, fmt.Errorf("fake: no GETINFO %s", k)
		}
	}
	return out, nil
}

func (f *fakeNet) consensusText() string {
	var b strings.Builder
	va := f.va.UTC()
	fmt.Fprintf(&b, "network-status-version 3 microdesc\nvote-status consensus\nvalid-after %s\nfresh-until %s\nvalid-until %s\n",
		va.Format(time.DateTime), va.Add(10*time.Second).Format(time.DateTime), va.Add(30*time.Second).Format(time.DateTime))
	b.WriteString("params hsdir_spread_store=4\n")
	fmt.Fprintf(&b, "shared-rand-previous-value 5 %s\n", base64.StdEncoding.EncodeToString(make([]byte, 32)))
	for i, d := range f.hsdirs {
		id, _ := hex.DecodeString(d.Fingerprint)
		fmt.Fprintf(&b, "r a%d %s 2026-01-01 00:00:00 127.0.0.1 %d 0\n", i, base64.RawStdEncoding.EncodeToString(id), 5000+i)
		fmt.Fprintf(&b, "m digest%d\ns Fast Guard HSDir Running Stable V2Dir Valid\nv Tor 0.4.9.11\npr Cons=1-2 Desc=1-2 HSDir=2 HSIntro=4-5 Relay=1-4\n", i)
	}
	b.WriteString("directory-footer\n")
	return b.String()
}

func (f *fakeNet) GetConf(ctx context.Context, key string) ([]string, error) {
	if key == "TestingTorNetwork" {
		return []string{"1"}, nil
	}
	return nil, fmt.Errorf("fake: no GETCONF %s", key)
}

func (f *fakeNet) Dial(ctx context.Context, addr string) (net.Conn, error) {
	host, _, _ := net.SplitHostPort(addr)
	f.mu.Lock()
	b := f.backends[host]
	alive := b != nil && b.alive // read under the lock: setAlive writes it
	f.mu.Unlock()
	if !alive {
		return nil, errors.New("onion: SOCKS: onion service introduction failed")
	}
	c1, c2 := net.Pipe()
	c2.Close()
	return c1, nil
}

// published returns, per HSDir, the backends whose introduction points the
// group's current descriptor there lists (decrypted with the group's key).
func (f *fakeNet) published(t testing.TB, group *onion.Key) map[string][]string {
	t.Helper()
	id, _ := hsdesc.ParseAddress(group.Address())
	blinded, _ := hsdesc.BlindPublicKey(id, f.tp(), f.sched)
	f.mu.Lock()
	defer f.mu.Unlock()
	owner := map[string]string{}
	for a, b := range f.backends {
		for _, ip := range b.intros {
			owner[string(ip.AuthKey)] = a
		}
	}
	out := map[string][]string{}
	for _, d := range f.hsdirs {
		text, ok := f.stored[d.Fingerprint][string(blinded)]
		if !ok {
			continue
		}
		pd, err := hsdesc.Parse(text, time.Now())
		if err != nil {
			t.Fatalf("stored descriptor: %v", err)
		}
		c, err := pd.Decrypt(id, time.Now(), f.sched, f.tp())
		if err != nil {
			t.Fatalf("stored descriptor: %v", err)
		}
		seen := map[string]bool{}
		for _, ip := range c.IntroPoints {
			if a := owner[string(ip.AuthKey)]; a != "" && !seen[a] {
				seen[a] = true
				out[d.Fingerprint] = append(out[d.Fingerprint], a)
			}
		}
	}
	return out
}

func (f *fakeNet) rejectedCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rejected
}
