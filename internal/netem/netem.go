// Package netem emulates a slow network path on loopback: a TCP relay that
// adds a one-way latency and a bandwidth cap in each direction and a
// set-up delay to every new connection, such as a Tor circuit between two
// CDN tiers. It is for tests and measurements, never for production
// traffic.
//
// # Overview
//
// A [Relay] listens on 127.0.0.1 and forwards every connection to Target.
// Bytes read from one side are delivered to the other no earlier than
// Latency after they were read, and no faster than Bandwidth allows: each
// direction is a first-in first-out link whose queue holds about two
// bandwidth-delay products, so a fast sender is held back by TCP flow
// control as it would be by a slow path. Each connection waits Setup before
// the first byte is relayed (the client's dial returns at once; its
// request is answered Setup later; [Relay.DialContext] returns only after
// Setup), which models a circuit built on demand.
// The bandwidth is shared by all the relay's connections (one circuit or
// access link) unless PerConnection is set (one circuit per connection).
//
// # Usage
//
//	r := &netem.Relay{Target: srv.Listener.Addr().String(),
//		Up:    netem.Shape{Latency: 150 * time.Millisecond, Bandwidth: 12e6},
//		Down:  netem.Shape{Latency: 150 * time.Millisecond, Bandwidth: 12e6}}
//	if err := r.Start(); err != nil { … }
//	defer r.Close()
//	http.Get("http://" + r.Addr() + "/master.m3u8")
//
// # Security
//
// The relay listens on the loopback interface only and forwards to a fixed
// target; it reads nothing it relays.
package netem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Shape is what a path does to the bytes going one way.
type Shape struct {
	// Latency is the one-way delay added to every byte. If zero, none.
	Latency time.Duration
	// Bandwidth is the path's rate in bits per second. If zero, unlimited.
	Bandwidth int64
}

// bytesPerSecond returns the rate in bytes per second, 0 for unlimited.
func (s Shape) bytesPerSecond() float64 {
	if s.Bandwidth <= 0 {
		return 0
	}
	return float64(s.Bandwidth) / 8
}

// Relay is a TCP relay on 127.0.0.1 that shapes the traffic to and from
// Target. Its zero value with Target set relays without delay. Fields may
// not change after Start. A Relay is safe for concurrent use.
type Relay struct {
	// Target is the host:port every connection is relayed to. Required.
	Target string

	// Up shapes the bytes from the client to Target, Down the bytes back.
	// If zero, they pass unshaped.
	Up, Down Shape

	// Setup delays every new connection before its first byte is relayed
	// either way. If zero, none.
	Setup time.Duration

	// PerConnection gives every connection its own Up and Down bandwidth,
	// like one Tor circuit per connection. If false, all connections share
	// them, like streams on one circuit or one access link.
	PerConnection bool

	once     sync.Once
	startErr error
	ln       net.Listener
	ctx      context.Context
	cancel   context.CancelFunc
	up, down *link // shared links; nil with PerConnection
	wg       sync.WaitGroup

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}

	accepted, upBytes, downBytes atomic.Int64
}

// Stats counts a Relay's traffic.
type Stats struct {
	Conns     int64 // connections accepted
	UpBytes   int64 // bytes delivered to Target
	DownBytes int64 // bytes delivered to clients
}

// Start listens on 127.0.0.1 on a free port and starts relaying. Later
// calls return the first call's result.
func (r *Relay) Start() error {
	r.once.Do(func() {
		if r.Target == "" {
			r.startErr = errors.New("netem: no target")
			return
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			r.startErr = fmt.Errorf("netem: %w", err)
			return
		}
		r.ln = ln
		r.ctx, r.cancel = context.WithCancel(context.Background())
		r.conns = make(map[net.Conn]struct{})
		if !r.PerConnection {
			r.up, r.down = newLink(r.Up), newLink(r.Down)
		}
		r.wg.Go(r.serve)
	})
	return r.startErr
}

// Addr returns the host:port the relay listens on, or "" before Start.
func (r *Relay) Addr() string {
	if r.ln == nil {
		return ""
	}
	return r.ln.Addr().String()
}

// DialContext dials address, normally Addr, and returns once the relay's
// Setup delay for the new connection has passed, as a dial through Tor's
// SOCKS port returns once the circuit is built: a pool of connections
// dialled ahead of need (upstream.Transport's warm pool) then really is
// warm. It has the signature of net.Dialer.DialContext.
func (r *Relay) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, address)
	if err != nil || r.Setup <= 0 {
		return c, err
	}
	t := time.NewTimer(r.Setup)
	defer t.Stop()
	select {
	case <-t.C:
		return c, nil
	case <-ctx.Done():
		c.Close()
		return nil, fmt.Errorf("netem: dial: %w", ctx.Err())
	}
}

