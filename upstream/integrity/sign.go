package integrity

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/onioncdn/onioncdn/hls"
	"github.com/onioncdn/onioncdn/internal/rfc9111"
)

// Default values of [Signer] fields.
const (
	DefaultValidity     = time.Hour
	DefaultLongValidity = max(hls.DefaultSegmentTTL, hls.DefaultVODPlaylistTTL)
)

// Signer is origin-side middleware that adds a Content-Digest (RFC 9530,
// sha-256), a Content-Record-Digest (per-record hashes, see
// [RecordDigestField]) and an HTTP Message Signature (RFC 9421, ed25519) to
// every response, so that tiers in between cannot alter what they pass on,
// and can verify a body as it streams.
//
// The signature covers the status, the request path and query (except
// IgnoreQuery), the digests and every response field that changes how a
// response is cached or interpreted (Cache-Control, Content-Type, ETag,
// Expires, Vary, Set-Cookie…, whichever are present), with created,
// expires and tag parameters.
//
// To compute the digest before the header goes out, Signer buffers each
// response: in memory up to MaxMemory bytes, then in a temporary file.
// A HEAD request is answered from the GET response (same digest, no body);
// a 304 carries the digest and a fresh signature of the full response.
//
// Key must be set; its exported fields must not change once it serves.
type Signer struct {
	// Key is the origin's private key. Required.
	Key ed25519.PrivateKey

	// KeyID names the key in the signature. If empty, KeyID(public key).
	KeyID string

	// Label is the signature's label. If empty, DefaultLabel.
	Label string

	// Validity is the minimum lifetime of a signature. A signature expires
	// at created + max(Validity, the response's freshness lifetime and
	// stale windows from Cache-Control), so that a cached copy stays
	// verifiable while tiers may serve it (see "Lifetimes" in the package
	// documentation). It also bounds how long a tier can replay an older
	// version of a response that changes. If zero, DefaultValidity (1 h).
	Validity time.Duration

	// LongValidity replaces Validity for responses that do not change once
	// published: those marked immutable, HLS media segments, init sections
	// and parts, and media playlists that have ended (VOD). If zero,
	// DefaultLongValidity (24 h: the HLS policy's default TTL for them, so
	// tiers keep them that long without revalidating). If negative,
	// Validity applies to them too.
	LongValidity time.Duration

	// IgnoreQuery lists query parameters the signature does not cover:
	// parameters that do not select content and may differ between
	// requests sharing one cached response (HLS session tokens,
	// analytics). Tiers list the same names in Transport.IgnoreQuery (and
	// their cache policy's DropQuery). Every other parameter is covered,
	// so that a response signed for ?v=2 is refused for ?v=1. If empty,
	// every parameter is covered.
	IgnoreQuery []string

	// RecordSize is the smallest record of the Content-Record-Digest; it
	// doubles for bodies of more than MaxRecords records. It is also the
	// most a verifying tier holds back before it releases bytes. If zero,
	// DefaultRecordSize (16 KiB); at least 1 KiB.
	RecordSize int64

	// MaxMemory is how much of a response body is buffered in memory before
	// the rest goes to a temporary file. If zero, 1 MiB.
	MaxMemory int64

	// TempDir holds the temporary files. If empty, os.TempDir().
	TempDir string

	// Now returns the current time. If nil, time.Now.
	Now func() time.Time

	// Logger receives errors. If nil, logs are discarded.
	Logger *slog.Logger
}

