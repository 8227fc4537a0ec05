package integrity_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/upstream/integrity"
)

// The tamper matrix of issue #17: a relay between a verifying midtier and
// a verifying edge alters what the midtier sends, in every way a
// compromised tier could; a client asks the cold edge for the object in
// every way a client can. Whatever happens, the client never receives a
// byte that is not the origin's, at its offset; a response that ends
// cleanly is the genuine one; the edge stores nothing; and every response
// the relay passed on is rejected, counted under the check that failed and
// logged with it.

// matrixObject is one object of the matrix origin.
type matrixObject struct {
	path  string
	body  []byte
	other []byte // same size, other content, served at path+"-other"
	etag  string
}

// matrixOrigin serves the matrix objects, signed, with strong ETags and
// conditional requests; oldSigner signs as the origin did three hours ago.
type matrixOrigin struct {
	objs      map[string]*matrixObject
	mux       *http.ServeMux
	srv       *httptest.Server
	oldSigner *integrity.Signer
}

func newMatrixOrigin(t *testing.T, priv ed25519.PrivateKey, sizes map[string]int) *matrixOrigin {
	t.Helper()
	o := &matrixOrigin{objs: map[string]*matrixObject{}, mux: http.NewServeMux()}
	for name, size := range sizes {
		obj := &matrixObject{path: "/" + name, body: make([]byte, size), other: make([]byte, size), etag: `"` + name + `-v1"`}
		for i := range obj.body {
			obj.body[i] = byte(i*13 + i>>9)
			obj.other[i] = byte(i*7 + 1)
		}
		o.objs[obj.path] = obj
		serve := func(body []byte) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/octet-stream")
				w.Header().Set("Cache-Control", "public, max-age=600")
				w.Header().Set("ETag", obj.etag)
				if r.Header.Get("If-None-Match") == obj.etag {
					w.WriteHeader(http.StatusNotModified)
					return
				}
				w.Write(body)
			}
		}
		o.mux.Handle(obj.path, serve(obj.body))
		o.mux.Handle(obj.path+"-other", serve(obj.other))
	}
	o.srv = httptest.NewServer((&integrity.Signer{Key: priv, TempDir: t.TempDir()}).Handler(o.mux))
	t.Cleanup(o.srv.Close)
	o.oldSigner = &integrity.Signer{Key: priv, TempDir: t.TempDir(), Now: func() time.Time { return time.Now().Add(-3 * time.Hour) }}
	return o
}

// record returns what h answers to a GET of path.
func record(h http.Handler, path string) *recorded {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://origin"+path, nil))
	return &recorded{status: rec.Code, header: rec.Header().Clone(), body: bytes.Clone(rec.Body.Bytes())}
}

// tamperEnv is what a tamper mode may use: the object, the genuine
// responses of other paths, old recordings.
type tamperEnv struct {
	obj    *matrixObject
	origin *matrixOrigin
	fetch  func(path string) *recorded // a genuine response from the midtier
}

type tamperMode struct {
	name  string
	body  bool // alters only the body: run slow and fast
	check string
	count func(integrity.Stats) uint64
	apply func(env *tamperEnv, resp *http.Response) *http.Response
}

func setBody(resp *http.Response, b []byte, length int64) {
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = length
	if length < 0 {
		resp.Header.Del("Content-Length")
	} else {
		resp.Header.Set("Content-Length", strconv.FormatInt(length, 10))
	}
}

// mapBody replaces the body of resp with f(genuine body), sent with length
// (keep: the original Content-Length; -1: chunked).
func mapBody(resp *http.Response, f func([]byte) []byte, length func(n int) int64) {
	b, _ := io.ReadAll(resp.Body)
	nb := f(bytes.Clone(b))
	setBody(resp, nb, length(len(nb)))
}

func sameLength(n int) int64 { return int64(n) }
func chunked(int) int64      { return -1 }

func flipAt(i func(n int) int) func([]byte) []byte {
	return func(b []byte) []byte {
		if len(b) > 0 {
			b[i(len(b))] ^= 0x01
		}
		return b
	}
}

