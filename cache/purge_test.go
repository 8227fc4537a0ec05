package cache

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// versioned is an origin whose objects carry the current version in body
// and ETag, answer If-None-Match, and list tags from a map.
type versioned struct {
	*origin
	version  atomic.Int64
	cc       string
	tags     sync.Map // path → Surrogate-Key value
	cacheTag sync.Map // path → Cache-Tag value
	vary     string
}

func newVersioned(t *testing.T, cc string) *versioned {
	v := &versioned{cc: cc}
	v.version.Store(1)
	v.origin = newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		ver := v.version.Load()
		etag := fmt.Sprintf(`"v%d"`, ver)
		w.Header().Set("Cache-Control", v.cc)
		w.Header().Set("ETag", etag)
		if tg, ok := v.tags.Load(r.URL.Path); ok {
			w.Header().Set("Surrogate-Key", tg.(string))
		}
		if tg, ok := v.cacheTag.Load(r.URL.Path); ok {
			w.Header().Set("Cache-Tag", tg.(string))
		}
		if v.vary != "" {
			w.Header().Set("Vary", v.vary)
		}
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprintf(w, "v%d %s %s", ver, r.URL.Path, r.Header.Get(v.vary))
	})
	return v
}

func (v *versioned) bump() { v.version.Add(1) }

// purge applies p at tr's cache and steps the clock past it.
func (tr *tier) purge(t *testing.T, p Purge) PurgeResult {
	t.Helper()
	res, err := tr.c.Purge(t.Context(), p)
	if err != nil {
		t.Fatalf("Purge(%v): %v", p, err)
	}
	tr.clock.Advance(time.Millisecond)
	return res
}

func wantBody(t *testing.T, res result, body, status string) {
	t.Helper()
	if res.body != body || !strings.HasPrefix(cacheStatus(res), status) {
		t.Fatalf("got %q (Cache-Status %q), want %q (%s)", res.body, cacheStatus(res), body, status)
	}
}

