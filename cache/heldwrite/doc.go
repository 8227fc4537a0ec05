// Package heldwrite makes an HTTP/1 server send a small response (header
// and body) with one write system call, and a large one in full TCP
// segments. It is an opt-in optimisation of net/http for cache hits; a
// server works the same without it.
//
// # Overview
//
// net/http sends a 10 KB response in two or more writes: it flushes its
// 4 KiB buffer, then writes the rest; and a small body read from a file
// costs a header write plus a sendfile(2). On loopback every write of a
// separate segment also wakes the reader once more. Measured with the
// shared/bench harness on a 2-core machine, holding a 10 KB cache hit back
// and sending it in one write saves the serving process 5–10 % of CPU per
// request (see the README's performance section).
//
// [Wrap] watches each response its handler writes. A response with a
// Content-Length whose header and body fit in [MaxHeld] bytes is held back
// on the connection and sent in one write when the handler returns; a
// larger one is sent with the socket corked (TCP_CORK on Linux), so the
// header leaves with the first body bytes and the body in full segments.
// A handler that flushes before its body is complete (a response
// streaming from upstream) ends either at once: its bytes leave as it
// writes them. A held response whose handler fails (panics, or writes
// fewer bytes than its Content-Length) sends nothing, and its connection
// is closed: no part of it may look like a response.
//
// # Usage
//
// The three pieces work together: [Listener] wraps the connections so
// they can hold writes, [ConnContext] lets the handler find its
// connection, and [Wrap] must be the outermost handler, directly under the
// http.Server, so that every write of the response passes through it:
//
//	srv := &http.Server{Handler: heldwrite.Wrap(h), ConnContext: heldwrite.ConnContext}
//	srv.Serve(heldwrite.Listener(ln))
//
// A server that has its own ConnContext calls this one from it (package
// tier does, with onion.ConnContext).
//
// # What it relies on
//
// This package depends on how net/http writes a response, which the Go
// project does not promise: that a handler's writes and flushes reach the
// connection synchronously from the handler's goroutine; that
// ResponseWriter.ReadFrom passes a body on to the connection's ReadFrom
// (for sendfile) after copying the first 512 bytes; and that net/http
// flushes its buffers after the handler returns. TestNetHTTPAssumptions
// checks each of them and fails loudly if a Go release changes one. When
// an assumption does not hold at run time (a ResponseWriter that cannot
// flush, a TLS connection, HTTP/2), nothing is held back.
//
// # Security
//
// Connections that already speak TLS are passed through unwrapped. Held
// bytes live in pooled buffers of at most MaxHeld bytes per connection;
// nothing is logged.
package heldwrite
