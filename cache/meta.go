package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// metaVersion is the first byte of every metadata blob the cache writes.
// A blob with another version is treated as not stored.
const metaVersion = 1

// Kinds of stored entries.
const (
	kindObject = 1 // a response: head in meta, body in the object
	kindVary   = 2 // a variant index: Vary field names, no body
)

// meta is the decoded metadata of a stored entry.
type meta struct {
	kind         byte
	status       int
	requestTime  time.Time
	responseTime time.Time
	ttl          time.Duration // policy override of the freshness lifetime (0 = from headers)
	swr          time.Duration // stale-while-revalidate override (0 = from headers/defaults)
	sie          time.Duration // stale-if-error override
	nonce        string        // kindVary: generation of the variant keys
	header       http.Header

	// Derived by Cache.decode for the fast freshness check (see
	// Cache.evaluate); valid only when derived is set.
	derived    bool
	noCache    bool          // the response has an unqualified no-cache (Cache-Control or the targeted field used)
	lifetime   time.Duration // freshness lifetime
	initialAge time.Duration // corrected_initial_age (RFC 9111 §4.2.3)
	notAfter   time.Time     // BoundedPolicy.NotAfter: no use without validation from then on (zero: no bound)

	// noCacheFields are the fields of a qualified no-cache, never served
	// without validation (RFC 9111 §5.2.2.4). Derived with noCache.
	noCacheFields []string

	// tags are the response's surrogate keys (see ResponseTags), set by
	// Cache.decode and by a fill.
	tags []string

	// Set on a copy of a soft-purged object's meta by Cache.purged, never
	// encoded: purgeTTL replaces the freshness lifetime (the object's age
	// at the purge, so it is stale from then on) and minAge is the least
	// Age sent with it, so that tiers below see it stale too.
	purgeTTL time.Duration
	minAge   time.Duration

	// formatted caches the last Age and Content-Length values formatted
	// for this head (set by Cache.decode; nil: not cached).
	formatted *formatted
}

// formatted holds the last header values formatted for a stored head:
// every hit on a hot object sends the same Content-Length and, within a
// second, the same Age. The strings are immutable and shared.
type formatted struct {
	age, length atomic.Pointer[formattedInt]
}

type formattedInt struct {
	n int64
	s string
}

// ageString returns sec formatted as an Age value.
func (m *meta) ageString(sec int64) string {
	if m == nil || m.formatted == nil {
		return strconv.FormatInt(sec, 10)
	}
	return formatCached(&m.formatted.age, sec)
}

// lengthString returns n formatted as a Content-Length value.
func (m *meta) lengthString(n int64) string {
	if m == nil || m.formatted == nil {
		return strconv.FormatInt(n, 10)
	}
	return formatCached(&m.formatted.length, n)
}

// formatCached returns n in decimal, reusing the string cached in p if it
// is n's, else caching it.
func formatCached(p *atomic.Pointer[formattedInt], n int64) string {
	if n >= 0 && n < 100 {
		return strconv.FormatInt(n, 10) // strconv's table: no allocation
	}
	if f := p.Load(); f != nil && f.n == n {
		return f.s
	}
	s := strconv.FormatInt(n, 10)
	p.Store(&formattedInt{n: n, s: s})
	return s
}

var errBadMeta = errors.New("cache: corrupt metadata")

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// encode returns the binary form of m: version, kind, status, times as Unix
// nanoseconds, durations, nonce, then the header as (name, count, values...).
func (m *meta) encode() []byte {
	b := make([]byte, 0, 256)
	b = append(b, metaVersion, m.kind)
	b = binary.AppendUvarint(b, uint64(m.status))
	b = binary.AppendVarint(b, m.requestTime.UnixNano())
	b = binary.AppendVarint(b, m.responseTime.UnixNano())
	b = binary.AppendVarint(b, int64(m.ttl))
	b = binary.AppendVarint(b, int64(m.swr))
	b = binary.AppendVarint(b, int64(m.sie))
	b = appendString(b, m.nonce)
	b = binary.AppendUvarint(b, uint64(len(m.header)))
	for k, vv := range m.header {
		b = appendString(b, k)
		b = binary.AppendUvarint(b, uint64(len(vv)))
		for _, v := range vv {
			b = appendString(b, v)
		}
	}
	return b
}

type metaReader struct {
	b   []byte
	err error
}

func (r *metaReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errBadMeta
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *metaReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errBadMeta
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *metaReader) str() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.err = errBadMeta
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// decodeMeta parses a blob written by [meta.encode]. It never panics on
// malformed input.
func decodeMeta(b []byte) (*meta, error) {
	if len(b) < 2 || b[0] != metaVersion {
		return nil, errBadMeta
	}
	m := &meta{kind: b[1]}
	if m.kind != kindObject && m.kind != kindVary {
		return nil, errBadMeta
	}
	r := metaReader{b: b[2:]}
	status := r.uvarint()
	m.requestTime = time.Unix(0, r.varint())
	m.responseTime = time.Unix(0, r.varint())
	m.ttl = time.Duration(r.varint())
	m.swr = time.Duration(r.varint())
	m.sie = time.Duration(r.varint())
	m.nonce = r.str()
	nh := r.uvarint()
	if r.err != nil {
		return nil, r.err
	}
	if status < 100 || status > 999 || nh > uint64(len(r.b)) {
		return nil, errBadMeta
	}
	m.status = int(status)
	m.header = make(http.Header, nh)
	for i := uint64(0); i < nh && r.err == nil; i++ {
		k := r.str()
		nv := r.uvarint()
		if r.err != nil || nv > uint64(len(r.b)) {
			return nil, errBadMeta
		}
		vv := make([]string, 0, nv)
		for j := uint64(0); j < nv && r.err == nil; j++ {
			vv = append(vv, r.str())
		}
		m.header[k] = vv
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errBadMeta, len(r.b))
	}
	return m, nil
}