func (s *Signer) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Signer) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Handler returns h wrapped so that its responses are signed. A Signer
// without a valid key answers 500 to every request and logs why.
func (s *Signer) Handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(s.Key) != ed25519.PrivateKeySize {
			s.logger().Error("integrity: signer has no valid ed25519 key")
			http.Error(w, "signing misconfigured", http.StatusInternalServerError)
			return
		}
		inner := r
		if r.Method == http.MethodHead {
			inner = r.Clone(r.Context())
			inner.Method = http.MethodGet
		}
		rec := s.record(h, inner)
		defer rec.release()
		if rec.err != nil {
			s.logger().Error("integrity: buffering response", "err", rec.err)
			http.Error(w, "signing failed", http.StatusInternalServerError)
			return
		}
		hdr := w.Header()
		for k, v := range rec.header {
			hdr[k] = v
		}
		var err error
		if rec.status == http.StatusNotModified {
			err = s.signNotModified(h, r, inner, hdr)
		} else {
			hdr.Set("Content-Digest", rec.digest())
			if bodyAllowed(rec.status) {
				var rd string
				if rd, err = rec.recordDigest(); err == nil {
					hdr.Set(RecordDigestField, rd)
				}
			}
			if err == nil {
				err = s.signView(r, rec.status, hdr, hdr, "", rec.unchanging(inner))
			}
		}
		if err != nil {
			s.logger().Error("integrity: signing", "err", err)
			for k := range hdr {
				delete(hdr, k)
			}
			http.Error(w, "signing failed", http.StatusInternalServerError)
			return
		}
		if rec.status != http.StatusNotModified && rec.status >= 200 && rec.status != http.StatusNoContent {
			hdr.Set("Content-Length", strconv.FormatInt(rec.size, 10))
		}
		w.WriteHeader(rec.status)
		if r.Method != http.MethodHead {
			if _, err := rec.copyTo(w); err != nil {
				s.logger().Debug("integrity: writing signed body", "err", err)
			}
		}
	})
}

// sign adds Signature-Input and Signature fields to hdr for a response with
// the given status to r.
func (s *Signer) sign(r *http.Request, status int, hdr http.Header, suffix string) error {
	return s.signView(r, status, hdr, hdr, suffix, false)
}

// signNotModified signs a 304. net/http drops Content-Type from a 304, and
// a cache that receives it merges its fields into the stored 200 (RFC 9111
// §4.3.4). So a 304 carries two signatures: one under Label+"-304" over the
// 304 as sent, which the next tier verifies, and one under Label over the
// full 200 response as the tier will hold it after the merge, which the
// tiers further down verify when that tier serves the object.
func (s *Signer) signNotModified(h http.Handler, r, inner *http.Request, hdr http.Header) error {
	full := inner.Clone(r.Context())
	for _, k := range []string{"If-None-Match", "If-Modified-Since", "If-Range", "Range"} {
		full.Header.Del(k)
	}
	rec := s.record(h, full)
	defer rec.release()
	if rec.err != nil || rec.status != http.StatusOK {
		return fmt.Errorf("integrity: no full response to sign a 304 with (status %d): %v", rec.status, rec.err)
	}
	digest := rec.digest()
	records, err := rec.recordDigest()
	if err != nil {
		return err
	}
	long := rec.unchanging(full)
	fullHdr := rec.header.Clone()
	fullHdr.Set("Content-Digest", digest)
	fullHdr.Set(RecordDigestField, records)
	hdr.Set("Content-Digest", digest)
	hdr.Set(RecordDigestField, records)
	hdr.Del("Content-Type") // net/http suppresses it on a 304
	if err := s.signView(r, http.StatusOK, fullHdr, hdr, "", long); err != nil {
		return err
	}
	return s.signView(r, http.StatusNotModified, hdr, hdr, "-304", long)
}

