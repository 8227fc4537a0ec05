package cache

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/onioncdn/onioncdn/internal/hygiene"
	"github.com/onioncdn/onioncdn/internal/rfc9111"
)

// maxAttempts bounds how often one request looks again after a flight told
// it to (something fresh appeared, a fill failed before it joined...).
const maxAttempts = 3

// baseKey returns the store key of r's primary entry: partition, method
// (HEAD shares GET's entries), host part (see Cache.KeyHost; rt: r came
// through RoundTrip) and the resource key.
func (c *Cache) baseKey(r *http.Request, rt bool) string {
	if c.Policy == nil && c.Partition == nil && c.KeyHost == nil && !rt {
		return defaultKey("GET ", r) // the common case, in one allocation
	}
	var k string
	if c.Policy != nil {
		k = c.Policy.Key(r)
	} else {
		k = DefaultKey(r)
	}
	return c.partitionKey(r, c.keyHost(r, rt), k)
}

// keyHost returns the host part of r's cache key.
func (c *Cache) keyHost(r *http.Request, rt bool) string {
	if c.KeyHost != nil {
		return c.KeyHost(r)
	}
	if rt {
		return URLHost(r)
	}
	return ""
}

// partitionKey assembles a store key. A non-empty host is separated from
// the resource by a space, which no request target contains: no host and
// resource can be spliced into another's key.
func (c *Cache) partitionKey(r *http.Request, host, resource string) string {
	k := "GET " + resource
	if host != "" {
		k = "GET " + host + " " + resource
	}
	if c.Partition != nil {
		if p := c.Partition(r); p != "" {
			return p + "\x00" + k
		}
	}
	return k
}

// variantKey returns the store key of one variant of a Vary-ing resource.
// nonce changes whenever the index is rewritten, so variants stored under
// an invalidated or replaced index are never found again.
func variantKey(base, nonce, vary string) string {
	return base + "\x00v" + nonce + "\x00" + vary
}

// stored is an entry found in the store.
type stored struct {
	obj      Object
	meta     *meta
	key      string // store key of obj
	varyMiss bool   // a variant index exists but not this request's variant
}

func (s *stored) close() {
	if s.obj != nil {
		s.obj.Close()
		s.obj = nil
	}
}

func (s *stored) entry() *rfc9111.Entry { return s.meta.entry() }

func (m *meta) entry() *rfc9111.Entry {
	return &rfc9111.Entry{
		Status: m.status, Header: m.header,
		RequestTime: m.requestTime, ResponseTime: m.responseTime,
		TTL: cmp.Or(m.purgeTTL, m.ttl), SWR: m.swr, SIE: m.sie,
	}
}

// storeError counts and logs a store failure; the request goes on uncached.
func (c *Cache) storeError(op string, err error) {
	c.stats.errors.Add(1)
	c.log.Warn("store error", "op", op, "err", err)
}

// openObject opens key and decodes its metadata. A corrupt entry is
// deleted and reported as not found.
func (c *Cache) openObject(ctx context.Context, key string) (Object, *meta) {
	o, err := c.store.Open(ctx, key)
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			c.storeError("open", err)
		}
		return nil, nil
	}
	m, err := c.decode(key, o.Meta())
	if err != nil {
		o.Close()
		c.storeError("decode", err)
		c.store.Delete(ctx, key)
		return nil, nil
	}
	return o, m
}

// decodedSlots is the size of the decoded-metadata cache.
const decodedSlots = 4096

// decoded is an entry of the decoded-metadata cache.
type decoded struct {
	key string
	raw []byte // the encoded metadata m was decoded from
	m   *meta  // read-only
}

// decode returns the decoded metadata raw of key. Hits are served by a
// small direct-mapped cache of decoded entries, compared by content, so
// that a hot object's head is not decoded on every request. The returned
// meta and its header are shared: read-only.
func (c *Cache) decode(key string, raw []byte) (*meta, error) {
	h := fnv32(key)
	slot := &c.decoded[h%decodedSlots]
	if d := slot.Load(); d != nil && d.key == key && bytes.Equal(d.raw, raw) {
		return d.m, nil
	}
	m, err := decodeMeta(raw)
	if err != nil {
		return nil, err
	}
	// Values are clipped so that appending to a copy of the header never
	// writes into the shared arrays.
	for k, v := range m.header {
		m.header[k] = slices.Clip(v)
	}
	if m.kind == kindObject {
		e := m.entry()
		m.lifetime, _ = rfc9111.FreshnessLifetime(e, c.opts)
		m.initialAge = rfc9111.CurrentAge(e, m.responseTime)
		m.noCache, m.noCacheFields = rfc9111.NoCache(m.header, c.opts) // Cache-Control or a targeted field
		if bp, ok := c.Policy.(BoundedPolicy); ok {
			m.notAfter = bp.NotAfter(m.header)
		}
		m.tags, _ = parseTags(m.header, false)
		m.derived = true
	}
	m.formatted = new(formatted)
	slot.Store(&decoded{key: key, raw: bytes.Clone(raw), m: m})
	return m, nil
}