func TestPurgeURLHard(t *testing.T) {
	o := newVersioned(t, "max-age=3600")
	tr := newTier(t, o.origin, nil)
	wantBody(t, tr.mustDo(t, "GET", "/a?x=1"), "v1 /a ", "fwd=uri-miss")
	wantBody(t, tr.mustDo(t, "GET", "/b"), "v1 /b ", "fwd=uri-miss")
	wantBody(t, tr.mustDo(t, "GET", "/a?x=1"), "v1 /a ", "hit")
	waitIdle(t, tr.c)
	o.bump()
	if res := tr.purge(t, Purge{Kind: PurgeURL, Value: "http://any.host/a?x=1"}); res.Removed != 1 {
		t.Fatalf("Removed = %d, want 1", res.Removed)
	}
	wantBody(t, tr.mustDo(t, "GET", "/a?x=1"), "v2 /a ", "fwd=uri-miss")
	wantBody(t, tr.mustDo(t, "GET", "/a?x=1"), "v2 /a ", "hit")
	wantBody(t, tr.mustDo(t, "GET", "/b"), "v1 /b ", "hit") // not selected
	if got := o.count.Load(); got != 3 {
		t.Fatalf("origin saw %d requests, want 3", got)
	}
	st := tr.c.Stats()
	if st.Purges != 1 || st.PurgedObjects != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestPurgeURLVariants: a URL purge selects every variant of a Vary-ing
// resource.
func TestPurgeURLVariants(t *testing.T) {
	o := newVersioned(t, "max-age=3600")
	o.vary = "Accept-Language"
	tr := newTier(t, o.origin, nil)
	for _, lang := range []string{"en", "fr"} {
		tr.mustDo(t, "GET", "/page", "Accept-Language", lang)
		wantBody(t, tr.mustDo(t, "GET", "/page", "Accept-Language", lang), "v1 /page "+lang, "hit")
	}
	o.bump()
	tr.purge(t, Purge{Kind: PurgeURL, Value: "/page"})
	for _, lang := range []string{"en", "fr"} {
		res := tr.mustDo(t, "GET", "/page", "Accept-Language", lang)
		if res.body != "v2 /page "+lang {
			t.Fatalf("%s after purge: %q (%s)", lang, res.body, cacheStatus(res))
		}
	}
}

func TestPurgePrefix(t *testing.T) {
	o := newVersioned(t, "max-age=3600")
	tr := newTier(t, o.origin, nil)
	paths := []string{"/video/a.ts", "/video/sub/b.ts", "/videos.html", "/my%20clips/c.ts", "/other"}
	for _, p := range paths {
		tr.mustDo(t, "GET", p)
	}
	o.bump()
	tr.purge(t, Purge{Kind: PurgePrefix, Value: "/video/"})
	tr.purge(t, Purge{Kind: PurgePrefix, Value: "/my clips/", Soft: true}) // unescaped form, soft
	for _, p := range paths {
		res := tr.mustDo(t, "GET", p)
		want := "v1"
		if strings.HasPrefix(p, "/video/") || strings.HasPrefix(p, "/my%20clips/") {
			want = "v2"
		}
		if !strings.HasPrefix(res.body, want) {
			t.Errorf("%s: %q (%s), want %s", p, res.body, cacheStatus(res), want)
		}
	}
}

// noTags hides a store's tag index.
type noTags struct{ Store }

func TestPurgeTag(t *testing.T) {
	for _, indexed := range []bool{true, false} {
		t.Run(fmt.Sprintf("indexed=%v", indexed), func(t *testing.T) {
			o := newVersioned(t, "max-age=3600")
			o.tags.Store("/a", "red  shared")
			o.cacheTag.Store("/b", "blue, shared")
			o.tags.Store("/c", "green")
			tr := newTier(t, o.origin, func(c *Cache) {
				if !indexed {
					c.Store = noTags{&MemoryStore{}}
				}
			})
			for _, p := range []string{"/a", "/b", "/c", "/d"} {
				res := tr.mustDo(t, "GET", p)
				if res.header.Get("Surrogate-Key") != "" || res.header.Get("Cache-Tag") != "" {
					t.Fatalf("tag fields reached the client: %v", res.header)
				}
			}
			waitIdle(t, tr.c)
			o.bump()
			res := tr.purge(t, Purge{Kind: PurgeTag, Value: "shared"})
			wantRemoved := 0
			if indexed {
				wantRemoved = 2
			}
			if res.Removed != wantRemoved {
				t.Fatalf("Removed = %d, want %d", res.Removed, wantRemoved)
			}
			for p, want := range map[string]string{"/a": "v2", "/b": "v2", "/c": "v1", "/d": "v1"} {
				if res := tr.mustDo(t, "GET", p); !strings.HasPrefix(res.body, want) {
					t.Errorf("%s: %q (%s), want %s", p, res.body, cacheStatus(res), want)
				}
			}
			if st := tr.c.Stats(); st.PurgedObjects != 2 {
				t.Errorf("PurgedObjects = %d, want 2", st.PurgedObjects)
			}
		})
	}
}

// TestPurgeForwardTags: a tier with ForwardTags sends the tag fields on
// (to a tier below that indexes them).
func TestPurgeForwardTags(t *testing.T) {
	o := newVersioned(t, "max-age=3600")
	o.tags.Store("/a", "k1 k2")
	tr := newTier(t, o.origin, func(c *Cache) { c.ForwardTags = true })
	for range 2 {
		if res := tr.mustDo(t, "GET", "/a"); res.header.Get("Surrogate-Key") != "k1 k2" {
			t.Fatalf("Surrogate-Key %q (%s), want forwarded", res.header.Get("Surrogate-Key"), cacheStatus(res))
		}
	}
}

// TestPurgeTooManyTags: a response whose tags exceed the bounds is not
// stored, so a purge by a tag left out of the index can never miss it.
func TestPurgeTooManyTags(t *testing.T) {
	o := newVersioned(t, "max-age=3600")
	var many []string
	for i := range MaxTags + 1 {
		many = append(many, "t"+strconv.Itoa(i))
	}
	o.tags.Store("/a", strings.Join(many, " "))
	tr := newTier(t, o.origin, nil)
	tr.mustDo(t, "GET", "/a")
	tr.mustDo(t, "GET", "/a")
	if got := o.count.Load(); got != 2 {
		t.Fatalf("origin saw %d requests, want 2 (not stored)", got)
	}
}

// TestPurgeSoftRevalidates: after a soft purge the next request
// revalidates (a conditional request, 304) instead of fetching in full.
func TestPurgeSoftRevalidates(t *testing.T) {
	o := newVersioned(t, "max-age=3600")
	tr := newTier(t, o.origin, nil)
	tr.mustDo(t, "GET", "/a")
	wantBody(t, tr.mustDo(t, "GET", "/a"), "v1 /a ", "hit")
	waitIdle(t, tr.c)
	tr.purge(t, Purge{Kind: PurgeURL, Value: "/a", Soft: true})
	wantBody(t, tr.mustDo(t, "GET", "/a"), "v1 /a ", "fwd=stale; fwd-status=304")
	if last := o.last(); last.Header.Get("If-None-Match") != `"v1"` {
		t.Fatalf("revalidation sent If-None-Match %q", last.Header.Get("If-None-Match"))
	}
	wantBody(t, tr.mustDo(t, "GET", "/a"), "v1 /a ", "hit")
	if got := o.count.Load(); got != 2 {
		t.Fatalf("origin saw %d requests, want 2", got)
	}
	if st := tr.c.Stats(); st.PurgeStale == 0 {
		t.Fatalf("PurgeStale = %d, want the lookups counted", st.PurgeStale)
	}
}

// TestPurgeSoftStaleWhileRevalidate is the RFC 5861 anchors' bug: after a
// soft purge of an object with a stale-while-revalidate window, the next
// request is served stale and starts one background revalidation, which
// refreshes the object: the stale object is not served forever.
func TestPurgeSoftStaleWhileRevalidate(t *testing.T) {
	o := newVersioned(t, "max-age=3600, stale-while-revalidate=60")
	tr := newTier(t, o.origin, nil)
	tr.mustDo(t, "GET", "/a")
	waitIdle(t, tr.c)
	o.bump()
	tr.purge(t, Purge{Kind: PurgeURL, Value: "/a", Soft: true})
	res := tr.mustDo(t, "GET", "/a")
	wantBody(t, res, "v1 /a ", "hit")
	if tr.records()[1].Disposition != HitStale {
		t.Fatalf("disposition %s, want stale", tr.records()[1].Disposition)
	}
	// Its Age says it is stale, so that a tier below does not keep it as
	// fresh.
	if age, _ := strconv.Atoi(res.header.Get("Age")); age < 3600 {
		t.Fatalf("Age %q after a soft purge, want at least the lifetime", res.header.Get("Age"))
	}
	waitIdle(t, tr.c)
	if got := o.count.Load(); got != 2 {
		t.Fatalf("origin saw %d requests, want 2 (one background revalidation)", got)
	}
	for range 3 {
		wantBody(t, tr.mustDo(t, "GET", "/a"), "v2 /a ", "hit")
	}
	if got := o.count.Load(); got != 2 {
		t.Fatalf("origin saw %d requests, want 2", got)
	}
}

func waitIdle(t *testing.T, c *Cache) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestPurgeNoHerd: many concurrent requests right after a purge cost one
// upstream request, soft (a revalidation) or hard (a fetch).
func TestPurgeNoHerd(t *testing.T) {
	for _, soft := range []bool{true, false} {
		t.Run(fmt.Sprintf("soft=%v", soft), func(t *testing.T) {
			gate := make(chan struct{})
			var n atomic.Int64
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) > 1 {
					<-gate
				}
				w.Header().Set("Cache-Control", "max-age=3600")
				w.Header().Set("ETag", `"e"`)
				if r.Header.Get("If-None-Match") == `"e"` {
					w.WriteHeader(http.StatusNotModified)
					return
				}
				io.WriteString(w, "body")
			})
			tr := newTier(t, o, nil)
			tr.mustDo(t, "GET", "/a")
			waitIdle(t, tr.c)
			tr.purge(t, Purge{Kind: PurgePrefix, Value: "/", Soft: soft})
			var wg sync.WaitGroup
			errs := make(chan string, 50)
			for range 50 {
				wg.Go(func() {
					if res := tr.do(t, "GET", "/a"); res.err != nil || res.body != "body" {
						errs <- fmt.Sprintf("%v %q", res.err, res.body)
					}
				})
			}
			time.Sleep(200 * time.Millisecond) // let them pile up on the flight
			close(gate)
			wg.Wait()
			close(errs)
			for e := range errs {
				t.Error(e)
			}
			if got := o.count.Load(); got != 2 {
				t.Fatalf("origin saw %d requests, want 2 (one after the purge)", got)
			}
			if last := o.last(); (last.Header.Get("If-None-Match") != "") != soft {
				t.Fatalf("request after the purge conditional=%v, want %v", last.Header.Get("If-None-Match") != "", soft)
			}
		})
	}
}

