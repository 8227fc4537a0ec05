package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onioncdn/onioncdn/internal/hygiene"
	"github.com/onioncdn/onioncdn/internal/rfc9111"
	"github.com/onioncdn/onioncdn/internal/rwrec"
	"golang.org/x/sync/singleflight"
)

// Default values of [Cache] fields.
const (
	DefaultName        = "onioncdn"
	DefaultFillTimeout = 5 * time.Minute
)

// ErrNoUpstream is the error of a Cache serving as a Handler (or
// prefetching) with neither Upstream nor Transport set: it would forward
// requests to whatever host the client names, an open proxy.
var ErrNoUpstream = errors.New("cache: no upstream: set Cache.Upstream, or a Transport that chooses the upstream (such as upstream.Transport)")

// Cache is a shared HTTP cache (RFC 9111) for one tier of a CDN. It is an
// [http.Handler] that forwards what it cannot serve from its [Store] to an
// upstream, and an [http.RoundTripper] that does the same for a client.
//
// Concurrent requests for one object cost one upstream request: the first
// request's fill writes the response to the store while every other client
// reads it from there as it arrives.
//
// The zero value is a usable cache in memory in front of
// http.DefaultTransport for RoundTrip; to serve as a Handler it needs
// Upstream or a Transport that chooses the upstream (see [ErrNoUpstream]). Its exported fields may be changed until the first
// method call. A Cache is safe for concurrent use.
type Cache struct {
	// Transport sends requests upstream. If nil, a clone of
	// http.DefaultTransport with transparent compression disabled is used.
	Transport http.RoundTripper

	// Upstream, if set, is where requests go: its scheme and host replace
	// those of the request, and a non-root path is prepended to the
	// request's path. The Host header sent is Upstream's host unless
	// PreserveHost is set. If nil, requests go to the URL the client asked
	// for (http://Host/path in handler mode), which suits a Transport that
	// chooses the upstream itself, such as upstream.Transport.
	Upstream *url.URL

	// PreserveHost forwards the client's Host header instead of Upstream's
	// host. If false, the Host is Upstream's.
	PreserveHost bool

	// Store holds the cached objects. If nil, an in-memory store
	// (&MemoryStore{}) is used.
	Store Store

	// Policy adjusts keys and storage decisions. If nil, plain RFC 9111.
	Policy Policy

	// Partition, if set, returns a partition name added to every cache key
	// of r, so that sites sharing a Cache never share entries. If nil,
	// there is one partition.
	Partition func(r *http.Request) string

	// KeyHost returns the host part of the cache key of r. If nil, a
	// request served as a Handler (or prefetched) has none: its key is its
	// path and query (see Policy), whatever its Host header says, so a
	// client cannot multiply stored objects by varying Host, and a site
	// reachable under several names (its onion address, a TCP name) is
	// stored once. A Cache in front of one site needs nothing else. A
	// request sent through RoundTrip is keyed by [URLHost] (the scheme and
	// host the program chose). [FixedHost] and [AllowHosts] cover the other
	// cases; a function returning r.Host keys by the client's Host, which
	// lets clients multiply storage.
	//
	// The host part must cover everything that selects the upstream's
	// response: with Upstream set (and PreserveHost false) or with a
	// Transport that chooses the upstream itself (upstream.Transport), the
	// client's Host does not reach the upstream, and the default is right.
	// If the client's Host does reach it (PreserveHost here or on the
	// Transport, or an http.Transport dialling the request's host), use
	// AllowHosts, or the response for one Host would be served for all.
	KeyHost func(r *http.Request) string

	// Name identifies this cache in the Cache-Status header. If empty,
	// DefaultName.
	Name string

	// CacheStatus adds an RFC 9211 Cache-Status header to responses. If
	// false, Cache-Status headers (including the upstream's) are removed:
	// on a tier facing users, cache state should not be revealed.
	CacheStatus bool

	// AllowSetCookie stores responses that carry Set-Cookie. If false (the
	// default) they are never stored nor shared: a cookie set for one user
	// must not reach another, and cookies tie requests to users.
	AllowSetCookie bool

	// HeuristicFraction is the fraction of the time since Last-Modified used
	// as freshness lifetime when a response has no explicit one. If zero
	// or negative, 0.1.
	HeuristicFraction float64

	// MaxHeuristic caps heuristic freshness. If zero, 24 hours.
	MaxHeuristic time.Duration

	// DefaultStaleWhileRevalidate and DefaultStaleIfError apply RFC 5861
	// windows to responses that do not specify them. If zero, none.
	DefaultStaleWhileRevalidate time.Duration
	DefaultStaleIfError         time.Duration

	// TargetedFields are this tier's own targeted cache-control fields
	// (RFC 9213), most specific first, for example
	// {"Onioncdn-Edge-Cache-Control", "Onioncdn-Cache-Control"}: response
	// fields with Cache-Control syntax that only caches listing them obey.
	// CDN-Cache-Control (RFC 9213 §3) is always honoured, after these. For
	// each response, the first of them that is present, valid and
	// non-empty decides storing and freshness in place of Cache-Control
	// and Expires; a field that is not a valid Structured Field Dictionary
	// is ignored as a whole. If nil, only CDN-Cache-Control is honoured.
	//
	// Cache-Control and every targeted field (this cache's, other tiers'
	// and unknown ones) are stored and forwarded unchanged, to the next
	// tier and to clients: an edge receives the fields meant for it through
	// a midtier, and RFC 9213 §2.2 requires passing through fields a cache
	// does not honour.
	TargetedFields []string

	// FillTimeout bounds one upstream fill (response headers and body). A
	// fill is detached from the client that started it, so that client
	// hanging up does not fail the others. If zero, DefaultFillTimeout.
	FillTimeout time.Duration

	// MaxObjectBytes, if positive, is the largest response body stored:
	// responses with a larger Content-Length are passed through uncached,
	// and a fill without Content-Length that grows larger fails like one
	// the Store refuses. Set it to at most the Store's bound. If zero, any
	// size is tried. A fill the Store refuses (too large, disk full)
	// aborts the responses reading it; its key is then passed through
	// uncached for a minute.
	MaxObjectBytes int64

	// KeepServerHeaders keeps the response headers that name the origin's
	// software (Server, X-Powered-By, X-AspNet-Version, X-Generator, Via,
	// ...). If false (the default) they are removed: they fingerprint the
	// origin, which an onion service must not reveal.
	KeepServerHeaders bool

	// ForwardHeaders lists trace and correlation headers forwarded
	// upstream (case-insensitive; "X-B3-*" keeps a family). If empty, none
	// is: Traceparent, Tracestate, Baggage, X-Request-Id,
	// X-Correlation-Id, X-B3-*, B3, Uber-Trace-Id, X-Amzn-Trace-Id,
	// X-Cloud-Trace-Context, Sentry-Trace, a request's Cache-Status and
	// similar headers are removed, because they link one client's requests
	// across tiers. Hop-by-hop headers and headers carrying client
	// addresses or circuit ids are removed whatever it says.
	ForwardHeaders []string

	// ForwardTags keeps the surrogate-key fields (Surrogate-Key,
	// Cache-Tag: see [Cache.Purge]) in responses, for a tier below that
	// indexes its own copies by them. If false (the default) they are
	// removed from every response, as on a tier facing users, to whom
	// they reveal how the site groups its content; they are still stored
	// and indexed.
	ForwardTags bool

	// PurgeFile, if set, is where the purge rules in force are saved
	// after every purge and read back at start, so that a Cache restarted
	// on a persistent store (a diskstore) keeps honouring the purges it
	// applied before. If the file cannot be read at start, every object
	// stored before is treated as hard-purged. If empty, rules live in
	// memory only.
	PurgeFile string

	// MaxPurgeRules bounds the purge rules kept (see [Cache.Purge]). If
	// zero, DefaultMaxPurgeRules.
	MaxPurgeRules int

	// LogQuery includes the query string in Record.Path. If false (the
	// default) only the path is logged: queries may carry identifying data.
	LogQuery bool

	// Now returns the current time. If nil, time.Now.
	Now func() time.Time

	// OnRecord are called, in order, once per request after its last byte
	// was written or the response was abandoned: metrics, prefetch hit
	// counting and access logs each append their hook. They run on the
	// request's goroutine and must be quick.
	OnRecord []func(r *http.Request, rec Record)

	// AdmitMiss, if set, is asked before a request makes this cache work
	// upstream: a miss, a stale object to validate (also in the
	// background, for stale-while-revalidate), a request passed through
	// (no-store, Authorization, methods other than GET and HEAD). When it
	// returns false, the request is answered from a stale stored object if
	// stale-if-error allows that, and otherwise with 503 Service
	// Unavailable and Retry-After: 1 (disposition Shed); a background
	// revalidation is skipped. Hits and requests joining a fill in
	// progress never ask, nor does Prefetch. An overload guard such as
	// limit.Limiter.AdmitMiss sheds misses this way while hits are still
	// served. If nil, every request may go upstream.
	AdmitMiss func(r *http.Request) bool

	// Logger receives one record per request at Debug level (Info for
	// failures) and errors. If nil, logs are discarded.
	Logger *slog.Logger

	// ErrorHandler replies to a request that could not be served (upstream
	// unreachable, no response). If nil, the error is logged and a
	// 502 Bad Gateway is sent. It is not called for a forwarded request
	// whose own body could not be read (malformed chunked framing, a body
	// shorter than its Content-Length, a size limit): that is the client's
	// fault, answered 400 (413 for an http.MaxBytesError) with the
	// connection closed, logged at Debug level and not counted in
	// Stats.Errors.
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)

	initOnce  sync.Once
	store     Store
	transport http.RoundTripper
	log       *slog.Logger
	opts      rfc9111.Options
	proxy     *httputil.ReverseProxy
	group     singleflight.Group
	stats     counters
	bufs      sync.Pool
	work      tracker       // fills and background revalidations
	nonceSeq  atomic.Uint64 // makes variant index nonces unique
	purges    purgeTable

	// testHookFlight, if set, is called by every request that starts
	// waiting on a flight (leader included). Tests only.
	testHookFlight func()

	fills   sync.Map // base key → *fill in progress (read on every request: no lock)
	decoded *[decodedSlots]atomic.Pointer[decoded]

	mu         sync.Mutex
	bg         map[string]struct{}  // base keys with a background revalidation
	unstorable map[string]time.Time // base keys whose last fill the store refused, until when
}

