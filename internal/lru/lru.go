// Package lru keeps keys in least-recently-used order, with a map for
// lookup: the one LRU of this module, under the memory and disk stores'
// byte-bounded eviction and the HLS prefetcher's count-bounded indexes.
package lru

import (
	"container/list"
	"iter"
)

// List maps keys to values in least-recently-used order. Its zero value
// is an empty, unbounded list. It is not safe for concurrent use: callers
// hold their own lock.
type List[K comparable, V any] struct {
	// Max, if positive, bounds the number of entries: Put evicts the
	// least recently used ones beyond it. If zero, the caller evicts
	// (RemoveOldest), by whatever measure it keeps.
	Max int

	ll list.List // of *entry, most recently used at the front
	m  map[K]*list.Element
}

type entry[K comparable, V any] struct {
	k K
	v V
}

// Get returns the value of k and marks it most recently used.
func (l *List[K, V]) Get(k K) (V, bool) {
	if e, ok := l.m[k]; ok {
		l.ll.MoveToFront(e)
		return e.Value.(*entry[K, V]).v, true
	}
	var zero V
	return zero, false
}

// Peek returns the value of k without changing its recency.
func (l *List[K, V]) Peek(k K) (V, bool) {
	if e, ok := l.m[k]; ok {
		return e.Value.(*entry[K, V]).v, true
	}
	var zero V
	return zero, false
}

// Put sets k to v and marks it most recently used, evicting beyond Max.
func (l *List[K, V]) Put(k K, v V) {
	l.put(k, v, true)
	for l.Max > 0 && l.ll.Len() > l.Max {
		l.RemoveOldest()
	}
}

// PutOldest sets k to v as the least recently used entry (for restoring
// an order saved earlier, most recent first). Max is not enforced.
func (l *List[K, V]) PutOldest(k K, v V) { l.put(k, v, false) }

func (l *List[K, V]) put(k K, v V, front bool) {
	if e, ok := l.m[k]; ok {
		e.Value.(*entry[K, V]).v = v
		if front {
			l.ll.MoveToFront(e)
		} else {
			l.ll.MoveToBack(e)
		}
		return
	}
	if l.m == nil {
		l.m = make(map[K]*list.Element)
	}
	if front {
		l.m[k] = l.ll.PushFront(&entry[K, V]{k, v})
	} else {
		l.m[k] = l.ll.PushBack(&entry[K, V]{k, v})
	}
}

// Remove deletes k and returns its value.
func (l *List[K, V]) Remove(k K) (V, bool) {
	e, ok := l.m[k]
	if !ok {
		var zero V
		return zero, false
	}
	l.ll.Remove(e)
	delete(l.m, k)
	return e.Value.(*entry[K, V]).v, true
}

// RemoveOldest deletes the least recently used entry and returns it.
func (l *List[K, V]) RemoveOldest() (K, V, bool) {
	e := l.ll.Back()
	if e == nil {
		var k K
		var v V
		return k, v, false
	}
	en := e.Value.(*entry[K, V])
	l.ll.Remove(e)
	delete(l.m, en.k)
	return en.k, en.v, true
}

// Len returns the number of entries.
func (l *List[K, V]) Len() int { return l.ll.Len() }

// All yields the entries from the most to the least recently used,
// without changing their order. The list must not change during the
// iteration.
func (l *List[K, V]) All() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		for e := l.ll.Front(); e != nil; e = e.Next() {
			en := e.Value.(*entry[K, V])
			if !yield(en.k, en.v) {
				return
			}
		}
	}
}

// Backward yields the entries from the least to the most recently used.
// The list must not change during the iteration.
func (l *List[K, V]) Backward() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		for e := l.ll.Back(); e != nil; e = e.Prev() {
			en := e.Value.(*entry[K, V])
			if !yield(en.k, en.v) {
				return
			}
		}
	}
}
