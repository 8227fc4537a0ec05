package cache

import "testing"

func TestHitRatio(t *testing.T) {
	prev := Stats{Hits: 10, Misses: 10}
	s := Stats{Hits: 16, StaleServed: 1, Collapsed: 1, Misses: 12, Revalidated: 2, Uncacheable: 50, Passed: 50}
	// (6+1+1) served from cache, (2+2) fetched; uncacheable and passed ignored.
	if got := s.HitRatio(prev); got != 8.0/12 {
		t.Fatalf("HitRatio = %v, want %v", got, 8.0/12)
	}
	if got := s.HitRatio(s); got != 0 {
		t.Fatalf("no requests: HitRatio = %v", got)
	}
}