func (c *Cache) init() {
	c.initOnce.Do(func() {
		c.store = c.Store
		if c.store == nil {
			c.store = &MemoryStore{}
		}
		c.transport = c.Transport
		if c.transport == nil {
			t := http.DefaultTransport.(*http.Transport).Clone()
			t.DisableCompression = true
			t.MaxIdleConnsPerHost = 64
			c.transport = t
		}
		c.log = c.Logger
		if c.log == nil {
			c.log = slog.New(slog.DiscardHandler)
		}
		c.opts = rfc9111.Options{
			AllowSetCookie:              c.AllowSetCookie,
			HeuristicFraction:           c.HeuristicFraction,
			MaxHeuristic:                c.MaxHeuristic,
			DefaultStaleWhileRevalidate: c.DefaultStaleWhileRevalidate,
			DefaultStaleIfError:         c.DefaultStaleIfError,
			TargetedFields:              targetList(c.TargetedFields),
		}
		c.bg = make(map[string]struct{})
		c.decoded = new([decodedSlots]atomic.Pointer[decoded])
		c.unstorable = make(map[string]time.Time)
		c.purges.max, c.purges.file = c.MaxPurgeRules, c.PurgeFile
		if err := c.purges.load(); err != nil {
			// Unknown rules may have been lost: nothing stored before
			// now is served without a fetch.
			c.log.Error("cache: cannot read the purge file; treating every stored object as purged", "err", err)
			c.purges.snap.Store(newPurgeSnap(nil, c.now(), time.Time{}))
		}
		c.bufs.New = func() any { b := make([]byte, 32<<10); return &b }
		c.proxy = &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				c.rewrite(pr.Out, pr.In)
			},
			Transport: c.transport,
			ModifyResponse: func(resp *http.Response) error {
				hygiene.CleanResponse(resp.Header, !c.KeepServerHeaders)
				if !c.ForwardTags {
					stripTags(resp.Header)
				}
				if c.CacheStatus {
					resp.Header.Add("Cache-Status", c.name()+"; fwd=method; fwd-status="+strconv.Itoa(resp.StatusCode))
				} else {
					resp.Header.Del("Cache-Status")
				}
				return nil
			},
			ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
				if cb, _ := r.Context().Value(clientBodyKey{}).(*clientBody); cb != nil {
					if berr := cb.failure(); berr != nil {
						c.clientBodyError(w, r, berr)
						return
					}
				}
				c.stats.errors.Add(1)
				c.handleError(w, r, err)
			},
			ErrorLog: slog.NewLogLogger(c.log.Handler(), slog.LevelDebug),
		}
	})
}