// Stats returns the relay's counters.
func (r *Relay) Stats() Stats {
	return Stats{Conns: r.accepted.Load(), UpBytes: r.upBytes.Load(), DownBytes: r.downBytes.Load()}
}

// Close stops listening, closes every relayed connection and waits for
// the relay's goroutines. Later calls return an error wrapping
// net.ErrClosed.
func (r *Relay) Close() error {
	if err := r.Start(); err != nil {
		return err
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return fmt.Errorf("netem: %w", net.ErrClosed)
	}
	r.closed = true
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.cancel()
	r.ln.Close()
	r.wg.Wait()
	return nil
}

// track registers c for Close; it returns false once the relay is closed.
func (r *Relay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *Relay) untrack(c net.Conn) {
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
	c.Close()
}

func (r *Relay) serve() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.accepted.Add(1)
		if !r.track(c) {
			c.Close()
			return
		}
		r.wg.Go(func() { r.relay(c) })
	}
}

// relay waits Setup, dials Target and shapes both directions until both
// have ended.
func (r *Relay) relay(client net.Conn) {
	defer r.untrack(client)
	if r.Setup > 0 {
		t := time.NewTimer(r.Setup)
		select {
		case <-t.C:
		case <-r.ctx.Done():
			t.Stop()
			return
		}
	}
	var d net.Dialer
	target, err := d.DialContext(r.ctx, "tcp", r.Target)
	if err != nil {
		return
	}
	if !r.track(target) {
		target.Close()
		return
	}
	defer r.untrack(target)
	up, down := r.up, r.down
	if up == nil {
		up, down = newLink(r.Up), newLink(r.Down)
	}
	var wg sync.WaitGroup
	wg.Go(func() { pipe(r.ctx, target, client, up, &r.upBytes) })
	wg.Go(func() { pipe(r.ctx, client, target, down, &r.downBytes) })
	wg.Wait()
}

// link is one direction of a path: a FIFO transmitter of a given rate
// followed by a fixed delay.
type link struct {
	shape Shape
	rate  float64 // bytes per second, 0 unlimited
	chunk int     // largest read, about 5 ms of transmission
	queue int     // chunks a pipe may have in flight or queued

	mu   sync.Mutex
	free time.Time // when the transmitter is next idle
}

func newLink(s Shape) *link {
	l := &link{shape: s, rate: s.bytesPerSecond(), chunk: 32 << 10}
	inflight := 256 << 10 // bytes
	if l.rate > 0 {
		l.chunk = min(max(int(l.rate/200), 1<<10), 32<<10)
		inflight = max(inflight, int(2*l.rate*(s.Latency.Seconds()+0.05)))
	}
	l.queue = max(4, inflight/l.chunk)
	return l
}

// arrival returns when n bytes read at now reach the far side: after the
// bytes queued before them and their own transmission, plus the latency.
func (l *link) arrival(now time.Time, n int) time.Time {
	if l.rate <= 0 {
		return now.Add(l.shape.Latency)
	}
	l.mu.Lock()
	start := now
	if l.free.After(start) {
		start = l.free
	}
	l.free = start.Add(time.Duration(float64(n) / l.rate * float64(time.Second)))
	done := l.free
	l.mu.Unlock()
	return done.Add(l.shape.Latency)
}

type chunk struct {
	data []byte
	at   time.Time // delivery time
	err  error     // end of the stream (io.EOF for a clean end)
}

// pipe copies src to dst through l, then half-closes dst (or closes both
// on an error or when ctx ends).
func pipe(ctx context.Context, dst, src net.Conn, l *link, count *atomic.Int64) {
	q := make(chan chunk, l.queue)
	done := make(chan struct{})
	var reader sync.WaitGroup
	defer reader.Wait()
	defer close(done)
	reader.Go(func() {
		defer close(q)
		for {
			buf := make([]byte, l.chunk)
			n, err := src.Read(buf)
			if n > 0 {
				select {
				case q <- chunk{data: buf[:n], at: l.arrival(time.Now(), n)}:
				case <-done:
					return
				}
			}
			if err != nil {
				select {
				case q <- chunk{err: err, at: l.arrival(time.Now(), 0)}:
				case <-done:
				}
				return
			}
		}
	})
	abort := func() {
		dst.Close()
		src.Close()
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for c := range q {
		if d := time.Until(c.at); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				abort()
				return
			}
		}
		if c.err != nil {
			if errors.Is(c.err, io.EOF) {
				if cw, ok := dst.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
					return
				}
			}
			abort()
			return
		}
		n, err := dst.Write(c.data)
		count.Add(int64(n))
		if err != nil {
			abort()
			return
		}
	}
}
