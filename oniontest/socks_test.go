package oniontest_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// socksDial opens a TCP stream to addr ("host:port", host may be a .onion
// name) through the SOCKS5 proxy at proxy, authenticating with user (and
// password "x") so that tor's IsolateSOCKSAuth puts it on its own circuit.
// A minimal RFC 1928/1929 client: x/net/proxy is not a dependency.
func socksDial(ctx context.Context, proxy, addr, user string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("bad port %q", portStr)
	}
	if len(host) > 255 || len(user) == 0 || len(user) > 255 {
		return nil, errors.New("host or user too long")
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", proxy)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	fail := func(err error) (net.Conn, error) {
		c.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	buf := make([]byte, 0, 512)
	// Greeting: version 5, one method: username/password.
	if _, err := c.Write([]byte{5, 1, 2}); err != nil {
		return fail(err)
	}
	rep := make([]byte, 2)
	if _, err := io.ReadFull(c, rep); err != nil {
		return fail(err)
	}
	if rep[0] != 5 || rep[1] != 2 {
		return fail(fmt.Errorf("socks: method %#x refused", rep[1]))
	}
	buf = append(buf, 1, byte(len(user)))
	buf = append(buf, user...)
	buf = append(buf, 1, 'x')
	if _, err := c.Write(buf); err != nil {
		return fail(err)
	}
	if _, err := io.ReadFull(c, rep); err != nil {
		return fail(err)
	}
	if rep[1] != 0 {
		return fail(fmt.Errorf("socks: auth status %#x", rep[1]))
	}
	// CONNECT with a domain name, resolved by tor.
	buf = append(buf[:0], 5, 1, 0, 3, byte(len(host)))
	buf = append(buf, host...)
	buf = binary.BigEndian.AppendUint16(buf, uint16(port))
	if _, err := c.Write(buf); err != nil {
		return fail(err)
	}
	head := make([]byte, 4)
	if _, err := io.ReadFull(c, head); err != nil {
		return fail(err)
	}
	if head[1] != 0 {
		return fail(fmt.Errorf("socks: connect failed with reply %#x", head[1]))
	}
	var skip int
	switch head[3] {
	case 1:
		skip = 4 + 2
	case 4:
		skip = 16 + 2
	case 3:
		l := make([]byte, 1)
		if _, err := io.ReadFull(c, l); err != nil {
			return fail(err)
		}
		skip = int(l[0]) + 2
	default:
		return fail(fmt.Errorf("socks: bad address type %#x", head[3]))
	}
	if _, err := io.ReadFull(c, make([]byte, skip)); err != nil {
		return fail(err)
	}
	return c, nil
}
