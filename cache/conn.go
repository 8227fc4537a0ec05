package cache

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"slices"
	"sync"
)

// connKey is the context key under which ConnContext stores a connection.
type connKey struct{}

// ConnContext is a hook for [http.Server.ConnContext]: it records the
// connection in ctx, so that a [Cache] serving HTTP/1.x requests on it can
// tune how stored responses are written:
//
//   - on a connection from [NewListener], a stored response of up to
//     [MaxHeldResponse] bytes leaves in one write (header and body);
//   - a larger body sent from a file (with sendfile(2)) is sent with the
//     socket corked (TCP_CORK on Linux; elsewhere nothing changes), so that
//     the response header does not leave in a segment of its own and the
//     body leaves in full segments; it is uncorked as soon as the body is
//     written. Measured on loopback with 2 MB hits, the client then spends
//     about a tenth less CPU per response.
//
// Without the hook the cache works the same, only less efficiently. A
// server that has its own ConnContext can call this from it.
//
//	srv := &http.Server{Handler: c, ConnContext: cache.ConnContext}
//	srv.Serve(cache.NewListener(ln))
//
// It only keeps a reference to c for the connection's lifetime; nothing is
// logged or forwarded.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// tcpConnFrom returns the TCP connection ConnContext recorded in ctx,
// looking through wrappers that expose theirs with NetConn (crypto/tls,
// NewListener) or Raw (github.com/pires/go-proxyproto), or nil.
func tcpConnFrom(ctx context.Context) *net.TCPConn {
	c, _ := connFrom[*net.TCPConn](ctx)
	return c
}

// connFrom returns the connection of type T that ConnContext recorded in
// ctx, or that one recorded there wraps (at most three wrappers deep).
func connFrom[T net.Conn](ctx context.Context) (T, bool) {
	c, _ := ctx.Value(connKey{}).(net.Conn)
	for range 4 {
		if t, ok := c.(T); ok {
			return t, true
		}
		switch x := c.(type) {
		case interface{ NetConn() net.Conn }:
			c = x.NetConn()
		case interface{ Raw() net.Conn }:
			c = x.Raw()
		default:
			var zero T
			return zero, false
		}
	}
	var zero T
	return zero, false
}

// NewListener returns a listener whose connections let a [Cache] send a
// stored response of up to [MaxHeldResponse] bytes (header and body) with
// one write system call, where net/http alone makes two or more (it flushes
// its 4 KiB buffer, then writes the rest) and a small body read from a file
// would take a header write and a sendfile(2). On loopback, each write of a
// separate segment also wakes the reader once more: a 10 KB hit then costs
// the serving process about a tenth less CPU (measured on loopback with
// wrk; see the README's performance section).
//
// The connections work as ln's do for everything else; bytes are held back
// only while a Cache writes a complete stored response, never for responses
// that stream from upstream. If such a response fails midway, nothing of it
// is sent and the connection is closed. The Cache finds the connection through
// [ConnContext], so a server needs both:
//
//	srv := &http.Server{Handler: c, ConnContext: cache.ConnContext}
//	srv.Serve(cache.NewListener(ln))
//
// Connections keep ln's ReadFrom (sendfile) and expose the accepted
// connection with NetConn, as crypto/tls does. Wrap the listener that
// accepts plain connections (TCP, onion) and put TLS on top, if any:
// net/http must see a *tls.Conn to serve TLS, so connections that already
// speak TLS (ConnectionState) are passed through unwrapped.
func NewListener(ln net.Listener) net.Listener {
	l := &listener{Listener: ln}
	l.bufs.New = func() any { b := make([]byte, 0, 16<<10); return &b }
	return l
}

// MaxHeldResponse is the largest response (header and body) that a
// connection from [NewListener] sends in one write. Larger responses are
// sent as net/http sends them.
const MaxHeldResponse = 64<<10 + 8<<10

type listener struct {
	net.Listener
	bufs sync.Pool // *[]byte; buffers that grew past MaxHeldResponse are dropped
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if _, isTLS := c.(interface{ ConnectionState() tls.ConnectionState }); isTLS {
		return c, nil
	}
	return &heldConn{Conn: c, bufs: &l.bufs}, nil
}

