package oniontest

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// RequireEnv is the environment variable that, set to "1", turns a
// missing tor into a test failure instead of a skip.
const RequireEnv = "ONIONCDN_REQUIRE_TOR"

// StartTimeout bounds the boot of a shared network.
const StartTimeout = 3 * time.Minute

const missingMsg = "oniontest: tor not installed (apt-get install -y tor); set " + RequireEnv + "=1 to fail instead"

// Require skips the test if the tor or tor-gencert binary is not in PATH,
// or fails it if ONIONCDN_REQUIRE_TOR=1.
func Require(tb testing.TB) {
	tb.Helper()
	var missing []string
	for _, bin := range []string{"tor", "tor-gencert"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv(RequireEnv) == "1" {
		tb.Fatalf("%s (missing: %s)", missingMsg, strings.Join(missing, ", "))
	}
	tb.Skip(missingMsg)
}

// KeyCache returns the directory in which Shared caches authority keys
// (onioncdn/tornet-keys under os.UserCacheDir), or "" if there is no user
// cache directory. Tests that start networks of their own can set it as
// Config.KeyCache to skip key generation.
func KeyCache() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "onioncdn", "tornet-keys")
}

// Shared is one private Tor network per test binary, started on the first
// Get. The zero value is ready to use; it must not be copied after first
// use. If the first start fails, every later Get fails with the same
// error at once.
type Shared struct {
	// Config configures the network on first start. Its zero value
	// starts the default network (5 authorities, temporary directory).
	// If Config.Logger is nil, boot phases are reported with tb.Log. If
	// Config.KeyCache is empty, authority keys are cached in
	// onioncdn/tornet-keys under os.UserCacheDir (if there is one), so
	// that only the first test binary on a machine generates them.
	Config Config

	mu      sync.Mutex
	started bool
	closed  bool
	net     *Network
	err     error
}

// Get returns the shared network, starting it on first use (which takes
// 20–30 s). It calls Require first and fails tb if the network cannot be
// started or the Shared was closed.
func (s *Shared) Get(tb testing.TB) *Network {
	tb.Helper()
	Require(tb)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		tb.Fatal("oniontest: shared network already closed")
	}
	if !s.started {
		s.started = true
		var buf lockedBuffer
		cfg := s.Config
		if cfg.Logger == nil {
			cfg.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
				Level: slog.LevelInfo,
				ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
					if a.Key == slog.TimeKey {
						return slog.Attr{}
					}
					return a
				},
			}))
		}
		if cfg.KeyCache == "" {
			cfg.KeyCache = KeyCache()
		}
		ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
		t := time.Now()
		s.net, s.err = Start(ctx, cfg)
		cancel()
		if s.err == nil {
			tb.Logf("oniontest: private tor network ready in %v\n%s", time.Since(t).Round(time.Millisecond), buf.String())
		}
	}
	if s.err != nil {
		tb.Fatalf("oniontest: starting the private tor network: %v", s.err)
	}
	return s.net
}

// Close stops the shared network if it was started. Call it from TestMain
// after m.Run. Later calls, and Get after Close, fail.
func (s *Shared) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("oniontest: shared network already closed")
	}
	s.closed = true
	if s.net == nil {
		return nil
	}
	return s.net.Close()
}

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
