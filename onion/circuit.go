package onion

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/pires/go-proxyproto"
)

// proxyHeaderTimeout bounds the wait for tor's PROXY header on a new
// connection. tor writes it as soon as it connects.
const proxyHeaderTimeout = 10 * time.Second

type circuitIDKey struct{}

// CircuitID returns the tor circuit id stored in ctx by [ConnContext] (or
// [WithCircuitID]). ok is false when the connection did not come from a
// listener with circuit-id export.
//
// Streams on one client circuit share an id; ids are local to the tor
// instance that publishes the service and mean nothing elsewhere. Use them
// for per-circuit accounting or rate limiting at this tier only: never
// forward them upstream and never log them.
func CircuitID(ctx context.Context) (uint32, bool) {
	id, ok := ctx.Value(circuitIDKey{}).(uint32)
	return id, ok
}

// WithCircuitID returns a copy of ctx carrying id, as [ConnContext] does.
func WithCircuitID(ctx context.Context, id uint32) context.Context {
	return context.WithValue(ctx, circuitIDKey{}, id)
}

// ConnCircuitID returns the circuit id of a connection accepted from a
// [Listener] with circuit-id export, looking through wrappers that expose
// the connection under them with NetConn (as crypto/tls and
// cache/heldwrite's connections do) or Raw (as github.com/pires/go-proxyproto does).
func ConnCircuitID(c net.Conn) (uint32, bool) {
	for range 4 {
		switch x := c.(type) {
		case *circuitConn:
			return x.id, true
		case interface{ NetConn() net.Conn }:
			c = x.NetConn()
		case interface{ Raw() net.Conn }:
			c = x.Raw()
		default:
			return 0, false
		}
	}
	return 0, false
}

// ConnContext stores the connection's circuit id (if any) in ctx. It has the
// signature of [net/http.Server.ConnContext], so
//
//	srv := &http.Server{Handler: h, ConnContext: onion.ConnContext}
//
// makes [CircuitID] work on every request's context.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if id, ok := ConnCircuitID(c); ok {
		return WithCircuitID(ctx, id)
	}
	return ctx
}

// circuitConn is a connection whose PROXY header has been read.
type circuitConn struct {
	net.Conn
	r  *bufio.Reader // holds bytes read past the header
	id uint32
}

func (c *circuitConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// ReadFrom writes straight to the connection, so that net/http can send a
// file with sendfile(2) on circuit-id listeners too; only reads are
// buffered.
func (c *circuitConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// NetConn returns the underlying connection, for socket options (the cache
// corks file-backed responses through it). Reading from it would skip
// bytes already buffered here.
func (c *circuitConn) NetConn() net.Conn { return c.Conn }

// circuitIDFromHeader extracts tor's circuit id from a PROXY header: tor
// encodes it in the low 32 bits of the source address
// (fc00:dead:beef:4dad::XXXX:XXXX).
func circuitIDFromHeader(h *proxyproto.Header) (uint32, error) {
	src, ok := h.SourceAddr.(*net.TCPAddr)
	if !ok || src == nil {
		return 0, errors.New("PROXY header has no TCP source address")
	}
	ip := src.IP.To16()
	if ip == nil {
		return 0, errors.New("PROXY header has a bad source address")
	}
	return uint32(ip[12])<<24 | uint32(ip[13])<<16 | uint32(ip[14])<<8 | uint32(ip[15]), nil
}

// readCircuitHeader reads the PROXY v1 header tor sends at the start of conn
// and returns the wrapped connection.
func readCircuitHeader(conn net.Conn) (*circuitConn, error) {
	if err := conn.SetReadDeadline(time.Now().Add(proxyHeaderTimeout)); err != nil {
		return nil, err
	}
	r := bufio.NewReader(conn)
	h, err := proxyproto.Read(r)
	if err != nil {
		return nil, fmt.Errorf("read PROXY header: %w", err)
	}
	if h.Version != 1 {
		return nil, fmt.Errorf("PROXY header version %d, want 1", h.Version)
	}
	id, err := circuitIDFromHeader(h)
	if err != nil {
		return nil, err
	}
	if err := conn.SetReadDeadline(time.Time{}); err != nil {
		return nil, err
	}
	return &circuitConn{Conn: conn, r: r, id: id}, nil
}
