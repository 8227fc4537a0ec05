package purge

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/cache"
)

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// run starts f until the test ends.
func run(t *testing.T, f *Follower) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// TestFollowChain: origin Log → midtier Follower → edge Follower, over
// HTTP: an appended purge reaches both caches, in order, and the edge
// re-serves nothing (it is not asked to).
func TestFollowChain(t *testing.T) {
	key, keys := testKey(t, 1)
	l := &Log{Key: key}
	origin := httptest.NewServer(l)
	t.Cleanup(origin.Close)
	t.Cleanup(func() { l.Close() })
	midCache, edgeCache := &cache.Cache{}, &cache.Cache{}
	var mu sync.Mutex
	var applied []uint64
	mid := &Follower{Cache: midCache, Transport: http.DefaultTransport, URL: origin.URL, Keys: keys, Wait: 5 * time.Second}
	midSrv := httptest.NewServer(mid)
	t.Cleanup(midSrv.Close)
	edge := &Follower{Cache: edgeCache, Transport: http.DefaultTransport, URL: midSrv.URL, Keys: keys, Wait: 5 * time.Second,
		OnApply: func(e Entry, _ time.Time) { mu.Lock(); applied = append(applied, e.Seq); mu.Unlock() }}
	run(t, mid)
	run(t, edge)
	purges := []cache.Purge{
		{Kind: cache.PurgeURL, Value: "/a"},
		{Kind: cache.PurgeTag, Value: "news", Soft: true},
		{Kind: cache.PurgePrefix, Value: "/video/"},
	}
	for _, p := range purges {
		if _, err := l.Append(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitFor(t, "the edge to apply 3 entries", func() bool { _, s := edge.Position(); return s == 3 })
	if log, seq := mid.Position(); seq != 3 || log != l.Stats().Log {
		t.Fatalf("midtier at %d/%d", log, seq)
	}
	for _, c := range []*cache.Cache{midCache, edgeCache} {
		if st := c.Stats(); st.Purges != 3 {
			t.Fatalf("cache applied %d purges, want 3", st.Purges)
		}
	}
	mu.Lock()
	if len(applied) != 3 || applied[0] != 1 || applied[2] != 3 {
		t.Fatalf("edge applied %v", applied)
	}
	mu.Unlock()
	st := edge.Stats()
	if st.Applied != 3 || st.Received != 3 || st.Resyncs != 0 || st.Polls == 0 {
		t.Fatalf("edge stats %+v", st)
	}
	var n uint64
	for _, c := range st.Lag.Counts {
		n += c
	}
	if n != 3 {
		t.Fatalf("lag histogram counts %d, want 3", n)
	}
}

// scripted is an upstream serving prepared feeds one after another, then
// empty ones; it records the positions asked for.
type scripted struct {
	mu     sync.Mutex
	feeds  [][]string
	asked  []string // "log/after"
	served chan struct{}
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.asked = append(s.asked, r.URL.Query().Get("log")+"/"+r.URL.Query().Get("after"))
	var f feedJSON
	if len(s.feeds) > 0 {
		f.Entries, s.feeds = s.feeds[0], s.feeds[1:]
	} else {
		f.Entries = []string{}
	}
	s.mu.Unlock()
	if len(f.Entries) == 0 {
		time.Sleep(20 * time.Millisecond)
	}
	json.NewEncoder(w).Encode(f)
	select {
	case s.served <- struct{}{}:
	default:
	}
}

func (s *scripted) push(entries ...string) {
	s.mu.Lock()
	s.feeds = append(s.feeds, entries)
	s.mu.Unlock()
}

func (s *scripted) pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.feeds)
}

func entry(t *testing.T, key ed25519.PrivateKey, log, seq uint64, p cache.Purge) string {
	return mustSign(t, key, Entry{Log: log, Seq: seq, Time: time.Now(), Purge: p})
}

