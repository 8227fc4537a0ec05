package upstream

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/onioncdn/onioncdn/internal/hygiene"
)

// aLongTimeAgo is a deadline in the past, used to interrupt a blocked Read.
var aLongTimeAgo = time.Unix(1, 0)

// conn is one HTTP/1.1 connection to an upstream.
type conn struct {
	nc   net.Conn
	cr   *countReader
	br   *bufio.Reader
	bw   *bufio.Writer
	slot int
	uses int // requests sent on it

	// guarded by Transport.mu
	idleSince time.Time
	taking    bool       // removed from the idle list; the watcher must not discard it
	watch     chan error // result of the idle watcher's Peek
}

// countReader counts the bytes read from a connection, so that a failed
// exchange can tell whether any response byte had arrived.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// pool holds the connections of one upstream and site.
type pool struct {
	t    *Transport
	u    *upstreamState
	site string
	kick chan struct{} // wakes the warmer; capacity 1

	// guarded by Transport.mu
	idle    []*conn // oldest first
	waiters []chan *conn
	slots   map[int]bool
	open    int
	warming int
}

func (p *pool) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// get returns a connection for one request: the most recently used idle
// one, else whichever comes first of a connection returned by another
// request and a new dial. fromIdle reports that the connection was idle
// (and may have been closed by the far side meanwhile); dialed that the
// request had to start a dial. With skipIdle the idle connections are
// passed over.
func (p *pool) get(ctx context.Context, skipIdle bool) (c *conn, fromIdle, dialed bool, err error) {
	t := p.t
	for {
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			return nil, false, false, fmt.Errorf("upstream: %w", net.ErrClosed)
		}
		if n := len(p.idle); n > 0 && !skipIdle {
			c := p.idle[n-1]
			p.idle = p.idle[:n-1]
			c.taking = true
			t.notifyLocked()
			t.mu.Unlock()
			p.wake()
			if p.revive(c) {
				return c, true, false, nil
			}
			continue
		}
		w := make(chan *conn, 1)
		p.waiters = append(p.waiters, w)
		errc := make(chan error, 1)
		t.wg.Add(1)
		t.mu.Unlock()
		go func() {
			defer t.wg.Done()
			c, err := p.dial(t.ctx)
			if err != nil {
				errc <- err
				return
			}
			p.put(c)
		}()
		select {
		case c, ok := <-w:
			if !ok {
				return nil, false, true, fmt.Errorf("upstream: %w", net.ErrClosed)
			}
			return c, c.uses > 0, true, nil
		case err := <-errc:
			p.dropWaiter(w)
			return nil, false, true, err
		case <-ctx.Done():
			p.dropWaiter(w)
			return nil, false, true, fmt.Errorf("upstream: waiting for a connection to %s: %w", p.u.host, context.Cause(ctx))
		}
	}
}

// dropWaiter removes w; a connection already handed to it is returned to
// the pool.
func (p *pool) dropWaiter(w chan *conn) {
	p.t.mu.Lock()
	for i, x := range p.waiters {
		if x == w {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			p.t.mu.Unlock()
			return
		}
	}
	p.t.mu.Unlock()
	if c, ok := <-w; ok {
		p.put(c)
	}
}

// revive stops the idle watcher of c, which has been taken from the idle
// list, and reports whether c is still usable. A dead c is discarded.
func (p *pool) revive(c *conn) bool {
	c.nc.SetReadDeadline(aLongTimeAgo)
	err := <-c.watch
	c.nc.SetReadDeadline(time.Time{})
	if isTimeout(err) && c.br.Buffered() == 0 {
		return true
	}
	p.u.peerClosed.Add(1)
	p.t.logger().Debug("upstream idle connection lost", "upstream", p.u.host, "err", err)
	p.discard(c)
	return false
}

// put returns c to the pool: to a waiting request, else to the idle list.
func (p *pool) put(c *conn) {
	t := p.t
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		p.discard(c)
		return
	}
	if len(p.waiters) > 0 {
		w := p.waiters[0]
		p.waiters = p.waiters[1:]
		t.mu.Unlock()
		w <- c
		return
	}
	if len(p.idle) >= t.maxIdle() {
		t.mu.Unlock()
		p.discard(c)
		return
	}
	c.idleSince = t.now()
	c.taking = false
	c.watch = make(chan error, 1)
	p.idle = append(p.idle, c)
	t.notifyLocked()
	t.wg.Add(1)
	t.mu.Unlock()
	go p.watchIdle(c, c.watch)
}

