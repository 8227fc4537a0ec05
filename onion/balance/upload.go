package balance

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/onioncdn/onioncdn/onion"
	"github.com/onioncdn/onioncdn/onion/hsdesc"
)

// slotPlan is what the Publisher wants published for one of the two time
// periods a service keeps descriptors for.
type slotPlan struct {
	tp        uint64
	second    bool
	dirs      []hsdesc.HSDir // every HSDir to upload to
	fetched   []hsdesc.HSDir // those clients fetch from
	variantOf map[string]int // HSDir fingerprint → variant
	variants  [][]hsdesc.IntroPoint
	keys      []string // content key per variant
}

type plan struct {
	slots     []slotPlan
	cands     []candidate
	flow      string
	schedule  hsdesc.Period
	current   uint64 // clients' current time period
	since     time.Time
	reached   int
	intros    int
	nVariants int
}

func (pl *plan) key(tp uint64, fpr string) (string, bool) {
	for i := range pl.slots {
		s := &pl.slots[i]
		if s.tp != tp {
			continue
		}
		if v, ok := s.variantOf[fpr]; ok {
			return s.keys[v], true
		}
	}
	return "", false
}

// plan computes the descriptors the Publisher's current view calls for.
func (p *Publisher) plan(st *state) *plan {
	r := st.ring
	pl := &plan{schedule: r.Schedule, current: r.TimePeriod(), since: r.PeriodsSince()}
	flows := map[string]int{}
	for _, b := range st.backends {
		if b.up && len(b.intros) > 0 {
			if c := newCandidate(b.addr, b.intros); len(c.intros) > 0 {
				pl.cands = append(pl.cands, c)
			}
			flows[b.flowControl]++
		}
	}
	slices.SortFunc(pl.cands, func(a, b candidate) int { return strings.Compare(a.addr, b.addr) })
	// The flow-control line most backends publish (tor's own, normally the
	// same everywhere).
	best := -1
	for f, n := range flows {
		if n > best || n == best && f < pl.flow {
			pl.flow, best = f, n
		}
	}
	reached := map[string]bool{}
	introSet := map[string]bool{}
	for _, base := range st.slots {
		sp := base // the ring-derived part is shared; variants are per plan
		tp := sp.tp
		v := max(len(sp.fetched), 1)
		sp.variants = assign(pl.cands, v, p.maxIntros())
		sp.keys = nil
		for _, ips := range sp.variants {
			sp.keys = append(sp.keys, pl.flow+"|"+contentKey(ips))
			if tp == pl.current {
				for _, ip := range ips {
					introSet[string(ip.AuthKey)] = true
				}
			}
		}
		if tp == pl.current {
			pl.nVariants = v
			for _, c := range pl.cands {
				for _, ips := range sp.variants {
					if len(ips) > 0 && containsIntroOf(ips, c) {
						reached[c.addr] = true
					}
				}
			}
		}
		pl.slots = append(pl.slots, sp)
	}
	pl.reached, pl.intros = len(reached), len(introSet)
	return pl
}

func containsIntroOf(ips []hsdesc.IntroPoint, c candidate) bool {
	for _, ip := range ips {
		for _, o := range c.intros {
			if ip.AuthKey.Equal(o.AuthKey) {
				return true
			}
		}
	}
	return false
}

// planKey identifies a plan's content.
func planKey(pl *plan) string {
	var b strings.Builder
	for _, s := range pl.slots {
		b.WriteString(strconv.FormatUint(s.tp, 10))
		for _, k := range s.keys {
			b.WriteString("|" + k)
		}
	}
	return b.String()
}

// slotsOf computes the ring-derived part of the plan: for each of the two
// time periods, the HSDirs to upload to and which descriptor variant each
// gets (one variant per HSDir clients fetch from; the others get copies).
func (p *Publisher) slotsOf(r *hsdesc.Ring) []slotPlan {
	var out []slotPlan
	first, second := r.ServicePeriods()
	for i, tp := range []uint64{first, second} {
		isSecond := i == 1
		blinded, err := hsdesc.BlindPublicKey(p.identity, tp, r.Schedule)
		if err != nil {
			continue
		}
		sp := slotPlan{tp: tp, second: isSecond, variantOf: map[string]int{}}
		sp.fetched = r.FetchedFrom(blinded, tp, isSecond)
		v := max(len(sp.fetched), 1)
		for j, d := range sp.fetched {
			sp.variantOf[d.Fingerprint] = j
			sp.dirs = append(sp.dirs, d)
		}
		extra := 0
		for _, d := range r.Store(blinded, tp, isSecond) {
			if _, ok := sp.variantOf[d.Fingerprint]; !ok {
				sp.variantOf[d.Fingerprint] = extra % v
				sp.dirs = append(sp.dirs, d)
				extra++
			}
		}
		out = append(out, sp)
	}
	return out
}

