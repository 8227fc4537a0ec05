package cache

import (
	"context"
	"maps"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"sync"

	"github.com/onioncdn/onioncdn/internal/hygiene"
)

// interimScope forwards the interim (1xx) responses of the upstream
// requests made for one handler request to that request's client: "A
// proxy MUST forward 1xx responses unless the proxy itself requested the
// generation of the 1xx response" (RFC 9110 §15.2). They are never
// stored: net/http's transport delivers them to a ClientTrace, apart from
// the final response, and each with its own header.
//
// The forwarder is attached to the context of upstream requests only when
// a request goes upstream, so that hits cost nothing. It is used by the
// fetch of this request (a flight it leads, or a direct fetch), not by
// the flights it joins as a follower nor by background revalidations
// (their context is the request's own), and it is stopped before the
// handler writes anything else: a 1xx arriving later (from a fill that
// outlived its client) is dropped.
type interimScope struct {
	c  *Cache
	w  http.ResponseWriter // nil in RoundTrip mode: 1xx reach the caller's own ClientTrace
	r  *http.Request
	iw *interimWriter
}

type interimWriter struct {
	c   *Cache
	w   http.ResponseWriter
	ctx context.Context // the upstream context, with the trace

	mu   sync.Mutex
	done bool
}

// context returns ctx with the forwarder attached, or ctx itself when
// there is no client to forward to: RoundTrip mode, an HTTP/1.0 client
// (which must not receive 1xx: RFC 9110 §15.2), or a ResponseWriter that
// cannot flush, which buffers the response (http.TimeoutHandler's) and
// would take a 1xx for the final status. ctx must be the same on every
// call.
func (s *interimScope) context(ctx context.Context) context.Context {
	if s.w == nil || !s.r.ProtoAtLeast(1, 1) || !canFlush(s.w) {
		return ctx
	}
	if s.iw == nil {
		s.iw = &interimWriter{c: s.c, w: s.w}
		s.iw.ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{Got1xxResponse: s.iw.forward})
	}
	return s.iw.ctx
}

// canFlush reports whether w, or a ResponseWriter it wraps (Unwrap, as
// http.ResponseController follows), can flush.
func canFlush(w http.ResponseWriter) bool {
	for {
		switch t := w.(type) {
		case http.Flusher, interface{ FlushError() error }:
			return true
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return false
		}
	}
}

// stop ends forwarding; it waits for a 1xx being written.
func (s *interimScope) stop() {
	if s.iw != nil {
		s.iw.mu.Lock()
		s.iw.done = true
		s.iw.mu.Unlock()
	}
}

// forward writes one 1xx response with its own fields only (cleaned like
// any response), then restores the ResponseWriter's header map, which
// net/http does not clear after a 1xx: the 1xx's fields never reach the
// final response, and fields set before (by a middleware) are kept for it
// but not sent in the 1xx.
func (iw *interimWriter) forward(code int, header textproto.MIMEHeader) error {
	iw.mu.Lock()
	defer iw.mu.Unlock()
	if iw.done {
		return nil
	}
	h := iw.w.Header()
	saved := maps.Clone(h)
	clear(h)
	for k, v := range header {
		h[k] = v
	}
	hygiene.CleanResponse(h, !iw.c.KeepServerHeaders)
	iw.w.WriteHeader(code)
	clear(h)
	maps.Copy(h, saved)
	return nil
}

// noTrace is a context without the httptrace.ClientTrace of its parent:
// for upstream requests made on a client's behalf after that client's
// request is over (background revalidation).
type noTrace struct{ context.Context }

func (c noTrace) Value(key any) any {
	v := c.Context.Value(key)
	if _, ok := v.(*httptrace.ClientTrace); ok {
		return nil
	}
	return v
}