func reEncodeSignature(resp *http.Response, f func([]byte)) {
	v := resp.Header.Get("Signature")
	label, rest, _ := strings.Cut(v, "=:")
	sig, _ := base64.StdEncoding.DecodeString(strings.TrimSuffix(rest, ":"))
	f(sig)
	resp.Header.Set("Signature", label+"=:"+base64.StdEncoding.EncodeToString(sig)+":")
}

func stat(f func(integrity.Stats) uint64) func(integrity.Stats) uint64 { return f }

var (
	digestCount  = stat(func(s integrity.Stats) uint64 { return s.Digest })
	lengthCount  = stat(func(s integrity.Stats) uint64 { return s.Length })
	badSigCount  = stat(func(s integrity.Stats) uint64 { return s.BadSignature })
	noSigCount   = stat(func(s integrity.Stats) uint64 { return s.NoSignature })
	coverCount   = stat(func(s integrity.Stats) uint64 { return s.Coverage })
	expiredCount = stat(func(s integrity.Stats) uint64 { return s.Expired })
)

var tamperModes = []tamperMode{
	{name: "flip_byte_10", body: true, check: "digest", count: digestCount, apply: func(_ *tamperEnv, r *http.Response) *http.Response {
		mapBody(r, flipAt(func(int) int { return 10 }), sameLength)
		return r
	}},
	{name: "flip_middle", body: true, check: "digest", count: digestCount, apply: func(_ *tamperEnv, r *http.Response) *http.Response {
		mapBody(r, flipAt(func(n int) int { return n / 2 }), sameLength)
		return r
	}},
	{name: "flip_last", body: true, check: "digest", count: digestCount, apply: func(_ *tamperEnv, r *http.Response) *http.Response {
		mapBody(r, flipAt(func(n int) int { return n - 1 }), sameLength)
		return r
	}},
	{name: "truncate_keep_length", body: true, check: "length", count: lengthCount, apply: func(_ *tamperEnv, r *http.Response) *http.Response {
		n := r.ContentLength
		mapBody(r, func(b []byte) []byte { return b[:len(b)*2/3] }, func(int) int64 { return n })
		return r
	}},
	{name: "truncate_fix_length", body: true, check: "length", count: lengthCount, apply: func(_ *tamperEnv, r *http.Response) *http.Response {
		mapBody(r, func(b []byte) []byte { return b[:len(b)*2/3] }, sameLength)
		return r
	}},
	{name: "truncate_chunked", body: true, check: "length", count: lengthCount, apply: func(_ *tamperEnv, r *http.Response) *http.Response {
		mapBody(r, func(b []byte) []byte { return b[:len(b)*2/3] }, chunked)
		return r
	}},
	{name: "extend_fix_length", body: true, check: "length", count: lengthCount, apply: func(_ *tamperEnv, r *http.Response) *http.Response {
		mapBody(r, func(b []byte) []byte { return append(b, "<script>evil()</script>"...) }, sameLength)
		return r
	}},
	{name: "extend_chunked", body: true, check: "length", count: lengthCount, apply: func(_ *tamperEnv, r *http.Response) *http.Response {
		mapBody(r, func(b []byte) []byte { return append(b, "<script>evil()</script>"...) }, chunked)
		return r
	}},
	{name: "empty", body: true, check: "length", count: lengthCount, apply: func(_ *tamperEnv, r *http.Response) *http.Response {
		mapBody(r, func([]byte) []byte { return nil }, sameLength)
		return r
	}},
	{name: "empty_chunked", body: true, check: "length", count: lengthCount, apply: func(_ *tamperEnv, r *http.Response) *http.Response {
		mapBody(r, func([]byte) []byte { return nil }, chunked)
		return r
	}},
	{name: "swap_body", body: true, check: "digest", count: digestCount, apply: func(env *tamperEnv, r *http.Response) *http.Response {
		other := env.fetch(env.obj.path + "-other")
		setBody(r, other.body, int64(len(other.body)))
		return r
	}},
	{name: "swap_response", check: "bad-signature", count: badSigCount, apply: func(env *tamperEnv, r *http.Response) *http.Response {
		r.Body.Close()
		return env.fetch(env.obj.path + "-other").response(r.Request)
	}},
	{name: "replay_expired", check: "expired", count: expiredCount, apply: func(env *tamperEnv, r *http.Response) *http.Response {
		r.Body.Close()
		return record(env.origin.oldSigner.Handler(env.origin.mux), env.obj.path).response(r.Request)
	}},
	{name: "strip_signature", check: "no-signature", count: noSigCount, apply: func(_ *tamperEnv, r *http.Response) *http.Response {
		r.Header.Del("Signature")
		return r
	}},
	{name: "strip_signature_input", check: "no-signature", count: noSigCount, apply: func(_ *tamperEnv, r *http.Response) *http.Response {
		r.Header.Del("Signature-Input")
		return r
	}},
	{name: "unsigned", check: "no-signature", count: noSigCount, apply: func(_ *tamperEnv, r *http.Response) *http.Response {
		for _, k := range []string{"Signature", "Signature-Input", "Content-Digest", integrity.RecordDigestField} {
			r.Header.Del(k)
		}
		return r
	}},
	{name: "strip_content_digest", check: "bad-signature", count: badSigCount, apply: func(_ *tamperEnv, r *http.Response) *http.Response {
		r.Header.Del("Content-Digest")
		return r
	}},
	{name: "strip_record_digest", check: "bad-signature", count: badSigCount, apply: func(_ *tamperEnv, r *http.Response) *http.Response {
		r.Header.Del(integrity.RecordDigestField)
		return r
	}},
	{name: "alter_signature", check: "bad-signature", count: badSigCount, apply: func(_ *tamperEnv, r *http.Response) *http.Response {
		reEncodeSignature(r, func(sig []byte) { sig[5] ^= 0x80 })
		return r
	}},
	{name: "alter_signature_input", check: "bad-signature", count: badSigCount, apply: func(_ *tamperEnv, r *http.Response) *http.Response {
		in := r.Header.Get("Signature-Input")
		i := strings.Index(in, ";expires=")
		j := i + len(";expires=")
		for j < len(in) && in[j] >= '0' && in[j] <= '9' {
			j++
		}
		r.Header.Set("Signature-Input", in[:i]+";expires="+strconv.FormatInt(time.Now().Add(365*24*time.Hour).Unix(), 10)+in[j:])
		return r
	}},
	{name: "forge_body_and_digests", check: "bad-signature", count: badSigCount, apply: func(_ *tamperEnv, r *http.Response) *http.Response {
		mapBody(r, flipAt(func(n int) int { return n / 3 }), sameLength)
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.Header.Set("Content-Digest", integrity.ContentDigest(b))
		r.Header.Set(integrity.RecordDigestField, integrity.RecordDigest(b))
		return r
	}},
	{name: "add_set_cookie", check: "coverage", count: coverCount, apply: func(_ *tamperEnv, r *http.Response) *http.Response {
		r.Header.Set("Set-Cookie", "track=1")
		return r
	}},
}

