package metrics

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/hls"
	"github.com/onioncdn/onioncdn/limit"
	"github.com/onioncdn/onioncdn/onion"
	"github.com/onioncdn/onioncdn/onion/balance"
	"github.com/onioncdn/onioncdn/route"
	"github.com/onioncdn/onioncdn/upstream"
	"github.com/onioncdn/onioncdn/upstream/integrity"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "onioncdn"

// metric is one value of a snapshot collector.
type metric struct {
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	value float64
	label []string
}

// snapshotCollector describes a fixed set of descriptors and, when
// collected, reads one snapshot and emits its values.
type snapshotCollector struct {
	descs   []*prometheus.Desc
	collect func() []metric
}

func (s *snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range s.descs {
		ch <- d
	}
}

func (s *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range s.collect() {
		ch <- prometheus.MustNewConstMetric(m.desc, m.typ, m.value, m.label...)
	}
}

// descs builds descriptors with a constant tier label (if tier is not
// empty) and remembers them for Describe.
type descs struct {
	tier string
	all  []*prometheus.Desc
}

func (d *descs) new(subsystem, name, help string, labels ...string) *prometheus.Desc {
	var cl prometheus.Labels
	if d.tier != "" {
		cl = prometheus.Labels{"tier": d.tier}
	}
	desc := prometheus.NewDesc(prometheus.BuildFQName(namespace, subsystem, name), help, labels, cl)
	d.all = append(d.all, desc)
	return desc
}

func counter(d *prometheus.Desc, v uint64, labels ...string) metric {
	return metric{desc: d, typ: prometheus.CounterValue, value: float64(v), label: labels}
}

