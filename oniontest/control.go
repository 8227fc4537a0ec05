package oniontest

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// controlTimeout bounds each control-port exchange.
const controlTimeout = 5 * time.Second

// controlConn is a minimal tor control-port client: cookie authentication
// and GETINFO, which is all Start needs.
type controlConn struct {
	c net.Conn
	r *bufio.Reader
}

// readControlAddr returns the address in a ControlPortWriteToFile file
// ("PORT=127.0.0.1:9051"), or "" if tor has not written it yet.
func readControlAddr(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(data)) {
		if addr, ok := strings.CutPrefix(strings.TrimSpace(line), "PORT="); ok {
			return addr
		}
	}
	return ""
}

// dialControl connects to addr and authenticates with the cookie in
// cookieFile.
func dialControl(ctx context.Context, addr, cookieFile string) (*controlConn, error) {
	cookie, err := os.ReadFile(cookieFile)
	if err != nil {
		return nil, fmt.Errorf("oniontest: reading control cookie: %w", err)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("oniontest: control port: %w", err)
	}
	cc := &controlConn{c: c, r: bufio.NewReader(c)}
	if _, err := cc.do(ctx, "AUTHENTICATE "+hex.EncodeToString(cookie)); err != nil {
		c.Close()
		return nil, err
	}
	return cc, nil
}

func (cc *controlConn) Close() error { return cc.c.Close() }

// getInfo returns the value of one GETINFO key, unquoted if tor quoted it.
func (cc *controlConn) getInfo(ctx context.Context, key string) (string, error) {
	lines, err := cc.do(ctx, "GETINFO "+key)
	if err != nil {
		return "", err
	}
	for _, l := range lines {
		if v, ok := strings.CutPrefix(l, key+"="); ok {
			if u, err := strconv.Unquote(v); err == nil {
				return u, nil
			}
			return v, nil
		}
	}
	return "", fmt.Errorf("oniontest: control port: no %s in reply", key)
}

// do sends one command and returns the text of its reply lines (status
// code and separator stripped). A non-250 status is an error.
func (cc *controlConn) do(ctx context.Context, cmd string) ([]string, error) {
	deadline := time.Now().Add(controlTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	cc.c.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { cc.c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := cc.c.Write([]byte(cmd + "\r\n")); err != nil {
		return nil, cc.err(ctx, err)
	}
	var lines []string
	for {
		line, err := cc.r.ReadString('\n')
		if err != nil {
			return nil, cc.err(ctx, err)
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 4 {
			return nil, fmt.Errorf("oniontest: control port: malformed reply %q", line)
		}
		code, sep, text := line[:3], line[3], line[4:]
		if code != "250" {
			return nil, fmt.Errorf("oniontest: control port: %s %s", code, text)
		}
		if sep == '+' { // data reply: text lines up to "."
			for {
				dl, err := cc.r.ReadString('\n')
				if err != nil {
					return nil, cc.err(ctx, err)
				}
				if dl = strings.TrimRight(dl, "\r\n"); dl == "." {
					break
				}
				text += "\n" + dl
			}
		}
		lines = append(lines, text)
		if sep == ' ' {
			return lines, nil
		}
	}
}

// err prefers ctx's error over the I/O error it caused.
func (cc *controlConn) err(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("oniontest: control port: no reply within %v", controlTimeout)
	}
	return fmt.Errorf("oniontest: control port: %w", err)
}
