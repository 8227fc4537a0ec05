// Package storetest is the conformance suite for [cache.Store]
// implementations.
//
// # Overview
//
// [Run] checks everything the [cache.Store], [cache.Object] and
// [cache.Writer] contracts promise, and a few things this module's stores
// promise on top of them (documented on [Run]): lookups of missing keys,
// round trips of metadata and body (including [cache.Object.Reader] at edge
// offsets), invisibility before Commit, Abort and Close without Commit
// keeping the previous object, replacement, [cache.Store.UpdateMeta] with
// the previous meta as prev, UpdateMeta's compare-and-swap (a stale prev,
// after the object was replaced, updated or deleted, returns
// [cache.ErrNotFound] and leaves the stored object, or its absence, as it
// was), Delete, objects that stay readable after being deleted or replaced,
// reading a body while it is being written, concurrent writers of one key,
// cancelled contexts, multi-megabyte and empty bodies, and a concurrent
// stress run meant for the race detector (in which updates racing Commits
// must never put one write's meta on another's body).
//
// # Usage
//
// Call Run from a test of the store, with a constructor that returns a fresh,
// empty store for each subtest:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) cache.Store {
//			s, err := diskstore.Open(t.TempDir(), diskstore.Options{})
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// Run the suite with -race: several subtests exist only to give the race
// detector something to find.
//
// # Security
//
// The suite stores keys that look like path traversal ("../../etc/passwd",
// absolute paths, NUL bytes) and checks that they are kept apart and read
// back intact; a store that maps keys to file names must not let them escape
// its directory. The package is for tests only and is not imported by
// library code.
package storetest