// targetList returns the RFC 9213 target list of a cache with
// TargetedFields fields: those fields in canonical form, then
// CDN-Cache-Control.
func targetList(fields []string) []string {
	list := make([]string, 0, len(fields)+1)
	for _, f := range slices.Concat(fields, []string{rfc9111.CDNCacheControl}) {
		if f = http.CanonicalHeaderKey(strings.TrimSpace(f)); f != "" && !slices.Contains(list, f) {
			list = append(list, f)
		}
	}
	return list
}

// Stats returns a snapshot of the cache's counters.
func (c *Cache) Stats() Stats {
	s := c.stats.snapshot()
	if ps := c.purges.snap.Load(); ps != nil {
		s.PurgeRules = len(ps.rules)
	}
	return s
}

// Shutdown waits until the fills and background revalidations in progress
// have finished or ctx is done. Requests arriving later are still served;
// it is meant to be called after http.Server.Shutdown.
func (c *Cache) Shutdown(ctx context.Context) error {
	c.init()
	select {
	case <-c.work.idle():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cache: shutdown: %w", ctx.Err())
	}
}

func (c *Cache) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Cache) name() string {
	if c.Name != "" {
		return c.Name
	}
	return DefaultName
}

func (c *Cache) fillTimeout() time.Duration {
	if c.FillTimeout > 0 {
		return c.FillTimeout
	}
	return DefaultFillTimeout
}