func fnv32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// lookup finds the stored response for r, following a variant index.
func (c *Cache) lookup(ctx context.Context, base string, r *http.Request) stored {
	o, m := c.openObject(ctx, base)
	if o == nil {
		return stored{}
	}
	if m.kind == kindObject {
		return c.purged(ctx, base, stored{obj: o, meta: m, key: base})
	}
	o.Close()
	vk, ok := rfc9111.VaryKey(r, m.header)
	if !ok {
		return stored{}
	}
	key := variantKey(base, m.nonce, vk)
	o, vm := c.openObject(ctx, key)
	if o == nil {
		return stored{varyMiss: true}
	}
	if vm.kind != kindObject {
		o.Close()
		return stored{varyMiss: true}
	}
	return c.purged(ctx, base, stored{obj: o, meta: vm, key: key})
}

// flightResult is what the leader of a flight publishes to every request
// that shared it.
type flightResult struct {
	leader   *byte          // identifies the request whose function ran
	fill     *fill          // a storable response being written: join it
	pass     *http.Response // a response that cannot be shared: the leader's alone
	reval    string         // store key of the object a 304 just revalidated
	upErr    error          // upstream failed (pass may hold its 5xx) while a stale object was stored
	private  http.Header    // fields of a qualified private, not stored: for the leader's client only
	retry    bool           // something fresh (or a fill) appeared meanwhile: look again
	stale    bool           // the leader's stored object was stale
	varyMiss bool           // the leader found a variant index without its variant
	upstream time.Duration  // time to the upstream response headers
}

// discard releases what only the leader may consume: a pass-through
// response, and the leader's reference to a fill.
func (fr *flightResult) discard() {
	if fr.pass != nil {
		fr.pass.Body.Close()
	}
	if fr.fill != nil {
		fr.fill.release()
	}
}

// flight runs lead for base once for all concurrent callers. It returns
// the shared result and whether this caller was the leader. The leader's
// work is detached from ctx (its own FillTimeout); ctx only bounds how long
// this caller waits.
func (c *Cache) flight(ctx context.Context, base string, r *http.Request) (*flightResult, bool, error) {
	me := new(byte)
	ch := c.group.DoChan(base, func() (v any, err error) {
		defer func() {
			if p := recover(); p != nil {
				v, err = nil, fmt.Errorf("cache: panic in fill: %v", p)
			}
		}()
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.fillTimeout())
		fr, err := c.lead(fctx, cancel, base, r)
		if err != nil {
			return nil, err
		}
		fr.leader = me
		return fr, nil
	})
	if c.testHookFlight != nil {
		c.testHookFlight()
	}
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, false, res.Err
		}
		fr := res.Val.(*flightResult)
		return fr, fr.leader == me, nil
	case <-ctx.Done():
		go func() {
			res := <-ch
			if fr, ok := res.Val.(*flightResult); ok && fr.leader == me {
				fr.discard()
			}
		}()
		return nil, false, ctx.Err()
	}
}

// lead is the leader's side of a flight: look again (another flight may
// have stored the object meanwhile, see groupcache's load), then fetch.
func (c *Cache) lead(ctx context.Context, cancel context.CancelFunc, base string, r *http.Request) (*flightResult, error) {
	if c.fillFor(base, r) != nil {
		cancel()
		return &flightResult{retry: true}, nil
	}
	st := c.lookup(ctx, base, r)
	defer st.close()
	if st.obj != nil {
		if v, _ := c.evaluate(r, st.meta, c.now()); v == rfc9111.Fresh {
			cancel()
			return &flightResult{retry: true}, nil
		}
	}
	var stale *stored
	if st.obj != nil {
		stale = &st
	}
	fr, err := c.fetch(ctx, cancel, base, r, stale, true, true)
	if fr != nil {
		fr.stale = stale != nil
		fr.varyMiss = st.varyMiss
	}
	return fr, err
}

