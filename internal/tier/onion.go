package tier

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"syscall"
	"time"

	"github.com/onioncdn/onioncdn/onion"
)

// TorConfig says which tor a program uses: one it starts (TorPath,
// DataDir, ExtraTorrc) or an existing one reached through its control port
// (ControlAddr and its credentials).
type TorConfig struct {
	// TorPath is the tor binary. If empty, "tor" from PATH.
	TorPath string
	// DataDir keeps tor's state between runs (onion.Server.DataDir). If
	// empty, a temporary directory removed on Close.
	DataDir string
	// ExtraTorrc are extra torrc lines, e.g. those that join a private
	// test network.
	ExtraTorrc []string
	// ControlAddr, if set, attaches to a running tor instead of starting
	// one; ControlCookie and ControlPassword authenticate.
	ControlAddr, ControlCookie, ControlPassword string
	// Logger receives tor events. If nil, logs are discarded.
	Logger *slog.Logger
}

// StartTor starts (or attaches to) a tor and returns its Server, ready for
// Listen and dialing. Close the Server to stop the tor it started.
func StartTor(ctx context.Context, cfg TorConfig) (*onion.Server, error) {
	srv := &onion.Server{
		TorPath:         cfg.TorPath,
		DataDir:         cfg.DataDir,
		ExtraTorrc:      cfg.ExtraTorrc,
		ControlAddr:     cfg.ControlAddr,
		ControlCookie:   cfg.ControlCookie,
		ControlPassword: cfg.ControlPassword,
		Logger:          cfg.Logger,
	}
	if err := srv.Start(ctx); err != nil {
		srv.Close()
		return nil, err
	}
	return srv, nil
}

// PublishConfig describes one onion service of a tier.
type PublishConfig struct {
	// KeyFile is the service key (tor's hs_ed25519_secret_key format),
	// created with mode 0600 if missing. Several edges of one group use
	// copies of the same file. If empty, Key is used.
	KeyFile string
	// Key is used when KeyFile is empty. If both are empty, a new key is
	// generated (a new address on every start).
	Key *onion.Key
	// Port is the virtual port. If zero, 80.
	Port int
	// Watchdog, if set, keeps a shared address answering (onion.Watchdog).
	Watchdog *onion.Watchdog
}

// Publish publishes an onion service on srv and returns its listener once
// its descriptor is uploaded. created reports whether KeyFile was created.
func Publish(ctx context.Context, srv *onion.Server, cfg PublishConfig) (ln *onion.Listener, created bool, err error) {
	key := cfg.Key
	if cfg.KeyFile != "" {
		if key, created, err = LoadOrCreateOnionKey(cfg.KeyFile); err != nil {
			return nil, false, err
		}
	}
	lc := onion.ListenConfig{Key: key, Watchdog: cfg.Watchdog}
	if cfg.Port != 0 {
		lc.Ports = []int{cfg.Port}
	}
	ln, err = srv.Listen(ctx, lc)
	if err != nil {
		return nil, created, err
	}
	return ln, created, nil
}

// ProcessGone reports whether no process with id pid exists any more (or
// pid is 0). It is how the demo verifies that the tor processes it started
// are gone.
func ProcessGone(pid int) bool {
	if pid <= 0 {
		return true
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return true
	}
	if err := p.Signal(syscall.Signal(0)); err != nil {
		return true
	}
	// A zombie still answers signal 0; /proc tells it apart.
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if i := lastParen(b); i > 0 && i+2 < len(b) && b[i+2] == 'Z' {
			return true
		}
	}
	return false
}

func lastParen(b []byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == ')' {
			return i
		}
	}
	return -1
}

// WaitGone waits until every pid is gone or d passes, and returns the pids
// still running.
func WaitGone(pids []int, d time.Duration) []int {
	deadline := time.Now().Add(d)
	for {
		var left []int
		for _, p := range pids {
			if !ProcessGone(p) {
				left = append(left, p)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(100 * time.Millisecond)
	}
}
