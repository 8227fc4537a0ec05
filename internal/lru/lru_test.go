package lru

import (
	"slices"
	"testing"
)

func keys[K comparable, V any](l *List[K, V]) []K {
	var ks []K
	for k := range l.All() {
		ks = append(ks, k)
	}
	return ks
}

func TestOrderAndBound(t *testing.T) {
	l := &List[string, int]{Max: 3}
	for i, k := range []string{"a", "b", "c"} {
		l.Put(k, i)
	}
	if got := keys(l); !slices.Equal(got, []string{"c", "b", "a"}) {
		t.Fatalf("order %v", got)
	}
	if v, ok := l.Get("a"); !ok || v != 0 {
		t.Fatal("Get a")
	}
	l.Put("d", 3) // evicts b, the least recently used
	if got := keys(l); !slices.Equal(got, []string{"d", "a", "c"}) {
		t.Fatalf("after eviction %v", got)
	}
	if _, ok := l.Peek("b"); ok {
		t.Fatal("b not evicted")
	}
	l.Peek("c") // no touch
	k, v, ok := l.RemoveOldest()
	if !ok || k != "c" || v != 2 {
		t.Fatalf("RemoveOldest = %v %v %v", k, v, ok)
	}
	if v, ok := l.Remove("a"); !ok || v != 0 || l.Len() != 1 {
		t.Fatalf("Remove a: %v %v, len %d", v, ok, l.Len())
	}
	if _, ok := l.Remove("zz"); ok {
		t.Fatal("removed a missing key")
	}
}

func TestPutOldestAndBackward(t *testing.T) {
	var l List[int, string] // zero value: unbounded
	for i := range 5 {
		l.PutOldest(i, "x") // restore 0 (most recent) … 4 (least)
	}
	l.Put(2, "y") // touched
	var back []int
	for k := range l.Backward() {
		back = append(back, k)
	}
	if !slices.Equal(back, []int{4, 3, 1, 0, 2}) {
		t.Fatalf("backward %v", back)
	}
	if v, _ := l.Peek(2); v != "y" {
		t.Fatal("update lost")
	}
	for range 10 {
		l.RemoveOldest()
	}
	if l.Len() != 0 {
		t.Fatal("not empty")
	}
	if _, _, ok := l.RemoveOldest(); ok {
		t.Fatal("RemoveOldest on empty")
	}
}
