package netem

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// server accepts connections and runs handle on each.
func server(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { defer c.Close(); handle(c) })
		}
	})
	return ln.Addr().String()
}

func start(t *testing.T, r *Relay) *Relay {
	t.Helper()
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func dial(t *testing.T, r *Relay) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// echo copies what it reads back until the client half-closes.
func echo(c net.Conn) {
	io.Copy(c, c)
	c.(*net.TCPConn).CloseWrite()
}

// Bytes cross intact both ways, and a half-close crosses too: the server
// sees EOF, answers, and the client reads the whole answer.
func TestRelayIntactAndHalfClose(t *testing.T) {
	r := start(t, &Relay{Target: server(t, echo),
		Up:   Shape{Latency: 5 * time.Millisecond, Bandwidth: 80e6},
		Down: Shape{Latency: 5 * time.Millisecond, Bandwidth: 80e6}})
	c := dial(t, r)
	data := make([]byte, 1<<20)
	rand.Read(data)
	go func() {
		c.Write(data)
		c.CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("echoed %d bytes, differing from the %d sent", len(got), len(data))
	}
	c.Close()
	// The relay finishes the connection once both directions ended.
	deadline := time.Now().Add(5 * time.Second)
	for s := r.Stats(); s.UpBytes != int64(len(data)) || s.DownBytes != int64(len(data)) || s.Conns != 1; s = r.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A request and its answer take at least the set-up delay plus both
// one-way latencies; a second exchange on the same connection pays the
// latencies only.
func TestRelayLatencyAndSetup(t *testing.T) {
	const up, down, setup = 40 * time.Millisecond, 60 * time.Millisecond, 150 * time.Millisecond
	r := start(t, &Relay{Target: server(t, echo), Up: Shape{Latency: up}, Down: Shape{Latency: down}, Setup: setup})
	c := dial(t, r)
	buf := make([]byte, 1)
	for i, want := range []time.Duration{setup + up + down, up + down} {
		begin := time.Now()
		if _, err := c.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil || buf[0] != byte(i) {
			t.Fatalf("exchange %d: %v %v", i, buf, err)
		}
		if got := time.Since(begin); got < want {
			t.Errorf("exchange %d took %v, want at least %v", i, got, want)
		} else {
			t.Logf("exchange %d: %v (floor %v)", i, got, want)
		}
	}
}

// DialContext returns once the set-up delay has passed: the first
// exchange then pays the latencies only.
func TestRelayDialWaitsForSetup(t *testing.T) {
	const setup, lat = 200 * time.Millisecond, 20 * time.Millisecond
	r := start(t, &Relay{Target: server(t, echo), Up: Shape{Latency: lat}, Down: Shape{Latency: lat}, Setup: setup})
	begin := time.Now()
	c, err := r.DialContext(t.Context(), "tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if d := time.Since(begin); d < setup {
		t.Errorf("dial returned after %v, before the %v set-up", d, setup)
	}
	if _, err := c.Write([]byte{7}); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil || b[0] != 7 {
		t.Fatalf("%v %v", b, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := r.DialContext(ctx, "tcp", r.Addr()); err == nil {
		t.Error("dial with a cancelled context succeeded")
	}
}

// A transfer of N bytes at R bits/s takes at least 8N/R plus the latency.
func TestRelayBandwidth(t *testing.T) {
	const n = 300_000
	const bw = 8_000_000 // 1 MB/s
	const lat = 20 * time.Millisecond
	addr := server(t, func(c net.Conn) {
		c.Read(make([]byte, 1))
		c.Write(make([]byte, n))
	})
	r := start(t, &Relay{Target: addr, Down: Shape{Latency: lat, Bandwidth: bw}})
	c := dial(t, r)
	begin := time.Now()
	c.Write([]byte{1})
	got, err := io.ReadAll(c)
	if err != nil || len(got) != n {
		t.Fatalf("read %d bytes: %v", len(got), err)
	}
	floor := time.Duration(float64(n*8)/bw*float64(time.Second)) + lat
	if d := time.Since(begin); d < floor {
		t.Errorf("%d bytes in %v, want at least %v", n, d, floor)
	} else {
		t.Logf("%d bytes in %v (floor %v)", n, d, floor)
	}
}

// Connections share the bandwidth unless PerConnection: two transfers
// of N bytes on a shared link take at least 2N/R together.
func TestRelaySharedBandwidth(t *testing.T) {
	const n = 150_000
	const bw = 8_000_000
	addr := server(t, func(c net.Conn) {
		c.Read(make([]byte, 1))
		c.Write(make([]byte, n))
	})
	r := start(t, &Relay{Target: addr, Down: Shape{Bandwidth: bw}})
	a, b := dial(t, r), dial(t, r)
	begin := time.Now()
	var wg sync.WaitGroup
	for _, c := range []net.Conn{a, b} {
		wg.Go(func() {
			c.Write([]byte{1})
			if got, err := io.ReadAll(c); err != nil || len(got) != n {
				t.Errorf("read %d bytes: %v", len(got), err)
			}
		})
	}
	wg.Wait()
	if d, floor := time.Since(begin), time.Duration(float64(2*n*8)/bw*float64(time.Second)); d < floor {
		t.Errorf("2 × %d bytes in %v, want at least %v on a shared link", n, d, floor)
	}
}

// The link schedules transmissions first in, first out at its rate; each
// per-connection relay gets links of its own.
func TestLinkSchedule(t *testing.T) {
	l := newLink(Shape{Latency: 100 * time.Millisecond, Bandwidth: 8000}) // 1000 B/s
	t0 := time.Unix(0, 0)
	if got := l.arrival(t0, 500); !got.Equal(t0.Add(600 * time.Millisecond)) {
		t.Errorf("first arrival %v", got.Sub(t0))
	}
	// Queued behind the first: transmitted from 0.5 s to 1.5 s.
	if got := l.arrival(t0.Add(100*time.Millisecond), 1000); !got.Equal(t0.Add(1600 * time.Millisecond)) {
		t.Errorf("queued arrival %v", got.Sub(t0))
	}
	// After an idle gap the link starts at once.
	if got := l.arrival(t0.Add(5*time.Second), 0); !got.Equal(t0.Add(5100 * time.Millisecond)) {
		t.Errorf("idle arrival %v", got.Sub(t0))
	}
	if got := newLink(Shape{Latency: time.Second}).arrival(t0, 1<<20); !got.Equal(t0.Add(time.Second)) {
		t.Errorf("unlimited arrival %v", got.Sub(t0))
	}
	shared := start(t, &Relay{Target: "127.0.0.1:1", Down: Shape{Bandwidth: 1}})
	per := start(t, &Relay{Target: "127.0.0.1:1", Down: Shape{Bandwidth: 1}, PerConnection: true})
	if shared.down == nil || per.down != nil {
		t.Errorf("shared link %v, per-connection relay's shared link %v", shared.down, per.down)
	}
}

func TestRelayClose(t *testing.T) {
	block := make(chan struct{})
	r := start(t, &Relay{Target: server(t, func(c net.Conn) { <-block }), Down: Shape{Latency: time.Hour}})
	defer close(block)
	c := dial(t, r)
	c.Write([]byte("x"))
	closed := make(chan error, 1)
	go func() { closed <- r.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("relayed connection still open after Close")
	}
	if err := r.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	if _, err := net.DialTimeout("tcp", r.Addr(), time.Second); err == nil {
		t.Error("still listening after Close")
	}
	if err := (&Relay{}).Start(); err == nil {
		t.Error("Start without a target succeeded")
	}
}
