package diskstore_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/onioncdn/onioncdn/cache"
	"github.com/onioncdn/onioncdn/cache/diskstore"
)

// The crash and disk-full tests re-execute the test binary as a child
// process; TestMain runs the child's part when these variables are set.
const (
	envChild = "DISKSTORE_TEST_CHILD"
	envDir   = "DISKSTORE_TEST_DIR"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(envChild); mode != "" {
		err := child(mode, os.Getenv(envDir))
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const crashKey = "GET https://example.onion/video/seg1.ts?token=secret"

func startChild(t *testing.T, mode, dir string) (*exec.Cmd, *bufio.Reader, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"="+mode, envDir+"="+dir)
	stderr := new(bytes.Buffer)
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd, bufio.NewReader(out), stderr
}

func child(mode, dir string) error {
	ctx := context.Background()
	s, err := diskstore.Open(dir, diskstore.Options{})
	if err != nil {
		return err
	}
	switch mode {
	case "mid-write", "before-commit":
		w, err := s.Create(ctx, crashKey, metaFor(2, 2<<20))
		if err != nil {
			return err
		}
		body := pattern(2, 2<<20)
		if mode == "mid-write" {
			body = body[:1<<20]
		}
		if _, err := w.Write(body); err != nil {
			return err
		}
		fmt.Println("ready")
		select {} // wait for SIGKILL

	case "commit-loop":
		for i := 1; ; i++ {
			n := 100_000 + i*1000 // written to a file as it grows
			if i%2 == 1 {
				n = 5000 + i // written in memory, then whole at Commit
			}
			w, err := s.Create(ctx, crashKey, metaFor(i, n))
			if err != nil {
				return err
			}
			if _, err := w.Write(pattern(i, n)); err != nil {
				return err
			}
			if err := w.Commit(ctx); err != nil {
				return err
			}
			w.Close()
			fmt.Println(i)
		}

	case "disk-full":
		// Files may not grow past 1 MiB; the kernel then fails writes
		// with EFBIG once SIGXFSZ (which would kill us) is ignored.
		signal.Ignore(syscall.SIGXFSZ)
		lim := syscall.Rlimit{Cur: 1 << 20, Max: 1 << 20}
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
			return err
		}
		w, err := s.Create(ctx, crashKey, metaFor(3, 4<<20))
		if err != nil {
			return err
		}
		var werr error
		body := pattern(3, 4<<20)
		for off := 0; off < len(body) && werr == nil; off += 64 << 10 {
			_, werr = w.Write(body[off : off+64<<10])
		}
		if !errors.Is(werr, syscall.EFBIG) || !strings.HasPrefix(werr.Error(), "diskstore: write: ") {
			return fmt.Errorf("Write past RLIMIT_FSIZE = %v, want a wrapped EFBIG", werr)
		}
		if _, err := w.Write([]byte("x")); err == nil {
			return errors.New("Write after a failed Write succeeded")
		}
		if err := w.Commit(ctx); err == nil {
			return errors.New("Commit after a failed Write succeeded")
		}
		if err := w.Close(); err != nil {
			return err
		}
		// UpdateMeta must copy the 1.5 MiB body: that fails too.
		if err := s.UpdateMeta(ctx, crashKey, metaFor(1, 1536<<10), []byte("new meta")); err == nil || errors.Is(err, cache.ErrNotFound) ||
			!strings.HasPrefix(err.Error(), "diskstore: ") {
			return fmt.Errorf("UpdateMeta past RLIMIT_FSIZE = %v, want a diskstore error", err)
		}
		if err := checkObject(s, crashKey, 1, 1536<<10); err != nil {
			return fmt.Errorf("after the failures: %w", err)
		}
		// Small objects still work.
		w, err = s.Create(ctx, "small", metaFor(4, 1000))
		if err != nil {
			return err
		}
		w.Write(pattern(4, 1000))
		if err := w.Commit(ctx); err != nil {
			return fmt.Errorf("small commit after disk full: %w", err)
		}
		w.Close()
		if st := s.Stats(); st.WriteErrors < 2 {
			return fmt.Errorf("Stats.WriteErrors = %d, want >= 2", st.WriteErrors)
		}
		fmt.Println("ok")
		return s.Close()
	}
	return fmt.Errorf("unknown mode %q", mode)
}

