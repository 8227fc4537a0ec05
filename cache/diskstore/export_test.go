package diskstore

import "time"

// NumSpares is numSpares, for tests.
const NumSpares = numSpares

// WaitSpares waits (up to 5 s) until s holds its full pool of spare files.
func WaitSpares(s *Store) {
	deadline := time.Now().Add(5 * time.Second)
	for len(s.spares.ch) < numSpares && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
}