// watchIdle blocks in a read on the idle connection c. Data or an error
// (other than the deadline set by revive) means the far side closed it or
// broke the protocol: c is then discarded and the warmer replaces it.
func (p *pool) watchIdle(c *conn, ch chan error) {
	defer p.t.wg.Done()
	_, err := c.br.Peek(1)
	p.t.mu.Lock()
	if c.taking {
		p.t.mu.Unlock()
		ch <- err
		return
	}
	for i, x := range p.idle {
		if x == c {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			break
		}
	}
	c.taking = true
	p.t.mu.Unlock()
	ch <- err
	p.u.peerClosed.Add(1)
	p.t.logger().Debug("upstream idle connection closed by peer", "upstream", p.u.host, "err", err)
	p.discard(c)
}

// discard closes c and frees its slot.
func (p *pool) discard(c *conn) {
	c.nc.Close()
	p.t.mu.Lock()
	p.open--
	delete(p.slots, c.slot)
	p.t.notifyLocked()
	p.t.mu.Unlock()
	p.wake()
}

// dial opens a new connection with the lowest free slot's isolation tag.
func (p *pool) dial(ctx context.Context) (*conn, error) {
	t, u := p.t, p.u
	t.mu.Lock()
	slot := 0
	for p.slots[slot] {
		slot++
	}
	tag, err := t.isolationLocked(u, p.site, slot)
	if err != nil {
		t.mu.Unlock()
		u.dialFailures.Add(1)
		return nil, err
	}
	p.slots[slot] = true
	t.mu.Unlock()

	d := orDefault(t.DialTimeout, DefaultDialTimeout)
	dctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	nc, err := t.dialRaw(dctx, u.addr, tag)
	if err == nil && u.scheme == "https" {
		cfg := &tls.Config{}
		if t.TLSClientConfig != nil {
			cfg = t.TLSClientConfig.Clone()
		}
		if cfg.ServerName == "" {
			h, _, _ := net.SplitHostPort(u.addr)
			cfg.ServerName = h
		}
		cfg.NextProtos = []string{"http/1.1"}
		tc := tls.Client(nc, cfg)
		if err = tc.HandshakeContext(dctx); err != nil {
			nc.Close()
		}
		nc = tc
	}
	if err != nil {
		u.dialFailures.Add(1)
		if errors.Is(dctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("upstream: dial timeout after %s to %s: %w: %w", d, u.host, context.DeadlineExceeded, err)
		} else {
			err = fmt.Errorf("upstream: dial %s: %w", u.host, err)
		}
		t.mu.Lock()
		delete(p.slots, slot)
		u.dialErr = err
		t.notifyLocked()
		t.mu.Unlock()
		t.logger().Debug("upstream dial failed", "upstream", u.host, "err", err)
		return nil, err
	}
	u.dials.Add(1)
	t.mu.Lock()
	p.open++
	u.dialErr = nil
	t.mu.Unlock()
	cr := &countReader{r: nc}
	return &conn{nc: nc, cr: cr, br: bufio.NewReader(cr), bw: bufio.NewWriter(nc), slot: slot}, nil
}

