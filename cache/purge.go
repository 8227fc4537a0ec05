package cache

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onioncdn/onioncdn/internal/rfc9111"
)

// PurgeKind says how a [Purge] selects stored objects.
type PurgeKind uint8

// Kinds of purges.
const (
	// PurgeURL selects the resource at one URL: its path and query (as
	// the Cache keys it, see Policy.Key), every variant of it, under
	// every host and partition of the Cache.
	PurgeURL PurgeKind = iota + 1
	// PurgePrefix selects every resource whose path (escaped, as in a
	// request target) starts with a literal prefix.
	PurgePrefix
	// PurgeTag selects every object whose response listed a tag in its
	// Surrogate-Key or Cache-Tag field.
	PurgeTag
	// PurgeAll selects every object.
	PurgeAll
)

var purgeKindNames = [...]string{PurgeURL: "url", PurgePrefix: "prefix", PurgeTag: "tag", PurgeAll: "all"}

// String returns "url", "prefix", "tag" or "all".
func (k PurgeKind) String() string {
	if k >= PurgeURL && k <= PurgeAll {
		return purgeKindNames[k]
	}
	return fmt.Sprintf("PurgeKind(%d)", uint8(k))
}

// ParsePurgeKind parses the String form of a PurgeKind.
func ParsePurgeKind(s string) (PurgeKind, error) {
	for k := PurgeURL; k <= PurgeAll; k++ {
		if purgeKindNames[k] == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("cache: unknown purge kind %q: want url, prefix, tag or all", s)
}

// maxPurgeValue bounds a Purge's Value.
const maxPurgeValue = 8 << 10

// Purge selects stored objects to remove ("hard", the default) or to mark
// stale ("soft").
//
// A hard purge makes the selected objects unusable at once: they are
// never served again, fresh or stale, and the next request for one of
// them fetches it in full (one upstream request for all concurrent
// requests, as for any miss). A soft purge makes them stale as of the
// purge: the next request revalidates (a conditional request, usually
// answered 304 by the upstream) or, within the object's
// stale-while-revalidate window, is served the stale object while one
// background revalidation runs. A soft-purged object served stale carries
// an Age that makes it stale for the tiers below too, so none of them
// keeps it as fresh.
type Purge struct {
	// Kind selects how Value is matched. Required.
	Kind PurgeKind

	// Value is, for PurgeURL, a path with an optional query
	// ("/video/seg1.ts", "/page?id=3"; an absolute URL's scheme and host
	// are ignored); for PurgePrefix, a literal path prefix ("/video/"):
	// no pattern, a "*" is refused rather than silently matching nothing;
	// for PurgeTag, one tag (no spaces or commas); for PurgeAll, empty.
	// Paths are compared in escaped form: "/a b" and "/a%20b" are the
	// same.
	Value string

	// Soft marks the objects stale instead of removing them.
	Soft bool
}

// String describes p for logs.
func (p Purge) String() string {
	s := p.Kind.String()
	if p.Value != "" {
		s += " " + p.Value
	}
	if p.Soft {
		s += " (soft)"
	}
	return s
}

// Normalize checks p and returns it with Value in the form the Cache
// compares (escaped path and query). Every error says what is wrong: a
// purge that could match nothing is refused, never accepted.
func (p Purge) Normalize() (Purge, error) {
	if len(p.Value) > maxPurgeValue {
		return p, fmt.Errorf("cache: purge: value of %d bytes exceeds %d", len(p.Value), maxPurgeValue)
	}
	switch p.Kind {
	case PurgeURL, PurgePrefix:
		v, err := normalPath(p.Value, p.Kind == PurgePrefix)
		if err != nil {
			return p, fmt.Errorf("cache: purge %s %q: %w", p.Kind, p.Value, err)
		}
		p.Value = v
	case PurgeTag:
		if err := validTag(p.Value); err != nil {
			return p, fmt.Errorf("cache: purge tag %q: %w", p.Value, err)
		}
	case PurgeAll:
		if p.Value != "" {
			return p, fmt.Errorf("cache: purge all: unexpected value %q", p.Value)
		}
	default:
		return p, fmt.Errorf("cache: purge: %v", p.Kind)
	}
	return p, nil
}

// normalPath returns the escaped path and query of v.
func normalPath(v string, prefix bool) (string, error) {
	if v == "" {
		return "", errors.New("empty")
	}
	if prefix && strings.ContainsAny(v, "*") {
		return "", errors.New("a prefix is literal: no * or other pattern (use the path up to where it would start)")
	}
	if strings.IndexFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		return "", errors.New("control character")
	}
	u, err := url.Parse(v)
	if err != nil {
		return "", err
	}
	if u.Fragment != "" || strings.Contains(v, "#") {
		return "", errors.New("a fragment never reaches a cache")
	}
	p := u.EscapedPath()
	if !strings.HasPrefix(p, "/") {
		return "", errors.New("want a path starting with /")
	}
	if u.RawQuery != "" || (u.ForceQuery && !prefix) {
		p += "?" + u.RawQuery
	} else if u.ForceQuery {
		p += "?"
	}
	return p, nil
}