// joinFinished returns a reply for a waiter of the flight that produced
// f: from f if it is still open, else from the object f committed (even if
// that is already stale: it is the response this request waited for).
func (c *Cache) joinFinished(ctx context.Context, r *http.Request, f *fill, dst http.Header) *reply {
	if f.acquire() {
		return c.fillReply(r, f, Collapsed, dst)
	}
	f.mu.Lock()
	ok, n := f.done && f.err == nil, f.n
	f.mu.Unlock()
	if !ok {
		return nil
	}
	o, m := c.openObject(ctx, f.key)
	if o == nil {
		return nil
	}
	if m.kind != kindObject || !m.responseTime.Equal(f.meta.responseTime) || o.Size() != n {
		o.Close() // replaced meanwhile
		return nil
	}
	st := stored{obj: o, meta: m, key: f.key}
	return c.storedReply(r, &st, rfc9111.CurrentAge(m.entry(), c.now()), Collapsed, dst)
}

// evaluate is rfc9111.Evaluate with a fast path for the common hit: a
// request without Cache-Control or Pragma on a stored response without
// no-cache is fresh exactly when its lifetime exceeds its current age,
// both derived once per stored head (see decode).
func (c *Cache) evaluate(r *http.Request, m *meta, now time.Time) (rfc9111.Verdict, time.Duration) {
	if m.expired(now) {
		return rfc9111.MustValidate, rfc9111.CurrentAge(m.entry(), now)
	}
	if m.derived && !m.noCache && len(r.Header["Cache-Control"]) == 0 && len(r.Header["Pragma"]) == 0 {
		age := m.initialAge + max(now.Sub(m.responseTime), 0)
		if age >= 0 && age < rfc9111.MaxDelta && m.lifetime > age {
			return rfc9111.Fresh, age
		}
	}
	return rfc9111.Evaluate(r, m.entry(), now, c.opts)
}

// expired reports whether m's BoundedPolicy bound has passed at now.
func (m *meta) expired(now time.Time) bool {
	return !m.notAfter.IsZero() && !now.Before(m.notAfter)
}

// staleIfError is rfc9111.StaleIfError, never past st's bound.
func (c *Cache) staleIfError(r *http.Request, st *stored, now time.Time) bool {
	return !st.meta.expired(now) && rfc9111.StaleIfError(r, st.entry(), now, c.opts)
}

// fillFor returns the registered fill in progress for base that can serve
// r (same variant), without acquiring it.
func (c *Cache) fillFor(base string, r *http.Request) *fill {
	v, _ := c.fills.Load(base)
	f, _ := v.(*fill)
	if f == nil || !f.matches(r) {
		return nil
	}
	f.mu.Lock()
	failed := f.err != nil
	f.mu.Unlock()
	if failed || c.fillPurged(base, f) {
		return nil
	}
	return f
}

// joinFill acquires the fill in progress that can serve r, if any.
func (c *Cache) joinFill(base string, r *http.Request) *fill {
	if f := c.fillFor(base, r); f != nil && f.acquire() {
		return f
	}
	return nil
}