func gauge(d *prometheus.Desc, v float64, labels ...string) metric {
	return metric{desc: d, typ: prometheus.GaugeValue, value: v, label: labels}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Cache returns a collector of c's counters, labelled tier=tier:
// onioncdn_cache_requests_total{disposition} (hit, miss, collapsed,
// revalidated, stale, uncacheable, passed), onioncdn_cache_prefetched_total,
// onioncdn_cache_bytes_served_total, onioncdn_cache_bytes_fetched_total,
// onioncdn_cache_errors_total and onioncdn_cache_invalidated_total.
func Cache(tier string, c interface{ Stats() cache.Stats }) prometheus.Collector {
	d := &descs{tier: tier}
	req := d.new("cache", "requests_total", "Requests handled by the cache, by disposition.", "disposition")
	pre := d.new("cache", "prefetched_total", "Prefetches that started or joined a fill.")
	served := d.new("cache", "bytes_served_total", "Body bytes written to clients.")
	fetched := d.new("cache", "bytes_fetched_total", "Body bytes of upstream responses written to the store.")
	errs := d.new("cache", "errors_total", "Upstream failures, aborted responses and store errors.")
	inval := d.new("cache", "invalidated_total", "Stored entries removed by unsafe methods.")
	return &snapshotCollector{descs: d.all, collect: func() []metric {
		s := c.Stats()
		return []metric{
			counter(req, s.Hits, "hit"),
			counter(req, s.Misses, "miss"),
			counter(req, s.Collapsed, "collapsed"),
			counter(req, s.Revalidated, "revalidated"),
			counter(req, s.StaleServed, "stale"),
			counter(req, s.Uncacheable, "uncacheable"),
			counter(req, s.Passed, "passed"),
			counter(pre, s.Prefetched),
			counter(served, s.BytesServed),
			counter(fetched, s.BytesFetched),
			counter(errs, s.Errors),
			counter(inval, s.Invalidated),
		}
	}}
}

// Upstream returns a collector of t's per-upstream counters, labelled
// tier=tier and upstream=<configured base URL>: onioncdn_upstream_healthy,
// _dials_total, _dial_failures_total, _requests_total{conn="reused"|"new"},
// _cold_dials_total, _in_flight, _failures_total, _retries_total,
// _idle_conns, _open_conns, _peer_closed_total, _keepalives_total and
// _probes_total.
func Upstream(tier string, t interface{ Stats() upstream.Stats }) prometheus.Collector {
	d := &descs{tier: tier}
	healthy := d.new("upstream", "healthy", "1 if the upstream had no failure since its last success.", "upstream")
	dials := d.new("upstream", "dials_total", "Connections dialled successfully.", "upstream")
	dialFail := d.new("upstream", "dial_failures_total", "Failed dials, including timeouts.", "upstream")
	reqs := d.new("upstream", "requests_total", "Requests sent, by whether their connection was reused.", "upstream", "conn")
	cold := d.new("upstream", "cold_dials_total", "Requests that found no idle connection and started a dial.", "upstream")
	inflight := d.new("upstream", "in_flight", "Requests sent and not finished.", "upstream")
	fails := d.new("upstream", "failures_total", "Failed attempts: dial, timeout, connection or 5xx.", "upstream")
	retries := d.new("upstream", "retries_total", "Requests retried on another upstream after failing here.", "upstream")
	idle := d.new("upstream", "idle_conns", "Idle pooled connections.", "upstream")
	open := d.new("upstream", "open_conns", "Open connections, idle and in use.", "upstream")
	closed := d.new("upstream", "peer_closed_total", "Pooled connections found closed by the far side.", "upstream")
	ka := d.new("upstream", "keepalives_total", "Keep-alive requests sent.", "upstream")
	probes := d.new("upstream", "probes_total", "Active health probes sent.", "upstream")
	return &snapshotCollector{descs: d.all, collect: func() []metric {
		var ms []metric
		for _, u := range t.Stats().Upstreams {
			ms = append(ms,
				gauge(healthy, boolValue(u.Healthy), u.URL),
				counter(dials, u.Dials, u.URL),
				counter(dialFail, u.DialFailures, u.URL),
				counter(reqs, u.Reused, u.URL, "reused"),
				counter(reqs, u.New, u.URL, "new"),
				counter(cold, u.ColdDials, u.URL),
				gauge(inflight, float64(u.InFlight), u.URL),
				counter(fails, u.Failures, u.URL),
				counter(retries, u.Retries, u.URL),
				gauge(idle, float64(u.Idle), u.URL),
				gauge(open, float64(u.Open), u.URL),
				counter(closed, u.PeerClosed, u.URL),
				counter(ka, u.KeepAlives, u.URL),
				counter(probes, u.Probes, u.URL),
			)
		}
		return ms
	}}
}

// Router returns a collector of rt's counters and group states:
// onioncdn_router_redirects_total, _sticky_hits_total, _sticky_moved_total,
// _cookies_issued_total, _sticky_entries, _no_healthy_total,
// _bad_requests_total, _reports_total{outcome}, and per group
// _group_healthy, _group_score, _group_active, _group_bytes_per_second,
// _group_hit_ratio and _group_redirects_total. A router whose
// configuration is invalid exports nothing.
func Router(rt interface{ Stats() (route.Stats, error) }) prometheus.Collector {
	d := &descs{}
	redirects := d.new("router", "redirects_total", "Requests redirected to a group.")
	stickyHits := d.new("router", "sticky_hits_total", "Redirects that followed a sticky cookie.")
	moved := d.new("router", "sticky_moved_total", "Sticky clients moved because their group was no longer a candidate.")
	cookies := d.new("router", "cookies_issued_total", "Sticky cookies set.")
	entries := d.new("router", "sticky_entries", "Sticky mappings held.")
	noHealthy := d.new("router", "no_healthy_total", "Requests that found no healthy group.")
	bad := d.new("router", "bad_requests_total", "Requests answered 400 or 414.")
	reports := d.new("router", "reports_total", "Load reports received, by outcome.", "outcome")
	gHealthy := d.new("router", "group_healthy", "1 if the group is a routing candidate.", "group")
	gScore := d.new("router", "group_score", "The group's load score (lower is better).", "group")
	gActive := d.new("router", "group_active", "Requests in flight reported by the group's edges.", "group")
	gBps := d.new("router", "group_bytes_per_second", "Response bytes per second reported by the group's edges.", "group")
	gHit := d.new("router", "group_hit_ratio", "Mean cache hit ratio reported by the group's edges.", "group")
	gRedirects := d.new("router", "group_redirects_total", "Clients sent to the group.", "group")
	return &snapshotCollector{descs: d.all, collect: func() []metric {
		s, err := rt.Stats()
		if err != nil {
			return nil
		}
		r := s.Reports
		ms := []metric{
			counter(redirects, s.Redirects),
			counter(stickyHits, s.StickyHits),
			counter(moved, s.StickyMoved),
			counter(cookies, s.CookiesIssued),
			gauge(entries, float64(s.StickyEntries)),
			counter(noHealthy, s.NoHealthy),
			counter(bad, s.BadRequests),
			counter(reports, r.Accepted, "accepted"),
			counter(reports, r.Unsigned, "unsigned"),
			counter(reports, r.BadSignature, "bad_signature"),
			counter(reports, r.UnknownEdge, "unknown_edge"),
			counter(reports, r.Stale, "stale"),
			counter(reports, r.Replayed, "replayed"),
			counter(reports, r.Malformed, "malformed"),
			counter(reports, r.Oversized, "oversized"),
			counter(reports, r.BadMethod, "bad_method"),
			counter(reports, r.RateLimited, "rate_limited"),
		}
		for _, g := range s.Groups {
			ms = append(ms,
				gauge(gHealthy, boolValue(g.Healthy), g.ID),
				gauge(gScore, g.Score, g.ID),
				gauge(gActive, float64(g.Load.Active), g.ID),
				gauge(gBps, g.Load.BytesPerSecond, g.ID),
				gauge(gHit, g.Load.HitRatio, g.ID),
				counter(gRedirects, g.Redirects, g.ID),
			)
		}
		return ms
	}}
}

// Watchdog returns a collector of an onion listener's watchdog counters,
// labelled tier=tier: onioncdn_watchdog_probes_total,
// _probe_failures_total, _republishes_total and _republish_errors_total.
func Watchdog(tier string, l interface{ WatchdogStats() onion.WatchdogStats }) prometheus.Collector {
	d := &descs{tier: tier}
	probes := d.new("watchdog", "probes_total", "Probes of the shared onion address.")
	fails := d.new("watchdog", "probe_failures_total", "Probes that failed.")
	rep := d.new("watchdog", "republishes_total", "Re-publications started by the watchdog.")
	repErr := d.new("watchdog", "republish_errors_total", "Re-publications that failed.")
	return &snapshotCollector{descs: d.all, collect: func() []metric {
		s := l.WatchdogStats()
		return []metric{
			counter(probes, s.Probes), counter(fails, s.ProbeFailures),
			counter(rep, s.Republishes), counter(repErr, s.RepublishErrs),
		}
	}}
}

// Prefetch returns a collector of an HLS prefetcher's counters, labelled
// tier=tier: onioncdn_prefetch_scheduled_total, _stored_total, _hits_total,
// _failed_total, _dropped_total, _idle_total, _limited_total and
// onioncdn_prefetch_scheduled_by_reason_total{reason} (start_up,
// headroom, hint: the parts of scheduled_total with a reason other than a
// viewer's lookahead).
func Prefetch(tier string, p interface{ Stats() hls.PrefetchStats }) prometheus.Collector {
	d := &descs{tier: tier}
	sched := d.new("prefetch", "scheduled_total", "Prefetches queued.")
	stored := d.new("prefetch", "stored_total", "Prefetches that stored their object.")
	hits := d.new("prefetch", "hits_total", "Client requests served from a prefetched object (once per object).")
	failed := d.new("prefetch", "failed_total", "Prefetches that failed.")
	dropped := d.new("prefetch", "dropped_total", "Prefetches dropped because the queue was full.")
	idle := d.new("prefetch", "idle_total", "Prefetches skipped because nobody watched the rendition any more.")
	limited := d.new("prefetch", "limited_total", "Prefetches refused by the per-session bound.")
	why := d.new("prefetch", "scheduled_by_reason_total", "Prefetches queued for a master playlist request (start_up), the next variant up (headroom) or a player's announced next object (hint).", "reason")
	return &snapshotCollector{descs: d.all, collect: func() []metric {
		s := p.Stats()
		return []metric{
			counter(sched, s.Scheduled), counter(stored, s.Prefetched), counter(hits, s.Hits),
			counter(failed, s.Failed), counter(dropped, s.Dropped), counter(idle, s.Idle),
			counter(limited, s.Limited), counter(why, s.Started, "start_up"), counter(why, s.Headroom, "headroom"),
			counter(why, s.Hinted, "hint"),
		}
	}}
}

// Integrity returns a collector of a verifying transport's counters,
// labelled tier=tier: onioncdn_integrity_verified_total (responses verified
// through to the end of their body) and onioncdn_integrity_rejected_total
// by check (no_signature, malformed, bad_signature, coverage, expired,
// validator, digest, length, too_large).
func Integrity(tier string, t interface{ Stats() integrity.Stats }) prometheus.Collector {
	d := &descs{tier: tier}
	ok := d.new("integrity", "verified_total", "Upstream responses verified through to the end of their body.")
	bad := d.new("integrity", "rejected_total", "Upstream responses rejected, by the check that failed.", "check")
	return &snapshotCollector{descs: d.all, collect: func() []metric {
		s := t.Stats()
		return []metric{
			counter(ok, s.Verified),
			counter(bad, s.NoSignature, "no_signature"),
			counter(bad, s.Malformed, "malformed"),
			counter(bad, s.BadSignature, "bad_signature"),
			counter(bad, s.Coverage, "coverage"),
			counter(bad, s.Expired, "expired"),
			counter(bad, s.Validator, "validator"),
			counter(bad, s.Digest, "digest"),
			counter(bad, s.Length, "length"),
			counter(bad, s.TooLarge, "too_large"),
		}
	}}
}

// Limit returns a collector of a tier's client limiter (package limit),
// labelled tier=tier: onioncdn_limit_rejected_total{reason} (rate,
// concurrency, bytes, header_bytes, header_fields, uri, body, overload),
// _shed_total (upstream work refused under overload), _closed_total
// (connections of abusive clients closed), _abusive_total, _evicted_total,
// and the gauges _clients (clients tracked: circuits at an onion edge),
// _in_flight and _upstream_in_flight.
func Limit(tier string, l interface{ Stats() limit.Stats }) prometheus.Collector {
	d := &descs{tier: tier}
	rej := d.new("limit", "rejected_total", "Requests refused, by reason.", "reason")
	shed := d.new("limit", "shed_total", "Upstream work refused because the tier was overloaded.")
	closed := d.new("limit", "closed_total", "Refusals that closed the connection of an abusive client.")
	abusive := d.new("limit", "abusive_total", "Times a client became abusive.")
	evicted := d.new("limit", "evicted_total", "Clients forgotten to stay within the tracking bound.")
	clients := d.new("limit", "clients", "Clients tracked (Tor circuits at an onion edge).")
	inflight := d.new("limit", "in_flight", "Requests in progress.")
	up := d.new("limit", "upstream_in_flight", "Requests doing upstream work.")
	return &snapshotCollector{descs: d.all, collect: func() []metric {
		s := l.Stats()
		ms := make([]metric, 0, len(s.Rejected)+7)
		for _, r := range limitReasons {
			ms = append(ms, counter(rej, s.Rejected[r], string(r)))
		}
		return append(ms,
			counter(shed, s.Shed), counter(closed, s.Closed), counter(abusive, s.Abusive), counter(evicted, s.Evicted),
			gauge(clients, float64(s.Keys)), gauge(inflight, float64(s.InFlight)), gauge(up, float64(s.Upstream)))
	}}
}

// limitReasons is the fixed label set of onioncdn_limit_rejected_total.
var limitReasons = [...]limit.Reason{limit.RejectRate, limit.RejectConcurrency, limit.RejectBytes,
	limit.RejectHeaderBytes, limit.RejectHeaderFields, limit.RejectURI, limit.RejectBody, limit.RejectOverload}

// Balance returns a collector of a group publisher's state and counters
// (package onion/balance), labelled tier=tier: the gauges
// onioncdn_balance_backends, _backends_up, _backends_reached,
// _intro_points, _descriptor_variants, _active and
// _last_upload_timestamp_seconds; the counters _fetches_total,
// _fetch_errors_total, _rejected_descriptors_total{cause}, _probes_total,
// _probe_failures_total, _upload_rounds_total, _uploads_total,
// _upload_errors_total, _uploads_rejected_total (tor's refusals: alert if
// it grows), _observations_total, _takeovers_total and _pow_dropped_total.
func Balance(tier string, p interface{ Stats() balance.Stats }) prometheus.Collector {
	d := &descs{tier: tier}
	g := func(name, help string) *prometheus.Desc { return d.new("balance", name, help) }
	backends := g("backends", "Backends configured.")
	up := g("backends_up", "Backends whose probes succeed.")
	reached := g("backends_reached", "Backends listed in at least one published descriptor.")
	intro := g("intro_points", "Introduction points in the published descriptors of the current period.")
	variants := g("descriptor_variants", "Distinct descriptors published per period.")
	active := g("active", "1 if this publisher uploads (a primary, or a standby that took over).")
	last := g("last_upload_timestamp_seconds", "End of the last upload round with a success, Unix time.")
	fetches := g("fetches_total", "Backend descriptors fetched and accepted.")
	fetchErr := g("fetch_errors_total", "Backend descriptor fetches that failed.")
	rejected := d.new("balance", "rejected_descriptors_total", "Backend descriptors skipped, by cause.", "cause")
	probes := g("probes_total", "Backend probes.")
	probeFail := g("probe_failures_total", "Backend probes that failed.")
	rounds := g("upload_rounds_total", "Upload rounds started.")
	uploads := g("uploads_total", "Descriptors accepted by an HSDir.")
	upErr := g("upload_errors_total", "Uploads that failed without a verdict.")
	upRej := g("uploads_rejected_total", "Descriptors refused by tor or an HSDir.")
	obs := g("observations_total", "Fetches of the group's own descriptor.")
	takeovers := g("takeovers_total", "Times a standby started uploading.")
	pow := g("pow_dropped_total", "Backend descriptors whose proof-of-work parameters could not be carried.")
	return &snapshotCollector{descs: d.all, collect: func() []metric {
		s := p.Stats()
		var lastUpload float64
		if !s.LastUpload.IsZero() {
			lastUpload = float64(s.LastUpload.UnixNano()) / 1e9
		}
		r := s.Rejected
		return []metric{
			gauge(backends, float64(s.BackendsKnown)), gauge(up, float64(s.BackendsUp)), gauge(reached, float64(s.Reached)),
			gauge(intro, float64(s.IntroPoints)), gauge(variants, float64(s.Variants)), gauge(active, boolValue(s.Active)),
			gauge(last, lastUpload),
			counter(fetches, s.Fetches), counter(fetchErr, s.FetchErrors),
			counter(rejected, r.Malformed, "malformed"), counter(rejected, r.Expired, "expired"),
			counter(rejected, r.WrongPeriod, "wrong_period"), counter(rejected, r.WrongKey, "wrong_key"),
			counter(rejected, r.BadSignature, "bad_signature"),
			counter(probes, s.Probes), counter(probeFail, s.ProbeFailures), counter(rounds, s.UploadRounds),
			counter(uploads, s.Uploads), counter(upErr, s.UploadErrors), counter(upRej, s.UploadRejected),
			counter(obs, s.Observations), counter(takeovers, s.Takeovers), counter(pow, s.PoWDropped),
		}
	}}
}

// DeliveryBuckets are the histogram buckets of [Delivery], in seconds:
// from a loopback hit (milliseconds) to a cold fetch over two Tor hops.
var DeliveryBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// Delivery holds the delivery-time histograms of one or more tiers:
// onioncdn_delivery_seconds{tier, disposition} (request headers received to
// last byte written, client requests only),
// onioncdn_first_byte_seconds{tier, disposition} (to the first body byte
// handed to the client, cache.Timing.FirstByte) and
// onioncdn_upstream_wait_seconds{tier, disposition} (time spent waiting on
// upstream, for requests that waited at all). Prefetches are not
// deliveries and are left out. Create it with [NewDelivery]; it is a
// [prometheus.Collector] and safe for concurrent use.
type Delivery struct {
	delivery  *prometheus.HistogramVec
	firstByte *prometheus.HistogramVec
	wait      *prometheus.HistogramVec
}

// NewDelivery returns empty delivery histograms.
func NewDelivery() *Delivery {
	return &Delivery{
		delivery: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "delivery_seconds",
			Help:    "Time from request headers received to last byte written, by tier and cache disposition.",
			Buckets: DeliveryBuckets,
		}, []string{"tier", "disposition"}),
		firstByte: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "first_byte_seconds",
			Help:    "Time from request headers received to the first body byte handed to the client, by tier and cache disposition.",
			Buckets: DeliveryBuckets,
		}, []string{"tier", "disposition"}),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "upstream_wait_seconds",
			Help:    "Time a request waited on upstream, by tier and cache disposition.",
			Buckets: DeliveryBuckets,
		}, []string{"tier", "disposition"}),
	}
}