// PurgeResult says what [Cache.Purge] did.
type PurgeResult struct {
	// Removed is the number of objects removed from the store at once:
	// the URL's entry, and for a tag the objects the store's tag index
	// ([TagStore]) found. Other objects a purge selects are removed (hard)
	// or made stale (soft) when they are next looked up.
	Removed int
}

// DefaultMaxPurgeRules is the number of purge rules a Cache keeps when
// MaxPurgeRules is zero.
const DefaultMaxPurgeRules = 4096

// Purge applies p to the Cache. It returns once p is in force: from then
// on no request is served an object p selects (hard) or is served one as
// fresh (soft), including objects whose fill was in progress — those are
// not stored — and objects stored by this Cache before a restart if
// PurgeFile is set.
//
// How: every purge becomes a rule that the Cache checks when it looks an
// object up (an object fetched before the rule is selected if it matches
// it: removed for a hard purge, served as stale for a soft one) and when a
// fill commits. A hard purge of a URL removes its entry from the store at
// once, and a hard purge of a tag removes the tagged objects through the
// store's tag index (a [TagStore]); those rules are dropped once no fill
// that started before them can still commit. Other rules stay until
// MaxPurgeRules is reached; then the oldest are merged into a purge of
// everything stored before them (hard or soft as they were), which
// selects more objects than they did but never fewer.
//
// A purge applies to every host and partition of the Cache (a Cache in
// front of one origin). Purges are idempotent: applying one again only
// selects the objects fetched since.
func (c *Cache) Purge(ctx context.Context, p Purge) (PurgeResult, error) {
	c.init()
	p, err := p.Normalize()
	if err != nil {
		return PurgeResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return PurgeResult{}, fmt.Errorf("cache: purge: %w", err)
	}
	res, err := c.applyPurge(ctx, p)
	if serr := c.savePurges(); err == nil {
		err = serr
	}
	return res, err
}

// PurgeBatch applies ps in order, like as many calls to Purge, but saves
// PurgeFile once, after the last: for a follower catching up with a log.
// An invalid purge is skipped and reported in the error (joined with the
// others'); the valid ones are applied.
func (c *Cache) PurgeBatch(ctx context.Context, ps []Purge) (PurgeResult, error) {
	c.init()
	var total PurgeResult
	var errs []error
	for _, p := range ps {
		p, err := p.Normalize()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("cache: purge: %w", err))
			break
		}
		res, err := c.applyPurge(ctx, p)
		total.Removed += res.Removed
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.savePurges(); err != nil {
		errs = append(errs, err)
	}
	return total, errors.Join(errs...)
}

// savePurges writes PurgeFile (if set and changed).
func (c *Cache) savePurges() error {
	t := &c.purges
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.save(c.now()); err != nil {
		c.storeError("purge file", err)
		return fmt.Errorf("cache: purge applied but not saved (a restart would forget it): %w", err)
	}
	return nil
}

