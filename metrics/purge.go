package metrics

import (
	"strings"

	"github.com/onioncdn/onioncdn/purge"
	"github.com/prometheus/client_golang/prometheus"
)

// reasonLabel turns a purge.Reason into a label value (bad-signature →
// bad_signature).
func reasonLabel(r purge.Reason) string { return strings.ReplaceAll(string(r), "-", "_") }

// Purge returns a collector of a tier's purge follower, labelled
// tier=tier: onioncdn_purge_received_total, _applied_total,
// _rejected_total{reason} (malformed, unknown_key, bad_signature, invalid,
// replay, stale_log, expired), _resyncs_total (soft purges of everything
// after missed entries), _poll_errors_total, _sequence (last entry
// applied), _objects_total (objects the cache removed for purges),
// _stale_lookups_total (lookups that found an object a soft purge made
// stale), _rules (purge rules in force), _waiting (tiers below waiting on
// this tier's log), _behind_total{outcome} (responses of a tier above that
// was behind on the log, seen by the follower's Guard: "retried", or
// "served" after the retries) and the histogram _lag_seconds (origin's
// append to application here, by the two machines' clocks).
func Purge(tier string, f interface{ Stats() purge.FollowerStats }) prometheus.Collector {
	d := &descs{tier: tier}
	c := &purgeCollector{f: f}
	c.received = d.new("purge", "received_total", "Purge log entries received from the tier above.")
	c.applied = d.new("purge", "applied_total", "Purge log entries applied to the cache.")
	c.rejected = d.new("purge", "rejected_total", "Purge log entries refused, by reason; a refused entry changes nothing.", "reason")
	c.resyncs = d.new("purge", "resyncs_total", "Soft purges of everything after entries were missed.")
	c.pollErrors = d.new("purge", "poll_errors_total", "Polls of the tier above's purge log that failed.")
	c.seq = d.new("purge", "sequence", "Sequence number of the last purge log entry applied.")
	c.objects = d.new("purge", "objects_total", "Objects the cache removed for purges (at once, at lookup, or fills not stored).")
	c.stale = d.new("purge", "stale_lookups_total", "Lookups that found an object made stale by a soft purge.")
	c.rules = d.new("purge", "rules", "Purge rules in force in the cache.")
	c.waiting = d.new("purge", "waiting", "Tiers below waiting on this tier's purge log.")
	c.behind = d.new("purge", "behind_total", "Responses of a tier above that was behind on the purge log: retried, or served after the retries.", "outcome")
	c.lag = d.new("purge", "lag_seconds", "Propagation lag of purge log entries: origin's append to application here.")
	c.descs = d.all
	return c
}

type purgeCollector struct {
	f                                                interface{ Stats() purge.FollowerStats }
	descs                                            []*prometheus.Desc
	received, applied, rejected, resyncs, pollErrors *prometheus.Desc
	seq, objects, stale, rules, waiting, lag, behind *prometheus.Desc
}

func (c *purgeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *purgeCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.f.Stats()
	ms := []metric{
		counter(c.received, s.Received), counter(c.applied, s.Applied), counter(c.resyncs, s.Resyncs),
		counter(c.pollErrors, s.PollErrors), gauge(c.seq, float64(s.Seq)), counter(c.objects, s.Objects),
		counter(c.stale, s.StaleLookups), gauge(c.rules, float64(s.Rules)), gauge(c.waiting, float64(s.Waiting)),
		counter(c.behind, s.BehindRetried, "retried"), counter(c.behind, s.BehindServed, "served"),
	}
	for _, r := range purge.Reasons {
		ms = append(ms, counter(c.rejected, s.Rejected[r], reasonLabel(r)))
	}
	for _, m := range ms {
		ch <- prometheus.MustNewConstMetric(m.desc, m.typ, m.value, m.label...)
	}
	buckets := make(map[float64]uint64, len(s.Lag.Bounds))
	var cum uint64
	for i, b := range s.Lag.Bounds {
		cum += s.Lag.Counts[i]
		buckets[b.Seconds()] = cum
	}
	total := cum + s.Lag.Counts[len(s.Lag.Bounds)]
	ch <- prometheus.MustNewConstHistogram(c.lag, total, s.Lag.Sum.Seconds(), buckets)
}

// PurgeLog returns a collector of an origin's purge log:
// onioncdn_purge_log_sequence (last entry), onioncdn_purge_log_appended_total,
// onioncdn_purge_log_rejected_total{reason} (purge requests refused:
// malformed, unknown_key, bad_signature, invalid, replay, expired) and
// onioncdn_purge_log_waiting (midtiers waiting on the log).
func PurgeLog(l interface{ Stats() purge.LogStats }) prometheus.Collector {
	d := &descs{}
	seq := d.new("purge_log", "sequence", "Sequence number of the last entry of the purge log.")
	app := d.new("purge_log", "appended_total", "Purges appended to the log.")
	rej := d.new("purge_log", "rejected_total", "Purge requests refused, by reason; a refused request changes nothing.", "reason")
	wait := d.new("purge_log", "waiting", "Followers waiting on the log.")
	return &snapshotCollector{descs: d.all, collect: func() []metric {
		s := l.Stats()
		ms := []metric{gauge(seq, float64(s.Seq)), counter(app, s.Appended), gauge(wait, float64(s.Waiting))}
		for _, r := range purge.Reasons {
			ms = append(ms, counter(rej, s.Rejected[r], reasonLabel(r)))
		}
		return ms
	}}
}
