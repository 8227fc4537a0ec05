package onion

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
)

func TestCircuitIDFromHeader(t *testing.T) {
	tests := []struct {
		name   string
		header string
		want   uint32
	}{
		// The example from tor's documentation of HiddenServiceExportCircuitID.
		{name: "tor_example", header: "PROXY TCP6 fc00:dead:beef:4dad::0:18 ::1 24 80\r\n", want: 0x18},
		{name: "high_bits", header: "PROXY TCP6 fc00:dead:beef:4dad::ffff:fffe ::1 65534 443\r\n", want: 0xfffffffe},
		{name: "mid", header: "PROXY TCP6 fc00:dead:beef:4dad::1:2 ::1 1 80\r\n", want: 0x10002},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := proxyproto.Read(bufio.NewReader(strings.NewReader(tt.header)))
			if err != nil {
				t.Fatal(err)
			}
			got, err := circuitIDFromHeader(h)
			if err != nil || got != tt.want {
				t.Fatalf("circuit id = %#x, %v; want %#x", got, err, tt.want)
			}
		})
	}
}

// exportListener builds a Listener in circuit-id export mode on a plain
// local listener, without tor.
func exportListener(t *testing.T) *Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &Listener{
		s:     &Server{log: slog.New(slog.DiscardHandler)},
		ln:    ln,
		ports: []int{80},
		ready: make(chan net.Conn),
		acErr: make(chan error, 1),
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.wg.Add(1)
	go l.acceptLoop()
	t.Cleanup(func() {
		l.cancel()
		ln.Close()
		l.wg.Wait()
	})
	return l
}

func dialWith(t *testing.T, addr net.Addr, data string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if data != "" {
		if _, err := io.WriteString(c, data); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func TestListenerProxyHeader(t *testing.T) {
	l := exportListener(t)
	// A connection that never sends its header must not block others.
	dialWith(t, l.ln.Addr(), "")
	// A connection with garbage is dropped.
	bad := dialWith(t, l.ln.Addr(), "GET / HTTP/1.1\r\n\r\n")
	dialWith(t, l.ln.Addr(), "PROXY TCP6 fc00:dead:beef:4dad::0:18 ::1 24 80\r\nhello")

	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	id, ok := ConnCircuitID(c)
	if !ok || id != 0x18 {
		t.Fatalf("ConnCircuitID = %#x, %v; want 0x18", id, ok)
	}
	// Bytes after the header reach the reader.
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("read %q, %v; want hello", buf, err)
	}
	// RemoteAddr is the real (local) peer, not the circuit address.
	if strings.Contains(c.RemoteAddr().String(), "fc00") {
		t.Errorf("RemoteAddr %s reveals the circuit id", c.RemoteAddr())
	}
	ctx := ConnContext(context.Background(), c)
	if got, ok := CircuitID(ctx); !ok || got != 0x18 {
		t.Fatalf("CircuitID(ConnContext) = %#x, %v", got, ok)
	}
	// The garbage connection was closed by the listener.
	bad.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := bad.Read(make([]byte, 1)); !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("bad connection read: %v, want EOF", err)
	}
	// Close makes Accept return net.ErrClosed.
	l.cancel()
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after close: %v, want net.ErrClosed", err)
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "reset")
}

func TestConnContextPlainConn(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	ctx := ConnContext(context.Background(), a)
	if _, ok := CircuitID(ctx); ok {
		t.Fatal("CircuitID set for a conn without PROXY header")
	}
	if _, ok := CircuitID(WithCircuitID(context.Background(), 7)); !ok {
		t.Fatal("WithCircuitID not visible to CircuitID")
	}
}

// An http.Server with ConnContext sees the circuit id of each connection.
func TestCircuitIDHTTP(t *testing.T) {
	l := exportListener(t)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id, ok := CircuitID(r.Context())
			fmt.Fprintf(w, "%v %d", ok, id)
		}),
		ConnContext: ConnContext,
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	for _, id := range []uint32{0x18, 0xabcdef01} {
		ip := net.IP{0xfc, 0, 0xde, 0xad, 0xbe, 0xef, 0x4d, 0xad, 0, 0, 0, 0, byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)}
		c := dialWith(t, l.ln.Addr(), fmt.Sprintf("PROXY TCP6 %s ::1 %d 80\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", ip, id&0xffff))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("true %d", id); string(body) != want {
			t.Fatalf("handler saw %q, want %q", body, want)
		}
	}
}

// net/http sends files with sendfile only through a connection that is an
// io.ReaderFrom; a circuit-id connection must stay one, and its writes must
// reach the peer unchanged.
func TestCircuitConnReadFrom(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- b
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	var conn net.Conn = &circuitConn{Conn: raw, r: bufio.NewReader(raw), id: 7}
	rf, ok := conn.(io.ReaderFrom)
	if !ok {
		t.Fatal("circuitConn is not an io.ReaderFrom")
	}
	f, err := os.CreateTemp(t.TempDir(), "body")
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte("0123456789"), 100000)
	f.Write(want)
	f.Seek(0, io.SeekStart)
	if n, err := rf.ReadFrom(io.LimitReader(f, int64(len(want)))); err != nil || n != int64(len(want)) {
		t.Fatalf("ReadFrom = %d, %v", n, err)
	}
	f.Close()
	if nc, ok := conn.(interface{ NetConn() net.Conn }); !ok || nc.NetConn() != raw {
		t.Error("NetConn does not expose the TCP connection")
	}
	if id, ok := ConnCircuitID(netConnOf{netConnOf{conn}}); !ok || id != 7 {
		t.Errorf("ConnCircuitID through two NetConn wrappers = %d, %v; want 7, true", id, ok)
	}
	if id, ok := ConnCircuitID(rawOf{netConnOf{conn}}); !ok || id != 7 {
		t.Errorf("ConnCircuitID through Raw and NetConn wrappers = %d, %v; want 7, true", id, ok)
	}
	if _, ok := ConnCircuitID(raw); ok {
		t.Error("ConnCircuitID of a plain TCP connection reports an id")
	}
	raw.Close()
	if b := <-got; !bytes.Equal(b, want) {
		t.Errorf("peer got %d bytes, want %d", len(b), len(want))
	}
}

// netConnOf wraps a connection and exposes it with NetConn, as crypto/tls
// and cache.NewListener do.
type netConnOf struct{ net.Conn }

func (w netConnOf) NetConn() net.Conn { return w.Conn }

// rawOf wraps a connection and exposes it with Raw, as go-proxyproto does.
type rawOf struct{ net.Conn }

func (w rawOf) Raw() net.Conn { return w.Conn }
