package cache

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// tickingClock advances by a millisecond on every reading, so that the
// order of the events a Timing records is strict and deterministic.
type tickingClock struct {
	base time.Time
	n    atomic.Int64
}

func (c *tickingClock) Now() time.Time {
	return c.base.Add(time.Duration(c.n.Add(1)) * time.Millisecond)
}

// Issue 14: the record of a request breaks its time down by upstream
// exchange and delivery, for the request that started a fill and for one
// that joined it.
func TestRecordTimingMissAndCollapsed(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	o := newCountingOrigin(t, gatedHandler(gate, nil))
	clk := &tickingClock{base: time.Now()}
	tr := newTier(t, o, func(c *Cache) { c.Now = clk.Now })
	first := make(chan struct{}, 2)
	done := make(chan result, 2)
	startClient(t.Context(), tr, "/obj", first, done)
	waitN(t, first, 1, "the leader's first bytes")
	startClient(t.Context(), tr, "/obj", first, done) // joins the fill
	waitN(t, first, 1, "the waiter's first bytes")
	close(gate)
	for range 2 {
		if res := <-done; res.err != nil || res.status != 200 {
			t.Fatalf("client: %d %v", res.status, res.err)
		}
	}
	tr.c.Shutdown(t.Context())
	recs := tr.records()
	if len(recs) != 2 {
		t.Fatalf("%d records", len(recs))
	}
	var miss, joined Record
	for _, r := range recs {
		switch r.Disposition {
		case Miss:
			miss = r
		case Collapsed:
			joined = r
		}
	}
	m := miss.Timing
	if m.Joined || !(0 < m.UpstreamStart && m.UpstreamStart < m.UpstreamHeaders && m.UpstreamHeaders < m.UpstreamFirstByte &&
		m.UpstreamFirstByte < m.FirstByte && m.UpstreamFirstByte < m.UpstreamLastByte && m.UpstreamLastByte < miss.Delivery) {
		t.Errorf("leader's timing out of order: %+v (delivery %v)", m, miss.Delivery)
	}
	if m.UpstreamBytes != 2*chunk {
		t.Errorf("leader: UpstreamBytes %d, want %d", m.UpstreamBytes, 2*chunk)
	}
	j := joined.Timing
	if !j.Joined || j.UpstreamStart >= 0 || j.UpstreamFirstByte >= 0 || j.UpstreamLastByte <= 0 || j.FirstByte <= 0 || j.UpstreamBytes != 2*chunk {
		t.Errorf("waiter's timing: %+v (want Joined, the fill started and had bytes before it arrived)", j)
	}
}

// Issue 14: a hit has no upstream steps; the connection timing says whether
// a fill went out on a reused connection.
func TestRecordTimingHitAndConnection(t *testing.T) {
	t.Parallel()
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Write([]byte(strings.Repeat("x", 1000)))
	})
	clk := &tickingClock{base: time.Now()}
	tr := newTier(t, o, func(c *Cache) { c.Now = clk.Now })
	tr.mustDo(t, "GET", "/a") // a new connection
	tr.mustDo(t, "GET", "/b") // the same one, reused
	tr.mustDo(t, "GET", "/a") // a hit
	recs := tr.records()
	if len(recs) != 3 {
		t.Fatalf("%d records", len(recs))
	}
	a, b, hit := recs[0], recs[1], recs[2]
	if a.Disposition != Miss || a.Timing.ConnReused || a.Timing.ConnWait <= 0 {
		t.Errorf("first miss: %s %+v, want a new connection with a wait", a.Disposition, a.Timing)
	}
	if b.Disposition != Miss || !b.Timing.ConnReused || b.Timing.UpstreamBytes != 1000 {
		t.Errorf("second miss: %s %+v, want a reused connection", b.Disposition, b.Timing)
	}
	if h := hit.Timing; hit.Disposition != Hit || h.UpstreamStart != 0 || h.UpstreamHeaders != 0 || h.UpstreamLastByte != 0 || h.Joined || h.FirstByte <= 0 {
		t.Errorf("hit: %s %+v", hit.Disposition, h)
	}
}

// Issue 14: a prefetch's record and a RoundTrip's record carry the timing
// too (the prefetcher sizes its lookahead from them).
func TestRecordTimingPrefetchAndRoundTrip(t *testing.T) {
	t.Parallel()
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Write([]byte(strings.Repeat("y", 5000)))
	})
	clk := &tickingClock{base: time.Now()}
	tr := newTier(t, o, func(c *Cache) { c.Now = clk.Now })
	if err := tr.c.Prefetch(t.Context(), mustRequest(t, tr.srv.URL+"/p")); err != nil {
		t.Fatal(err)
	}
	resp, err := tr.c.RoundTrip(mustRequest(t, tr.srv.URL+"/q"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10000)
	for err == nil {
		_, err = resp.Body.Read(buf)
	}
	resp.Body.Close()
	recs := tr.records()
	if len(recs) != 2 {
		t.Fatalf("%d records", len(recs))
	}
	p, q := recs[0].Timing, recs[1].Timing
	if !recs[0].Prefetch || p.UpstreamHeaders <= 0 || p.UpstreamLastByte <= p.UpstreamFirstByte || p.UpstreamBytes != 5000 {
		t.Errorf("prefetch: %+v", recs[0])
	}
	if q.UpstreamHeaders <= 0 || q.FirstByte < q.UpstreamFirstByte || q.FirstByte <= 0 || q.UpstreamBytes != 5000 {
		t.Errorf("round trip: %+v", recs[1])
	}
}
