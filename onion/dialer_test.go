package onion

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// socksRequest is what the fake SOCKS server saw.
type socksRequest struct {
	method     byte
	user, pass string
	atyp       byte
	host       string
	port       uint16
}

// fakeSOCKS is a minimal SOCKS5 server on 127.0.0.1. reply is the REP code
// it sends; silent makes it accept and never answer. After a successful
// CONNECT it echoes.
type fakeSOCKS struct {
	ln       net.Listener
	reply    byte
	silent   bool
	reqs     chan socksRequest
	accepted chan struct{} // a silent server accepted a connection
	closed   chan struct{} // a silent server's connection was closed by the client
}

func newFakeSOCKS(t *testing.T, reply byte, silent bool) *fakeSOCKS {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeSOCKS{ln: ln, reply: reply, silent: silent, reqs: make(chan socksRequest, 16), accepted: make(chan struct{}, 16), closed: make(chan struct{}, 16)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return f
}

func (f *fakeSOCKS) serve(c net.Conn) {
	defer c.Close()
	if f.silent {
		f.accepted <- struct{}{}
		io.Copy(io.Discard, c) // returns when the client closes
		f.closed <- struct{}{}
		return
	}
	var r socksRequest
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(c, hdr); err != nil {
		return
	}
	methods := make([]byte, hdr[1])
	io.ReadFull(c, methods)
	r.method = methods[0]
	c.Write([]byte{5, r.method})
	if r.method == 2 {
		b := make([]byte, 2)
		io.ReadFull(c, b)
		u := make([]byte, b[1])
		io.ReadFull(c, u)
		io.ReadFull(c, b[:1])
		p := make([]byte, b[0])
		io.ReadFull(c, p)
		r.user, r.pass = string(u), string(p)
		c.Write([]byte{1, 0})
	}
	req := make([]byte, 4)
	if _, err := io.ReadFull(c, req); err != nil {
		return
	}
	r.atyp = req[3]
	switch r.atyp {
	case 1:
		b := make([]byte, 4)
		io.ReadFull(c, b)
		r.host = net.IP(b).String()
	case 4:
		b := make([]byte, 16)
		io.ReadFull(c, b)
		r.host = net.IP(b).String()
	case 3:
		l := make([]byte, 1)
		io.ReadFull(c, l)
		b := make([]byte, l[0])
		io.ReadFull(c, b)
		r.host = string(b)
	}
	pb := make([]byte, 2)
	io.ReadFull(c, pb)
	r.port = binary.BigEndian.Uint16(pb)
	f.reqs <- r
	c.Write([]byte{5, f.reply, 0, 1, 127, 0, 0, 1, 0, 0})
	if f.reply == 0 {
		io.Copy(c, c)
	}
}

func TestDialerConnect(t *testing.T) {
	const onion = torAddr
	tests := []struct {
		name      string
		isolation string
		addr      string
		wantAtyp  byte
		wantHost  string
	}{
		{name: "onion_no_auth", addr: onion + ":80", wantAtyp: 3, wantHost: onion},
		{name: "onion_isolated", isolation: "site-a", addr: onion + ":8080", wantAtyp: 3, wantHost: onion},
		{name: "ipv4_literal", addr: "192.0.2.7:443", wantAtyp: 1, wantHost: "192.0.2.7"},
		{name: "ipv6_literal", addr: "[2001:db8::1]:443", wantAtyp: 4, wantHost: "2001:db8::1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeSOCKS(t, 0, false)
			d := &Dialer{SocksAddr: f.ln.Addr().String(), Isolation: tt.isolation}
			c, err := d.DialContext(t.Context(), "tcp", tt.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			r := <-f.reqs
			wantMethod := byte(0)
			if tt.isolation != "" {
				wantMethod = 2
			}
			if r.method != wantMethod || r.user != tt.isolation || r.pass != tt.isolation {
				t.Errorf("auth method %d user %q pass %q; want %d, %q, %q", r.method, r.user, r.pass, wantMethod, tt.isolation, tt.isolation)
			}
			_, port, _ := net.SplitHostPort(tt.addr)
			if r.atyp != tt.wantAtyp || r.host != tt.wantHost || port != strconv.Itoa(int(r.port)) {
				t.Errorf("CONNECT atyp %d %s:%d, want atyp %d %s:%s", r.atyp, r.host, r.port, tt.wantAtyp, tt.wantHost, port)
			}
			// The stream works after the handshake.
			if _, err := c.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 4)
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
				t.Fatalf("echo = %q, %v", buf, err)
			}
		})
	}
}

