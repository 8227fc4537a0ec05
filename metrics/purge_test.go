package metrics_test

import (
	"strings"
	"testing"
	"time"

	"github.com/onioncdn/onioncdn/metrics"
	"github.com/onioncdn/onioncdn/purge"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

type followerStats purge.FollowerStats

func (s followerStats) Stats() purge.FollowerStats { return purge.FollowerStats(s) }

type logStats purge.LogStats

func (s logStats) Stats() purge.LogStats { return purge.LogStats(s) }

func TestPurge(t *testing.T) {
	bounds := []time.Duration{time.Second, 5 * time.Second}
	f := followerStats{
		Seq: 12, Received: 14, Applied: 12, Resyncs: 1, PollErrors: 3, Objects: 40, StaleLookups: 9, Rules: 2, Waiting: 4,
		BehindRetried: 5, BehindServed: 1,
		Rejected: map[purge.Reason]uint64{purge.ReasonBadSignature: 1, purge.ReasonReplay: 1},
		Lag:      purge.Histogram{Bounds: bounds, Counts: []uint64{10, 1, 1}, Sum: 9 * time.Second},
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.Purge("edge", f), metrics.PurgeLog(logStats{Seq: 12, Appended: 12, Rejected: map[purge.Reason]uint64{purge.ReasonExpired: 2}}))
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
	const want = `
# HELP onioncdn_purge_lag_seconds Propagation lag of purge log entries: origin's append to application here.
# TYPE onioncdn_purge_lag_seconds histogram
onioncdn_purge_lag_seconds_bucket{tier="edge",le="1"} 10
onioncdn_purge_lag_seconds_bucket{tier="edge",le="5"} 11
onioncdn_purge_lag_seconds_bucket{tier="edge",le="+Inf"} 12
onioncdn_purge_lag_seconds_sum{tier="edge"} 9
onioncdn_purge_lag_seconds_count{tier="edge"} 12
# HELP onioncdn_purge_rejected_total Purge log entries refused, by reason; a refused entry changes nothing.
# TYPE onioncdn_purge_rejected_total counter
onioncdn_purge_rejected_total{reason="bad_signature",tier="edge"} 1
onioncdn_purge_rejected_total{reason="expired",tier="edge"} 0
onioncdn_purge_rejected_total{reason="invalid",tier="edge"} 0
onioncdn_purge_rejected_total{reason="malformed",tier="edge"} 0
onioncdn_purge_rejected_total{reason="replay",tier="edge"} 1
onioncdn_purge_rejected_total{reason="stale_log",tier="edge"} 0
onioncdn_purge_rejected_total{reason="unknown_key",tier="edge"} 0
# HELP onioncdn_purge_behind_total Responses of a tier above that was behind on the purge log: retried, or served after the retries.
# TYPE onioncdn_purge_behind_total counter
onioncdn_purge_behind_total{outcome="retried",tier="edge"} 5
onioncdn_purge_behind_total{outcome="served",tier="edge"} 1
# HELP onioncdn_purge_objects_total Objects the cache removed for purges (at once, at lookup, or fills not stored).
# TYPE onioncdn_purge_objects_total counter
onioncdn_purge_objects_total{tier="edge"} 40
# HELP onioncdn_purge_sequence Sequence number of the last purge log entry applied.
# TYPE onioncdn_purge_sequence gauge
onioncdn_purge_sequence{tier="edge"} 12
# HELP onioncdn_purge_log_rejected_total Purge requests refused, by reason; a refused request changes nothing.
# TYPE onioncdn_purge_log_rejected_total counter
onioncdn_purge_log_rejected_total{reason="bad_signature"} 0
onioncdn_purge_log_rejected_total{reason="expired"} 2
onioncdn_purge_log_rejected_total{reason="invalid"} 0
onioncdn_purge_log_rejected_total{reason="malformed"} 0
onioncdn_purge_log_rejected_total{reason="replay"} 0
onioncdn_purge_log_rejected_total{reason="stale_log"} 0
onioncdn_purge_log_rejected_total{reason="unknown_key"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"onioncdn_purge_lag_seconds", "onioncdn_purge_rejected_total", "onioncdn_purge_objects_total", "onioncdn_purge_behind_total",
		"onioncdn_purge_sequence", "onioncdn_purge_log_rejected_total"); err != nil {
		t.Fatal(err)
	}
}