// matches reports whether the fill stores the variant r asks for.
func (f *fill) matches(r *http.Request) bool {
	if len(f.header["Vary"]) == 0 {
		return true
	}
	vk, ok := rfc9111.VaryKey(r, f.header)
	return ok && vk == f.varyKey
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// fetch sends r upstream and turns the response into a flight result. A
// collapsed fetch is a plain GET (validated against stale if given);
// otherwise r's own method and conditionals go upstream. If store is
// false the response is never stored. A stored response is registered as
// the fill of base if collapsed. cancel is called when the upstream
// exchange is over.
func (c *Cache) fetch(ctx context.Context, cancel context.CancelFunc, base string, r *http.Request, stale *stored, collapsed, store bool) (*flightResult, error) {
	ct := new(connTrace)
	out := c.outRequest(ct.context(ctx, c), r, collapsed)
	if stale != nil {
		for k, v := range rfc9111.ValidationHeaders(stale.entry()) {
			out.Header[k] = v
		}
	}
	gen := c.purges.gen.Load()
	reqTime := c.now()
	resp, err := c.transport.RoundTrip(out)
	respTime := c.now()
	if err != nil {
		cancel()
		err = fmt.Errorf("cache: upstream: %w", err)
		if stale != nil {
			return &flightResult{upErr: err, upstream: respTime.Sub(reqTime)}, nil
		}
		return nil, err
	}
	fr := &flightResult{upstream: respTime.Sub(reqTime)}
	hygiene.CleanResponse(resp.Header, !c.KeepServerHeaders)
	if out.Method == http.MethodHead && resp.StatusCode == http.StatusOK && !rfc9111.RequestNoStore(r) {
		c.updateFromHEAD(ctx, base, r, out, resp.Header, reqTime, respTime)
	}
	if stale != nil && resp.StatusCode == http.StatusNotModified {
		resp.Body.Close()
		defer cancel()
		m := *stale.meta
		m.derived = false
		m.header = stale.meta.header.Clone()
		rfc9111.Update304(m.header, resp.Header) // incl. the upstream's Cache-Status for this validation
		fr.private = rfc9111.StripPrivate(m.header, c.opts)
		m.requestTime, m.responseTime = reqTime, respTime
		if ok, _ := rfc9111.Storable(out, m.status, m.header, m.ttl > 0, c.opts); !ok || !sameTags(stale.meta.header, m.header) {
			// The 304 made the response unstorable (e.g. added private),
			// or changed its tags, which the store's index keeps.
			c.store.Delete(ctx, stale.key)
			return &flightResult{retry: true, upstream: fr.upstream}, nil
		}
		if err := c.store.UpdateMeta(ctx, stale.key, stale.obj.Meta(), m.encode()); err != nil {
			if !errors.Is(err, ErrNotFound) {
				c.storeError("update", err)
			}
			return &flightResult{retry: true, upstream: fr.upstream}, nil
		}
		fr.reval = stale.key
		return fr, nil
	}
	// A body delimited only by the connection's end looks the same
	// whether complete or cut short: store it only if its reader vouches
	// for its end (see CompleteBody).
	unframed := closeDelimited(resp) && !completeAtEOF(resp.Body)
	resp.Body = cancelBody{resp.Body, cancel}
	if stale != nil && resp.StatusCode >= 500 {
		fr.upErr = fmt.Errorf("cache: upstream: status %d", resp.StatusCode)
		fr.pass = resp
		return fr, nil
	}
	var d Decision
	if c.Policy != nil {
		d = c.Policy.Decide(r, resp)
	}
	ok := store && !d.NoStore && !unframed && out.Method == http.MethodGet &&
		(c.MaxObjectBytes <= 0 || resp.ContentLength <= c.MaxObjectBytes)
	if ok {
		ok, _ = rfc9111.Storable(out, resp.StatusCode, resp.Header, d.TTL > 0, c.opts)
	}
	var vk string
	if ok {
		vk, ok = rfc9111.VaryKey(r, resp.Header)
	}
	var tags []string
	if ok {
		var err error
		if tags, err = parseTags(resp.Header, true); err != nil {
			ok = false
			c.log.Warn("response not stored", "err", err)
		}
	}
	if !ok {
		fr.pass = resp
		return fr, nil
	}
	// Fields a qualified private names are not stored (RFC 9111
	// §5.2.2.7); the leader's client still gets them.
	fr.private = rfc9111.StripPrivate(resp.Header, c.opts)
	// The upstream's Cache-Status members are stored with the response
	// (RFC 9211 §2: caches preserve the members of the caches before
	// them); this cache's own member is appended when it is sent, or all
	// are removed if CacheStatus is off.
	if resp.StatusCode == http.StatusOK {
		// Ranges are served from the stored object (see shape).
		resp.Header["Accept-Ranges"] = []string{"bytes"}
	}
	m := &meta{
		kind: kindObject, status: resp.StatusCode,
		requestTime: reqTime, responseTime: respTime,
		ttl: d.TTL, swr: d.StaleWhileRevalidate, sie: d.StaleIfError,
		header: resp.Header, tags: tags,
	}
	if bp, ok := c.Policy.(BoundedPolicy); ok {
		m.notAfter = bp.NotAfter(resp.Header) // for Cache-Status only: derived again when read
	}
	key := base
	if len(resp.Header["Vary"]) > 0 {
		nonce, err := c.varyIndex(ctx, base, resp.Header["Vary"])
		if err != nil {
			c.storeError("create", err)
			maps.Copy(resp.Header, fr.private) // not stored after all: all of it to the leader
			fr.pass = resp
			return fr, nil
		}
		key = variantKey(base, nonce, vk)
	}
	w, err := c.create(ctx, key, m.encode(), tags)
	if err != nil {
		c.storeError("create", err)
		maps.Copy(resp.Header, fr.private)
		fr.pass = resp
		return fr, nil
	}
	f := newFill(key, resp.StatusCode, resp.Header, m, resp.ContentLength, vk, w)
	f.up = ct.timing(reqTime, respTime)
	f.gen = gen
	if collapsed {
		c.fills.Store(base, f)
	}
	c.work.Add(1)
	go c.runFill(f, resp, base, collapsed)
	fr.fill = f
	return fr, nil
}

// CompleteBody is implemented by a response body (from the Cache's
// Transport) that returns io.EOF only once it knows the body is complete,
// for instance because it verified the body against a signed length and
// digest, as package github.com/onioncdn/onioncdn/upstream/integrity's
// Transport does.
//
// A response whose body is delimited only by the connection closing (no
// Content-Length, not chunked) cannot otherwise be told complete from cut
// short, so the cache stores it only if its body is a CompleteBody
// reporting true; else it is passed through uncached. A chunked body is
// stored: its last chunk marks its end, and net/http reports a missing
// one as io.ErrUnexpectedEOF.
type CompleteBody interface {
	CompleteAtEOF() bool
}

func completeAtEOF(body io.ReadCloser) bool {
	cb, ok := body.(CompleteBody)
	return ok && cb.CompleteAtEOF()
}

// closeDelimited reports whether resp's body ends only where the
// connection closes (HTTP/1.x without Content-Length or chunking; net/http
// sets Close for it).
func closeDelimited(resp *http.Response) bool {
	return resp.ContentLength < 0 && resp.Close && !slices.Contains(resp.TransferEncoding, "chunked") &&
		resp.ProtoMajor < 2 && bodyAllowed(resp.StatusCode)
}

// updateFromHEAD applies a 200 response to HEAD with header h to the
// stored GET response r selects (RFC 9111 §4.3.5): if rfc9111.HEADUpdates
// accepts it, the stored header is updated as by a 304 (a policy's
// Decision stays as stored) with the times of the HEAD exchange;
// otherwise, or if the merged response may no longer be stored for out
// (as a GET), the stored response is removed, the way this cache makes a
// response stale.
func (c *Cache) updateFromHEAD(ctx context.Context, base string, r, out *http.Request, h http.Header, reqTime, respTime time.Time) {
	st := c.lookup(ctx, base, r)
	if st.obj == nil {
		return
	}
	defer st.close()
	m := *st.meta
	m.derived = false
	m.header = st.meta.header.Clone()
	rfc9111.Update304(m.header, h)
	rfc9111.StripPrivate(m.header, c.opts)
	m.requestTime, m.responseTime = reqTime, respTime
	get := *out
	get.Method = http.MethodGet
	ok := m.status == http.StatusOK && rfc9111.HEADUpdates(st.meta.header, st.obj.Size(), h) && sameTags(st.meta.header, m.header)
	if ok {
		ok, _ = rfc9111.Storable(&get, m.status, m.header, m.ttl > 0, c.opts)
	}
	var err error
	if ok {
		err = c.store.UpdateMeta(ctx, st.key, st.obj.Meta(), m.encode())
	} else {
		err = c.store.Delete(ctx, st.key)
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
		c.storeError("update", err)
	}
}

// varyIndex makes sure the entry at base is a variant index for vary and
// returns its nonce.
func (c *Cache) varyIndex(ctx context.Context, base string, vary []string) (string, error) {
	if o, m := c.openObject(ctx, base); o != nil {
		o.Close()
		if m.kind == kindVary && slices.Equal(m.header["Vary"], vary) {
			return m.nonce, nil
		}
	}
	now := c.now()
	nonce := strconv.FormatInt(now.UnixNano(), 36) + "." + strconv.FormatUint(c.nonceSeq.Add(1), 36)
	m := &meta{kind: kindVary, status: http.StatusOK, requestTime: now, responseTime: now,
		nonce: nonce, header: http.Header{"Vary": slices.Clone(vary)}}
	w, err := c.store.Create(ctx, base, m.encode())
	if err != nil {
		return "", err
	}
	defer w.Close()
	if err := w.Commit(ctx); err != nil {
		return "", err
	}
	return nonce, nil
}

// runFill copies the upstream body into the store, waking readers as bytes
// arrive. The object is committed only when the body is complete; any
// failure aborts it and every reader.
func (c *Cache) runFill(f *fill, resp *http.Response, base string, registered bool) {
	defer c.work.Done()
	defer f.release()
	bp := c.getBuf()
	defer c.putBuf(bp)
	buf := *bp
	var written int64
	var err error
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if c.MaxObjectBytes > 0 && written+int64(n) > c.MaxObjectBytes {
				c.markUnstorable(base)
				err = fmt.Errorf("cache: body exceeds MaxObjectBytes %d", c.MaxObjectBytes)
				break
			}
			if _, werr := f.w.Write(buf[:n]); werr != nil {
				c.storeError("write", werr)
				c.markUnstorable(base)
				err = fmt.Errorf("cache: store write: %w", werr)
				break
			}
			var at time.Time // when the first (or, known length, the last) bytes arrived
			if written == 0 || (f.size >= 0 && written+int64(n) == f.size) {
				at = c.now()
			}
			written += int64(n)
			f.advance(n, at)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			err = fmt.Errorf("cache: upstream body: %w", rerr)
			break
		}
	}
	resp.Body.Close()
	if err == nil && f.size >= 0 && written != f.size {
		err = fmt.Errorf("cache: upstream body: %d bytes, Content-Length %d", written, f.size)
	}
	c.stats.bytesFetched.Add(uint64(written))
	if err == nil {
		if cerr := c.commitFill(context.Background(), f, base); cerr != nil && !errors.Is(cerr, errFillPurged) {
			// The body is complete in the writer: readers finish it;
			// only storing failed.
			c.storeError("commit", cerr)
		}
	} else {
		f.w.Abort()
	}
	// Deregister first: a request arriving from now on finds the object
	// committed (or nothing), never a finished fill.
	if registered {
		c.fills.CompareAndDelete(base, f)
	}
	f.finish(err, c.now())
	if err != nil {
		c.stats.errors.Add(1)
		c.log.Info("fill aborted", "err", err)
	}
}

