package cache

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable time source for Cache.Now, starting at the real time
// so that origin Date headers stay consistent.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// origin is an httptest upstream that records what it saw.
type origin struct {
	*httptest.Server
	mu    sync.Mutex
	reqs  []*http.Request // clones of the requests received
	count atomic.Int64
}

func newOrigin(t *testing.T, h http.HandlerFunc) *origin {
	t.Helper()
	o := &origin{}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.reqs = append(o.reqs, r.Clone(context.Background()))
		o.mu.Unlock()
		o.count.Add(1)
		h(w, r)
	}))
	t.Cleanup(o.Close)
	return o
}

func (o *origin) requests() []*http.Request {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]*http.Request(nil), o.reqs...)
}

func (o *origin) last() *http.Request {
	rs := o.requests()
	if len(rs) == 0 {
		return nil
	}
	return rs[len(rs)-1]
}

// testLogger writes the cache's log to t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// tier is a Cache in front of an origin, served by an httptest server.
type tier struct {
	c      *Cache
	srv    *httptest.Server
	origin *origin
	clock  *clock
	recsMu sync.Mutex
	recs   []Record
}

func newTier(t *testing.T, o *origin, configure func(*Cache)) *tier {
	t.Helper()
	u, err := url.Parse(o.URL)
	if err != nil {
		t.Fatal(err)
	}
	tr := &tier{origin: o, clock: newClock()}
	tr.c = &Cache{
		Upstream:    u,
		Store:       &MemoryStore{},
		Now:         tr.clock.Now,
		CacheStatus: true,
		Name:        "test",
		Logger:      testLogger(t),
	}
	tr.c.OnRecord = append(tr.c.OnRecord, func(_ *http.Request, rec Record) {
		tr.recsMu.Lock()
		tr.recs = append(tr.recs, rec)
		tr.recsMu.Unlock()
	})
	if configure != nil {
		configure(tr.c)
	}
	tr.srv = httptest.NewServer(tr.c)
	t.Cleanup(func() {
		tr.srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := tr.c.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return tr
}

func (tr *tier) records() []Record {
	tr.recsMu.Lock()
	defer tr.recsMu.Unlock()
	return append([]Record(nil), tr.recs...)
}

type result struct {
	status int
	header http.Header
	body   string
	err    error
}

// do sends a request to the tier and reads the whole response.
func (tr *tier) do(t *testing.T, method, path string, hdr ...string) result {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, tr.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := tr.srv.Client().Do(req)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, header: resp.Header, body: string(b), err: err}
}

// mustDo is do that fails the test on a transport or body error.
func (tr *tier) mustDo(t *testing.T, method, path string, hdr ...string) result {
	t.Helper()
	res := tr.do(t, method, path, hdr...)
	if res.err != nil {
		t.Fatalf("%s %s: %v", method, path, res.err)
	}
	return res
}

// status returns this tier's Cache-Status member (without the name).
func cacheStatus(res result) string {
	vs := res.header.Values("Cache-Status")
	if len(vs) == 0 {
		return ""
	}
	return strings.TrimPrefix(vs[len(vs)-1], "test; ")
}

func waitTimeout(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// fileStore is a MemoryStore whose objects hand out their body as an
// *io.LimitedReader over an *os.File, like the disk store, so that
// net/http sends it with sendfile(2).
type fileStore struct {
	*MemoryStore
	dir string
}

type fileObject struct {
	Object
	f *os.File
}

func (s fileStore) Open(ctx context.Context, key string) (Object, error) {
	o, err := s.MemoryStore.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	body := make([]byte, o.Size())
	if _, err := o.ReadAt(body, 0); err != nil && err != io.EOF {
		o.Close()
		return nil, err
	}
	f, err := os.CreateTemp(s.dir, "body-*")
	if err == nil {
		_, err = f.Write(body)
	}
	if err != nil {
		o.Close()
		return nil, err
	}
	return &fileObject{Object: o, f: f}, nil
}

func (o *fileObject) Reader(off, n int64) (io.Reader, error) {
	if _, err := o.f.Seek(off, io.SeekStart); err != nil {
		return nil, err
	}
	return &io.LimitedReader{R: o.f, N: n}, nil
}

func (o *fileObject) Close() error {
	o.f.Close()
	return o.Object.Close()
}
