package cache

import (
	"sync"
	"testing"
	"time"
)

func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func TestTracker(t *testing.T) {
	var tr tracker
	if !closed(tr.idle()) {
		t.Fatal("zero tracker not idle")
	}
	tr.Add(1)
	idle := tr.idle()
	tr.Add(1) // more work starts while someone waits
	tr.Done()
	if closed(idle) {
		t.Fatal("idle while work is in progress")
	}
	tr.Done()
	if !closed(idle) || !closed(tr.idle()) {
		t.Fatal("not idle after all work is done")
	}
	tr.Add(1)
	if closed(tr.idle()) {
		t.Fatal("idle after new work started")
	}
	tr.Done()
}

// Work may start while Shutdown waits (prefetches do): unlike a
// sync.WaitGroup, the tracker allows that (run with -race).
func TestTrackerConcurrent(t *testing.T) {
	var tr tracker
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				tr.Add(1)
				tr.Done()
			}
		})
	}
	deadline := time.After(10 * time.Second)
	for range 100 {
		select {
		case <-tr.idle():
		case <-deadline:
			t.Fatal("never idle")
		}
	}
	wg.Wait()
	if !closed(tr.idle()) {
		t.Fatal("not idle at the end")
	}
}