// unstorableFor is how long a key whose fill the store refused is passed
// through uncached.
const unstorableFor = time.Minute

// markUnstorable remembers that the store refused base's object (too
// large, disk full), so that the next requests do not fail the same way.
func (c *Cache) markUnstorable(base string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.unstorable) >= 4096 {
		clear(c.unstorable) // bounded: forgetting only costs one more attempt
	}
	c.unstorable[base] = c.now().Add(unstorableFor)
}

func (c *Cache) isUnstorable(base string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	until, ok := c.unstorable[base]
	if ok && !c.now().Before(until) {
		delete(c.unstorable, base)
		ok = false
	}
	return ok
}

// revalidateInBackground starts one background revalidation of base
// (stale-while-revalidate) unless one is running.
func (c *Cache) revalidateInBackground(base string, r *http.Request) {
	c.mu.Lock()
	_, filling := c.fills.Load(base)
	if _, ok := c.bg[base]; ok || filling {
		c.mu.Unlock()
		return
	}
	c.bg[base] = struct{}{}
	c.work.Add(1)
	c.mu.Unlock()
	// Not the client's: its cancellation, nor its ClientTrace (RoundTrip
	// mode), which would be called after its request is over.
	ctx := noTrace{context.WithoutCancel(r.Context())}
	br := r.Clone(ctx)
	go func() {
		defer c.work.Done()
		defer func() {
			c.mu.Lock()
			delete(c.bg, base)
			c.mu.Unlock()
		}()
		fr, leader, err := c.flight(ctx, base, br)
		if err != nil {
			c.log.Info("background revalidation failed", "err", err)
			return
		}
		if leader {
			fr.discard()
		}
	}()
}