func (c *Cache) getBuf() *[]byte  { return c.bufs.Get().(*[]byte) }
func (c *Cache) putBuf(b *[]byte) { c.bufs.Put(b) }

func (c *Cache) handleError(w http.ResponseWriter, r *http.Request, err error) {
	if c.ErrorHandler != nil {
		c.ErrorHandler(w, r, err)
		return
	}
	c.log.Info("upstream error", "method", r.Method, "path", c.logPath(r), "err", err)
	w.WriteHeader(http.StatusBadGateway)
}

// admitMiss reports whether r may make this cache work upstream (see
// AdmitMiss).
func (c *Cache) admitMiss(r *http.Request) bool {
	return c.AdmitMiss == nil || c.AdmitMiss(r)
}

// shedReply is the answer to a request AdmitMiss turned away.
func (c *Cache) shedReply(rec *Record) *reply {
	rec.Disposition = Shed
	return &reply{status: http.StatusServiceUnavailable, disp: Shed,
		header: http.Header{"Retry-After": {"1"}, "Content-Length": {"0"}}}
}

// clientBodyError answers a request whose body could not be read (the
// client's fault: malformed framing, a short body, a size limit) with 400,
// or 413 for a body over a limit, and closes the connection: its framing
// can no longer be trusted.
func (c *Cache) clientBodyError(w http.ResponseWriter, r *http.Request, err error) {
	c.log.Debug("client request body failed", "method", r.Method, "path", c.logPath(r), "err", err)
	code := http.StatusBadRequest
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		code = http.StatusRequestEntityTooLarge
	}
	w.Header().Set("Connection", "close")
	w.WriteHeader(code)
}

