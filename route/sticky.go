package route

import (
	"crypto/rand"
	"encoding/base64"
	"time"
)

// stickyKeyLen is the size of a sticky cookie's random value in bytes.
const stickyKeyLen = 16

type stickyKey [stickyKeyLen]byte

// stickyStore maps issued cookie values to group indexes. It is bounded
// (oldest entries are evicted first) and every entry expires a fixed time
// after it was issued. All entries share one lifetime, so the issue queue is
// also the expiry queue. It is not safe for concurrent use; the Router
// guards it with its mutex. Values are never logged.
type stickyStore struct {
	m    map[stickyKey]stickyEntry
	q    []stickyQueued // issue order; may hold entries already removed from m
	head int
	seq  uint64
}

type stickyEntry struct {
	group   int
	expires time.Time
	seq     uint64
}

type stickyQueued struct {
	key     stickyKey
	expires time.Time
	seq     uint64
}

// lookup returns the group of a live entry.
func (s *stickyStore) lookup(k stickyKey, now time.Time) (int, bool) {
	e, ok := s.m[k]
	if !ok || !now.Before(e.expires) {
		return 0, false
	}
	return e.group, true
}

// remove forgets k.
func (s *stickyStore) remove(k stickyKey) {
	delete(s.m, k)
}

// issue creates a fresh random value mapped to group, evicting expired
// entries and, if the store holds max entries, the oldest ones.
func (s *stickyStore) issue(group int, now time.Time, ttl time.Duration, max int) stickyKey {
	if s.m == nil {
		s.m = make(map[stickyKey]stickyEntry)
	}
	s.prune(now, max-1)
	var k stickyKey
	for {
		rand.Read(k[:]) // crypto/rand.Read never fails (Go 1.24+)
		if _, dup := s.m[k]; !dup {
			break
		}
	}
	s.seq++
	e := stickyEntry{group: group, expires: now.Add(ttl), seq: s.seq}
	s.m[k] = e
	s.q = append(s.q, stickyQueued{key: k, expires: e.expires, seq: e.seq})
	return k
}

// prune drops expired entries, then the oldest until at most keep remain
// queued.
func (s *stickyStore) prune(now time.Time, keep int) {
	for s.head < len(s.q) {
		q := s.q[s.head]
		if now.Before(q.expires) && len(s.q)-s.head <= keep {
			break
		}
		if e, ok := s.m[q.key]; ok && e.seq == q.seq {
			delete(s.m, q.key)
		}
		s.q[s.head] = stickyQueued{}
		s.head++
	}
	if s.head > 0 && s.head >= len(s.q)/2 {
		n := copy(s.q, s.q[s.head:])
		clear(s.q[n:])
		s.q = s.q[:n]
		s.head = 0
	}
}

func (s *stickyStore) len() int { return len(s.m) }

// encodeSticky and decodeSticky convert between a key and its cookie value
// (unpadded base64url, 22 characters).
func encodeSticky(k stickyKey) string {
	return base64.RawURLEncoding.EncodeToString(k[:])
}

func decodeSticky(v string) (stickyKey, bool) {
	var k stickyKey
	if len(v) != base64.RawURLEncoding.EncodedLen(stickyKeyLen) {
		return k, false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(v)
	if err != nil || len(b) != stickyKeyLen {
		return k, false
	}
	copy(k[:], b)
	return k, true
}
