package cache

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
)

// HandlerTransport is an [http.RoundTripper] that answers requests by
// calling Handler in this process, so that a Cache can sit in front of an
// application's own handler without a network hop:
//
//	c := &cache.Cache{Transport: cache.HandlerTransport{Handler: app}, Upstream: &url.URL{Scheme: "http", Host: "app"}}
//
// The response streams: RoundTrip returns as soon as the handler has
// written its header (or its first body bytes, or returned), and the body
// is read while the handler writes it, through a pipe, never buffered
// whole. A handler that panics ends the body with an error (so the cache
// stores nothing); one that returns without writing answers 200 with an
// empty body. The handler sees a server-side request: RequestURI set,
// RemoteAddr empty, and the request's context, which ends when the caller
// (the cache's fill) gives up. Interim (1xx) responses are discarded.
type HandlerTransport struct {
	// Handler serves the requests. Required.
	Handler http.Handler
}

// RoundTrip implements [http.RoundTripper].
func (t HandlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.Handler == nil {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, errors.New("cache: HandlerTransport without Handler")
	}
	sr := r.Clone(r.Context())
	sr.RequestURI = r.URL.RequestURI()
	sr.RemoteAddr = ""
	if sr.Body == nil {
		sr.Body = http.NoBody
	}
	if sr.Host == "" {
		sr.Host = r.URL.Host
	}
	pr, pw := io.Pipe()
	w := &pipeWriter{header: http.Header{}, pw: pw, ready: make(chan struct{}), req: r}
	go func() {
		defer sr.Body.Close()
		defer func() {
			if p := recover(); p != nil {
				err := fmt.Errorf("cache: handler panicked: %v", p)
				if p == http.ErrAbortHandler {
					err = fmt.Errorf("cache: handler aborted the response: %w", http.ErrAbortHandler)
				}
				w.writeHeader(http.StatusOK) // no-op if written
				pw.CloseWithError(err)
				return
			}
			w.writeHeader(http.StatusOK)
			pw.Close()
		}()
		t.Handler.ServeHTTP(w, sr)
	}()
	select {
	case <-w.ready:
	case <-r.Context().Done():
		pr.CloseWithError(r.Context().Err())
		return nil, r.Context().Err()
	}
	resp := w.resp
	resp.Body = pr
	return resp, nil
}

// pipeWriter is the ResponseWriter of a HandlerTransport request.
type pipeWriter struct {
	header http.Header
	pw     *io.PipeWriter
	req    *http.Request

	once  sync.Once
	ready chan struct{} // closed once resp is set
	resp  *http.Response
}

func (w *pipeWriter) Header() http.Header { return w.header }

func (w *pipeWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 {
		return // interim responses are not passed on
	}
	w.writeHeader(code)
}

func (w *pipeWriter) writeHeader(code int) {
	w.once.Do(func() {
		h := w.header.Clone()
		resp := &http.Response{
			Status:     strconv.Itoa(code) + " " + http.StatusText(code),
			StatusCode: code,
			Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header:        h,
			ContentLength: -1,
			Request:       w.req,
		}
		if cl, err := strconv.ParseInt(h.Get("Content-Length"), 10, 64); err == nil && cl >= 0 {
			resp.ContentLength = cl
		}
		if w.req.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified {
			resp.ContentLength = 0
		}
		w.resp = resp
		close(w.ready)
	})
}

func (w *pipeWriter) Write(p []byte) (int, error) {
	w.writeHeader(http.StatusOK)
	return w.pw.Write(p)
}

// Flush is a no-op: every Write reaches the reader already.
func (w *pipeWriter) Flush() {}
