package tier

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/onioncdn/onioncdn/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// MetricsServer is a running metrics endpoint.
type MetricsServer struct {
	srv *http.Server
	ln  net.Listener
}

// ServeMetrics serves g on http://addr/metrics. addr must be a loopback
// address (metrics.ListenLocal); anything else is refused.
func ServeMetrics(addr string, g prometheus.Gatherer, log *slog.Logger) (*MetricsServer, error) {
	ln, err := metrics.ListenLocal(addr)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv := &http.Server{Handler: metrics.Handler(g), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics endpoint stopped", "err", err)
		}
	}()
	return &MetricsServer{srv: srv, ln: ln}, nil
}

// Addr returns the endpoint's listening address.
func (m *MetricsServer) Addr() string { return m.ln.Addr().String() }

// Shutdown stops the endpoint.
func (m *MetricsServer) Shutdown(ctx context.Context) error { return m.srv.Shutdown(ctx) }

// ServeHandler serves h on ln with timeouts suited to Tor clients, until
// Shutdown of the returned server.
func ServeHandler(ln net.Listener, h http.Handler, log *slog.Logger) *http.Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 5 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("server stopped", "err", err)
		}
	}()
	return srv
}
