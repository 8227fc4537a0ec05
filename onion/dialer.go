package onion

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// DefaultDialTimeout is the Dialer's timeout when its Timeout is zero. Tor
// may need to build a circuit and, for an onion service, fetch a descriptor
// and complete a rendezvous, which takes seconds on a healthy network.
const DefaultDialTimeout = 60 * time.Second

// Dialer opens TCP streams through a tor SOCKS port. Its zero value is not
// connected to any tor: set SocksAddr, or use [Server.Dialer].
//
// With tor's IsolateSOCKSAuth (on by default for a SocksPort), streams with
// different isolation tags never share a circuit; streams with the same tag
// may. The tag travels to tor as the SOCKS5 username and password and goes no
// further.
//
// A Dialer is safe for concurrent use; its fields must not change while it is
// in use.
type Dialer struct {
	// SocksAddr is the host:port of tor's SOCKS port. It must be set.
	SocksAddr string

	// Isolation is the isolation tag for DialContext. If empty, no SOCKS
	// authentication is sent, and tor puts such streams on shared circuits.
	Isolation string

	// Timeout bounds each dial, SOCKS handshake included. If zero,
	// DefaultDialTimeout (60 s) is used; a negative value means no timeout
	// beyond the context's.
	Timeout time.Duration
}

// HTTPClient returns an HTTP client whose requests go through tor with the
// Dialer's Isolation tag (as tsnet's Server.HTTPClient does for its
// network), with a two-minute overall timeout. Its transport sends no
// Accept-Encoding of its own and keeps idle connections (circuits) for
// reuse.
func (d *Dialer) HTTPClient() *http.Client {
	return &http.Client{
		Timeout: 2 * time.Minute,
		Transport: &http.Transport{
			DialContext:        d.DialContext,
			DisableCompression: true,
			ForceAttemptHTTP2:  false,
			IdleConnTimeout:    5 * time.Minute,
		},
	}
}

// DialContext connects to addr ("host:port"; host may be a .onion name,
// which tor resolves) through tor, using the Dialer's Isolation tag. network
// must be "tcp", "tcp4" or "tcp6". If ctx ends before the stream is open, the
// dial is abandoned (the connection to tor is closed) and ctx's error is
// returned, wrapped.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return d.DialIsolated(ctx, network, addr, d.Isolation)
}