// TestPurgeDuringFill: a purge applied while an object is being filled
// keeps the fill from being joined by later requests and from being
// stored; the client that started it still gets its whole body.
func TestPurgeDuringFill(t *testing.T) {
	for _, soft := range []bool{false, true} {
		t.Run(fmt.Sprintf("soft=%v", soft), func(t *testing.T) {
			gate := make(chan struct{})
			var n atomic.Int64
			first, second := gatedBody()
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=600")
				w.Header().Set("Content-Length", strconv.Itoa(2*chunk))
				if n.Add(1) == 1 {
					w.Write(first)
					http.NewResponseController(w).Flush()
					<-gate
					w.Write(second)
					return
				}
				w.Write(second)
				w.Write(first) // the new version
			})
			tr := newTier(t, o, nil)
			firstCh, done := make(chan struct{}, 1), make(chan result, 1)
			startClient(t.Context(), tr, "/obj", firstCh, done)
			waitN(t, firstCh, 1, "first half")
			tr.purge(t, Purge{Kind: PurgeURL, Value: "/obj", Soft: soft})
			// A request after the purge does not join the old fill
			// (which would hang here until the gate opens).
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			req, _ := http.NewRequestWithContext(ctx, "GET", tr.srv.URL+"/obj", nil)
			resp, err := tr.srv.Client().Do(req)
			var b []byte
			if err == nil {
				b, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			cancel()
			if err != nil || string(b) != string(second)+string(first) {
				close(gate)
				t.Fatalf("request after the purge: %v, new version %v", err, string(b) == string(second)+string(first))
			}
			close(gate)
			r := <-done
			if r.err != nil || r.body != string(first)+string(second) {
				t.Fatalf("the fill's own client: %v, %d bytes", r.err, len(r.body))
			}
			waitIdle(t, tr.c)
			// The old fill was not stored over the new object.
			res := tr.mustDo(t, "GET", "/obj")
			if res.body != string(second)+string(first) || !strings.HasPrefix(cacheStatus(res), "hit") {
				t.Fatalf("after the old fill ended: new version %v (%s)", res.body == string(second)+string(first), cacheStatus(res))
			}
			if got := n.Load(); got != 2 {
				t.Fatalf("origin saw %d requests, want 2", got)
			}
		})
	}
}

