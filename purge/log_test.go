package purge

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/cache"
)

func getFeed(t *testing.T, url string) feedJSON {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("feed: %s, Cache-Control %q", resp.Status, resp.Header.Get("Cache-Control"))
	}
	var f feedJSON
	if err := json.NewDecoder(resp.Body).Decode(&f); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestLogAppendAndFeed(t *testing.T) {
	key, keys := testKey(t, 1)
	l := &Log{Key: key}
	srv := httptest.NewServer(l)
	defer srv.Close()
	defer l.Close()
	for _, p := range []cache.Purge{{Kind: cache.PurgeURL, Value: "/a"}, {Kind: cache.PurgeTag, Value: "t", Soft: true}} {
		if _, err := l.Append(t.Context(), p); err != nil {
			t.Fatal(err)
		}
	}
	f := getFeed(t, srv.URL+"?after=0")
	if len(f.Entries) != 2 || f.First != 1 || f.Last != 2 {
		t.Fatalf("feed %+v", f)
	}
	for i, raw := range f.Entries {
		e, err := ParseEntry(raw, keys)
		if err != nil || e.Seq != uint64(i+1) || e.Log != f.Log {
			t.Fatalf("entry %d: %+v, %v", i, e, err)
		}
	}
	f = getFeed(t, srv.URL+"?log="+itoa(f.Log)+"&after=1")
	if len(f.Entries) != 1 {
		t.Fatalf("after 1: %d entries", len(f.Entries))
	}
	// Another log's position: the whole window.
	if f := getFeed(t, srv.URL+"?log=5&after=2"); len(f.Entries) != 2 {
		t.Fatalf("position in another log: %d entries, want the whole window", len(f.Entries))
	}
	// An invalid purge is refused by Append.
	if _, err := l.Append(t.Context(), cache.Purge{Kind: cache.PurgePrefix, Value: "/x/*"}); err == nil {
		t.Fatal("Append accepted a pattern prefix")
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

// TestLogLongPoll: a GET waiting for an entry returns as soon as one is
// appended, and one finding none returns after its wait.
func TestLogLongPoll(t *testing.T) {
	key, _ := testKey(t, 1)
	l := &Log{Key: key}
	srv := httptest.NewServer(l)
	defer srv.Close()
	start := time.Now()
	if f := getFeed(t, srv.URL+"?after=0&wait=0.2"); len(f.Entries) != 0 || time.Since(start) < 200*time.Millisecond {
		t.Fatalf("empty poll: %+v after %v", f, time.Since(start))
	}
	got := make(chan feedJSON, 1)
	go func() { got <- getFeed(t, srv.URL+"?after=0&wait=20") }()
	time.Sleep(100 * time.Millisecond)
	start = time.Now()
	if _, err := l.Append(t.Context(), cache.Purge{Kind: cache.PurgeAll}); err != nil {
		t.Fatal(err)
	}
	select {
	case f := <-got:
		if len(f.Entries) != 1 {
			t.Fatalf("woken poll: %+v", f)
		}
		t.Logf("poll woken %v after the append", time.Since(start))
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting poll did not return on append")
	}
	// Close ends waiting polls.
	go func() { got <- getFeed(t, srv.URL+"?after=1&wait=20") }()
	time.Sleep(100 * time.Millisecond)
	l.Close()
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a waiting poll")
	}
	if _, err := l.Append(t.Context(), cache.Purge{Kind: cache.PurgeAll}); err == nil {
		t.Fatal("Append after Close succeeded")
	}
}

func postRaw(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestLogSubmit: signed requests are appended; forged, replayed, expired
// and malformed ones are refused with a status and a counter, and change
// nothing.
func TestLogSubmit(t *testing.T) {
	key, _ := testKey(t, 1)
	other, _ := testKey(t, 2)
	now := time.Now()
	l := &Log{Key: key, Now: func() time.Time { return now }}
	srv := httptest.NewServer(l)
	defer srv.Close()
	e, err := Submit(t.Context(), nil, srv.URL, key, cache.Purge{Kind: cache.PurgePrefix, Value: "/my video/", Soft: true})
	if err != nil {
		t.Fatal(err)
	}
	if e.Seq != 1 || e.Purge.Value != "/my%20video/" || !e.Purge.Soft {
		t.Fatalf("entry %+v", e)
	}
	valid, _ := signRequest(key, cache.Purge{Kind: cache.PurgeURL, Value: "/a"}, now, "nonce-0123456789abcdef")
	if code, _ := postRaw(t, srv.URL, valid); code != 200 {
		t.Fatalf("valid request: %d", code)
	}
	forged, _ := signRequest(other, cache.Purge{Kind: cache.PurgeAll}, now, "nonce-forged-0123456789")
	p, sg, _ := strings.Cut(valid, ".")
	payload, _ := b64.DecodeString(p)
	altered := b64.EncodeToString([]byte(strings.Replace(string(payload), `"/a"`, `"/b"`, 1))) + "." + sg
	old, _ := signRequest(key, cache.Purge{Kind: cache.PurgeAll}, now.Add(-time.Hour), "nonce-old-0123456789ab")
	for _, tc := range []struct {
		name, body string
		status     int
		reason     Reason
	}{
		{"replayed", valid, http.StatusConflict, ReasonReplay},
		{"other_key", forged, http.StatusForbidden, ReasonUnknownKey},
		{"altered", altered, http.StatusForbidden, ReasonBadSignature},
		{"expired", old, http.StatusConflict, ReasonExpired},
		{"garbage", "not a request", http.StatusBadRequest, ReasonMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := l.Stats()
			code, msg := postRaw(t, srv.URL, tc.body)
			if code != tc.status || !strings.Contains(msg, string(tc.reason)) {
				t.Fatalf("%d %q, want %d (%s)", code, msg, tc.status, tc.reason)
			}
			after := l.Stats()
			if after.Seq != before.Seq || after.Rejected[tc.reason] != before.Rejected[tc.reason]+1 {
				t.Fatalf("stats %+v → %+v", before, after)
			}
		})
	}
	// Submit with the wrong key fails with the log's refusal.
	if _, err := Submit(t.Context(), nil, srv.URL, other, cache.Purge{Kind: cache.PurgeAll}); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("Submit with another key: %v", err)
	}
	if st := l.Stats(); st.Seq != 2 || st.Appended != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// TestLogFile: a Log with a File keeps its id, entries and nonces across
// a restart; without one, a restarted log is a new log with a larger id.
func TestLogFile(t *testing.T) {
	key, keys := testKey(t, 1)
	file := filepath.Join(t.TempDir(), "log")
	now := time.Now()
	l1 := &Log{Key: key, File: file, Now: func() time.Time { return now }}
	req, _ := signRequest(key, cache.Purge{Kind: cache.PurgeURL, Value: "/a"}, now, "nonce-0123456789abcdef")
	if _, err := l1.submit(req); err != nil {
		t.Fatal(err)
	}
	if _, err := l1.Append(context.Background(), cache.Purge{Kind: cache.PurgeTag, Value: "x"}); err != nil {
		t.Fatal(err)
	}
	st1 := l1.Stats()
	l2 := &Log{Key: key, File: file, Now: func() time.Time { return now }}
	st2 := l2.Stats()
	if st2.Log != st1.Log || st2.Seq != 2 || st2.Entries != 2 {
		t.Fatalf("after restart %+v, before %+v", st2, st1)
	}
	if _, err := l2.submit(req); reasonOf(err) != ReasonReplay {
		t.Fatalf("request replayed after a restart: %v", err)
	}
	e, err := l2.Append(context.Background(), cache.Purge{Kind: cache.PurgeAll})
	if err != nil || e.Seq != 3 || e.Log != st1.Log {
		t.Fatalf("append after restart: %+v, %v", e, err)
	}
	if _, err := ParseEntry(l2.win.raw[0], keys); err != nil {
		t.Fatal(err)
	}
	l3 := &Log{Key: key, Now: func() time.Time { return now.Add(time.Second) }}
	if st := l3.Stats(); st.Log <= st1.Log || st.Seq != 0 {
		t.Fatalf("a log without a file: %+v, want a new log after %d", st, st1.Log)
	}
}