type clientBodyKey struct{}

// clientBody records the first error reading a client's request body
// before it was closed (a read failing because the transport closed the
// body is not the client's fault).
type clientBody struct {
	rc     io.ReadCloser
	mu     sync.Mutex
	closed bool
	err    error
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		b.mu.Lock()
		if !b.closed && b.err == nil {
			b.err = err
		}
		b.mu.Unlock()
	}
	return n, err
}

func (b *clientBody) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return b.rc.Close()
}

func (b *clientBody) failure() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

func (c *Cache) logPath(r *http.Request) string {
	p := r.URL.EscapedPath()
	if c.LogQuery && r.URL.RawQuery != "" {
		p += "?" + r.URL.RawQuery
	}
	return p
}

// record finishes rec and hands it to OnRecord and the Logger.
func (c *Cache) record(r *http.Request, rec *Record, start time.Time) {
	rec.Delivery = c.now().Sub(start)
	c.stats.bytesServed.Add(uint64(rec.Bytes))
	c.stats.count(rec.Disposition)
	if rec.Err != nil {
		c.stats.errors.Add(1)
	}
	for _, h := range c.OnRecord {
		h(r, *rec)
	}
	lvl := slog.LevelDebug
	if rec.Err != nil {
		lvl = slog.LevelInfo
	}
	if c.log.Enabled(r.Context(), lvl) {
		attrs := []slog.Attr{
			slog.String("method", rec.Method),
			slog.String("path", rec.Path),
			slog.Int("status", rec.Status),
			slog.Int64("bytes", rec.Bytes),
			slog.String("disposition", string(rec.Disposition)),
			slog.Duration("delivery", rec.Delivery),
			slog.Duration("upstream", rec.Upstream),
		}
		if rec.Prefetch {
			attrs = append(attrs, slog.Bool("prefetch", true))
		}
		if rec.Err != nil {
			attrs = append(attrs, slog.String("err", rec.Err.Error()))
		}
		c.log.LogAttrs(r.Context(), lvl, "request", attrs...)
	}
}

// rewrite points out (a clone of in) at the upstream and cleans its header.
func (c *Cache) rewrite(out, in *http.Request) {
	if u := c.Upstream; u != nil {
		out.URL.Scheme = u.Scheme
		out.URL.Host = u.Host
		if u.Path != "" && u.Path != "/" {
			out.URL.Path = strings.TrimSuffix(u.Path, "/") + "/" + strings.TrimPrefix(in.URL.Path, "/")
			out.URL.RawPath = ""
		}
		if !c.PreserveHost {
			out.Host = ""
		}
	} else if out.URL.Host == "" {
		out.URL.Scheme = "http"
		if in.TLS != nil {
			out.URL.Scheme = "https"
		}
		out.URL.Host = in.Host
	}
	hygiene.CleanRequestExcept(out.Header, c.ForwardHeaders)
	forwardRange(out)
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header.Set("User-Agent", "") // never Go's default
	}
}