func TestPurgeAll(t *testing.T) {
	for _, soft := range []bool{false, true} {
		t.Run(fmt.Sprintf("soft=%v", soft), func(t *testing.T) {
			o := newVersioned(t, "max-age=3600")
			tr := newTier(t, o.origin, nil)
			tr.mustDo(t, "GET", "/a")
			tr.mustDo(t, "GET", "/b")
			o.bump()
			tr.purge(t, Purge{Kind: PurgeAll, Soft: soft})
			for _, p := range []string{"/a", "/b"} {
				if res := tr.mustDo(t, "GET", p); !strings.HasPrefix(res.body, "v2") {
					t.Fatalf("%s: %q (%s)", p, res.body, cacheStatus(res))
				}
			}
			tr.clock.Advance(time.Second)
			wantBody(t, tr.mustDo(t, "GET", "/a"), "v2 /a ", "hit") // fetched after the purge: not selected
		})
	}
}

func TestPurgeInvalid(t *testing.T) {
	c := &Cache{}
	for _, p := range []Purge{
		{},
		{Kind: 9, Value: "/a"},
		{Kind: PurgeURL},
		{Kind: PurgeURL, Value: "a/b"},
		{Kind: PurgeURL, Value: "/a#frag"},
		{Kind: PurgeURL, Value: "/a\nb"},
		{Kind: PurgePrefix, Value: "/video/*"},
		{Kind: PurgePrefix, Value: "/video/.*\\.ts"},
		{Kind: PurgePrefix, Value: ""},
		{Kind: PurgeTag, Value: ""},
		{Kind: PurgeTag, Value: "a b"},
		{Kind: PurgeTag, Value: "a,b"},
		{Kind: PurgeTag, Value: strings.Repeat("x", MaxTagLength+1)},
		{Kind: PurgeAll, Value: "/"},
		{Kind: PurgeURL, Value: "/" + strings.Repeat("x", maxPurgeValue)},
	} {
		if _, err := c.Purge(t.Context(), p); err == nil {
			t.Errorf("Purge(%+v) accepted", p)
		} else if !strings.HasPrefix(err.Error(), "cache: ") {
			t.Errorf("Purge(%+v): error %q without package prefix", p, err)
		}
	}
	if st := c.Stats(); st.Purges != 0 || st.PurgeRules != 0 {
		t.Fatalf("rejected purges changed the cache: %+v", st)
	}
	for _, s := range []string{"url", "prefix", "tag", "all"} {
		k, err := ParsePurgeKind(s)
		if err != nil || k.String() != s {
			t.Errorf("ParsePurgeKind(%q) = %v, %v", s, k, err)
		}
	}
	if _, err := ParsePurgeKind("regex"); err == nil {
		t.Error("ParsePurgeKind(regex) accepted")
	}
}