// slowBody delivers at most 4 KiB per read, a millisecond apart, as a slow
// upstream does: fills are then in progress while replies are written.
type slowBody struct{ io.ReadCloser }

func (b slowBody) Read(p []byte) (int, error) {
	time.Sleep(time.Millisecond)
	return b.ReadCloser.Read(p[:min(len(p), 4096)])
}

// matrixRelay is a ReverseProxy to the midtier that tampers every
// response.
type matrixRelay struct {
	env       *tamperEnv
	mode      tamperMode
	slow      bool
	responses atomic.Int64
}

func (m *matrixRelay) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := plainRT.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	m.responses.Add(1)
	resp = m.mode.apply(m.env, resp)
	if m.slow {
		resp.Body = slowBody{resp.Body}
	}
	return resp, nil
}

var plainRT = func() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableCompression = true
	return tr
}()

// clientReply is what one client received.
type clientReply struct {
	status int
	header http.Header
	body   []byte
	err    error
}

type requestKind struct {
	name    string
	method  string
	header  func(obj *matrixObject) http.Header
	clients int
}

var requestKinds = []requestKind{
	{name: "full_get", method: "GET", clients: 1},
	{name: "range", method: "GET", clients: 1, header: func(*matrixObject) http.Header { return http.Header{"Range": {"bytes=0-1023"}} }},
	{name: "multi_range", method: "GET", clients: 1, header: func(*matrixObject) http.Header { return http.Header{"Range": {"bytes=0-99,5000-5099,-100"}} }},
	{name: "head", method: "HEAD", clients: 1},
	{name: "conditional", method: "GET", clients: 1, header: func(o *matrixObject) http.Header { return http.Header{"If-None-Match": {o.etag}} }},
	{name: "collapsed", method: "GET", clients: 4},
}