// Describe implements [prometheus.Collector].
func (d *Delivery) Describe(ch chan<- *prometheus.Desc) {
	d.delivery.Describe(ch)
	d.firstByte.Describe(ch)
	d.wait.Describe(ch)
}

// Collect implements [prometheus.Collector].
func (d *Delivery) Collect(ch chan<- prometheus.Metric) {
	d.delivery.Collect(ch)
	d.firstByte.Collect(ch)
	d.wait.Collect(ch)
}

// Observe adds rec, a record of tier's cache, to the histograms.
func (d *Delivery) Observe(tier string, rec cache.Record) {
	(&tierObservers{d: d, tier: tier}).observe(rec)
}

// OnRecord returns a cache.Cache.OnRecord hook that observes tier's
// records; append it to the cache's OnRecord. The hook resolves each
// disposition's histograms once, not per request.
func (d *Delivery) OnRecord(tier string) func(*http.Request, cache.Record) {
	t := &tierObservers{d: d, tier: tier}
	return func(_ *http.Request, rec cache.Record) { t.observe(rec) }
}

// tierObservers caches the histograms of one tier by disposition label
// (a bounded set, see dispositionLabel). A series is created when it is
// first observed, as WithLabelValues would.
type tierObservers struct {
	d                         *Delivery
	tier                      string
	delivery, firstByte, wait sync.Map // disposition label → prometheus.Observer
}