// TestPurgeFileRestart: with PurgeFile, a Cache restarted on the same
// (persistent) store keeps honouring the purges applied before; an
// unreadable file makes every stored object count as purged.
func TestPurgeFileRestart(t *testing.T) {
	o := newVersioned(t, "max-age=3600")
	store := &MemoryStore{}
	file := filepath.Join(t.TempDir(), "purges")
	u, _ := url.Parse(o.URL)
	newCache := func() *Cache {
		return &Cache{Upstream: u, Store: store, PurgeFile: file, CacheStatus: true, Name: "test", Logger: testLogger(t)}
	}
	get := func(c *Cache, path string) string {
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		waitIdle(t, c)
		return rec.Body.String() + " " + rec.Header().Get("Cache-Status")
	}
	c1 := newCache()
	for _, p := range []string{"/soft/a", "/hard/b", "/keep"} {
		get(c1, p)
	}
	if _, err := c1.Purge(t.Context(), Purge{Kind: PurgePrefix, Value: "/soft/", Soft: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c1.Purge(t.Context(), Purge{Kind: PurgePrefix, Value: "/hard/"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Millisecond)
	c2 := newCache() // the restart
	if got := get(c2, "/soft/a"); !strings.Contains(got, "fwd=stale; fwd-status=304") {
		t.Fatalf("soft-purged object after restart: %q, want a revalidation", got)
	}
	if got := get(c2, "/hard/b"); !strings.Contains(got, "fwd=uri-miss") {
		t.Fatalf("hard-purged object after restart: %q, want a miss", got)
	}
	if got := get(c2, "/keep"); !strings.Contains(got, "; hit") {
		t.Fatalf("object no purge selects: %q, want a hit", got)
	}
	if st := c2.Stats(); st.PurgeRules != 2 {
		t.Fatalf("%d rules after restart, want 2", st.PurgeRules)
	}

	if err := os.WriteFile(file, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Millisecond)
	c3 := newCache()
	if got := get(c3, "/keep"); !strings.Contains(got, "fwd=uri-miss") {
		t.Fatalf("with an unreadable purge file: %q, want a miss", got)
	}
}

// TestPurgeRulesBounded: past MaxPurgeRules the oldest rules merge into a
// purge of everything older, which selects more objects, never fewer.
func TestPurgeRulesBounded(t *testing.T) {
	o := newVersioned(t, "max-age=3600")
	tr := newTier(t, o.origin, func(c *Cache) { c.MaxPurgeRules = 4 })
	tr.mustDo(t, "GET", "/p0/x")
	tr.mustDo(t, "GET", "/other")
	o.bump()
	tr.purge(t, Purge{Kind: PurgePrefix, Value: "/p0/"})
	tr.mustDo(t, "GET", "/late") // fetched after the first purge
	for i := 1; i < 10; i++ {
		tr.purge(t, Purge{Kind: PurgePrefix, Value: fmt.Sprintf("/p%d/", i)})
	}
	if st := tr.c.Stats(); st.PurgeRules > 4 {
		t.Fatalf("%d rules, want at most 4", st.PurgeRules)
	}
	if res := tr.mustDo(t, "GET", "/p0/x"); res.body != "v2 /p0/x " {
		t.Fatalf("object of the merged rule served %q (%s)", res.body, cacheStatus(res))
	}
	// The merge selects older objects the rules did not: over-purging is
	// the price of the bound, never serving a purged object.
	if res := tr.mustDo(t, "GET", "/other"); res.body != "v2 /other " {
		t.Fatalf("/other: %q (%s)", res.body, cacheStatus(res))
	}
	_ = tr.mustDo(t, "GET", "/late")
}

// TestPurgeTagsChangedBy304: a 304 that changes an object's tags replaces
// it in full, so the store's tag index never misses the new tags.
func TestPurgeTagsChangedBy304(t *testing.T) {
	o := newVersioned(t, "max-age=0")
	o.tags.Store("/a", "old")
	tr := newTier(t, o.origin, nil)
	tr.mustDo(t, "GET", "/a")
	waitIdle(t, tr.c) // stored
	o.tags.Store("/a", "new")
	tr.clock.Advance(time.Second)
	res := tr.mustDo(t, "GET", "/a")
	if !strings.HasPrefix(cacheStatus(res), "fwd=") {
		t.Fatalf("second request %s", cacheStatus(res))
	}
	tr.clock.Advance(time.Second)
	waitIdle(t, tr.c)
	if r := tr.purge(t, Purge{Kind: PurgeTag, Value: "new"}); r.Removed != 1 {
		t.Fatalf("tag purge after the tags changed removed %d, want 1", r.Removed)
	}
}

// TestPurgeSoftTwoTiers: a soft purge applied at a midtier then at an edge
// (as the purge log propagates) never leaves the edge with the old object
// as fresh, even though the midtier serves it stale while it revalidates.
func TestPurgeSoftTwoTiers(t *testing.T) {
	o := newVersioned(t, "max-age=3600, stale-while-revalidate=60")
	mid := newTier(t, o.origin, nil)
	midURL, _ := url.Parse(mid.srv.URL)
	edge := newTier(t, o.origin, func(c *Cache) { c.Upstream = midURL })
	edge.mustDo(t, "GET", "/a")
	waitIdle(t, edge.c)
	waitIdle(t, mid.c)
	o.bump()
	mid.purge(t, Purge{Kind: PurgeURL, Value: "/a", Soft: true})
	edge.purge(t, Purge{Kind: PurgeURL, Value: "/a", Soft: true})
	sawV2 := false
	for i := range 6 {
		res := edge.mustDo(t, "GET", "/a")
		waitIdle(t, edge.c)
		waitIdle(t, mid.c)
		d := edge.records()[len(edge.records())-1].Disposition
		if strings.HasPrefix(res.body, "v1") && d == Hit {
			t.Fatalf("request %d: the edge served the soft-purged object as fresh", i)
		}
		if strings.HasPrefix(res.body, "v2") {
			sawV2 = true
		}
	}
	if !sawV2 {
		t.Fatal("the edge never got the new version")
	}
	if res := edge.mustDo(t, "GET", "/a"); res.body != "v2 /a " || !strings.HasPrefix(cacheStatus(res), "hit") {
		t.Fatalf("finally: %q (%s), want a hit of v2", res.body, cacheStatus(res))
	}
}

// TestPurgeBatch: PurgeBatch applies the valid purges of a batch, reports
// the invalid ones, and saves PurgeFile once; a purge that changes nothing
// a restart needs (a hard URL purge, covered by removing the entry) does
// not rewrite the file.
func TestPurgeBatch(t *testing.T) {
	o := newVersioned(t, "max-age=3600")
	file := filepath.Join(t.TempDir(), "purges")
	tr := newTier(t, o.origin, func(c *Cache) { c.PurgeFile = file })
	tr.mustDo(t, "GET", "/a/1")
	tr.mustDo(t, "GET", "/b/1")
	waitIdle(t, tr.c)
	o.bump()
	_, err := tr.c.PurgeBatch(t.Context(), []Purge{
		{Kind: PurgePrefix, Value: "/a/", Soft: true},
		{Kind: PurgePrefix, Value: "/b/*"},
		{Kind: PurgeTag, Value: "x"},
	})
	if err == nil || !strings.Contains(err.Error(), "literal") {
		t.Fatalf("PurgeBatch error %v, want the invalid prefix reported", err)
	}
	tr.clock.Advance(time.Millisecond)
	if st := tr.c.Stats(); st.Purges != 2 || st.PurgeRules != 2 {
		t.Fatalf("stats %+v, want the 2 valid purges", st)
	}
	if res := tr.mustDo(t, "GET", "/a/1"); res.body != "v2 /a/1 " {
		t.Fatalf("/a/1: %q", res.body)
	}
	if res := tr.mustDo(t, "GET", "/b/1"); res.body != "v1 /b/1 " {
		t.Fatalf("/b/1 purged by an invalid purge: %q", res.body)
	}
	before, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	tr.purge(t, Purge{Kind: PurgeURL, Value: "/b/1"})
	after, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if !after.ModTime().Equal(before.ModTime()) {
		t.Fatal("a hard URL purge rewrote the purge file")
	}
}
