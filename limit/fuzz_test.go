package limit_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/internal/hygiene"
	"github.com/onioncdn/onioncdn/internal/rfc9111"
	"github.com/onioncdn/onioncdn/limit"
	"github.com/onioncdn/onioncdn/upstream"
)

// strictUpstream parses every byte a tier sends it with http.ReadRequest
// and records what is not a well-formed request, as a tier's upstream
// should never see it.
type strictUpstream struct {
	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	bad  []string
	seen int
}

func newStrictUpstream(tb testing.TB) *strictUpstream {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	u := &strictUpstream{ln: ln}
	u.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.wg.Go(func() { u.serve(c) })
		}
	})
	return u
}

func (u *strictUpstream) close() { u.ln.Close(); u.wg.Wait() }

func (u *strictUpstream) violation(format string, args ...any) {
	u.mu.Lock()
	u.bad = append(u.bad, fmt.Sprintf(format, args...))
	u.mu.Unlock()
}

func (u *strictUpstream) violations() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.bad...)
}

// truncated reports whether err only says that the connection ended
// mid-request: the tier gave up on a request (its client went away), which
// the upstream never acts on.
func truncated(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || errors.As(err, &ne)
}

func (u *strictUpstream) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		c.SetReadDeadline(time.Now().Add(time.Minute))
		req, err := http.ReadRequest(br)
		if err != nil {
			if !truncated(err) {
				u.violation("unparsable request: %v", err)
			}
			return
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			// The header was complete: an upstream server would already
			// be running its handler on a body that breaks.
			u.violation("%s %s: body: %v", req.Method, req.URL.Path, err)
			return
		}
		u.check(req, body)
		resp := "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 2\r\n\r\n"
		if req.Method != http.MethodHead {
			resp += "ok"
		}
		if _, err := io.WriteString(c, resp); err != nil {
			return
		}
	}
}

// check applies what a tier promises about the requests it sends.
func (u *strictUpstream) check(req *http.Request, body []byte) {
	u.mu.Lock()
	u.seen++
	u.mu.Unlock()
	if len(req.TransferEncoding) > 0 && req.Header.Get("Content-Length") != "" {
		u.violation("%s: Transfer-Encoding and Content-Length", req.Method)
	}
	if req.ContentLength >= 0 && int64(len(body)) != req.ContentLength {
		u.violation("%s: body %d bytes, Content-Length %d", req.Method, len(body), req.ContentLength)
	}
	if int64(len(body)) > limit.DefaultMaxBodyBytes {
		u.violation("%s: body of %d bytes over the limit", req.Method, len(body))
	}
	for k := range req.Header {
		if hygiene.IsHopByHop(k) || hygiene.IsTrace(k) {
			u.violation("%s: header %s forwarded", req.Method, k)
		}
		switch http.CanonicalHeaderKey(k) {
		case "X-Forwarded-For", "Forwarded", "X-Forwarded-Host", "Via", "X-Real-Ip":
			u.violation("%s: header %s forwarded", req.Method, k)
		}
	}
	if r := req.Header.Values("Range"); len(r) > 0 {
		if f, ok := rfc9111.ForwardRange(r[0]); len(r) != 1 || !ok || f != r[0] {
			u.violation("%s: Range %q forwarded", req.Method, r)
		}
	}
	if len(req.RequestURI) > limit.DefaultMaxURIBytes {
		u.violation("%s: target of %d bytes", req.Method, len(req.RequestURI))
	}
	if strings.Contains(req.URL.Path, "smuggled") {
		u.violation("%s %s: smuggled request forwarded", req.Method, req.URL.Path)
	}
}

// fuzzTier is a tier as the public assembly builds it: a Limiter (with
// ConfigureServer) in front of a cache whose upstream.Transport reaches a
// strict upstream.
type fuzzTier struct {
	up  *strictUpstream
	tr  *upstream.Transport
	c   *cache.Cache
	srv *http.Server
	ln  net.Listener
}