func (t *tierObservers) observe(rec cache.Record) {
	if rec.Prefetch {
		return
	}
	disp := dispositionLabel(rec.Disposition)
	t.get(&t.delivery, t.d.delivery, disp).Observe(rec.Delivery.Seconds())
	if rec.Timing.FirstByte > 0 {
		t.get(&t.firstByte, t.d.firstByte, disp).Observe(rec.Timing.FirstByte.Seconds())
	}
	if rec.Upstream > 0 {
		t.get(&t.wait, t.d.wait, disp).Observe(rec.Upstream.Seconds())
	}
}

func (t *tierObservers) get(m *sync.Map, vec *prometheus.HistogramVec, disp string) prometheus.Observer {
	if o, ok := m.Load(disp); ok {
		return o.(prometheus.Observer)
	}
	o, _ := m.LoadOrStore(disp, vec.WithLabelValues(t.tier, disp))
	return o.(prometheus.Observer)
}

// dispositionLabel maps a disposition to a label value from a fixed set,
// so that label cardinality stays bounded whatever a cache reports.
func dispositionLabel(d cache.Disposition) string {
	switch d {
	case cache.Hit, cache.HitStale, cache.Revalidated, cache.Collapsed, cache.Miss,
		cache.FwdStale, cache.FwdVary, cache.FwdRequest, cache.FwdMethod,
		cache.Uncacheable, cache.OnlyIfCache, cache.Error:
		return string(d)
	}
	return "other"
}

