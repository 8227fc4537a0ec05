package limit

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onioncdn/onioncdn/onion"
)

// Defaults used when the corresponding [Limiter] field is zero.
const (
	DefaultMaxHeaderBytes    = 32 << 10
	DefaultMaxHeaderFields   = 100
	DefaultMaxURIBytes       = 8 << 10
	DefaultMaxBodyBytes      = 64 << 10
	DefaultReadHeaderTimeout = 15 * time.Second
	DefaultReadTimeout       = time.Minute
	DefaultIdleTimeout       = 2 * time.Minute

	DefaultRequestsPerSecond = 20
	DefaultBurst             = 200
	DefaultMaxConcurrent     = 16
	DefaultBytesPerSecond    = 4 << 20
	DefaultBytesBurst        = 64 << 20
	DefaultStrikes           = 50
	DefaultMaxKeys           = 16384

	DefaultMaxInFlight = 1024
	DefaultMaxUpstream = 64
)

// Reason says why a request was refused.
type Reason string

// Reasons reported in [Stats.Rejected].
const (
	RejectRate         Reason = "rate"          // 429: the key's requests per second
	RejectConcurrency  Reason = "concurrency"   // 429: the key's concurrent requests
	RejectBytes        Reason = "bytes"         // 429: the key's bytes per second
	RejectHeaderBytes  Reason = "header_bytes"  // 431: request line and header too large
	RejectHeaderFields Reason = "header_fields" // 431: too many header fields
	RejectURI          Reason = "uri"           // 414: request target too long
	RejectBody         Reason = "body"          // 413 over MaxBodyBytes, 400 for a body that cannot be read
	RejectOverload     Reason = "overload"      // 503: 4×MaxInFlight requests in progress
)

// reasons lists every Reason, in the order of Limiter.rejected.
var reasons = [...]Reason{RejectRate, RejectConcurrency, RejectBytes, RejectHeaderBytes, RejectHeaderFields, RejectURI, RejectBody, RejectOverload}

func reasonIndex(r Reason) int {
	for i, x := range reasons {
		if x == r {
			return i
		}
	}
	panic("limit: unknown reason " + string(r))
}