// invalidate removes the stored entries a successful unsafe request
// invalidates (RFC 9111 §4.4).
func (c *Cache) invalidate(r *http.Request, status int, h http.Header, rt bool) {
	host := c.keyHost(r, rt)
	for _, t := range rfc9111.InvalidationTargets(r, status, h) {
		u, err := url.Parse(t)
		if err != nil {
			continue
		}
		gr := &http.Request{Method: http.MethodGet, URL: u, Host: u.Host, Header: http.Header{}}
		gr = gr.WithContext(r.Context())
		var k string
		if c.Policy != nil {
			k = c.Policy.Key(gr)
		} else {
			k = DefaultKey(gr)
		}
		err = c.store.Delete(r.Context(), c.partitionKey(r, host, k))
		switch {
		case err == nil:
			c.stats.invalidated.Add(1)
		case !errors.Is(err, ErrNotFound):
			c.storeError("delete", err)
		}
	}
}

// getMode says who asks get for a reply.
type getMode uint8

const (
	modeServe     getMode = iota // a client of the Handler
	modeRoundTrip                // a caller of RoundTrip (see Cache.KeyHost)
	modePrefetch                 // Prefetch: fresh objects only, never an uncollapsed fetch
)

// errPrefetchNotStorable is returned to Prefetch where a client request
// would have gone upstream on its own: prefetching is only for objects the
// cache can store and share.
var errPrefetchNotStorable = errors.New("cache: prefetch: response not storable")