// uploadJob is one descriptor for one HSDir.
type uploadJob struct {
	tp    uint64
	hsdir string
	key   string
	text  string
	cur   bool // for the clients' current time period
}

func (p *Publisher) maybeUpload(st *state, pl *plan, now time.Time) {
	if !st.active || st.uploading {
		return
	}
	if len(pl.cands) == 0 {
		if !st.noneWarned {
			st.noneWarned = true
			p.log.Warn("no backend is up with introduction points; the published descriptors are left as they are")
		}
		return
	}
	st.noneWarned = false
	full := st.lastFull.Before(pl.since) || now.Sub(st.lastFull) >= p.setting(p.RefreshInterval, DefaultRefreshInterval)
	type want struct {
		slot    *slotPlan
		variant int
		dir     hsdesc.HSDir
	}
	var todo []want
	for i := range pl.slots {
		sp := &pl.slots[i]
		for _, d := range sp.dirs {
			v := sp.variantOf[d.Fingerprint]
			k := slotDir{sp.tp, d.Fingerprint}
			if !full && st.uploaded[k] == sp.keys[v] {
				continue
			}
			// The same content failed at this HSDir a moment ago: wait a
			// little before trying again. New content goes at once.
			if f, ok := st.failed[k]; ok && f.key == sp.keys[v] && now.Sub(f.at) < uploadRetry {
				continue
			}
			todo = append(todo, want{sp, v, d})
		}
	}
	if len(todo) == 0 || now.Sub(st.lastRound) < p.setting(p.MinUploadInterval, DefaultMinUploadInterval) {
		return
	}
	rev := uint64(now.UnixMilli())
	if rev <= st.lastRev {
		rev = st.lastRev + 1
	}
	st.lastRev, st.uploading, st.lastRound = rev, true, now
	p.st.rounds.Add(1)
	// Build each needed variant once.
	type vk struct {
		tp uint64
		v  int
	}
	texts := map[vk]string{}
	var jobs []uploadJob
	var buildErr error
	for _, w := range todo {
		k := vk{w.slot.tp, w.variant}
		text, ok := texts[k]
		if !ok {
			var err error
			text, err = hsdesc.Build(&hsdesc.Spec{
				Identity: p.signer, Period: w.slot.tp, Schedule: pl.schedule, RevisionCounter: rev,
				Lifetime: p.Lifetime, Now: now,
				Content: hsdesc.Content{FlowControl: pl.flow, IntroPoints: w.slot.variants[w.variant]},
			})
			if err != nil {
				buildErr = err
				continue
			}
			texts[k] = text
		}
		jobs = append(jobs, uploadJob{tp: w.slot.tp, hsdir: w.dir.Fingerprint, key: w.slot.keys[w.variant], text: text, cur: w.slot.tp == pl.current})
	}
	if buildErr != nil {
		p.log.Error("cannot build the group descriptor", "error", buildErr)
	}
	backends := make([]string, 0, len(pl.cands))
	for _, c := range pl.cands {
		backends = append(backends, c.addr)
	}
	p.log.Info("uploading descriptors", "revision", rev, "hsdirs", len(jobs), "full", full,
		"backends", len(pl.cands), "reached", pl.reached, "intro_points", pl.intros, "variants", pl.nVariants)
	reached, intros, variants := pl.reached, pl.intros, pl.nVariants
	p.spawn(func(ctx context.Context) func(*state) {
		errs := p.upload(ctx, jobs)
		end := p.now()
		return func(st *state) {
			st.uploading = false
			ok, okCur, failed := 0, 0, 0
			for i, j := range jobs {
				k := slotDir{j.tp, j.hsdir}
				if errs[i] == nil {
					st.uploaded[k] = j.key
					delete(st.failed, k)
					ok++
					if j.cur {
						okCur++
					}
					continue
				}
				failed++
				delete(st.uploaded, k)
				st.failed[k] = attempt{j.key, end}
			}
			if full {
				st.lastFull = now // failed HSDirs are retried one by one
			}
			if ok > 0 {
				st.lastUpload = end
				st.reached, st.intros, st.variants = reached, intros, variants
				st.published = map[string]bool{}
				for _, b := range backends {
					st.published[b] = true
				}
			}
			if okCur > 0 {
				p.publishedOnce.Do(func() { close(p.published) })
			}
			p.log.Info("descriptors uploaded", "revision", rev, "accepted", ok, "failed", failed, "duration", end.Sub(now).Round(time.Millisecond))
			p.publishView(st)
		}
	})
}