// Limiter protects a tier from its clients: it bounds each request's size,
// limits each client circuit's request rate, concurrency and bandwidth, and
// sheds upstream work when the tier is saturated. Use [Limiter.Handler] in
// front of the tier's handler, [Limiter.ConfigureServer] on its
// http.Server and [Limiter.AdmitMiss] as the cache's AdmitMiss hook.
//
// The zero value is ready to use with the documented defaults. Fields must
// not be changed after the first call to a method. A Limiter is safe for
// concurrent use.
//
// Every numeric field: zero means its default, a negative value turns that
// limit off.
type Limiter struct {
	// MaxHeaderBytes bounds the request line and header fields, counted
	// as sent on the wire. Beyond it: 431. If zero,
	// DefaultMaxHeaderBytes (32 KiB). ConfigureServer also sets
	// http.Server.MaxHeaderBytes to it, so that net/http stops reading a
	// larger header (and answers 431 itself) after it plus its 4 KiB
	// slack.
	MaxHeaderBytes int

	// MaxHeaderFields bounds the number of header field lines. Beyond it:
	// 431. If zero, DefaultMaxHeaderFields (100). net/http has no such
	// limit.
	MaxHeaderFields int

	// MaxURIBytes bounds the request target. Beyond it: 414. If zero,
	// DefaultMaxURIBytes (8 KiB).
	MaxURIBytes int

	// MaxBodyBytes bounds a request body. A body is read completely
	// before the request goes on (as nginx does), so that a malformed,
	// truncated or slow body never reaches an upstream nor holds an
	// upstream connection: over the bound 413, unreadable 400, both with
	// the connection closed. If zero, DefaultMaxBodyBytes (64 KiB: a CDN
	// tier serves GETs; raise it to forward uploads). Negative: bodies are
	// passed on unread and unbounded.
	MaxBodyBytes int64

	// Key names the client a request belongs to for the per-client limits
	// below; ok false exempts the request from them (it still counts for
	// overload). If nil, DefaultKey: the Tor circuit of an onion listener
	// with circuit-id export, else the client's IP address unless it is a
	// loopback address.
	Key func(r *http.Request) (key string, ok bool)

	// RequestsPerSecond is each key's sustained request rate (a token
	// bucket of Burst requests). Beyond it: 429 with Retry-After. If zero,
	// DefaultRequestsPerSecond (20).
	RequestsPerSecond float64

	// Burst is the bucket size of RequestsPerSecond: the requests a key
	// may send at once, as a browser loading a page does. If zero,
	// DefaultBurst (200).
	Burst int

	// MaxConcurrent bounds each key's requests in progress. Beyond it:
	// 429. If zero, DefaultMaxConcurrent (16).
	MaxConcurrent int

	// BytesPerSecond is each key's sustained response bandwidth (a token
	// bucket of BytesBurst bytes). Bytes are charged as they are written;
	// a response in progress is never cut, but while the key owes bytes
	// its new requests get 429 with Retry-After. If zero,
	// DefaultBytesPerSecond (4 MiB/s).
	BytesPerSecond float64

	// BytesBurst is the bucket size of BytesPerSecond. If zero,
	// DefaultBytesBurst (64 MiB).
	BytesBurst int64

	// Strikes is how many refusals a key may collect (they decay by one
	// per second) before it is treated as abusive: from then until its
	// strikes have decayed, every refused request of the key also closes
	// its connection (Connection: close), and OnAbuse is called once. If
	// zero, DefaultStrikes (50).
	Strikes int

	// OnAbuse, if set, is called with a key when it becomes abusive (see
	// Strikes), outside any lock, on the request's goroutine: keep it
	// short. Never log the key. With circuit keys ("c" and the id in hex)
	// it can ask tor to close the circuit: CLOSECIRCUIT on the control
	// port takes the exported id (tor's global circuit id). Beware: the
	// client's next circuit is a new key with full buckets, so closing
	// only helps where a new circuit is costly (proof of work on). Over
	// the private test network, without PoW, a flooder whose circuits
	// were closed got 2.3–2.5 times as many requests through as one kept
	// on its circuit and refused. If nil, abusive keys only have their
	// connections closed.
	OnAbuse func(key string)

	// MaxKeys bounds the keys tracked; the least recently seen key is
	// forgotten beyond it (its buckets start full if it returns). If zero,
	// DefaultMaxKeys (16384), about 3 MB.
	MaxKeys int

	// MaxInFlight is the number of requests in progress at which the tier
	// counts as saturated: AdmitMiss then refuses upstream work (misses
	// get 503 from the cache, hits are still served). At four times it,
	// every new request gets 503 with Retry-After. If zero,
	// DefaultMaxInFlight (1024).
	MaxInFlight int

	// MaxUpstream is the number of requests doing upstream work (admitted
	// by AdmitMiss and not finished) at which the tier counts as
	// saturated. If zero, DefaultMaxUpstream (64).
	MaxUpstream int

	// Busy, if set, is another saturation signal for AdmitMiss, such as
	// an upstream transport's queue: while it returns true, misses are
	// shed. If nil, only MaxInFlight and MaxUpstream count.
	Busy func() bool

	// Now returns the current time. If nil, time.Now.
	Now func() time.Time

	// Logger receives refusals at Debug level (reason and path; never
	// the key, a circuit id or an address). If nil, logs are discarded.
	Logger *slog.Logger

	once     sync.Once
	log      *slog.Logger
	keys     table
	inFlight atomic.Int64
	upstream atomic.Int64
	rejected [len(reasons)]atomic.Uint64
	shed     atomic.Uint64
	closed   atomic.Uint64
	abusive  atomic.Uint64
}

// Stats is a snapshot of a Limiter's counters.
type Stats struct {
	Rejected map[Reason]uint64 // refused requests by reason (every Reason is present)
	Shed     uint64            // upstream work refused by AdmitMiss (misses answered 503 by the cache)
	Closed   uint64            // refusals that closed the connection (abusive keys)
	Abusive  uint64            // times a key became abusive (OnAbuse calls)
	Keys     int               // keys tracked now (circuits at an onion edge)
	Evicted  uint64            // keys forgotten to stay within MaxKeys
	InFlight int               // requests in progress
	Upstream int               // requests doing upstream work now
}