// purgeRule is one purge in force.
type purgeRule struct {
	kind    PurgeKind
	value   string // URL: resource key; prefix: escaped prefix; tag: tag
	soft    bool
	at      time.Time // objects fetched at or before it are selected
	gen     uint64
	expires time.Time   // if not zero, dropped from then on (guarded by purgeTable.mu)
	dropped atomic.Bool // dropped early (a refreshed URL); removed at the next rebuild
}

// purgeSnap is an immutable set of rules, read without locks.
type purgeSnap struct {
	rules     []*purgeRule // oldest first
	urls      map[string][]*purgeRule
	tags      map[string][]*purgeRule
	prefixes  []*purgeRule
	floorHard time.Time // objects fetched at or before it: hard-purged
	floorSoft time.Time // objects fetched at or before it: soft-purged
}

// purgeTable holds a Cache's purge rules.
type purgeTable struct {
	snap       atomic.Pointer[purgeSnap] // nil: no purge in force
	gen        atomic.Uint64             // purges applied so far (fills note it at start)
	droppedGen atomic.Uint64             // highest gen of a rule dropped
	commitMu   sync.RWMutex              // fills commit under R; rules are added under W
	mu         sync.Mutex                // serialises writers of snap and the file
	rt         atomic.Bool               // the Cache served through RoundTrip (keys with hosts)
	max        int
	file       string
	saved      []byte // the content of file last written (t.mu)
}

func newPurgeSnap(rules []*purgeRule, floorHard, floorSoft time.Time) *purgeSnap {
	if len(rules) == 0 && floorHard.IsZero() && floorSoft.IsZero() {
		return nil
	}
	s := &purgeSnap{rules: rules, floorHard: floorHard, floorSoft: floorSoft}
	for _, r := range rules {
		switch r.kind {
		case PurgeURL:
			if s.urls == nil {
				s.urls = make(map[string][]*purgeRule)
			}
			s.urls[r.value] = append(s.urls[r.value], r)
		case PurgeTag:
			if s.tags == nil {
				s.tags = make(map[string][]*purgeRule)
			}
			s.tags[r.value] = append(s.tags[r.value], r)
		case PurgePrefix:
			s.prefixes = append(s.prefixes, r)
		}
	}
	return s
}

// purgeVerdict is what the rules say about one object.
type purgeVerdict struct {
	hard   bool
	softAt time.Time // not zero: stale from then on
}

func (v purgeVerdict) any() bool { return v.hard || !v.softAt.IsZero() }

// match applies the rules to an object of resource key resource with tags,
// fetched at reqTime.
func (s *purgeSnap) match(resource string, tags []string, reqTime time.Time) purgeVerdict {
	var v purgeVerdict
	if !s.floorHard.IsZero() && !reqTime.After(s.floorHard) {
		return purgeVerdict{hard: true}
	}
	if !s.floorSoft.IsZero() && !reqTime.After(s.floorSoft) {
		v.softAt = s.floorSoft
	}
	check := func(rs []*purgeRule) bool {
		for _, r := range rs {
			if reqTime.After(r.at) || r.dropped.Load() {
				continue
			}
			if !r.soft {
				return true
			}
			if v.softAt.IsZero() || r.at.Before(v.softAt) {
				v.softAt = r.at
			}
		}
		return false
	}
	if check(s.urls[resource]) {
		return purgeVerdict{hard: true}
	}
	for _, r := range s.prefixes {
		if strings.HasPrefix(resource, r.value) && check([]*purgeRule{r}) {
			return purgeVerdict{hard: true}
		}
	}
	for _, t := range tags {
		if check(s.tags[t]) {
			return purgeVerdict{hard: true}
		}
	}
	return v
}

// keyResource returns the resource part of a base key (see partitionKey):
// without partition, method and host.
func keyResource(base string) string {
	if i := strings.IndexByte(base, 0); i >= 0 {
		base = base[i+1:]
	}
	base = strings.TrimPrefix(base, "GET ")
	if !strings.HasPrefix(base, "/") {
		if i := strings.IndexByte(base, ' '); i >= 0 {
			return base[i+1:]
		}
	}
	return base
}