// signView signs a response with the given status and header view and adds
// the signature under label+suffix to out. long selects LongValidity.
func (s *Signer) signView(r *http.Request, status int, view, out http.Header, suffix string, long bool) error {
	hdr := view
	cs := []component{{name: "@status"}, {name: "@path", params: []param{{"req", true}}}}
	cs = append(cs, queryComponents(r, s.IgnoreQuery)...)
	var fields []string
	for k := range hdr {
		if lk := strings.ToLower(k); isProtected(lk) {
			fields = append(fields, lk)
		}
	}
	sort.Strings(fields)
	for _, f := range fields {
		cs = append(cs, component{name: f})
	}
	created := s.now()
	validity := s.Validity
	if validity <= 0 {
		validity = DefaultValidity
	}
	if long || rfc9111.ParseCacheControl(hdr.Values("Cache-Control")).Has("immutable") {
		switch {
		case s.LongValidity > 0:
			validity = max(validity, s.LongValidity)
		case s.LongValidity == 0:
			validity = max(validity, DefaultLongValidity)
		}
	}
	if l := cacheLifetime(hdr); l > validity {
		validity = l
	}
	keyID := s.KeyID
	if keyID == "" {
		keyID = KeyID(s.Key.Public().(ed25519.PublicKey))
	}
	label := s.Label
	if label == "" {
		label = DefaultLabel
	}
	if _, err := (&sfParser{s: label}).key(); err != nil || strings.ContainsAny(label, "=,;") {
		return fmt.Errorf("integrity: invalid label %q", label)
	}
	ps := []param{
		{"created", created.Unix()},
		{"expires", created.Add(validity).Unix()},
		{"keyid", keyID},
		{"alg", "ed25519"},
		{"tag", profileTag},
	}
	base, err := signatureBase(cs, ps, message{req: r, status: status, header: hdr})
	if err != nil {
		return err
	}
	sig := ed25519.Sign(s.Key, []byte(base))
	label += suffix
	out.Add("Signature-Input", label+"="+serializeInnerList(cs, ps))
	out.Add("Signature", label+"=:"+base64.StdEncoding.EncodeToString(sig)+":")
	return nil
}

// cacheLifetime returns the longest time tiers may serve a response with
// header h: its s-maxage or max-age plus stale-while-revalidate and
// stale-if-error, as the caches parse them (internal/rfc9111).
func cacheLifetime(h http.Header) time.Duration {
	d := rfc9111.ParseCacheControl(h.Values("Cache-Control"))
	maxAge, _ := d.Seconds("max-age")
	sMaxAge, _ := d.Seconds("s-maxage")
	swr, _ := d.Seconds("stale-while-revalidate")
	sie, _ := d.Seconds("stale-if-error")
	return max(maxAge, sMaxAge) + swr + sie
}

// bufferedResponse is a handler's response held back until it is complete.
type bufferedResponse struct {
	header http.Header
	status int
	mem    bytes.Buffer
	file   *os.File
	size   int64
	sum    hash.Hash
	recs   recordHasher // records of the minimum record size, as written
	err    error
	max    int64
	dir    string
	wrote  bool
}

func (s *Signer) record(h http.Handler, r *http.Request) *bufferedResponse {
	memMax := s.MaxMemory
	if memMax <= 0 {
		memMax = 1 << 20
	}
	rs := s.RecordSize
	if rs <= 0 {
		rs = DefaultRecordSize
	}
	b := &bufferedResponse{header: http.Header{}, max: memMax, dir: s.TempDir}
	b.sum = sha256.New()
	b.recs = recordHasher{rs: max(rs, minRecordSize), h: sha256.New()}
	func() {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				b.err = fmt.Errorf("handler panicked: %v", p)
			}
		}()
		h.ServeHTTP(b, r)
	}()
	if !b.wrote {
		b.status = http.StatusOK
	}
	return b
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if b.wrote || code < 200 {
		return
	}
	b.wrote = true
	b.status = code
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if !b.wrote {
		b.WriteHeader(http.StatusOK)
		if b.header.Get("Content-Type") == "" && len(p) > 0 {
			b.header.Set("Content-Type", http.DetectContentType(p))
		}
	}
	if b.err != nil {
		return 0, b.err
	}
	b.sum.Write(p)
	b.recs.Write(p)
	b.size += int64(len(p))
	if b.file == nil && int64(b.mem.Len()+len(p)) <= b.max {
		return b.mem.Write(p)
	}
	if b.file == nil {
		f, err := os.CreateTemp(b.dir, "onioncdn-sign-*")
		if err != nil {
			b.err = err
			return 0, err
		}
		os.Remove(f.Name()) // unlinked: the file disappears when closed
		b.file = f
	}
	n, err := b.file.Write(p)
	if err != nil {
		b.err = err
	}
	return n, err
}