// TestFollowerRefuses: a tier above that forges, replays, reorders or
// serves a superseded log changes nothing in the cache; every refusal is
// counted by reason. Missing entries and a new log cause a resync (a soft
// purge of everything).
func TestFollowerRefuses(t *testing.T) {
	key, keys := testKey(t, 1)
	other, _ := testKey(t, 2)
	up := &scripted{served: make(chan struct{}, 1)}
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	c := &cache.Cache{}
	f := &Follower{Cache: c, Transport: http.DefaultTransport, URL: srv.URL, Keys: keys, Retry: time.Millisecond}
	all := cache.Purge{Kind: cache.PurgeAll}
	u := func(s string) cache.Purge { return cache.Purge{Kind: cache.PurgeURL, Value: s} }

	forged := entry(t, other, 10, 1, all)
	up.push(forged)                                                       // unknown key
	up.push(entry(t, key, 10, 1, u("/1")), entry(t, key, 10, 2, u("/2"))) // applied
	up.push(entry(t, key, 10, 2, u("/2")))                                // replay
	up.push(entry(t, key, 9, 3, all))                                     // superseded log
	up.push(entry(t, key, 10, 5, u("/5")))                                // gap: resync, then applied
	up.push(entry(t, key, 11, 1, u("/new")))                              // new log: resync, then applied
	up.push(entry(t, key, 11, 2, u("/x"))[:40] + "." + "AAAA")            // malformed
	run(t, f)
	waitFor(t, "the script to be served", func() bool { return up.pending() == 0 })
	waitFor(t, "the last entry", func() bool { _, s := f.Position(); return s == 1 })
	time.Sleep(50 * time.Millisecond)
	st := f.Stats()
	want := map[Reason]uint64{ReasonUnknownKey: 1, ReasonReplay: 1, ReasonStaleLog: 1, ReasonMalformed: 1}
	for _, r := range Reasons {
		if st.Rejected[r] != want[r] {
			t.Errorf("rejected %s: %d, want %d", r, st.Rejected[r], want[r])
		}
	}
	if st.Applied != 4 || st.Resyncs != 2 {
		t.Errorf("applied %d (want 4), resyncs %d (want 2)", st.Applied, st.Resyncs)
	}
	// 4 entries and 2 resyncs reached the cache; nothing else.
	if cs := c.Stats(); cs.Purges != 6 {
		t.Errorf("cache applied %d purges, want 6", cs.Purges)
	}
	if log, seq := f.Position(); log != 11 || seq != 1 {
		t.Errorf("position %d/%d, want 11/1", log, seq)
	}
}

// TestFollowerStateFile: a restarted follower resumes from its last entry
// (no resync), serves the entries it applied to the tiers below, and
// starts afresh from a damaged state file.
func TestFollowerStateFile(t *testing.T) {
	key, keys := testKey(t, 1)
	state := filepath.Join(t.TempDir(), "state")
	up := &scripted{served: make(chan struct{}, 1)}
	up.push(entry(t, key, 7, 1, cache.Purge{Kind: cache.PurgeTag, Value: "a"}), entry(t, key, 7, 2, cache.Purge{Kind: cache.PurgeTag, Value: "b"}))
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	newFollower := func() *Follower {
		return &Follower{Cache: &cache.Cache{}, Transport: http.DefaultTransport, URL: srv.URL, Keys: keys, StateFile: state}
	}
	f1 := newFollower()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- f1.Run(ctx) }()
	waitFor(t, "two entries", func() bool { _, s := f1.Position(); return s == 2 })
	cancel()
	<-done

	f2 := newFollower()
	if log, seq := f2.Position(); log != 0 || seq != 0 {
		t.Fatalf("position before init %d/%d", log, seq)
	}
	below := httptest.NewServer(f2)
	t.Cleanup(below.Close)
	fd := getFeed(t, below.URL+"?after=0")
	if fd.Log != 7 || len(fd.Entries) != 2 {
		t.Fatalf("restarted follower serves %+v, want log 7's 2 entries", fd)
	}
	up.mu.Lock()
	up.asked = nil
	up.mu.Unlock()
	run(t, f2)
	var asked string
	waitFor(t, "a poll", func() bool {
		up.mu.Lock()
		defer up.mu.Unlock()
		if len(up.asked) > 0 {
			asked = up.asked[0]
		}
		return asked != ""
	})
	if asked != "7/2" {
		t.Fatalf("restarted follower asked for %q, want 7/2", asked)
	}
	if st := f2.Stats(); st.Resyncs != 0 || st.Seq != 2 {
		t.Fatalf("stats %+v", st)
	}

	if err := os.WriteFile(state, []byte(`{"log":7,"seq":2,"entries":["forged.AAAA"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	f3 := newFollower()
	if f3.Stats().Seq != 0 {
		t.Fatal("a state file with an invalid entry was trusted")
	}
}

func TestFollowerConfig(t *testing.T) {
	_, keys := testKey(t, 1)
	for _, f := range []*Follower{
		{Transport: http.DefaultTransport, Keys: keys},
		{Cache: &cache.Cache{}, Keys: keys},
		{Cache: &cache.Cache{}, Transport: http.DefaultTransport},
	} {
		if err := f.Run(t.Context()); err == nil {
			t.Errorf("Run of %+v succeeded", f)
		}
		rec := httptest.NewRecorder()
		f.ServeHTTP(rec, httptest.NewRequest("GET", DefaultPath, nil))
		if rec.Code != http.StatusServiceUnavailable {
			t.Errorf("ServeHTTP of an unconfigured follower: %d", rec.Code)
		}
	}
	f := &Follower{Cache: &cache.Cache{}, Transport: http.DefaultTransport, Keys: keys}
	rec := httptest.NewRecorder()
	f.ServeHTTP(rec, httptest.NewRequest("POST", DefaultPath, nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST to a follower: %d", rec.Code)
	}
}
