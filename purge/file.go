package purge

import (
	"crypto/rand"
	"os"
	"path/filepath"
)

// numReasons is len(Reasons).
const numReasons = 7

var _ [numReasons]struct{} = [len(reasonNames)]struct{}{}

var reasonNames = [...]Reason{ReasonMalformed, ReasonUnknownKey, ReasonBadSignature, ReasonInvalid, ReasonReplay, ReasonStaleLog, ReasonExpired}

func cryptoRand(b []byte) (int, error) { return rand.Read(b) }

// writeFileAtomic replaces path with b: a reader, or a restart after a
// crash, sees the old content or the new one, never a mix.
func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