// Handler serves the metrics of g in the Prometheus exposition formats.
// Serve it only on a listener from [ListenLocal].
func Handler(g prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	h := promhttp.HandlerFor(g, promhttp.HandlerOpts{Timeout: 10 * time.Second})
	mux.Handle("GET /metrics", h)
	return mux
}

// Serve serves the metrics of g on http://addr/metrics in the background,
// refusing any address that is not loopback (see [ListenLocal]). Close the
// returned server to stop it.
func Serve(addr string, g prometheus.Gatherer) (io.Closer, error) {
	ln, err := ListenLocal(addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: Handler(g), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return srv, nil
}

// ErrNotLoopback is returned by [ListenLocal] for an address that is not
// a loopback address.
var ErrNotLoopback = errors.New("metrics: listen address is not a loopback address")

// ListenLocal listens on addr for the metrics endpoint, refusing any
// address that is not loopback: an explicit 127.0.0.0/8 or ::1 IP, or
// "localhost". An empty host (":9100"), 0.0.0.0 or a public address
// would publish the CDN's layout and traffic to the network.
func ListenLocal(addr string) (net.Listener, error) {
	if err := CheckLocal(addr); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return ln, nil
}

// CheckLocal reports whether addr ("host:port") names a loopback
// address, as [ListenLocal] requires.
func CheckLocal(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("metrics: listen address %q: %w", addr, err)
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%w: %q (use 127.0.0.1:PORT)", ErrNotLoopback, addr)
	}
	return nil
}
