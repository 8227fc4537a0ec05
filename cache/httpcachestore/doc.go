// Package httpcachestore keeps the responses of
// github.com/gregjones/httpcache in a [cache.Store], so that Go programs
// that use httpcache as their client-side HTTP cache can store it in this
// module's stores: the disk store in
// github.com/onioncdn/onioncdn/cache/diskstore gives them a disk cache
// with a size bound, crash-safe writes (an entry is complete or absent)
// and errors that are reported, where httpcache's own diskcache grows
// without bound and ignores write errors.
//
// # Overview
//
// [Cache] implements httpcache.Cache on any [cache.Store]. httpcache
// hands it whole responses as bytes (its wire format); Cache stores them
// as the body of a store object under the key httpcache chose, prefixed
// and marked so that entries of a [cache.Cache] sharing the store are
// never mistaken for them. Store errors make Get report a miss and Set
// store nothing; they are counted in [Stats] and logged.
//
// This package only changes where httpcache keeps its bytes. httpcache
// remains a private cache (it ignores private, s-maxage and Authorization,
// and holds whole responses in memory): use it for one client, never as a
// cache shared between users, which is what [cache.Cache] is for.
//
// # Usage
//
//	s, err := diskstore.Open(dir, diskstore.Options{MaxBytes: 1 << 30})
//	if err != nil {
//		return err
//	}
//	defer s.Close()
//	client := httpcache.NewTransport(&httpcachestore.Cache{Store: s}).Client()
//
// # Security
//
// Responses are stored as httpcache gives them, headers included, in the
// clear; with the disk store they are as private as its directory (see
// diskstore). Keys are URLs: the disk store hashes them, and this package
// never logs them.
package httpcachestore