// forwardRange limits the Range field of a request passed upstream (the
// cache cannot apply its own range rule to a response it does not store):
// see rfc9111.ForwardRange. Range means nothing for methods other than GET
// (and HEAD, where it is ignored): it is removed from them.
func forwardRange(out *http.Request) {
	v, ok := out.Header["Range"]
	if !ok {
		return
	}
	if len(v) == 1 && (out.Method == http.MethodGet || out.Method == http.MethodHead || out.Method == "") {
		if f, ok := rfc9111.ForwardRange(v[0]); ok {
			out.Header["Range"] = []string{f}
			return
		}
	}
	delete(out.Header, "Range")
	delete(out.Header, "If-Range")
}

// outRequest builds the upstream request for r. A fill request is always a
// plain GET: the client's conditionals and Range are answered by the cache.
func (c *Cache) outRequest(ctx context.Context, r *http.Request, fill bool) *http.Request {
	out := r.Clone(ctx)
	out.RequestURI = ""
	out.Close = false
	if fill || r.Method == http.MethodGet || r.Method == http.MethodHead {
		out.Body = nil
		out.ContentLength = 0
		out.GetBody = nil
	}
	if fill {
		out.Method = http.MethodGet
		for _, k := range conditionalHeaders {
			out.Header.Del(k)
		}
	}
	c.rewrite(out, r)
	return out
}

var conditionalHeaders = [...]string{
	"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range", "Range",
}

// ServeHTTP serves r from the store or upstream.
//
// GET and HEAD go through the cache. Other methods are forwarded with
// [httputil.ReverseProxy] (same header hygiene), and a successful unsafe
// method invalidates the stored responses for its target and its same-origin
// Location and Content-Location.
//
// Cacheable requests are not served by ReverseProxy itself because their
// responses come from the store (or a fill in progress), not from an
// upstream response tied to this client.
func (c *Cache) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := c.now()
	c.init()
	rec := Record{Method: r.Method, Path: c.logPath(r)}
	if c.Upstream == nil && c.Transport == nil {
		rec.Err, rec.Disposition, rec.Status = ErrNoUpstream, Error, http.StatusBadGateway
		c.handleError(w, r, ErrNoUpstream)
		c.record(r, &rec, start)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if !c.admitMiss(r) {
			rp := c.shedReply(&rec)
			c.writeReply(w, r, rp, &rec, start)
			c.record(r, &rec, start)
			return
		}
		rw := &rwrec.Writer{ResponseWriter: w}
		rec.Disposition = FwdMethod
		if r.Body != nil && r.Body != http.NoBody {
			// Watch the client's body, so that a failure reading it is
			// answered as the client's fault, not the upstream's.
			cb := &clientBody{rc: r.Body}
			r = r.WithContext(context.WithValue(r.Context(), clientBodyKey{}, cb))
			r.Body = cb
		}
		c.proxy.ServeHTTP(rw, r)
		rec.Status, rec.Bytes = rw.Status, rw.Bytes
		if rec.Status == 0 {
			rec.Status = http.StatusOK
		}
		c.invalidate(r, rec.Status, rw.Header(), false)
		c.record(r, &rec, start)
		return
	}
	rp, err := c.get(r.Context(), r, &rec, w, modeServe)
	if err != nil {
		rec.Err = err
		rec.Disposition = Error
		rec.Status = http.StatusBadGateway
		c.handleError(w, r, err)
		c.record(r, &rec, start)
		return
	}
	defer rp.close()
	srcErr := c.writeReply(w, r, rp, &rec, start)
	if rp.fill != nil {
		rp.fill.timing(&rec, start)
	}
	c.record(r, &rec, start)
	if srcErr != nil {
		// The response started and its source failed: never let it look
		// complete.
		panic(http.ErrAbortHandler)
	}
}

