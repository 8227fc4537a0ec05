package heldwrite

import (
	"io"
	"net"
	"net/http"
	"strconv"
)

// Wrap returns a handler that serves h and sends its responses as the
// package doc describes, on connections from [Listener] whose server has
// [ConnContext]; elsewhere (no such connection, HTTP/2, a ResponseWriter
// that cannot flush) it calls h unchanged. Wrap must be the outermost
// handler, directly under the http.Server.
func Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := connFrom[*conn](r.Context())
		if !ok || r.ProtoMajor != 1 || !direct(w) {
			h.ServeHTTP(w, r)
			return
		}
		rw := &writer{ResponseWriter: w, c: c, head: r.Method == http.MethodHead}
		done := false
		defer func() {
			if !done {
				rw.abort() // h panicked: nothing held goes out
			}
		}()
		h.ServeHTTP(rw, r)
		done = true
		rw.finish()
	})
}

// direct reports whether w writes straight to the connection, as
// net/http's own ResponseWriter does (it flushes, and has ReadFrom): a
// wrapper that buffers (http.TimeoutHandler's) or writes from another
// goroutine would capture held bytes.
func direct(w http.ResponseWriter) bool {
	_, f := w.(http.Flusher)
	_, rf := w.(io.ReaderFrom)
	return f && rf
}

// Modes of a writer.
const (
	passing = iota // nothing special
	holding        // the connection holds the response's bytes
	corked         // the socket is corked
)

// writer watches one response.
type writer struct {
	http.ResponseWriter
	c       *conn
	head    bool
	decided bool
	mode    int
	want    int64 // body bytes the response declares (-1: unknown)
	n       int64 // body bytes written
	tcp     *net.TCPConn
}

// decide picks the mode when the final status is written.
func (w *writer) decide(code int) {
	w.decided = true
	w.want = -1
	if cl, err := strconv.ParseInt(w.Header().Get("Content-Length"), 10, 64); err == nil && cl >= 0 {
		w.want = cl
	}
	if w.head || code == http.StatusNoContent || code == http.StatusNotModified {
		w.want = 0
	}
	switch {
	case w.want >= 0 && w.want <= MaxHeld-maxHeader:
		if w.c.hold() {
			w.mode = holding
		}
	case w.want > 0:
		if tc, ok := w.c.Conn.(*net.TCPConn); ok && cork(tc) {
			w.mode, w.tcp = corked, tc
		}
	}
}

func (w *writer) WriteHeader(code int) {
	if !w.decided && code >= 200 {
		w.decide(code)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *writer) Write(p []byte) (int, error) {
	if !w.decided {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

// ReadFrom keeps net/http's ReadFrom (and so sendfile) on the path.
func (w *writer) ReadFrom(r io.Reader) (int64, error) {
	if !w.decided {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.(io.ReaderFrom).ReadFrom(r)
	w.n += n
	return n, err
}

// FlushError: a handler flushing before its body is complete streams it,
// so its bytes must leave now.
func (w *writer) FlushError() error {
	if !w.decided {
		w.WriteHeader(http.StatusOK)
	}
	if w.n < w.want || w.want < 0 {
		w.end()
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *writer) Flush() { w.FlushError() }

// Unwrap lets http.ResponseController reach net/http's writer.
func (w *writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// end stops holding (sending what was held) or corking.
func (w *writer) end() {
	switch w.mode {
	case holding:
		w.c.release()
	case corked:
		uncork(w.tcp)
	}
	w.mode = passing
}

// finish runs when the handler returned. A held response that is complete
// leaves in one write; one that is not sends nothing and its connection is
// closed.
func (w *writer) finish() {
	switch w.mode {
	case holding:
		if w.n != w.want {
			w.c.discard()
			return
		}
		// Push what net/http buffers into the held bytes, then send.
		if err := http.NewResponseController(w.ResponseWriter).Flush(); err != nil {
			w.c.discard()
			return
		}
		w.c.release()
	case corked:
		http.NewResponseController(w.ResponseWriter).Flush()
		uncork(w.tcp)
	}
	w.mode = passing
}

// abort runs when the handler panicked.
func (w *writer) abort() {
	switch w.mode {
	case holding:
		w.c.discard()
	case corked:
		uncork(w.tcp)
	}
	w.mode = passing
}