// get serves a GET or HEAD request: from the store, from a fill in
// progress, or through a (collapsed) upstream fetch. w is the handler's
// ResponseWriter (nil in RoundTrip and prefetch modes): the reply's header
// is built in its header map, and the 1xx responses of this request's
// upstream fetch are forwarded to it (see interimScope). In prefetch mode
// only a fresh stored object counts as a hit (a stale one is refreshed),
// and where a client request would go upstream on its own (the response
// cannot be shared) get returns errPrefetchNotStorable instead.
func (c *Cache) get(ctx context.Context, r *http.Request, rec *Record, w http.ResponseWriter, mode getMode) (*reply, error) {
	var dst http.Header
	if w != nil {
		dst = w.Header()
	}
	up := interimScope{c: c, w: w, r: r}
	defer up.stop()
	prefetch := mode == modePrefetch
	base := c.baseKey(r, mode == modeRoundTrip)
	// direct sends r upstream for this request alone.
	direct := func(store bool) (*reply, error) {
		if prefetch {
			return nil, errPrefetchNotStorable
		}
		return c.direct(up.context(ctx), base, r, rec, store, dst)
	}
	noStore := rfc9111.RequestNoStore(r)
	if noStore || r.Header.Get("Authorization") != "" {
		// Never shared with other requests; a response to an authorized
		// request may still be stored if it says it is public.
		rec.Disposition = FwdRequest
		if !c.admitMiss(r) {
			return c.shedReply(rec), nil
		}
		return direct(!noStore)
	}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if f := c.joinFill(base, r); f != nil {
			rec.Disposition = Collapsed
			return c.fillReply(r, f, Collapsed, dst), nil
		}

		st := c.lookup(ctx, base, r)
		if st.obj != nil {
			v, age := c.evaluate(r, st.meta, c.now())
			if prefetch && v != rfc9111.Fresh {
				v = rfc9111.MustValidate // a prefetch refreshes what is stale
			}
			switch v {
			case rfc9111.Fresh:
				rec.Disposition = Hit
				return c.storedReply(r, &st, age, Hit, dst), nil
			case rfc9111.StaleServable:
				rec.Disposition = HitStale
				return c.storedReply(r, &st, age, HitStale, dst), nil
			case rfc9111.StaleWhileRevalidate:
				if c.admitMiss(r) {
					c.revalidateInBackground(base, r)
				}
				rec.Disposition = HitStale
				return c.storedReply(r, &st, age, HitStale, dst), nil
			}
		}
		if rfc9111.OnlyIfCached(r) {
			st.close()
			rec.Disposition = OnlyIfCache
			return &reply{status: http.StatusGatewayTimeout, header: http.Header{}, disp: OnlyIfCache}, nil
		}
		if !c.admitMiss(r) {
			// Overloaded: no upstream work for this request.
			if st.obj != nil && rfc9111.StaleIfError(r, st.entry(), c.now(), c.opts) {
				rec.Disposition = HitStale
				return c.storedReply(r, &st, rfc9111.CurrentAge(st.entry(), c.now()), HitStale, dst), nil
			}
			st.close()
			return c.shedReply(rec), nil
		}
		if c.isUnstorable(base) {
			st.close()
			rec.Disposition = Uncacheable
			return direct(false)
		}
		fr, leader, err := c.flight(up.context(ctx), base, r)
		if err != nil {
			if !prefetch && st.obj != nil && !errors.Is(err, ctx.Err()) && c.staleIfError(r, &st, c.now()) {
				rec.Disposition = HitStale
				return c.storedReply(r, &st, rfc9111.CurrentAge(st.entry(), c.now()), HitStale, dst), nil
			}
			st.close()
			return nil, err
		}
		if leader {
			rec.Upstream = fr.upstream
		}
		switch {
		case fr.retry:
			st.close()
			continue
		case fr.fill != nil:
			st.close()
			f := fr.fill
			if leader {
				// fetch reserved the leader's reference.
				disp := Miss
				if fr.stale {
					disp = FwdStale
				} else if fr.varyMiss {
					disp = FwdVary
				}
				rec.Disposition = disp
				return c.fillReply(r, f, disp, dst).with(fr.private), nil
			}
			if !f.matches(r) || c.fillPurged(base, f) {
				continue
			}
			if rp := c.joinFinished(ctx, r, f, dst); rp != nil {
				rec.Disposition = Collapsed
				return rp, nil
			}
			continue
		case fr.reval != "":
			if st.key != fr.reval {
				st.close()
				continue
			}
			st.close()
			o, m := c.openObject(ctx, fr.reval)
			if o == nil {
				continue
			}
			rec.Disposition = Revalidated
			st = stored{obj: o, meta: m, key: fr.reval}
			rp := c.storedReply(r, &st, rfc9111.CurrentAge(m.entry(), c.now()), Revalidated, dst)
			if leader {
				rp.with(fr.private)
			}
			return rp, nil
		case fr.upErr != nil:
			if !prefetch && st.obj != nil && c.staleIfError(r, &st, c.now()) {
				if leader {
					fr.discard()
				}
				rec.Disposition = HitStale
				return c.storedReply(r, &st, rfc9111.CurrentAge(st.entry(), c.now()), HitStale, dst), nil
			}
			st.close()
			if leader {
				if fr.pass != nil {
					rec.Disposition = FwdStale
					return c.passReply(r, fr.pass, FwdStale), nil
				}
				return nil, fr.upErr
			}
			if prefetch {
				return nil, fr.upErr
			}
			return direct(true)
		case fr.pass != nil:
			st.close()
			if leader && !prefetch {
				rec.Disposition = Uncacheable
				return c.passReply(r, fr.pass, Uncacheable), nil
			}
			if leader {
				rec.Disposition, rec.Status = Uncacheable, fr.pass.StatusCode
				fr.discard()
			}
			return direct(true)
		default:
			st.close()
			return nil, errors.New("cache: internal error: empty flight result")
		}
	}
	if prefetch {
		return nil, errors.New("cache: prefetch: object changed during every attempt")
	}
	return direct(true)
}

