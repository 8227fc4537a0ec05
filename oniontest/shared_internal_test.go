package oniontest

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// recordTB is a testing.TB that records Skip and Fatal instead of ending
// the test; like the real ones, they stop the calling goroutine.
type recordTB struct {
	testing.TB
	mu      sync.Mutex
	skipped bool
	failed  bool
	msg     string
}

func (r *recordTB) Helper()                   {}
func (r *recordTB) Log(...any)                {}
func (r *recordTB) Logf(string, ...any)       {}
func (r *recordTB) Skip(args ...any)          { r.end(&r.skipped, args...) }
func (r *recordTB) Fatal(args ...any)         { r.end(&r.failed, args...) }
func (r *recordTB) Fatalf(f string, a ...any) { r.end(&r.failed, fmtArgs(f, a...)) }

func fmtArgs(f string, a ...any) string { return fmt.Sprintf(f, a...) }

func (r *recordTB) end(flag *bool, args ...any) {
	r.mu.Lock()
	*flag = true
	r.msg = fmt.Sprint(args...)
	r.mu.Unlock()
	runtime.Goexit()
}

// run calls f with r in a goroutine (Skip/Fatal end it) and waits.
func (r *recordTB) run(f func(testing.TB)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
}

func TestRequire(t *testing.T) {
	empty := t.TempDir() // a PATH without tor
	for _, tc := range []struct {
		name       string
		path       string
		require    string
		wantSkip   bool
		wantFail   bool
		wantInText string
	}{
		{"missing_skips", empty, "", true, false, "apt-get install -y tor"},
		{"missing_fails_when_required", empty, "1", false, true, "missing: tor, tor-gencert"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PATH", tc.path)
			t.Setenv(RequireEnv, tc.require)
			r := &recordTB{TB: t}
			r.run(Require)
			if r.skipped != tc.wantSkip || r.failed != tc.wantFail {
				t.Fatalf("skipped=%v failed=%v, want %v %v (%q)", r.skipped, r.failed, tc.wantSkip, tc.wantFail, r.msg)
			}
			if !strings.Contains(r.msg, tc.wantInText) {
				t.Errorf("message %q does not contain %q", r.msg, tc.wantInText)
			}
		})
	}
}

// TestSharedFailsFast: when the first start fails, later Gets fail with
// the same error without trying again.
func TestSharedFailsFast(t *testing.T) {
	Require(t)
	missing := filepath.Join(t.TempDir(), "no-such-tor")
	s := &Shared{Config: Config{TorPath: missing}}
	var msgs []string
	for range 2 {
		r := &recordTB{TB: t}
		r.run(func(tb testing.TB) { s.Get(tb) })
		if !r.failed {
			t.Fatal("Get did not fail")
		}
		msgs = append(msgs, r.msg)
	}
	if !strings.Contains(msgs[0], "tor binary not found") || msgs[0] != msgs[1] {
		t.Errorf("Get errors = %q, want the same start error twice", msgs)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close after failed start: %v", err)
	}
	if err := s.Close(); err == nil {
		t.Error("second Close succeeded")
	}
	r := &recordTB{TB: t}
	r.run(func(tb testing.TB) { s.Get(tb) })
	if !r.failed || !strings.Contains(r.msg, "closed") {
		t.Errorf("Get after Close: failed=%v %q", r.failed, r.msg)
	}
}
