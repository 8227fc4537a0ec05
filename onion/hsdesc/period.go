package hsdesc

import (
	"crypto/sha3"
	"encoding/binary"
	"time"
)

// Real-network schedule: a time period lasts a day (consensus parameter
// hsdir-interval, 1440 minutes) and starts at 12:00 UTC, twelve one-hour
// voting rounds after the shared random value changes at 00:00.
const (
	DefaultPeriodLength   = 24 * time.Hour
	DefaultRotationOffset = 12 * time.Hour
)

// Period is the time-period schedule of a Tor network (rend-spec-v3
// [TIME-PERIODS]). The zero value is the real network's schedule.
//
// Time periods are counted in whole minutes since the Unix epoch, shifted
// back by the rotation offset; tor takes "now" from its consensus's
// valid-after time, not from the clock.
type Period struct {
	// Length of a time period, in whole minutes. If zero,
	// DefaultPeriodLength. On a TestingTorNetwork tor uses the length of a
	// shared-random protocol run instead: 24 voting intervals.
	Length time.Duration
	// RotationOffset is the length of a shared-random phase, 12 voting
	// intervals. If zero, DefaultRotationOffset.
	RotationOffset time.Duration
}

// NetworkPeriod returns the schedule tor uses for a consensus with the
// given voting interval (fresh-until − valid-after): on a
// TestingTorNetwork, periods of 24 voting intervals; otherwise
// hsdirInterval minutes (the consensus parameter "hsdir-interval"; if zero,
// 1440). The rotation offset is 12 voting intervals in both cases.
func NetworkPeriod(votingInterval time.Duration, testing bool, hsdirInterval int) Period {
	p := Period{RotationOffset: 12 * votingInterval}
	switch {
	case testing:
		p.Length = 24 * votingInterval
	case hsdirInterval > 0:
		p.Length = time.Duration(hsdirInterval) * time.Minute
	default:
		p.Length = DefaultPeriodLength
	}
	return p
}

func (p Period) minutes() uint64 {
	if p.Length <= 0 {
		return uint64(DefaultPeriodLength / time.Minute)
	}
	return uint64(p.Length / time.Minute)
}

func (p Period) offsetMinutes() uint64 {
	if p.RotationOffset <= 0 {
		return uint64(DefaultRotationOffset / time.Minute)
	}
	return uint64(p.RotationOffset / time.Minute)
}

// Num returns the number of the time period t falls in (tor's
// hs_get_time_period_num; pass the consensus valid-after time as t).
func (p Period) Num(t time.Time) uint64 {
	m := uint64(t.Unix()) / 60
	off := p.offsetMinutes()
	if m <= off {
		return 0
	}
	return (m - off) / p.minutes()
}

// Start returns the time period num starts (tor's
// hs_get_start_time_of_next_time_period for num-1).
func (p Period) Start(num uint64) time.Time {
	return time.Unix(int64(num*p.minutes()*60+p.offsetMinutes()*60), 0).UTC()
}

// DisasterSRV is the shared random value tor uses for a time period when
// the consensus has none: SHA3-256("shared-random-disaster" |
// INT_8(period length in minutes) | INT_8(period)).
func DisasterSRV(period uint64, p Period) []byte {
	h := sha3.New256()
	h.Write([]byte("shared-random-disaster"))
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], p.minutes())
	binary.BigEndian.PutUint64(b[8:], period)
	h.Write(b[:])
	return h.Sum(nil)
}