// DialIsolated is like DialContext with the isolation tag given per call:
// streams with different tags get different circuits. An empty tag means no
// SOCKS authentication. Tags longer than 255 bytes are refused.
func (d *Dialer) DialIsolated(ctx context.Context, network, addr, isolation string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("onion: dial %s: network %q not supported through tor", addr, network)
	}
	if d.SocksAddr == "" {
		return nil, errors.New("onion: dial: Dialer.SocksAddr is empty")
	}
	if len(isolation) > 255 {
		return nil, errors.New("onion: dial: isolation tag longer than 255 bytes")
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("onion: dial %s: %w", addr, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return nil, fmt.Errorf("onion: dial %s: bad port %q", addr, portStr)
	}
	if len(host) == 0 || len(host) > 255 {
		return nil, fmt.Errorf("onion: dial %s: bad host", addr)
	}
	timeout := d.Timeout
	if timeout == 0 {
		timeout = DefaultDialTimeout
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var nd net.Dialer
	conn, err := nd.DialContext(ctx, "tcp", d.SocksAddr)
	if err != nil {
		return nil, fmt.Errorf("onion: dial %s: connect to tor SOCKS port: %w", addr, err)
	}
	// Close the connection if ctx ends during the handshake; that unblocks
	// any read or write in progress.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	err = socksHandshake(conn, host, uint16(port), isolation)
	if !stop() {
		// ctx ended: the conn is (being) closed, whatever the handshake said.
		conn.Close()
		return nil, fmt.Errorf("onion: dial %s: %w", addr, context.Cause(ctx))
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("onion: dial %s: %w", addr, err)
	}
	return conn, nil
}

// NewIsolationTag returns a random isolation tag, for callers that want a
// fresh circuit.
func NewIsolationTag() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// SOCKSError is a failure reply from the SOCKS server (tor).
type SOCKSError struct {
	Code byte // the SOCKS5 REP field
}

func (e *SOCKSError) Error() string {
	if msg, ok := socksReplies[e.Code]; ok {
		return fmt.Sprintf("tor SOCKS error %#02x: %s", e.Code, msg)
	}
	return fmt.Sprintf("tor SOCKS error %#02x", e.Code)
}

// socksReplies describes SOCKS5 reply codes, including tor's extended onion
// service errors (tor's ExtendedErrors; see tor's socks-extensions.txt).
var socksReplies = map[byte]string{
	0x01: "general failure",
	0x02: "connection not allowed by ruleset",
	0x03: "network unreachable",
	0x04: "host unreachable",
	0x05: "connection refused",
	0x06: "TTL expired (stream or circuit timed out)",
	0x07: "command not supported",
	0x08: "address type not supported",
	0xF0: "onion service descriptor not found (service offline or not yet published)",
	0xF1: "onion service descriptor is invalid",
	0xF2: "onion service introduction failed",
	0xF3: "onion service rendezvous failed",
	0xF4: "onion service missing client authorization",
	0xF5: "onion service wrong client authorization",
	0xF6: "onion address is invalid",
	0xF7: "onion service introduction timed out",
}

// socksHandshake runs a SOCKS5 CONNECT (RFC 1928) with optional
// username/password authentication (RFC 1929) on conn.
func socksHandshake(conn net.Conn, host string, port uint16, isolation string) error {
	method := byte(0x00)
	if isolation != "" {
		method = 0x02
	}
	if _, err := conn.Write([]byte{5, 1, method}); err != nil {
		return fmt.Errorf("socks: %w", err)
	}
	var resp [2]byte
	if _, err := io.ReadFull(conn, resp[:]); err != nil {
		return fmt.Errorf("socks: read method reply: %w", err)
	}
	if resp[0] != 5 {
		return fmt.Errorf("socks: server replied with version %d, want 5 (is this a SOCKS5 port?)", resp[0])
	}
	if resp[1] != method {
		return fmt.Errorf("socks: server refused authentication method %#02x", method)
	}
	if method == 0x02 {
		// Username and password both carry the tag; tor isolates on the pair.
		msg := make([]byte, 0, 3+2*len(isolation))
		msg = append(msg, 1, byte(len(isolation)))
		msg = append(msg, isolation...)
		msg = append(msg, byte(len(isolation)))
		msg = append(msg, isolation...)
		if _, err := conn.Write(msg); err != nil {
			return fmt.Errorf("socks: %w", err)
		}
		if _, err := io.ReadFull(conn, resp[:]); err != nil {
			return fmt.Errorf("socks: read auth reply: %w", err)
		}
		if resp[1] != 0 {
			return errors.New("socks: authentication refused")
		}
	}
	req := make([]byte, 0, 7+len(host))
	req = append(req, 5, 1, 0) // CONNECT
	if ip, err := parseIPLiteral(host); err == nil {
		if ip4 := ip.To4(); ip4 != nil {
			req = append(req, 1)
			req = append(req, ip4...)
		} else {
			req = append(req, 4)
			req = append(req, ip.To16()...)
		}
	} else {
		req = append(req, 3, byte(len(host)))
		req = append(req, host...)
	}
	req = binary.BigEndian.AppendUint16(req, port)
	if _, err := conn.Write(req); err != nil {
		return fmt.Errorf("socks: %w", err)
	}
	var hdr [4]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return fmt.Errorf("socks: read connect reply: %w", err)
	}
	if hdr[0] != 5 {
		return fmt.Errorf("socks: bad reply version %d", hdr[0])
	}
	if hdr[1] != 0 {
		return &SOCKSError{Code: hdr[1]}
	}
	// Skip the bound address.
	var skip int
	switch hdr[3] {
	case 1:
		skip = 4
	case 4:
		skip = 16
	case 3:
		var l [1]byte
		if _, err := io.ReadFull(conn, l[:]); err != nil {
			return fmt.Errorf("socks: read connect reply: %w", err)
		}
		skip = int(l[0])
	default:
		return fmt.Errorf("socks: bad address type %d in reply", hdr[3])
	}
	if _, err := io.ReadFull(conn, make([]byte, skip+2)); err != nil {
		return fmt.Errorf("socks: read connect reply: %w", err)
	}
	return nil
}

func parseIPLiteral(host string) (net.IP, error) {
	if ip := net.ParseIP(host); ip != nil {
		return ip, nil
	}
	return nil, errors.New("not an IP literal")
}