// Flush is accepted and ignored: the response goes out once complete.
func (b *bufferedResponse) Flush() {}

func (b *bufferedResponse) digest() string {
	return "sha-256=:" + base64.StdEncoding.EncodeToString(b.sum.Sum(nil)) + ":"
}

// recordDigest returns the Content-Record-Digest of the body: from the
// records hashed as the body was written if their size suits the body's,
// else from a second pass with the larger record size.
func (b *bufferedResponse) recordDigest() (string, error) {
	rs := recordSize(b.size, b.recs.rs)
	if rs == b.recs.rs {
		return formatRecordDigest(b.recs.sums(), rs, b.size), nil
	}
	rh := &recordHasher{rs: rs, h: sha256.New()}
	if _, err := b.copyTo(rh); err != nil {
		return "", fmt.Errorf("integrity: hashing records: %w", err)
	}
	return formatRecordDigest(rh.sums(), rs, b.size), nil
}

// unchanging reports whether the response to r does not change once
// published, as the HLS policy sees it (hls.Policy keeps these
// hls.DefaultSegmentTTL or hls.DefaultVODPlaylistTTL): a 200 that is a
// media segment, init section or part by its path or Content-Type, or a
// media playlist that has ended.
func (b *bufferedResponse) unchanging(r *http.Request) bool {
	if b.status != http.StatusOK {
		return false
	}
	ctype := b.header.Get("Content-Type")
	kind := hls.ClassifyPath(r.URL.Path)
	if ct := hls.ClassifyContentType(ctype); kind == hls.KindUnknown || ct == hls.KindMedia {
		kind = ct
	} else if ct == hls.KindUnknown && pageType(ctype) {
		return false // a page or script that happens to end in .ts or .mp4 (as hls.Policy sees it)
	}
	switch kind {
	case hls.KindSegment, hls.KindInit, hls.KindPart:
		return true
	case hls.KindMedia:
		if b.file != nil || b.header.Get("Content-Encoding") != "" {
			return false
		}
		u := *r.URL
		if u.Host == "" {
			u.Host = r.Host
		}
		pl, err := hls.ParsePlaylist(&u, b.mem.Bytes())
		return err == nil && !pl.Master && !pl.Live
	}
	return false
}

// pageType reports a Content-Type that is clearly no HLS object: pages,
// scripts, styles, data, images.
func pageType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	switch mt {
	case "text/html", "text/css", "text/javascript", "application/javascript", "application/json",
		"application/xml", "text/xml", "application/typescript", "text/typescript", "text/x-typescript":
		return true
	}
	return strings.HasPrefix(mt, "image/")
}

// recordHasher hashes what is written to it in records of rs bytes.
type recordHasher struct {
	rs   int64
	h    hash.Hash
	fill int64  // bytes of the current record hashed
	done []byte // sums of the complete records
}

func (r *recordHasher) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(int64(len(p)), r.rs-r.fill)
		r.h.Write(p[:k])
		r.fill += k
		p = p[k:]
		if r.fill == r.rs {
			r.done = r.h.Sum(r.done)
			r.h.Reset()
			r.fill = 0
		}
	}
	return n, nil
}

// sums returns the sums of all records, the last one possibly short.
func (r *recordHasher) sums() []byte {
	if r.fill == 0 {
		return r.done
	}
	return r.h.Sum(slices.Clip(r.done))
}

func (b *bufferedResponse) copyTo(w io.Writer) (int64, error) {
	n, err := w.Write(b.mem.Bytes())
	if err != nil || b.file == nil {
		return int64(n), err
	}
	if _, err := b.file.Seek(0, io.SeekStart); err != nil {
		return int64(n), err
	}
	m, err := io.Copy(w, b.file)
	return int64(n) + m, err
}

func (b *bufferedResponse) release() {
	if b.file != nil {
		b.file.Close()
	}
}
