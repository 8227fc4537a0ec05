package purge

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// PositionField is the response field by which a tier that serves its
// purge log (a midtier) tells the tiers below how far in the origin's log
// it was when it looked the response up: "LOG.SEQ". [Follower.Mark] sets
// it; [Follower.Guard] reads and removes it.
const PositionField = "Onioncdn-Purge-Position"

// defaultGuardPauses: a response from a tier above that is behind this
// follower is fetched again after these pauses (the tier above applies
// the entry within milliseconds, or another tier answers).
var defaultGuardPauses = []time.Duration{20 * time.Millisecond, 100 * time.Millisecond, 400 * time.Millisecond, 1500 * time.Millisecond}

// position formats log and seq for PositionField.
func position(log, seq uint64) string {
	return strconv.FormatUint(log, 10) + "." + strconv.FormatUint(seq, 10)
}

func parsePosition(v string) (log, seq uint64, ok bool) {
	l, s, found := strings.Cut(v, ".")
	if !found {
		return 0, 0, false
	}
	log, err1 := strconv.ParseUint(l, 10, 64)
	seq, err2 := strconv.ParseUint(s, 10, 64)
	return log, seq, err1 == nil && err2 == nil
}

// Mark returns h wrapped so that every response carries PositionField
// with this follower's position when the request arrived. A tier that
// serves its log (see tier.Tier.ServePurgeLog) marks its responses, so
// that the tiers below can tell a response that predates a purge they
// applied already.
func (f *Follower) Mark(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log, seq := f.Position()
		w.Header()[PositionField] = []string{position(log, seq)}
		h.ServeHTTP(w, r)
	})
}

// Guard returns rt (a tier's transport to the tier above, under its
// cache) wrapped so that a response from a tier above that had applied
// fewer of the origin's purges than this follower when it answered is
// not used: with several midtiers, an edge may have applied a purge from
// one while another, a few milliseconds behind, still serves what the
// purge removed; the cache would store it after the purge. Such a GET or
// HEAD is sent again after a short pause (up to four times, 2 s in all;
// the transport may choose another upstream), and PositionField is
// removed from every response. A response still behind after that is
// used, and counted (FollowerStats.Behind). Responses without
// PositionField (a tier above that does not follow purges) pass
// unchanged.
func (f *Follower) Guard(rt http.RoundTripper) http.RoundTripper {
	return guard{f, rt}
}

type guard struct {
	f  *Follower
	rt http.RoundTripper
}

func (g guard) RoundTrip(req *http.Request) (*http.Response, error) {
	retry := req.Method == http.MethodGet || req.Method == http.MethodHead
	for attempt := 0; ; attempt++ {
		r := req
		if attempt > 0 {
			r = req.Clone(req.Context())
		}
		resp, err := g.rt.RoundTrip(r)
		if err != nil {
			return nil, err
		}
		v := resp.Header.Get(PositionField)
		resp.Header.Del(PositionField)
		if v == "" || !g.f.behind(v) {
			return resp, nil
		}
		pauses := g.f.guardPauses
		if pauses == nil {
			pauses = defaultGuardPauses
		}
		if !retry || attempt >= len(pauses) {
			g.f.behindServed.Add(1)
			if g.f.Logger != nil {
				g.f.Logger.Warn("purge: a response from a tier behind this one's purges", "upstream_position", v)
			}
			return resp, nil
		}
		g.f.behindRetried.Add(1)
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		t := time.NewTimer(pauses[attempt])
		select {
		case <-t.C:
		case <-req.Context().Done():
			t.Stop()
			return nil, fmt.Errorf("purge: guard: %w", req.Context().Err())
		}
	}
}

// behind reports whether a tier at position v (PositionField) had applied
// fewer entries than f has.
func (f *Follower) behind(v string) bool {
	log, seq, ok := parsePosition(v)
	if !ok {
		return false
	}
	mine, mySeq := f.Position()
	return log < mine || log == mine && seq < mySeq
}