func newFuzzTier(tb testing.TB) *fuzzTier {
	ft := &fuzzTier{up: newStrictUpstream(tb)}
	ft.tr = &upstream.Transport{Upstreams: []string{"http://" + ft.up.ln.Addr().String()}, MinIdle: -1}
	lim := &limit.Limiter{}
	ft.c = &cache.Cache{Transport: ft.tr, AdmitMiss: lim.AdmitMiss}
	ft.srv = &http.Server{Handler: lim.Handler(ft.c), ReadHeaderTimeout: 2 * time.Second}
	lim.ConfigureServer(ft.srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ft.ln = ln
	go ft.srv.Serve(ln)
	return ft
}

func (ft *fuzzTier) close() {
	ft.srv.Close()
	ft.tr.Close()
	ft.up.close()
}

// send writes raw to the tier and reads its answers until the tier closes
// the connection or stays silent for a while (it waits for more of an
// incomplete request, or for the next one). The connection is not
// half-closed: net/http would take that for a client gone away and cancel
// requests in progress, and an upstream would see them cut off.
func (ft *fuzzTier) send(tb testing.TB, raw []byte) {
	c, err := net.Dial("tcp", ft.ln.Addr().String())
	if err != nil {
		tb.Fatalf("tier down: %v", err)
	}
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	c.Write(raw)
	buf := make([]byte, 32<<10)
	for {
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}

// alive checks that the tier still serves a well-formed request.
func (ft *fuzzTier) alive(tb testing.TB) {
	c, err := net.Dial("tcp", ft.ln.Addr().String())
	if err != nil {
		tb.Fatalf("tier down: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "GET /alive HTTP/1.1\r\nHost: tier\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		tb.Fatalf("tier does not answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "ok" {
		tb.Fatalf("tier answers %d %q", resp.StatusCode, b)
	}
}

// hostileSeeds are the requests of the battery: smuggling,
// framing, huge headers, range abuse, traversal, absolute-form targets,
// unkeyed headers.
var hostileSeeds = []string{
	"GET / HTTP/1.1\r\nHost: t\r\n\r\n",
	// CL.TE and TE.CL smuggling, TE+CL, duplicate Content-Length.
	"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
	"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n5c\r\nGPOST /smuggled HTTP/1.1\r\nContent-Length: 15\r\n\r\nx=1\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
	"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
	// Broken chunked bodies.
	"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n",
	"PUT /x HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nshort",
	// Pipelining, HTTP/1.0, obsolete folding, bare LF, NUL.
	"GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\n\r\n",
	"GET / HTTP/1.0\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: t\r\nX-A: 1\r\n folded\r\n\r\n",
	"GET / HTTP/1.1\nHost: t\n\n",
	"GET /\x00 HTTP/1.1\r\nHost: t\r\n\r\n",
	// Targets: absolute form, traversal, asterisk, CONNECT.
	"GET http://evil.example/x HTTP/1.1\r\nHost: t\r\n\r\n",
	"GET /../../etc/passwd HTTP/1.1\r\nHost: t\r\n\r\n",
	"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: t\r\n\r\n",
	"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n",
	"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n",
	// Range abuse and unkeyed or identifying headers.
	"GET /r HTTP/1.1\r\nHost: t\r\nCache-Control: no-store\r\nRange: bytes=0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14,16-16,18-18,20-20,22-22,24-24,26-26,28-28,30-30,32-32\r\n\r\n",
	"GET /r HTTP/1.1\r\nHost: t\r\nRange: bytes=0-,0-,0-\r\nRange: bytes=1-2\r\n\r\n",
	"GET /p HTTP/1.1\r\nHost: t\r\nX-Forwarded-Host: evil\r\nX-Forwarded-For: 1.2.3.4\r\nTraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\nX-Request-Id: 1\r\nCache-Status: x; hit\r\nConnection: X-Keep\r\nX-Keep: 1\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
	"GET / HTTP/1.1\r\nHost: t\r\nHost: u\r\n\r\n",
}

// Issue 16: raw bytes fed to a tier's listener never take the tier down
// and never make its upstream see a malformed request, a smuggled one, a
// hop-by-hop, identifying or trace header, or an unbounded Range.
func FuzzTier(f *testing.F) {
	for _, s := range hostileSeeds {
		f.Add([]byte(s))
	}
	ft := newFuzzTier(f)
	f.Cleanup(ft.close)
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > 64<<10 {
			raw = raw[:64<<10]
		}
		ft.send(t, raw)
		ft.alive(t)
		if v := ft.up.violations(); len(v) > 0 {
			t.Fatalf("upstream saw %d bad requests after %q: %q", len(v), raw, v)
		}
	})
}