// heldConn is a connection that can hold back writes and send them in one.
// A Cache holds it from the goroutine serving the request, which is the
// one net/http writes the response from; mu serializes every write, so
// that bytes from any other goroutine (a TLS key update, say) never go out
// between or before held ones.
type heldConn struct {
	net.Conn
	bufs   *sync.Pool
	mu     sync.Mutex
	held   *[]byte // non-nil while holding
	failed bool    // a held response was discarded: the connection is dead
}

// NetConn returns the connection accepted from the wrapped listener.
func (c *heldConn) NetConn() net.Conn { return c.Conn }

// hold starts holding back writes until release or discard. It reports
// false, and holds nothing, if writes are held already (by another
// response: only one may hold) or the connection failed.
func (c *heldConn) hold() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held != nil || c.failed {
		return false
	}
	b := c.bufs.Get().(*[]byte)
	*b = (*b)[:0]
	c.held = b
	return true
}

// release stops holding back writes and sends what was held in one write.
// It is a no-op if nothing is held.
func (c *heldConn) release() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.releaseLocked()
}

func (c *heldConn) releaseLocked() error {
	b := c.held
	if b == nil {
		return nil
	}
	c.held = nil
	var err error
	if len(*b) > 0 {
		_, err = c.Conn.Write(*b)
	}
	c.put(b)
	return err
}

func (c *heldConn) put(b *[]byte) {
	if cap(*b) <= MaxHeldResponse {
		c.bufs.Put(b)
	}
}

func (c *heldConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failed {
		return 0, net.ErrClosed
	}
	b := c.held
	if b == nil {
		return c.Conn.Write(p)
	}
	if len(*b)+len(p) <= MaxHeldResponse {
		*b = append(*b, p...)
		return len(p), nil
	}
	// Too much to hold: send the held bytes and p together (writev) and
	// stop holding.
	c.held = nil
	k := len(*b)
	bufs := net.Buffers{*b, p}
	n, err := bufs.WriteTo(c.Conn)
	c.put(b)
	n -= int64(k)
	if n < 0 {
		n = 0
	}
	return int(n), err
}

// ReadFrom reads a held response's body into the held bytes when it fits
// (a small body from a file: one read, and header and body still leave in
// one write); otherwise it sends what was held and lets the wrapped
// connection copy r (with sendfile(2) for a TCP connection and a file).
func (c *heldConn) ReadFrom(r io.Reader) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failed {
		return 0, net.ErrClosed
	}
	if b := c.held; b != nil {
		if lr, ok := r.(*io.LimitedReader); ok && int64(len(*b))+lr.N <= MaxHeldResponse {
			return readHeld(b, lr)
		}
		if err := c.releaseLocked(); err != nil {
			return 0, err
		}
	}
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{c.Conn}, r)
}

// readHeld appends lr's bytes to the held buffer b.
func readHeld(b *[]byte, lr *io.LimitedReader) (int64, error) {
	buf := slices.Grow(*b, int(lr.N))
	start := len(buf)
	var err error
	for zeros := 0; lr.N > 0 && err == nil; {
		var k int
		k, err = lr.Read(buf[len(buf):cap(buf)]) // lr stops at N
		buf = buf[:len(buf)+k]
		if k > 0 {
			zeros = 0
		} else if zeros++; zeros == 100 && err == nil {
			err = io.ErrNoProgress
		}
	}
	*b = buf
	if err == io.EOF {
		err = nil
	}
	return int64(len(buf) - start), err
}

// discard drops what was held and, if anything was, kills the connection:
// the response failed and is being aborted, and nothing of it (neither the
// held part nor a tail net/http still buffers and flushes when it closes
// the connection) may reach the client, who could take it for a response.
// It is a no-op if nothing is held (after release).
func (c *heldConn) discard() {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.held
	if b == nil {
		return
	}
	c.held = nil
	c.put(b)
	c.failed = true
	c.Conn.Close()
}

// CloseWrite shuts down the writing side, if the wrapped connection can
// (net/http uses it to close connections gracefully).
func (c *heldConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// writerOnly hides the ReadFrom of a writer, so that io.Copy does not call
// it back.
type writerOnly struct{ io.Writer }

// heldConnFrom returns the connection from NewListener that ConnContext
// recorded in ctx (or one wrapping it), or nil.
func heldConnFrom(ctx context.Context) *heldConn {
	c, _ := connFrom[*heldConn](ctx)
	return c
}
