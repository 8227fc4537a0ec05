package heldwrite

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"slices"
	"sync"
)

// MaxHeld is the largest response (header and body) that is held back and
// sent in one write. Larger responses are sent corked.
const MaxHeld = 64<<10 + 8<<10

// maxHeader is the room left for the response header when deciding
// whether a body is small enough to be held (a larger header still works:
// the held bytes then go out in two writes).
const maxHeader = 8 << 10

// Listener returns a listener whose connections can hold back writes for
// [Wrap]. They work as ln's do for everything else, keep ln's ReadFrom
// (sendfile) and expose the accepted connection with NetConn, as
// crypto/tls does. Wrap the listener that accepts plain connections (TCP,
// onion) and put TLS on top, if any: connections that already speak TLS
// (ConnectionState) are passed through unwrapped.
func Listener(ln net.Listener) net.Listener {
	l := &listener{Listener: ln}
	l.bufs.New = func() any { b := make([]byte, 0, 16<<10); return &b }
	return l
}

type listener struct {
	net.Listener
	bufs sync.Pool // *[]byte; buffers that grew past MaxHeld are dropped
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if _, isTLS := c.(interface{ ConnectionState() tls.ConnectionState }); isTLS {
		return c, nil
	}
	return &conn{Conn: c, bufs: &l.bufs}, nil
}

// connKey is the context key under which ConnContext stores a connection.
type connKey struct{}

// ConnContext is a hook for [net/http.Server.ConnContext]: it records the
// connection in ctx for [Wrap]. It keeps only a reference for the
// connection's lifetime.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// connFrom returns the connection of type T that ConnContext recorded in
// ctx, or that one recorded there wraps (at most three wrappers deep,
// through NetConn as crypto/tls has, or Raw as go-proxyproto has).
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

// conn is a connection that can hold back writes and send them in one.
// mu serializes every write, so that bytes from any other goroutine (a
// TLS key update, say) never go out between or before held ones.
type conn struct {
	net.Conn
	bufs   *sync.Pool
	mu     sync.Mutex
	held   *[]byte // non-nil while holding
	failed bool    // a held response was discarded: the connection is dead
}

// NetConn returns the connection accepted from the wrapped listener.
func (c *conn) NetConn() net.Conn { return c.Conn }

// hold starts holding back writes until release or discard. It reports
// false, and holds nothing, if writes are held already or the connection
// failed.
func (c *conn) hold() bool {
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
func (c *conn) release() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.releaseLocked()
}

func (c *conn) releaseLocked() error {
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

func (c *conn) put(b *[]byte) {
	if cap(*b) <= MaxHeld {
		c.bufs.Put(b)
	}
}

// discard drops what was held and, if anything was, kills the connection:
// the response failed, and nothing of it (neither the held part nor a
// tail net/http still buffers and flushes when it closes the connection)
// may reach the client, who could take it for a response. It is a no-op if
// nothing is held.
func (c *conn) discard() {
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

func (c *conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failed {
		return 0, net.ErrClosed
	}
	b := c.held
	if b == nil {
		return c.Conn.Write(p)
	}
	if len(*b)+len(p) <= MaxHeld {
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
func (c *conn) ReadFrom(r io.Reader) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failed {
		return 0, net.ErrClosed
	}
	if b := c.held; b != nil {
		if lr, ok := r.(*io.LimitedReader); ok && int64(len(*b))+lr.N <= MaxHeld {
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

// CloseWrite shuts down the writing side, if the wrapped connection can
// (net/http uses it to close connections gracefully).
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// writerOnly hides the ReadFrom of a writer, so that io.Copy does not call
// it back.
type writerOnly struct{ io.Writer }