// DefaultKey is the Key used when Limiter.Key is nil: the Tor circuit id of
// a connection from an onion listener with circuit-id export (see
// onion.CircuitID; "c" and the id in hex), else the client's IP address
// ("a" and the address) unless it is a loopback address. A loopback client
// without a circuit id is tor itself without circuit-id export, or a local
// proxy, speaking for many clients: limiting it as one would let one
// client starve all, so such requests get no key (no per-client limits).
func DefaultKey(r *http.Request) (string, bool) {
	if id, ok := onion.CircuitID(r.Context()); ok {
		var b [9]byte
		b[0] = 'c'
		return string(strconv.AppendUint(b[:1], uint64(id), 16)), true
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return "", false
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.IsLoopback() {
		return "", false
	}
	return "a" + ip.String(), true
}

func (l *Limiter) init() {
	l.once.Do(func() {
		l.log = l.Logger
		if l.log == nil {
			l.log = slog.New(slog.DiscardHandler)
		}
		l.keys.init(intOr(l.MaxKeys, DefaultMaxKeys))
	})
}

func intOr(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

func (l *Limiter) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func (l *Limiter) maxBody() int64 {
	if l.MaxBodyBytes == 0 {
		return DefaultMaxBodyBytes
	}
	return l.MaxBodyBytes
}

func (l *Limiter) rate() float64 {
	if l.RequestsPerSecond == 0 {
		return DefaultRequestsPerSecond
	}
	return l.RequestsPerSecond
}

func (l *Limiter) bytesRate() float64 {
	if l.BytesPerSecond == 0 {
		return DefaultBytesPerSecond
	}
	return l.BytesPerSecond
}

func (l *Limiter) bytesBurst() float64 {
	if l.BytesBurst == 0 {
		return DefaultBytesBurst
	}
	return float64(l.BytesBurst)
}

// ConfigureServer sets the fields of srv that bound what a client can make
// the server read, where they are zero: MaxHeaderBytes (to the Limiter's
// MaxHeaderBytes, 32 KiB), ReadHeaderTimeout (DefaultReadHeaderTimeout,
// 15 s), ReadTimeout (DefaultReadTimeout, 1 min: a request's header and
// body; it does not limit responses) and IdleTimeout
// (DefaultIdleTimeout, 2 min; net/http would otherwise use ReadTimeout).
// Fields already set are left alone. It does not set srv.Handler.
func (l *Limiter) ConfigureServer(srv *http.Server) {
	if srv.MaxHeaderBytes == 0 {
		if n := intOr(l.MaxHeaderBytes, DefaultMaxHeaderBytes); n > 0 {
			srv.MaxHeaderBytes = n
		}
	}
	if srv.ReadHeaderTimeout == 0 {
		srv.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if srv.ReadTimeout == 0 {
		srv.ReadTimeout = DefaultReadTimeout
	}
	if srv.IdleTimeout == 0 {
		srv.IdleTimeout = DefaultIdleTimeout
	}
}

// Stats returns a snapshot of the Limiter's counters.
func (l *Limiter) Stats() Stats {
	l.init()
	s := Stats{
		Rejected: make(map[Reason]uint64, len(reasons)),
		Shed:     l.shed.Load(),
		Closed:   l.closed.Load(),
		Abusive:  l.abusive.Load(),
		InFlight: int(l.inFlight.Load()),
		Upstream: int(l.upstream.Load()),
	}
	for i, r := range reasons {
		s.Rejected[r] = l.rejected[i].Load()
	}
	s.Keys, s.Evicted = l.keys.stats()
	return s
}

type stateKey struct{}

// state is one request's passage through a Limiter. It is also the
// ResponseWriter the next handler sees, counting the bytes written.
type state struct {
	http.ResponseWriter
	l        *Limiter
	e        *entry // nil: no key
	n        int64  // body bytes written and not yet charged to e
	upstream bool   // admitted for upstream work
}

// chargeEvery is how many bytes a response writes between two charges to
// its key's byte bucket, so that a long response counts while it runs.
const chargeEvery = 256 << 10

func (s *state) wrote(n int64) {
	s.n += n
	if s.e != nil && s.n >= chargeEvery {
		s.l.keys.charge(s.e, s.n, false)
		s.n = 0
	}
}

func (s *state) Write(p []byte) (int, error) {
	n, err := s.ResponseWriter.Write(p)
	s.wrote(int64(n))
	return n, err
}

// ReadFrom keeps sendfile(2) for file bodies.
func (s *state) ReadFrom(r io.Reader) (int64, error) {
	var n int64
	var err error
	if rf, ok := s.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(struct{ io.Writer }{s.ResponseWriter}, r)
	}
	s.wrote(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *state) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// FlushError flushes the underlying writer (http.ResponseController
// prefers it to Flush, and reports its error).
func (s *state) FlushError() error { return http.NewResponseController(s.ResponseWriter).Flush() }

// Flush implements http.Flusher for code that asserts it.
func (s *state) Flush() { s.FlushError() }

// Handler returns next protected by the Limiter: requests over a size
// limit are answered 431, 414, 413 or 400, requests of a key over its
// limits 429 (with Retry-After), and every request once 4×MaxInFlight are
// in progress 503 (with Retry-After); the others reach next. A request
// with a chunked body closes its connection after the response: net/http
// does not say whether it also carried Content-Length, and RFC 9112 §6.1
// requires closing after such a request.
func (l *Limiter) Handler(next http.Handler) http.Handler {
	l.init()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.serve(w, r, next)
	})
}

func (l *Limiter) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	if reason, code := l.checkSize(r); reason != "" {
		w.Header().Set("Connection", "close")
		l.reject(w, r, reason, code, 0)
		return
	}
	if len(r.TransferEncoding) > 0 {
		w.Header().Set("Connection", "close")
	}
	if maxIn := intOr(l.MaxInFlight, DefaultMaxInFlight); maxIn > 0 && l.inFlight.Load() >= 4*int64(maxIn) {
		l.reject(w, r, RejectOverload, http.StatusServiceUnavailable, time.Second)
		return
	}
	st := &state{ResponseWriter: w, l: l}
	if key, ok := l.key(r); ok {
		e, reason, wait, abusive := l.admit(key)
		if reason != "" {
			if abusive {
				w.Header().Set("Connection", "close")
				l.closed.Add(1)
			}
			l.reject(w, r, reason, http.StatusTooManyRequests, wait)
			return
		}
		st.e = e
	}
	l.inFlight.Add(1)
	defer l.finish(st)
	if r.Body != nil && r.Body != http.NoBody && l.maxBody() >= 0 {
		var ok bool
		if r, ok = l.readBody(w, r); !ok {
			return
		}
	}
	r = r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
	next.ServeHTTP(st, r)
}