// dialRaw dials addr and gives up when ctx ends even if the dial function
// ignores ctx; a connection that arrives later is closed.
func (t *Transport) dialRaw(ctx context.Context, addr, tag string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		var c net.Conn
		var err error
		switch {
		case t.DialIsolated != nil:
			c, err = t.DialIsolated(ctx, "tcp", addr, tag)
		case t.DialContext != nil:
			c, err = t.DialContext(ctx, "tcp", addr)
		default:
			var d net.Dialer
			c, err = d.DialContext(ctx, "tcp", addr)
		}
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		if r.err == nil && r.c == nil {
			r.err = errors.New("dialer returned no connection")
		}
		return r.c, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.c != nil {
				r.c.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// warmLoop keeps MinIdle idle connections in the pool, backing off
// exponentially after dial failures, and closes or refreshes idle
// connections (IdleTimeout, KeepAliveInterval).
func (p *pool) warmLoop(ctx context.Context) {
	t := p.t
	defer t.wg.Done()
	want := t.minIdle()
	var backoff time.Duration
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for ctx.Err() == nil {
		t.mu.Lock()
		need := want - len(p.idle) - p.warming
		if need > 0 {
			p.warming += need
		}
		t.mu.Unlock()
		if need > 0 {
			var wg sync.WaitGroup
			var mu sync.Mutex
			var failed error
			for range need {
				wg.Go(func() {
					c, err := p.dial(ctx)
					t.mu.Lock()
					p.warming--
					t.mu.Unlock()
					if err != nil {
						mu.Lock()
						failed = err
						mu.Unlock()
						return
					}
					p.put(c)
				})
			}
			wg.Wait()
			if failed == nil {
				backoff = 0
				continue
			}
			if ctx.Err() != nil {
				return
			}
			t.markFailure(p.u, "dial", failed)
			backoff = min(max(2*backoff, minDialBackoff), maxDialBackoff)
			timer.Reset(backoff)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
			continue
		}
		p.housekeep(ctx)
		timer.Reset(p.housekeepInterval())
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
		case <-timer.C:
		}
	}
}

func (p *pool) housekeepInterval() time.Duration {
	d := orDefault(p.t.IdleTimeout, DefaultIdleTimeout)
	if ka := p.t.keepAlive(); ka > 0 && ka < d {
		d = ka
	}
	return max(d/4, 5*time.Millisecond)
}

// housekeep closes surplus idle connections past IdleTimeout and sends
// keep-alive requests on connections idle for KeepAliveInterval.
func (p *pool) housekeep(ctx context.Context) {
	t := p.t
	now := t.now()
	idleTimeout := orDefault(t.IdleTimeout, DefaultIdleTimeout)
	want := t.minIdle()
	var expired, ping []*conn
	t.mu.Lock()
	for len(p.idle) > want && now.Sub(p.idle[0].idleSince) >= idleTimeout {
		c := p.idle[0]
		p.idle = p.idle[1:]
		c.taking = true
		expired = append(expired, c)
	}
	if ka := t.keepAlive(); ka > 0 {
		kept := p.idle[:0]
		for _, c := range p.idle {
			if now.Sub(c.idleSince) >= ka {
				c.taking = true
				ping = append(ping, c)
			} else {
				kept = append(kept, c)
			}
		}
		clear(p.idle[len(kept):])
		p.idle = kept
	}
	t.mu.Unlock()
	for _, c := range expired {
		p.discard(c)
	}
	for _, c := range ping {
		if !p.revive(c) {
			continue
		}
		p.u.keepAlives.Add(1)
		method, target := http.MethodOptions, &url.URL{Scheme: p.u.scheme, Host: p.u.host, Opaque: "*"}
		if t.KeepAlivePath != "" {
			method, target = http.MethodHead, &url.URL{Scheme: p.u.scheme, Host: p.u.host, Path: t.KeepAlivePath}
		}
		if t.control(ctx, p, c, method, target) < 0 {
			t.logger().Debug("upstream keep-alive failed", "upstream", p.u.host)
		}
	}
}

// control sends a keep-alive or probe request on c and returns the status
// code, or -1 on error. c is returned to the pool when still usable.
func (t *Transport) control(ctx context.Context, p *pool, c *conn, method string, target *url.URL) int {
	ctx, cancel := context.WithTimeout(ctx, orDefault(t.ResponseHeaderTimeout, DefaultResponseHeaderTimeout))
	defer cancel()
	req := (&http.Request{
		Method:     method,
		URL:        target,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     http.Header{"User-Agent": {t.UserAgent}},
		Host:       p.u.host,
	}).WithContext(ctx)
	resp, stop, _, _, err := t.exchange(ctx, p, c, req)
	if err != nil {
		return -1
	}
	n, err := io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain+1))
	if stop() && err == nil && n <= maxDrain && !resp.Close {
		p.put(c)
	} else {
		p.discard(c)
	}
	return resp.StatusCode
}

