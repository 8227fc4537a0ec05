package hsdesc

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha3"
	"encoding/binary"
	"slices"
	"time"
)

// Consensus parameter defaults (hs_common.h).
const (
	DefaultReplicas    = 2 // hsdir_n_replicas
	DefaultSpreadStore = 4 // hsdir_spread_store
	DefaultSpreadFetch = 3 // hsdir_spread_fetch
)

// srRounds is the number of voting rounds of a shared-random protocol run
// (two phases of 12).
const srRounds = 24

// HSDir is a relay that stores v3 descriptors: it has the HSDir flag,
// supports the HSDir=2 protocol and has an ed25519 identity.
type HSDir struct {
	// Fingerprint is the relay's RSA identity as 40 upper-case hex
	// digits, the form tor's control port takes (HSFETCH/HSPOST SERVER=).
	Fingerprint string
	// Identity is the relay's ed25519 identity (from its microdescriptor).
	Identity ed25519.PublicKey
}

// Ring is the view of one consensus that decides where descriptors go
// (rend-spec-v3 [HASHRING]), computed exactly as tor 0.4.9 does
// (hs_get_responsible_hsdirs and node_set_hsdir_index).
type Ring struct {
	// ValidAfter and VotingInterval (fresh-until − valid-after) of the
	// consensus: tor derives time periods and shared-random phases from
	// them, not from the clock.
	ValidAfter     time.Time
	VotingInterval time.Duration
	// Schedule is the network's time-period schedule (see NetworkPeriod).
	Schedule Period
	// SRVCurrent and SRVPrevious are the consensus's shared random values
	// (32 bytes each), nil if absent; tor then uses DisasterSRV.
	SRVCurrent, SRVPrevious []byte
	// Replicas, SpreadStore and SpreadFetch are the consensus parameters
	// hsdir_n_replicas, hsdir_spread_store and hsdir_spread_fetch. If
	// zero, tor's defaults (2, 4, 3).
	Replicas, SpreadStore, SpreadFetch int
	// HSDirs are the relays eligible as HSDirs.
	HSDirs []HSDir
}

// TimePeriod returns the current time period (by the consensus).
func (r *Ring) TimePeriod() uint64 { return r.Schedule.Num(r.ValidAfter) }

// betweenTPAndSRV reports whether the consensus falls after the start of a
// time period and before the next shared random value (on the real
// network, 12:00–00:00 UTC): tor's hs_in_period_between_tp_and_srv.
func (r *Ring) betweenTPAndSRV() bool {
	vi := int64(r.VotingInterval / time.Second)
	if vi <= 0 {
		vi = 3600
	}
	va := r.ValidAfter.Unix()
	srvStart := va - ((va/vi)%srRounds)*vi
	tpStart := r.Schedule.Start(r.Schedule.Num(time.Unix(srvStart, 0)) + 1).Unix()
	return !(va >= srvStart && va < tpStart)
}

// ServicePeriods returns the time periods of the two descriptors a service
// keeps published, as tor's service does: the first ("current") is stored
// with the first HSDir index, the second ("next") with the second. Clients
// fetch the descriptor of TimePeriod, which is one of the two.
func (r *Ring) ServicePeriods() (first, second uint64) {
	tp := r.TimePeriod()
	if r.betweenTPAndSRV() {
		return tp - 1, tp
	}
	return tp, tp + 1
}

// PeriodsSince returns the time from which ServicePeriods has returned
// what it returns now: the start of the current time period if the
// consensus falls between a period's start and the next shared random
// value, else the start of the current shared-random protocol run. A
// service uploads both descriptors again at that time.
func (r *Ring) PeriodsSince() time.Time {
	if r.betweenTPAndSRV() {
		return r.Schedule.Start(r.TimePeriod())
	}
	vi := int64(r.VotingInterval / time.Second)
	if vi <= 0 {
		vi = 3600
	}
	va := r.ValidAfter.Unix()
	return time.Unix(va-((va/vi)%srRounds)*vi, 0).UTC()
}

func (r *Ring) srv(current bool, tp uint64) []byte {
	v := r.SRVPrevious
	if current {
		v = r.SRVCurrent
	}
	if len(v) == 32 {
		return v
	}
	return DisasterSRV(tp, r.Schedule)
}