// finish ends a request admitted by serve.
func (l *Limiter) finish(st *state) {
	l.inFlight.Add(-1)
	if st.upstream {
		l.upstream.Add(-1)
	}
	if st.e != nil {
		l.keys.charge(st.e, st.n, true)
	}
}

func (l *Limiter) key(r *http.Request) (string, bool) {
	if l.Key != nil {
		return l.Key(r)
	}
	return DefaultKey(r)
}

// checkSize applies the request size limits.
func (l *Limiter) checkSize(r *http.Request) (Reason, int) {
	if m := intOr(l.MaxURIBytes, DefaultMaxURIBytes); m > 0 && len(r.RequestURI) > m {
		return RejectURI, http.StatusRequestURITooLong
	}
	maxFields := intOr(l.MaxHeaderFields, DefaultMaxHeaderFields)
	maxBytes := intOr(l.MaxHeaderBytes, DefaultMaxHeaderBytes)
	if maxFields <= 0 && maxBytes <= 0 {
		return "", 0
	}
	fields := 0
	size := len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + 2
	for k, vs := range r.Header {
		fields += len(vs)
		for _, v := range vs {
			size += len(k) + 2 + len(v) + 2
		}
	}
	if r.Host != "" && r.Header["Host"] == nil { // net/http moves Host out of the map
		fields++
		size += len("Host: \r\n") + len(r.Host)
	}
	if maxFields > 0 && fields > maxFields {
		return RejectHeaderFields, http.StatusRequestHeaderFieldsTooLarge
	}
	if maxBytes > 0 && size > maxBytes {
		return RejectHeaderBytes, http.StatusRequestHeaderFieldsTooLarge
	}
	return "", 0
}

