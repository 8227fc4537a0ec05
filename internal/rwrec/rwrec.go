// Package rwrec records what a handler writes to an http.ResponseWriter:
// its status and body size. It is the one status-recording writer of this
// module (the cache's access records, the route agent's meter).
package rwrec

import (
	"io"
	"net/http"
)

// Writer wraps a ResponseWriter and records the final status and the body
// bytes written. It keeps what net/http's writer offers: ReadFrom (so a
// body from a file still goes out with sendfile), Flush, and Unwrap for
// http.ResponseController.
type Writer struct {
	http.ResponseWriter

	// OnWrite, if set, is called with every count of body bytes written.
	OnWrite func(n int64)

	Status int   // the final status; 0 until one is written
	Bytes  int64 // body bytes written
}

// WriteHeader records a final (non-1xx) status.
func (w *Writer) WriteHeader(code int) {
	if w.Status == 0 && code >= 200 {
		w.Status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *Writer) wrote(n int64) {
	w.Bytes += n
	if w.OnWrite != nil && n > 0 {
		w.OnWrite(n)
	}
}

func (w *Writer) Write(p []byte) (int, error) {
	if w.Status == 0 {
		w.Status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.wrote(int64(n))
	return n, err
}

// WriteString writes s (io.WriteString would otherwise reach the wrapped
// writer's WriteString, unrecorded).
func (w *Writer) WriteString(s string) (int, error) {
	if w.Status == 0 {
		w.Status = http.StatusOK
	}
	n, err := io.WriteString(w.ResponseWriter, s)
	w.wrote(int64(n))
	return n, err
}

// ReadFrom passes r to the wrapped writer's ReadFrom, if it has one.
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	if w.Status == 0 {
		w.Status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(writerOnly{w.ResponseWriter}, r)
	}
	w.wrote(n)
	return n, err
}

// Flush flushes the wrapped writer, if it can.
func (w *Writer) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

// Unwrap returns the wrapped writer, for http.ResponseController.
func (w *Writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writerOnly hides a writer's ReadFrom, so io.Copy does not call it back.
type writerOnly struct{ io.Writer }
