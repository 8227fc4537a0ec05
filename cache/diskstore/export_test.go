package diskstore

import "time"

// NumSpares is numSpares, for tests.
const NumSpares = numSpares

// WaitSpares waits (up to 5 s) until s holds its full pool of spare
// files. (The pool is filled by Open and each Commit: this tops it up the
// way a Commit would.)
func WaitSpares(s *Store) {
	deadline := time.Now().Add(5 * time.Second)
	for len(s.spares.ch) < numSpares && time.Now().Before(deadline) {
		s.spares.topUp()
	}
}