// readBody reads r's body completely (see MaxBodyBytes) and returns r with
// the body in memory, or answers the request and returns false.
func (l *Limiter) readBody(w http.ResponseWriter, r *http.Request) (*http.Request, bool) {
	maxBody := l.maxBody()
	if r.ContentLength > maxBody {
		w.Header().Set("Connection", "close")
		l.reject(w, r, RejectBody, http.StatusRequestEntityTooLarge, 0)
		return nil, false
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err == nil && int64(len(b)) > maxBody {
		err = &http.MaxBytesError{Limit: maxBody}
	}
	if err != nil {
		w.Header().Set("Connection", "close")
		code := http.StatusBadRequest
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			code = http.StatusRequestEntityTooLarge
		}
		l.log.Debug("request body refused", "path", r.URL.EscapedPath(), "err", err)
		l.reject(w, r, RejectBody, code, 0)
		return nil, false
	}
	r2 := new(http.Request)
	*r2 = *r
	r2.Body = io.NopCloser(bytes.NewReader(b))
	r2.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	r2.ContentLength = int64(len(b))
	r2.TransferEncoding = nil
	if len(b) == 0 {
		r2.Body, r2.GetBody = http.NoBody, nil
	}
	return r2, true
}

// reject answers a refused request.
func (l *Limiter) reject(w http.ResponseWriter, r *http.Request, reason Reason, code int, retryAfter time.Duration) {
	l.rejected[reasonIndex(reason)].Add(1)
	if l.log.Enabled(r.Context(), slog.LevelDebug) {
		l.log.Debug("request refused", "reason", string(reason), "status", code, "path", r.URL.EscapedPath())
	}
	h := w.Header()
	if retryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(int64(math.Ceil(retryAfter.Seconds())), 10))
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	body := strconv.Itoa(code) + " " + http.StatusText(code) + "\n"
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		io.WriteString(w, body)
	}
	if h.Get("Connection") == "close" {
		// Do not let net/http wait for the rest of an unread body
		// before closing (it reads up to 256 KiB of it).
		http.NewResponseController(w).SetReadDeadline(aLongTimeAgo)
	}
}

// aLongTimeAgo is a read deadline that ends pending and future reads.
var aLongTimeAgo = time.Unix(1, 0)

// AdmitMiss reports whether r may make the tier work upstream now; it has
// the signature of cache.Cache.AdmitMiss. It says no, and counts the
// request as shed, while the tier is saturated: more than MaxInFlight
// requests in progress, MaxUpstream requests doing upstream work, or Busy. A request
// that passed through Handler and is admitted counts as doing upstream
// work until it ends.
func (l *Limiter) AdmitMiss(r *http.Request) bool {
	l.init()
	st, _ := r.Context().Value(stateKey{}).(*state)
	if st != nil && st.upstream {
		return true // admitted already (a second fetch of the same request)
	}
	maxIn := intOr(l.MaxInFlight, DefaultMaxInFlight)
	maxUp := intOr(l.MaxUpstream, DefaultMaxUpstream)
	if (maxIn > 0 && l.inFlight.Load() > int64(maxIn)) ||
		(maxUp > 0 && l.upstream.Load() >= int64(maxUp)) ||
		(l.Busy != nil && l.Busy()) {
		l.shed.Add(1)
		return false
	}
	if st != nil && st.l == l {
		st.upstream = true
		l.upstream.Add(1)
	}
	return true
}