// upload posts the jobs, a few at a time, and returns one error per job.
func (p *Publisher) upload(ctx context.Context, jobs []uploadJob) []error {
	errs := make([]error, len(jobs))
	sem := make(chan struct{}, uploadParallel)
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			uctx, cancel := context.WithTimeout(ctx, p.setting(p.UploadTimeout, DefaultUploadTimeout))
			defer cancel()
			err := p.tor.PostDescriptor(uctx, p.address, j.text, j.hsdir)
			errs[i] = err
			switch {
			case err == nil:
				p.st.uploads.Add(1)
			case errors.Is(err, onion.ErrDescriptorRejected):
				p.st.uploadRejected.Add(1)
				p.log.Error("descriptor rejected", "hsdir", j.hsdir, "period", j.tp, "error", err)
			case ctx.Err() == nil:
				p.st.uploadErrors.Add(1)
				p.log.Warn("descriptor upload failed", "hsdir", j.hsdir, "period", j.tp, "error", err)
			}
		}()
	}
	wg.Wait()
	return errs
}

// spawnObserve fetches the group's descriptor for the clients' current time
// period from one of the HSDirs clients use and compares it with the plan.
func (p *Publisher) spawnObserve(st *state, pl *plan) {
	var sp *slotPlan
	for i := range pl.slots {
		if pl.slots[i].tp == pl.current {
			sp = &pl.slots[i]
		}
	}
	if sp == nil || len(sp.fetched) == 0 {
		st.observing = false
		return
	}
	hsdir := sp.fetched[st.observeIdx%len(sp.fetched)].Fingerprint
	st.observeIdx++
	tp, sched := pl.current, pl.schedule
	p.spawn(func(ctx context.Context) func(*state) {
		ctx, cancel := context.WithTimeout(ctx, p.setting(p.UploadTimeout, DefaultUploadTimeout))
		defer cancel()
		text, _, err := p.tor.FetchDescriptor(ctx, p.address, hsdir)
		if p.ctx.Err() != nil {
			return nil
		}
		now := p.now()
		var rev uint64
		var key string
		missing := false
		if err != nil {
			missing = strings.Contains(err.Error(), "NOT_FOUND")
		} else {
			var d *hsdesc.Descriptor
			if d, err = hsdesc.Parse(text, now); err == nil {
				var c *hsdesc.Content
				if c, err = d.Decrypt(p.identity, now, sched, tp); err == nil {
					rev, key = d.RevisionCounter, c.FlowControl+"|"+contentKey(c.IntroPoints)
				}
			}
		}
		return func(st *state) {
			st.observing = false
			p.st.observations.Add(1)
			p.observed(st, tp, hsdir, missing, err, rev, key)
		}
	})
}

// observed applies one observation of the group's descriptor on hsdir.
func (p *Publisher) observed(st *state, tp uint64, hsdir string, missing bool, err error, rev uint64, key string) {
	if err != nil && !missing {
		p.log.Debug("cannot observe the group descriptor", "hsdir", hsdir, "error", err)
		return
	}
	if st.ring == nil {
		return
	}
	pl := p.plan(st)
	want, planned := pl.key(tp, hsdir)
	if !missing {
		p.publishedOnce.Do(func() { close(p.published) })
	}
	standby := p.TakeoverDelay > 0
	if !missing && rev > st.lastRev && st.active && standby {
		st.active, st.mismatchSince = false, time.Time{}
		p.log.Info("another publisher uploads the group's descriptors; standing by", "revision", rev)
		p.publishView(st)
		return
	}
	if st.active {
		if missing {
			// The HSDir lost or never got our upload: upload it again.
			delete(st.uploaded, slotDir{tp, hsdir})
		}
		return
	}
	now := p.now()
	revTime := time.UnixMilli(int64(min(rev, 1<<62)))
	mismatch := missing || !planned || key != want || revTime.Before(pl.since)
	if !mismatch || len(pl.cands) == 0 || !st.viewComplete() {
		st.mismatchSince = time.Time{}
		return
	}
	view := planKey(pl)
	if st.mismatchSince.IsZero() || view != st.mismatchView {
		// A new mismatch, or our own view changed since: start over.
		st.mismatchSince, st.mismatchView = now, view
		// Our own view may be behind (introduction points rotate): refresh
		// it before the delay runs out.
		for _, b := range st.backends {
			b.refetch = true
		}
		p.log.Info("the group's descriptor differs from this publisher's view; taking over if it stays so",
			"hsdir", hsdir, "missing", missing, "stale", !missing && revTime.Before(pl.since), "delay", p.TakeoverDelay)
		return
	}
	if now.Sub(st.mismatchSince) >= p.TakeoverDelay {
		st.active, st.mismatchSince = true, time.Time{}
		st.uploaded = map[slotDir]string{}
		p.st.takeovers.Add(1)
		p.log.Warn("taking over: uploading the group's descriptors", "hsdir", hsdir, "missing", missing)
		p.publishView(st)
	}
}