// purgeKey returns the base key of the resource at URL value (normalized)
// in a Cache with no partition and no host part, and the resource part.
func (c *Cache) purgeKey(value string) (base, resource string) {
	u, _ := url.Parse(value) // normalized: parses
	r := &http.Request{Method: http.MethodGet, URL: u, Header: http.Header{}}
	if c.Policy != nil {
		resource = c.Policy.Key(r)
	} else {
		resource = DefaultKey(r)
	}
	return "GET " + resource, resource
}

func (c *Cache) applyPurge(ctx context.Context, p Purge) (PurgeResult, error) {
	t := &c.purges
	var res PurgeResult
	r := &purgeRule{kind: p.Kind, value: p.Value, soft: p.Soft}
	var base string
	if p.Kind == PurgeURL {
		base, r.value = c.purgeKey(p.Value)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.commitMu.Lock()
	r.at = c.now()
	r.gen = t.gen.Add(1)
	old := t.snap.Load()
	var rules []*purgeRule
	var fh, fs time.Time
	if old != nil {
		rules, fh, fs = slices.Clone(old.rules), old.floorHard, old.floorSoft
	}
	if p.Kind == PurgeAll {
		if p.Soft {
			fs = later(fs, r.at)
		} else {
			fh = later(fh, r.at)
		}
	} else {
		rules = append(rules, r)
	}
	rules, fh, fs = t.compact(rules, fh, fs, r.at)
	t.snap.Store(newPurgeSnap(rules, fh, fs))
	// From here on, a fill that started before r and has not committed
	// never commits (see commitFill), and lookups find r.
	t.commitMu.Unlock()
	c.stats.purges.Add(1)

	// Remove at once what can be found without a scan.
	var eagerErr error
	complete := false
	switch {
	case p.Kind == PurgeURL && !p.Soft:
		err := c.store.Delete(ctx, base)
		switch {
		case err == nil:
			res.Removed = 1
		case !errors.Is(err, ErrNotFound):
			eagerErr = err
		}
		// Only one key per URL when keys have no partition nor host.
		complete = eagerErr == nil && c.Partition == nil && c.KeyHost == nil && !t.rt.Load()
	case p.Kind == PurgeTag && !p.Soft:
		if ts, ok := c.store.(TagStore); ok {
			n, err := ts.DeleteTag(ctx, p.Value)
			res.Removed = n
			if err != nil && !errors.Is(err, ErrNoTagIndex) {
				eagerErr = err
			}
			complete = err == nil
		}
	}
	if complete {
		// Kept while a fill that started before it may still commit.
		r.expires = r.at.Add(c.fillTimeout() + time.Minute)
	}
	c.stats.purgedObjects.Add(uint64(res.Removed))
	if eagerErr != nil {
		c.storeError("purge", eagerErr) // the rule still applies at lookup
	}
	return res, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// compact drops expired, dropped and subsumed rules, and merges the
// oldest rules into the floors while there are more than max. It returns
// the new rules and floors.
func (t *purgeTable) compact(rules []*purgeRule, fh, fs, now time.Time) ([]*purgeRule, time.Time, time.Time) {
	max := t.max
	if max <= 0 {
		max = DefaultMaxPurgeRules
	}
	drop := func(r *purgeRule) { t.noteDropped(r.gen) }
	for len(rules) > max {
		r := rules[0]
		rules = rules[1:]
		switch {
		case !r.expires.IsZero():
			drop(r) // its eager removal covered it
		case r.soft:
			fs = later(fs, r.at)
		default:
			fh = later(fh, r.at)
		}
	}
	out := rules[:0:0]
	for _, r := range rules {
		switch {
		case !r.at.After(fh), r.soft && !r.at.After(fs):
			// Subsumed by a floor (which fills check too).
		case r.dropped.Load(), !r.expires.IsZero() && !now.Before(r.expires):
			drop(r)
		default:
			out = append(out, r)
		}
	}
	return out, fh, fs
}

// purged applies the purge rules to st, found by a lookup of base: it
// returns st unchanged, or nothing (the object was hard-purged: it is
// deleted), or st with a copy of its meta that makes it stale as of the
// purge (soft).
func (c *Cache) purged(ctx context.Context, base string, st stored) stored {
	s := c.purges.snap.Load()
	if s == nil {
		return st
	}
	m := st.meta
	resource := keyResource(base)
	v := s.match(resource, m.tags, m.requestTime)
	if !v.any() {
		if st.key == base {
			c.purges.dropRefreshed(s, resource, m.requestTime, c.now().Add(-c.fillTimeout()))
		}
		return st
	}
	if v.hard {
		st.close()
		switch err := c.store.Delete(ctx, st.key); {
		case err == nil:
			c.stats.purgedObjects.Add(1)
		case !errors.Is(err, ErrNotFound):
			c.storeError("purge", err)
		}
		return stored{}
	}
	e := m.entry()
	lifetime, _ := rfc9111.FreshnessLifetime(e, c.opts)
	ageAt := rfc9111.CurrentAge(e, v.softAt)
	if ageAt >= lifetime {
		return st // stale before the purge already
	}
	e.TTL = 0
	declared, _ := rfc9111.FreshnessLifetime(e, c.opts)
	pm := *m
	pm.derived = false
	pm.purgeTTL = max(ageAt, 1)
	pm.minAge = max(lifetime, declared) + max(c.now().Sub(v.softAt), 0)
	st.meta = &pm
	c.stats.purgeStale.Add(1)
	return st
}

// dropRefreshed drops the URL rules of resource that an object fetched at
// reqTime shows to be over: the object was fetched after them, and no fill
// that started before them can still commit (they are older than cutoff).
func (t *purgeTable) dropRefreshed(s *purgeSnap, resource string, reqTime, cutoff time.Time) {
	for _, r := range s.urls[resource] {
		if reqTime.After(r.at) && r.at.Before(cutoff) && !r.dropped.Load() {
			// Fills that started before r no longer see it: they do
			// not commit (see commitFill).
			t.noteDropped(r.gen)
			r.dropped.Store(true)
		}
	}
}

// noteDropped raises droppedGen to gen.
func (t *purgeTable) noteDropped(gen uint64) {
	for {
		g := t.droppedGen.Load()
		if g >= gen || t.droppedGen.CompareAndSwap(g, gen) {
			return
		}
	}
}

// fillPurged reports whether a purge applied after the fill f of base
// started selects what it stores: such a fill is neither joined by new
// requests nor committed.
func (c *Cache) fillPurged(base string, f *fill) bool {
	s := c.purges.snap.Load()
	return s != nil && s.match(keyResource(base), f.meta.tags, f.meta.requestTime).any()
}

// errFillPurged is commitFill's error for a fill a purge selected.
var errFillPurged = errors.New("cache: fill not stored: purged while in progress")

// commitFill commits the fill f of base unless a purge applied since it
// started selects it. Purges wait for commits in progress, so a purge
// either sees the committed object (and removes it) or keeps it from
// committing. An uncommitted fill still completes for its readers.
func (c *Cache) commitFill(ctx context.Context, f *fill, base string) error {
	t := &c.purges
	t.commitMu.RLock()
	defer t.commitMu.RUnlock()
	if t.gen.Load() != f.gen && (t.droppedGen.Load() > f.gen || c.fillPurged(base, f)) {
		c.stats.purgedObjects.Add(1)
		return errFillPurged
	}
	return f.w.Commit(ctx)
}

// create starts writing an object, in the store's tag index if it has one.
func (c *Cache) create(ctx context.Context, key string, meta []byte, tags []string) (Writer, error) {
	if ts, ok := c.store.(TagStore); ok && len(tags) > 0 {
		return ts.CreateTagged(ctx, key, meta, tags)
	}
	return c.store.Create(ctx, key, meta)
}