// HSDirIndex is SHA3-256("node-idx" | identity | srv | INT_8(period) |
// INT_8(period length in minutes)): a relay's position on the ring.
func HSDirIndex(identity ed25519.PublicKey, srv []byte, period uint64, p Period) []byte {
	h := sha3.New256()
	h.Write([]byte("node-idx"))
	h.Write(identity)
	h.Write(srv)
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], period)
	binary.BigEndian.PutUint64(b[8:], p.minutes())
	h.Write(b[:])
	return h.Sum(nil)
}

// ServiceIndex is SHA3-256("store-at-idx" | blinded | INT_8(replica) |
// INT_8(period length in minutes) | INT_8(period)): where a replica of a
// descriptor lands on the ring.
func ServiceIndex(blinded ed25519.PublicKey, replica int, period uint64, p Period) []byte {
	h := sha3.New256()
	h.Write([]byte("store-at-idx"))
	h.Write(blinded)
	var b [24]byte
	binary.BigEndian.PutUint64(b[:8], uint64(replica))
	binary.BigEndian.PutUint64(b[8:16], p.minutes())
	binary.BigEndian.PutUint64(b[16:], period)
	h.Write(b[:])
	return h.Sum(nil)
}

// Store returns, in tor's order (replica by replica), the HSDirs a service
// uploads the descriptor with blinded key for time period tp to; second
// selects the second HSDir index (the service's "next" descriptor, see
// ServicePeriods). Duplicates across replicas are skipped, as tor does, so
// a small network yields fewer than Replicas × SpreadStore.
func (r *Ring) Store(blinded ed25519.PublicKey, tp uint64, second bool) []HSDir {
	srv, nodeTP := r.slot(second)
	return r.responsible(blinded, tp, srv, nodeTP, or(r.SpreadStore, DefaultSpreadStore))
}

// FetchedFrom returns the HSDirs among Store(blinded, tp, second) that
// clients pick from while tp is their current time period and this
// consensus holds: the first SpreadFetch of each replica. It equals Fetch
// for the descriptor of the current time period.
func (r *Ring) FetchedFrom(blinded ed25519.PublicKey, tp uint64, second bool) []HSDir {
	srv, nodeTP := r.slot(second)
	return r.responsible(blinded, tp, srv, nodeTP, or(r.SpreadFetch, DefaultSpreadFetch))
}

// slot returns the shared random value and time period of the HSDir
// index of the first or second descriptor (tor's node_set_hsdir_index).
func (r *Ring) slot(second bool) ([]byte, uint64) {
	first, sec := r.ServicePeriods()
	if second {
		return r.srv(true, sec), sec
	}
	return r.srv(false, first), first
}

// Fetch returns the HSDirs a client picks from (at random) to fetch the
// descriptor of blinded for the current time period, in tor's order.
func (r *Ring) Fetch(blinded ed25519.PublicKey) []HSDir {
	tp := r.TimePeriod()
	srv := r.srv(r.betweenTPAndSRV(), tp)
	return r.responsible(blinded, tp, srv, tp, or(r.SpreadFetch, DefaultSpreadFetch))
}

func or(v, d int) int {
	if v > 0 {
		return v
	}
	return d
}

type indexed struct {
	idx []byte
	dir HSDir
}

func (r *Ring) responsible(blinded ed25519.PublicKey, tp uint64, srv []byte, nodeTP uint64, spread int) []HSDir {
	nodes := make([]indexed, 0, len(r.HSDirs))
	for _, d := range r.HSDirs {
		nodes = append(nodes, indexed{HSDirIndex(d.Identity, srv, nodeTP, r.Schedule), d})
	}
	if len(nodes) == 0 {
		return nil
	}
	slices.SortFunc(nodes, func(a, b indexed) int { return bytes.Compare(a.idx, b.idx) })
	var out []HSDir
	seen := map[string]bool{}
	for replica := 1; replica <= or(r.Replicas, DefaultReplicas); replica++ {
		key := ServiceIndex(blinded, replica, tp, r.Schedule)
		start, _ := slices.BinarySearchFunc(nodes, key, func(n indexed, k []byte) int { return bytes.Compare(n.idx, k) })
		if start == len(nodes) {
			start = 0
		}
		i, added := start, 0
		for added < spread {
			d := nodes[i].dir
			if !seen[d.Fingerprint] {
				seen[d.Fingerprint] = true
				out = append(out, d)
				added++
			}
			if i++; i == len(nodes) {
				i = 0
			}
			if i == start {
				break
			}
		}
	}
	return out
}