func TestDialIsolatedTags(t *testing.T) {
	f := newFakeSOCKS(t, 0, false)
	d := &Dialer{SocksAddr: f.ln.Addr().String(), Isolation: "default"}
	for _, tag := range []string{"one", "two", ""} {
		c, err := d.DialIsolated(t.Context(), "tcp", torAddr+":80", tag)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		r := <-f.reqs
		if r.user != tag {
			t.Errorf("DialIsolated(%q) sent user %q", tag, r.user)
		}
	}
	if a, b := NewIsolationTag(), NewIsolationTag(); a == b || a == "" {
		t.Errorf("NewIsolationTag gave %q and %q", a, b)
	}
}

func TestDialerReplyErrors(t *testing.T) {
	tests := []struct {
		name string
		code byte
		want string
	}{
		{name: "general_failure", code: 0x01, want: "general failure"},
		{name: "host_unreachable", code: 0x04, want: "host unreachable"},
		{name: "ttl_expired", code: 0x06, want: "timed out"},
		{name: "onion_desc_not_found", code: 0xF0, want: "descriptor not found"},
		{name: "onion_intro_failed", code: 0xF2, want: "introduction failed"},
		{name: "onion_bad_address", code: 0xF6, want: "onion address is invalid"},
		{name: "onion_intro_timeout", code: 0xF7, want: "introduction timed out"},
		{name: "unknown_code", code: 0x99, want: "0x99"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeSOCKS(t, tt.code, false)
			d := &Dialer{SocksAddr: f.ln.Addr().String()}
			c, err := d.DialContext(t.Context(), "tcp", torAddr+":80")
			if err == nil {
				c.Close()
				t.Fatal("dial succeeded, want error")
			}
			var se *SOCKSError
			if !errors.As(err, &se) || se.Code != tt.code {
				t.Fatalf("error %v is not SOCKSError %#x", err, tt.code)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "onion: dial ") {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

// The dial must end when ctx ends, even if tor never answers, and the
// connection to tor must be closed.
func TestDialerContextCancel(t *testing.T) {
	f := newFakeSOCKS(t, 0, true)
	d := &Dialer{SocksAddr: f.ln.Addr().String()}
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		c, err := d.DialContext(ctx, "tcp", torAddr+":80")
		if c != nil {
			c.Close()
		}
		errc <- err
	}()
	// Cancel once the dial is in the SOCKS handshake.
	select {
	case <-f.accepted:
	case <-time.After(30 * time.Second):
		t.Fatal("dial never reached the SOCKS server")
	}
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("DialContext did not return after cancel")
	}
	select {
	case <-f.closed:
	case <-time.After(30 * time.Second):
		t.Fatal("connection to the SOCKS server not closed after cancel")
	}
}

func TestDialerTimeout(t *testing.T) {
	f := newFakeSOCKS(t, 0, true)
	d := &Dialer{SocksAddr: f.ln.Addr().String(), Timeout: 50 * time.Millisecond}
	done := make(chan error, 1)
	go func() {
		_, err := d.DialContext(context.Background(), "tcp", torAddr+":80")
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want DeadlineExceeded", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Timeout not honoured")
	}
}

func TestDialerBadInput(t *testing.T) {
	f := newFakeSOCKS(t, 0, false)
	// A port nothing listens on.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := ln.Addr().String()
	ln.Close()
	tests := []struct {
		name, socks, network, addr, isolation, want string
	}{
		{name: "udp", socks: f.ln.Addr().String(), network: "udp", addr: torAddr + ":80", want: "not supported"},
		{name: "no_socks_addr", network: "tcp", addr: torAddr + ":80", want: "SocksAddr is empty"},
		{name: "no_port", socks: f.ln.Addr().String(), network: "tcp", addr: torAddr, want: "missing port"},
		{name: "bad_port", socks: f.ln.Addr().String(), network: "tcp", addr: torAddr + ":http", want: "bad port"},
		{name: "port_zero", socks: f.ln.Addr().String(), network: "tcp", addr: torAddr + ":0", want: "bad port"},
		{name: "long_host", socks: f.ln.Addr().String(), network: "tcp", addr: strings.Repeat("a", 256) + ":80", want: "bad host"},
		{name: "long_tag", socks: f.ln.Addr().String(), network: "tcp", addr: torAddr + ":80", isolation: strings.Repeat("x", 256), want: "255 bytes"},
		{name: "tor_down", socks: deadAddr, network: "tcp", addr: torAddr + ":80", want: "connect to tor SOCKS port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &Dialer{SocksAddr: tt.socks}
			_, err := d.DialIsolated(t.Context(), tt.network, tt.addr, tt.isolation)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// A server that is not SOCKS5 gets a clear error.
func TestDialerNotSOCKS(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
		c.Close()
	}()
	d := &Dialer{SocksAddr: ln.Addr().String()}
	_, err = d.DialContext(t.Context(), "tcp", torAddr+":80")
	if err == nil || !strings.Contains(err.Error(), "SOCKS5") {
		t.Fatalf("err = %v, want a not-SOCKS5 error", err)
	}
}