// RoundTrip serves r from the store or sends it upstream through Transport.
// It follows the same rules as [Cache.ServeHTTP]; r.URL must be absolute
// unless Upstream is set. r is not modified. A response body whose fill
// fails returns an error from Read rather than a short body.
func (c *Cache) RoundTrip(r *http.Request) (*http.Response, error) {
	start := c.now()
	c.init()
	c.purges.rt.Store(true)
	if r.Body != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		r.Body.Close() // not sent upstream; other methods' bodies are closed by Transport
	}
	rec := Record{Method: r.Method, Path: c.logPath(r)}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		out := c.outRequest(r.Context(), r, false)
		resp, err := c.transport.RoundTrip(out)
		rec.Disposition = FwdMethod
		rec.Upstream = c.now().Sub(start)
		if err != nil {
			rec.Err = err
			c.record(r, &rec, start)
			return nil, fmt.Errorf("cache: upstream: %w", err)
		}
		hygiene.CleanResponse(resp.Header, !c.KeepServerHeaders)
		if !c.CacheStatus {
			resp.Header.Del("Cache-Status")
		}
		if !c.ForwardTags {
			stripTags(resp.Header)
		}
		rec.Status = resp.StatusCode
		c.invalidate(r, resp.StatusCode, resp.Header, true)
		resp.Body = &recordBody{rc: resp.Body, done: func(n int64, err error) {
			rec.Bytes, rec.Err = n, err
			c.record(r, &rec, start)
		}}
		return resp, nil
	}
	rp, err := c.get(r.Context(), r, &rec, nil, modeRoundTrip)
	if err != nil {
		rec.Err = err
		rec.Disposition = Error
		c.record(r, &rec, start)
		return nil, err
	}
	return c.replyResponse(r, rp, &rec, start), nil
}

// Prefetch makes sure r's object is stored: if nothing fresh is stored, it
// starts a fill through the same path as client requests (or joins the one
// in progress) and waits until the body is stored or ctx is done. The fill
// itself continues when ctx ends. Clients arriving meanwhile join the fill.
func (c *Cache) Prefetch(ctx context.Context, r *http.Request) error {
	start := c.now()
	c.init()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return fmt.Errorf("cache: prefetch: method %s not cacheable", r.Method)
	}
	if c.Upstream == nil && c.Transport == nil {
		return ErrNoUpstream
	}
	r = r.WithContext(ctx)
	rec := Record{Method: r.Method, Path: c.logPath(r), Prefetch: true}
	err := c.prefetch(ctx, r, &rec, start)
	if err != nil {
		rec.Err = err
	} else {
		c.stats.prefetched.Add(1)
	}
	c.record(r, &rec, start)
	return err
}

// recordBody calls done once, at EOF, on a read error or on Close.
type recordBody struct {
	rc   io.ReadCloser
	n    int64
	once sync.Once
	done func(n int64, err error)
}

func (b *recordBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n += int64(n)
	if err != nil {
		var e error
		if err != io.EOF {
			e = err
		}
		b.once.Do(func() { b.done(b.n, e) })
	}
	return n, err
}

func (b *recordBody) Close() error {
	err := b.rc.Close()
	b.once.Do(func() { b.done(b.n, nil) })
	return err
}

// isClientGone reports whether err only says that the client went away.
func isClientGone(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, net.ErrClosed)
}

// tracker counts work in progress (fills, background revalidations) and
// tells when there is none. Unlike a sync.WaitGroup, work may start while
// someone waits: Shutdown waits for the work in progress at the moment the
// count last drops to zero.
type tracker struct {
	mu    sync.Mutex
	n     int
	empty chan struct{} // closed when n drops to 0; nil while n is 0
}

func (t *tracker) Add(delta int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == 0 && delta > 0 {
		t.empty = make(chan struct{})
	}
	t.n += delta
	if t.n == 0 && t.empty != nil {
		close(t.empty)
		t.empty = nil
	}
}

func (t *tracker) Done() { t.Add(-1) }

// idle returns a channel that is closed once no work is in progress.
func (t *tracker) idle() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == 0 {
		c := make(chan struct{})
		close(c)
		return c
	}
	return t.empty
}
