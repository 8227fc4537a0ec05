package limit

import (
	"sync"
	"time"
)

// shards is the number of independently locked parts of a table.
const shards = 32

// strikeDecay is how many strikes a key loses per second.
const strikeDecay = 1.0

// table holds the per-key state, in shards each bounded and ordered by
// last use (most recent first).
type table struct {
	shards [shards]shard
}

type shard struct {
	mu      sync.Mutex
	m       map[string]*entry
	head    *entry // most recently used
	tail    *entry
	max     int
	evicted uint64
}

// entry is one key's state. Guarded by its shard's mutex.
type entry struct {
	key        string
	prev, next *entry
	last       time.Time // of the last refill
	tokens     float64   // request tokens
	bytes      float64   // byte tokens; negative: owed
	strikes    float64
	inFlight   int
	abusive    bool
}

func (t *table) init(maxKeys int) {
	per := 1
	if maxKeys > shards {
		per = (maxKeys + shards - 1) / shards
	}
	for i := range t.shards {
		t.shards[i].m = make(map[string]*entry)
		t.shards[i].max = per
	}
}

func (t *table) shard(key string) *shard {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return &t.shards[h%shards]
}

func (t *table) stats() (keys int, evicted uint64) {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		keys += len(s.m)
		evicted += s.evicted
		s.mu.Unlock()
	}
	return keys, evicted
}

// refill brings e's buckets and strikes to now.
func (l *Limiter) refill(e *entry, now time.Time) {
	dt := now.Sub(e.last).Seconds()
	if dt <= 0 {
		return
	}
	e.last = now
	if r := l.rate(); r > 0 {
		e.tokens = min(e.tokens+dt*r, float64(intOr(l.Burst, DefaultBurst)))
	}
	if r := l.bytesRate(); r > 0 {
		e.bytes = min(e.bytes+dt*r, l.bytesBurst())
	}
	e.strikes = max(e.strikes-dt*strikeDecay, 0)
	if e.strikes == 0 {
		e.abusive = false
	}
}

// admit charges one request to key. It returns the key's entry, or the
// reason the request is refused with how long the client should wait and
// whether the key is abusive.
func (l *Limiter) admit(key string) (e *entry, reason Reason, wait time.Duration, abusive bool) {
	now := l.now()
	s := l.keys.shard(key)
	s.mu.Lock()
	e = s.m[key]
	if e == nil {
		e = &entry{key: key, last: now, tokens: float64(intOr(l.Burst, DefaultBurst)), bytes: l.bytesBurst()}
		s.m[key] = e
		s.pushFront(e)
		for len(s.m) > s.max {
			old := s.tail
			s.unlink(old)
			delete(s.m, old.key) // requests in progress keep the detached entry
			s.evicted++
		}
	} else {
		s.moveFront(e)
		l.refill(e, now)
	}
	switch {
	case l.MaxConcurrent >= 0 && e.inFlight >= intOr(l.MaxConcurrent, DefaultMaxConcurrent):
		reason, wait = RejectConcurrency, time.Second
	case l.rate() > 0 && e.tokens < 1:
		reason, wait = RejectRate, time.Duration((1-e.tokens)/l.rate()*float64(time.Second))
	case l.bytesRate() > 0 && e.bytes < 0:
		reason, wait = RejectBytes, time.Duration(-e.bytes/l.bytesRate()*float64(time.Second))
	}
	if reason == "" {
		if l.rate() > 0 {
			e.tokens--
		}
		e.inFlight++
		s.mu.Unlock()
		return e, "", 0, false
	}
	became := false
	if strikes := intOr(l.Strikes, DefaultStrikes); strikes > 0 {
		e.strikes++
		if !e.abusive && e.strikes > float64(strikes) {
			e.abusive, became = true, true
		}
	}
	abusive = e.abusive
	s.mu.Unlock()
	if became {
		l.abusive.Add(1)
		if l.OnAbuse != nil {
			l.OnAbuse(key)
		}
	}
	return nil, reason, max(wait, time.Second), abusive
}

// charge takes n bytes written for e from its byte bucket; with done set
// it also ends one of e's requests.
func (t *table) charge(e *entry, n int64, done bool) {
	s := t.shard(e.key)
	s.mu.Lock()
	e.bytes -= float64(n)
	if done {
		e.inFlight--
	}
	s.mu.Unlock()
}

func (s *shard) pushFront(e *entry) {
	e.prev, e.next = nil, s.head
	if s.head != nil {
		s.head.prev = e
	}
	s.head = e
	if s.tail == nil {
		s.tail = e
	}
}

func (s *shard) unlink(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		s.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		s.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (s *shard) moveFront(e *entry) {
	if s.head == e {
		return
	}
	s.unlink(e)
	s.pushFront(e)
}