func ask(t *testing.T, client *http.Client, method, u string, h http.Header) clientReply {
	req, err := http.NewRequestWithContext(t.Context(), method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return clientReply{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return clientReply{status: resp.StatusCode, header: resp.Header, body: b, err: err}
}

// checkGenuine fails the test if r holds a byte that is not the origin's
// at its offset, or ends cleanly without being the genuine response.
func checkGenuine(t *testing.T, kind requestKind, obj *matrixObject, r clientReply) {
	t.Helper()
	size := len(obj.body)
	switch {
	case r.status == 0 && r.err != nil:
		return // the edge reset the connection before the header
	case r.status == http.StatusBadGateway:
		return // refused before the response started
	case kind.method == "HEAD":
		if r.status != http.StatusOK || r.header.Get("Content-Length") != strconv.Itoa(size) || len(r.body) != 0 {
			t.Errorf("HEAD: %d, Content-Length %q, %d body bytes; want 502 or the genuine header", r.status, r.header.Get("Content-Length"), len(r.body))
		}
	case r.status == http.StatusNotModified:
		if kind.name != "conditional" || r.header.Get("ETag") != obj.etag {
			t.Errorf("304 with ETag %q to a %s request", r.header.Get("ETag"), kind.name)
		}
	case r.status == http.StatusOK:
		if !bytes.HasPrefix(obj.body, r.body) {
			t.Errorf("200: the client received a byte that is not the origin's (%d bytes)", len(r.body))
		}
		if r.err == nil && (len(r.body) != size || kind.name == "full_get" || kind.name == "collapsed") {
			t.Errorf("200 of %d bytes ended cleanly from a tampered upstream", len(r.body))
		}
	case r.status == http.StatusPartialContent && kind.name == "range":
		if cr := r.header.Get("Content-Range"); cr != fmt.Sprintf("bytes 0-1023/%d", size) {
			t.Errorf("206 Content-Range %q", cr)
		}
		if !bytes.HasPrefix(obj.body[:1024], r.body) {
			t.Errorf("206: the client received a byte that is not the origin's (%d bytes)", len(r.body))
		}
		if r.err == nil && len(r.body) != 1024 {
			t.Errorf("206 ended cleanly after %d of 1024 bytes", len(r.body))
		}
	case r.status == http.StatusPartialContent && kind.name == "multi_range":
		checkMultipart(t, obj, r)
	default:
		t.Errorf("%s: status %d (%d bytes, err %v): want 502 or genuine bytes", kind.name, r.status, len(r.body), r.err)
	}
}

func checkMultipart(t *testing.T, obj *matrixObject, r clientReply) {
	t.Helper()
	_, params, err := mime.ParseMediaType(r.header.Get("Content-Type"))
	if err != nil {
		t.Errorf("multipart Content-Type %q: %v", r.header.Get("Content-Type"), err)
		return
	}
	size := len(obj.body)
	want := []string{"bytes 0-99/", "bytes 5000-5099/", fmt.Sprintf("bytes %d-%d/", size-100, size-1)}
	mr := multipart.NewReader(bytes.NewReader(r.body), params["boundary"])
	complete := 0
	for i := 0; ; i++ {
		p, err := mr.NextPart()
		if err != nil {
			break // the body was cut: what was read is checked
		}
		var first, last int
		cr := p.Header.Get("Content-Range")
		if _, err := fmt.Sscanf(cr, "bytes %d-%d/", &first, &last); err != nil || i >= len(want) || !strings.HasPrefix(cr, want[i]) {
			t.Errorf("part %d Content-Range %q", i, cr)
			return
		}
		data, err := io.ReadAll(p)
		if !bytes.HasPrefix(obj.body[first:last+1], data) {
			t.Errorf("part %d: a byte that is not the origin's", i)
		}
		if err == nil && len(data) == last+1-first {
			complete++
		}
	}
	if r.err == nil && complete != len(want) {
		t.Errorf("multipart ended cleanly with %d of %d complete parts", complete, len(want))
	}
}

func TestTamperMatrix(t *testing.T) {
	pub, priv := newKey(t)
	origin := newMatrixOrigin(t, priv, map[string]int{"small": 10_000, "large": 256 << 10})
	mid := newTier(t, "midtier", origin.srv.URL, plainTransport(t), pub, time.Now)
	var mu sync.Mutex
	genuine := map[string]*recorded{}
	fetch := func(path string) *recorded {
		mu.Lock()
		defer mu.Unlock()
		if r := genuine[path]; r != nil {
			return &recorded{status: r.status, header: r.header.Clone(), body: r.body}
		}
		resp, err := plainRT.RoundTrip(httptest.NewRequest(http.MethodGet, mid.srv.URL+path, nil).WithContext(t.Context()))
		if err != nil {
			panic(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			panic(fmt.Sprintf("midtier %s: %d %v", path, resp.StatusCode, err))
		}
		genuine[path] = &recorded{status: resp.StatusCode, header: resp.Header.Clone(), body: b}
		return &recorded{status: resp.StatusCode, header: resp.Header.Clone(), body: b}
	}

	for _, size := range []string{"small", "large"} {
		obj := origin.objs["/"+size]
		for _, mode := range tamperModes {
			speeds := []string{"fast"}
			if mode.body {
				speeds = append(speeds, "slow")
			}
			for _, speed := range speeds {
				for _, kind := range requestKinds {
					t.Run(size+"/"+mode.name+"/"+speed+"/"+kind.name, func(t *testing.T) {
						t.Parallel()
						relay := &matrixRelay{env: &tamperEnv{obj: obj, origin: origin, fetch: fetch}, mode: mode, slow: speed == "slow"}
						mu, _ := url.Parse(mid.srv.URL)
						proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(mu) }, Transport: relay, FlushInterval: -1}
						relaySrv := httptest.NewServer(proxy)
						t.Cleanup(relaySrv.Close)
						edge := newTier(t, "edge", relaySrv.URL, plainTransport(t), pub, time.Now)
						client := &http.Client{Transport: plainTransport(t)}
						var h http.Header
						if kind.header != nil {
							h = kind.header(obj)
						}
						replies := make([]clientReply, kind.clients)
						var wg sync.WaitGroup
						for i := range replies {
							wg.Add(1)
							go func() {
								defer wg.Done()
								replies[i] = ask(t, client, kind.method, edge.srv.URL+obj.path, h)
							}()
						}
						wg.Wait()
						for i, r := range replies {
							t.Logf("client %d: status %d, %d bytes, err %v", i, r.status, len(r.body), r.err)
							checkGenuine(t, kind, obj, r)
						}
						if err := edge.cache.Shutdown(t.Context()); err != nil {
							t.Fatal(err)
						}
						if st := edge.store.Stats(); st.Objects != 0 || st.PendingBytes != 0 {
							t.Errorf("edge stores %d objects (%d pending bytes) from a tampered upstream", st.Objects, st.PendingBytes)
						}
						st := edge.verify.Stats()
						n := uint64(relay.responses.Load())
						if st.Verified != 0 || st.Rejected != n || n == 0 {
							t.Errorf("edge integrity stats %+v after %d tampered responses: want every one rejected", st, n)
						}
						if got := mode.count(st); got != st.Rejected {
							t.Errorf("stats %+v: want all %d rejections under %s", st, st.Rejected, mode.check)
						}
						rej := edge.rejections(t)
						if uint64(len(rej)) != st.Rejected {
							t.Errorf("%d rejection log lines, %d rejections", len(rej), st.Rejected)
						}
						for _, l := range rej {
							if l["check"] != mode.check || l["reason"] == "" || l["path"] != obj.path {
								t.Errorf("rejection logged as %v, want check %q with a reason", l, mode.check)
							}
						}
					})
				}
			}
		}
	}
	// The honest midtier verified and stored only genuine objects.
	if st := mid.verify.Stats(); st.Rejected != 0 {
		t.Errorf("midtier rejected %d responses from the origin", st.Rejected)
	}
	for path, r := range genuine {
		if sum := sha256.Sum256(r.body); !strings.Contains(r.header.Get("Content-Digest"), base64.StdEncoding.EncodeToString(sum[:])) {
			t.Errorf("midtier's %s is not the signed content", path)
		}
	}
}
