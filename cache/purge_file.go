package cache

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// The purge file (Cache.PurgeFile) holds the purge rules that outlive a
// restart: the floors and the rules without an expiry (those whose eager
// removal did not cover them). Written whole (temporary file, fsync,
// rename) after every purge.
type purgeFileData struct {
	Version   int             `json:"version"`
	FloorHard int64           `json:"floor_hard,omitempty"` // Unix nanoseconds
	FloorSoft int64           `json:"floor_soft,omitempty"`
	Rules     []purgeFileRule `json:"rules"`
}

type purgeFileRule struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
	Soft  bool   `json:"soft,omitempty"`
	At    int64  `json:"at"`
}

const (
	purgeFileVersion = 1
	maxPurgeFile     = 64 << 20
)

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// save writes the rules in force to t.file (if set). t.mu must be held.
func (t *purgeTable) save(now time.Time) error {
	if t.file == "" {
		return nil
	}
	d := purgeFileData{Version: purgeFileVersion, Rules: []purgeFileRule{}}
	if s := t.snap.Load(); s != nil {
		d.FloorHard, d.FloorSoft = unixNano(s.floorHard), unixNano(s.floorSoft)
		for _, r := range s.rules {
			if r.expires.IsZero() && !r.dropped.Load() {
				d.Rules = append(d.Rules, purgeFileRule{Kind: r.kind.String(), Value: r.value, Soft: r.soft, At: r.at.UnixNano()})
			}
		}
	}
	b, err := json.Marshal(&d)
	if err != nil {
		return err
	}
	if bytes.Equal(b, t.saved) {
		return nil // a purge that changed nothing a restart needs
	}
	if err := writeFileAtomic(t.file, b); err != nil {
		return err
	}
	t.saved = b
	return nil
}

// writeFileAtomic replaces path with b: a reader (or a restart after a
// crash) sees the old content or the new one, never a mix.
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
		d.Sync() // the rename itself survives a power loss
		d.Close()
	}
	return nil
}

// load reads t.file (if set and present) into the table. Rules keep their
// times; they get new generations.
func (t *purgeTable) load() error {
	if t.file == "" {
		return nil
	}
	f, err := os.Open(t.file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	var d purgeFileData
	dec := json.NewDecoder(&limitedReader{f, maxPurgeFile})
	if err := dec.Decode(&d); err != nil {
		return fmt.Errorf("%s: %w", t.file, err)
	}
	if d.Version != purgeFileVersion {
		return fmt.Errorf("%s: unknown version %d", t.file, d.Version)
	}
	rules := make([]*purgeRule, 0, len(d.Rules))
	for _, fr := range d.Rules {
		k, err := ParsePurgeKind(fr.Kind)
		if err != nil || k == PurgeAll || fr.At <= 0 {
			return fmt.Errorf("%s: invalid rule %+v", t.file, fr)
		}
		r := &purgeRule{kind: k, value: fr.Value, soft: fr.Soft, at: time.Unix(0, fr.At), gen: t.gen.Add(1)}
		rules = append(rules, r)
	}
	rules, fh, fs := t.compact(rules, unixTime(d.FloorHard), unixTime(d.FloorSoft), time.Now())
	t.snap.Store(newPurgeSnap(rules, fh, fs))
	return nil
}

// limitedReader fails (rather than truncating) past n bytes.
type limitedReader struct {
	r interface{ Read([]byte) (int, error) }
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("file too large")
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}