// checkObject checks that key holds write id with an n-byte body.
func checkObject(s cache.Store, key string, id, n int) error {
	o, err := s.Open(context.Background(), key)
	if err != nil {
		return err
	}
	defer o.Close()
	if !bytes.Equal(o.Meta(), metaFor(id, n)) {
		return fmt.Errorf("meta %q, want %q", o.Meta(), metaFor(id, n))
	}
	r, err := o.Reader(0, o.Size())
	if err != nil {
		return err
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if !bytes.Equal(b, pattern(id, n)) {
		return fmt.Errorf("body of %d bytes differs from write %d (%d bytes)", len(b), id, n)
	}
	return nil
}

func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// nonEmptyTemp lists the files in dir/tmp that are not empty: writes in
// progress or left behind (spares, kept ready by a store, are empty).
func nonEmptyTemp(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, n := range tempFiles(t, dir) {
		info, err := os.Stat(filepath.Join(dir, "tmp", n))
		if err == nil && info.Size() > 0 {
			out = append(out, n)
		}
	}
	return out
}

// leftoverTemp lists the temporary files of s beyond its pool of spares:
// files that writes left behind. It waits for the pool to be full first.
func leftoverTemp(t *testing.T, s *diskstore.Store, dir string) []string {
	t.Helper()
	diskstore.WaitSpares(s)
	if names := tempFiles(t, dir); len(names) != diskstore.NumSpares {
		return names
	}
	return nonEmptyTemp(t, dir)
}

// TestCrashMidWrite kills (SIGKILL) a process while it writes a new version
// of an object: after a restart the previous version is served intact and
// the partial file is gone.
func TestCrashMidWrite(t *testing.T) {
	for _, tc := range []struct {
		mode     string
		previous bool
	}{
		{"mid-write", true},
		{"mid-write", false},
		{"before-commit", true},
	} {
		t.Run(fmt.Sprintf("%s_previous_%v", tc.mode, tc.previous), func(t *testing.T) {
			dir := t.TempDir()
			if tc.previous {
				s := open(t, dir, diskstore.Options{})
				put(t, s, crashKey, metaFor(1, 300_000), pattern(1, 300_000))
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			}
			cmd, out, stderr := startChild(t, tc.mode, dir)
			line, err := out.ReadString('\n')
			if line != "ready\n" {
				t.Fatalf("child said %q, %v; stderr: %s", line, err, stderr)
			}
			// The half-written object is on disk, in a temp file.
			if tmp := nonEmptyTemp(t, dir); len(tmp) != 1 {
				t.Fatalf("temp files while the child writes: %q, want one", tmp)
			}
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			cmd.Wait()

			s := open(t, dir, diskstore.Options{})
			if tmp := leftoverTemp(t, s, dir); len(tmp) != 0 {
				t.Errorf("temp files after restart: %q", tmp)
			}
			if tc.previous {
				if err := checkObject(s, crashKey, 1, 300_000); err != nil {
					t.Fatalf("previous version after the crash: %v", err)
				}
			} else {
				wantNotFound(t, s, crashKey)
			}
			if st := s.Stats(); st.CorruptDiscarded != 0 {
				t.Errorf("CorruptDiscarded = %d: a partial write reached the objects directory", st.CorruptDiscarded)
			}
		})
	}
}

// TestCrashDuringCommits kills a process that commits new versions of one
// key in a loop, at an arbitrary moment (possibly inside Commit): after a
// restart the key holds one complete version, at least as new as the last
// one the child reported committed.
func TestCrashDuringCommits(t *testing.T) {
	for round := range 3 {
		t.Run(strconv.Itoa(round), func(t *testing.T) {
			dir := t.TempDir()
			cmd, out, stderr := startChild(t, "commit-loop", dir)
			last := 0
			for last < 5+round*7 {
				line, err := out.ReadString('\n')
				if err != nil {
					t.Fatalf("child: %v; stderr: %s", err, stderr)
				}
				last, _ = strconv.Atoi(strings.TrimSpace(line))
			}
			cmd.Process.Kill()
			cmd.Wait()

			s := open(t, dir, diskstore.Options{})
			o, err := s.Open(t.Context(), crashKey)
			if err != nil {
				t.Fatalf("after the crash: %v", err)
			}
			var id, n int
			fmt.Sscanf(string(o.Meta()), "id=%d n=%d", &id, &n)
			o.Close()
			if id < last {
				t.Fatalf("after the crash the key holds write %d, older than %d which was committed", id, last)
			}
			if err := checkObject(s, crashKey, id, n); err != nil {
				t.Fatal(err)
			}
			if tmp := leftoverTemp(t, s, dir); len(tmp) != 0 {
				t.Errorf("temp files after restart: %q", tmp)
			}
		})
	}
}

// TestDiskFull runs a store in a process whose files may not exceed 1 MiB
// (RLIMIT_FSIZE; works as root, unlike read-only permissions): writes and
// copies past the limit fail with wrapped errors, nothing half-written
// becomes visible, the previous version stays and small objects still work.
func TestDiskFull(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, diskstore.Options{})
	put(t, s, crashKey, metaFor(1, 1536<<10), pattern(1, 1536<<10))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	cmd, out, stderr := startChild(t, "disk-full", dir)
	line, _ := out.ReadString('\n')
	err := cmd.Wait()
	if err != nil || line != "ok\n" {
		t.Fatalf("child: %v, said %q; stderr: %s", err, line, stderr)
	}
	s = open(t, dir, diskstore.Options{})
	if err := checkObject(s, crashKey, 1, 1536<<10); err != nil {
		t.Fatal(err)
	}
	if err := checkObject(s, "small", 4, 1000); err != nil {
		t.Fatal(err)
	}
	if tmp := leftoverTemp(t, s, dir); len(tmp) != 0 {
		t.Errorf("temp files left: %q", tmp)
	}
	if st := s.Stats(); st.CorruptDiscarded != 0 || st.Objects != 2 {
		t.Errorf("after restart: %+v", st)
	}
}