// direct fetches r upstream for this request alone (no collapsing), with
// r's own conditionals, storing the response if allowed.
func (c *Cache) direct(ctx context.Context, base string, r *http.Request, rec *Record, store bool, dst http.Header) (*reply, error) {
	fr, err := c.fetch(ctx, func() {}, base, r, nil, false, store)
	if err != nil {
		return nil, err
	}
	rec.Upstream = fr.upstream
	if rec.Disposition == "" || rec.Disposition == Collapsed {
		rec.Disposition = Miss
	}
	if fr.fill != nil {
		return c.fillReply(r, fr.fill, rec.Disposition, dst).with(fr.private), nil // fetch reserved our reference
	}
	if rec.Disposition == Miss {
		rec.Disposition = Uncacheable
	}
	return c.passReply(r, fr.pass, rec.Disposition), nil
}

// prefetch makes sure r's object is stored, through get's path, and waits
// until a fill it started or joined has stored the body (or ctx ends).
// start is when the prefetch began, for rec's Timing.
func (c *Cache) prefetch(ctx context.Context, r *http.Request, rec *Record, start time.Time) error {
	rp, err := c.get(ctx, r, rec, nil, modePrefetch)
	if err != nil {
		return err
	}
	defer rp.close()
	rec.Status = rp.status
	if rp.fill != nil {
		err := rp.fill.wait(ctx)
		rp.fill.timing(rec, start)
		return err
	}
	if rp.meta == nil { // a pass-through response (the leader's)
		return fmt.Errorf("%w (status %d)", errPrefetchNotStorable, rp.status)
	}
	return nil
}