// probeLoop sends "GET ProbePath" to u now and every ProbeInterval.
func (t *Transport) probeLoop(u *upstreamState) {
	defer t.wg.Done()
	ctx := t.ctx
	interval := orDefault(t.ProbeInterval, DefaultProbeInterval)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		t.mu.Lock()
		p := u.pools[""]
		if p == nil {
			for _, q := range u.pools {
				p = q
				break
			}
		}
		t.mu.Unlock()
		if p != nil {
			t.probe(ctx, p)
		}
		timer.Reset(interval)
	}
}

func (t *Transport) probe(ctx context.Context, p *pool) {
	u := p.u
	u.probes.Add(1)
	dctx, cancel := context.WithTimeout(ctx, orDefault(t.DialTimeout, DefaultDialTimeout))
	c, _, _, err := p.get(dctx, false)
	cancel()
	status := -1
	if err == nil {
		status = t.control(ctx, p, c, http.MethodGet, &url.URL{Scheme: u.scheme, Host: u.host, Path: t.ProbePath})
	}
	if ctx.Err() != nil {
		return
	}
	if status < 0 || status >= 500 {
		t.markFailure(u, "probe", fmt.Errorf("probe status %d: %v", status, err))
	} else {
		t.markSuccess(u)
	}
}

// exchange writes out on c and reads the response headers. On success the
// caller owns c and must call stop (which reports whether ctx did not end
// meanwhile) before reusing or discarding c. On error c has been
// discarded; started reports whether any response byte had arrived, and
// early whether the failure came before the upstream can have acted on the
// request: while writing it, or, with no response byte, sooner after it
// was written than the fastest response this upstream ever gave (the close
// must then have left the upstream before the request arrived there).
func (t *Transport) exchange(ctx context.Context, p *pool, c *conn, out *http.Request) (resp *http.Response, stop func() bool, started, early bool, err error) {
	u := p.u
	c.uses++
	stop = context.AfterFunc(ctx, func() { c.nc.Close() })
	fail := func(what string, err error) error {
		stop()
		p.discard(c)
		if ctx.Err() != nil {
			return fmt.Errorf("upstream: %s %s: %w", what, u.host, context.Cause(ctx))
		}
		return fmt.Errorf("upstream: %s %s: %w", what, u.host, err)
	}
	err = out.Write(c.bw)
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil {
		return nil, nil, false, true, fail("write request to", err)
	}
	wrote := time.Now()
	rht := orDefault(t.ResponseHeaderTimeout, DefaultResponseHeaderTimeout)
	if rht > 0 {
		c.nc.SetReadDeadline(wrote.Add(rht))
	}
	c.cr.n = int64(c.br.Buffered())
	for {
		resp, err = http.ReadResponse(c.br, out)
		if err != nil || resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		// 1xx informational responses have no body: read the next one.
	}
	started = c.cr.n > 0
	elapsed := time.Since(wrote)
	if err != nil {
		if rht > 0 && isTimeout(err) && ctx.Err() == nil {
			stop()
			p.discard(c)
			return nil, nil, started, false, fmt.Errorf("upstream: response header timeout after %s from %s: %w: %w", rht, u.host, context.DeadlineExceeded, err)
		}
		fastest := u.minTTFB.Load()
		early = !started && fastest > 0 && int64(elapsed) < fastest
		return nil, nil, started, early, fail("read response from", err)
	}
	u.observeTTFB(elapsed)
	if rht > 0 {
		c.nc.SetReadDeadline(time.Time{})
	}
	if ctx.Err() != nil {
		resp.Body.Close()
		return nil, nil, true, false, fail("read response from", ctx.Err())
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		resp.Body.Close()
		return nil, nil, true, false, fail("read response from", errors.New("protocol switch not supported"))
	}
	if out.Close {
		resp.Close = true
	}
	hygiene.CleanResponse(resp.Header, !t.KeepServerHeaders)
	return resp, stop, true, false, nil
}

// observeTTFB lowers u's fastest response time to d.
func (u *upstreamState) observeTTFB(d time.Duration) {
	if d <= 0 {
		return
	}
	for {
		cur := u.minTTFB.Load()
		if cur != 0 && cur <= int64(d) {
			return
		}
		if u.minTTFB.CompareAndSwap(cur, int64(d)) {
			return
		}
	}
}
