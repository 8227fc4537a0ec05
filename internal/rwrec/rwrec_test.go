package rwrec

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRecords(t *testing.T) {
	var seen int64
	rec := httptest.NewRecorder()
	w := &Writer{ResponseWriter: rec, OnWrite: func(n int64) { seen += n }}
	w.WriteHeader(http.StatusPartialContent)
	io.WriteString(w, "abc")
	if n, err := w.ReadFrom(strings.NewReader("defg")); n != 4 || err != nil {
		t.Fatalf("ReadFrom = %d, %v", n, err)
	}
	if w.Status != 206 || w.Bytes != 7 || seen != 7 || rec.Body.String() != "abcdefg" {
		t.Fatalf("status %d, bytes %d, seen %d, body %q", w.Status, w.Bytes, seen, rec.Body.String())
	}
	w2 := &Writer{ResponseWriter: httptest.NewRecorder()}
	w2.Write([]byte("x"))
	if w2.Status != 200 {
		t.Fatalf("implicit status %d", w2.Status)
	}
	w3 := &Writer{ResponseWriter: httptest.NewRecorder()}
	w3.WriteHeader(http.StatusEarlyHints) // interim: not the final status
	if w3.Status != 0 {
		t.Fatalf("1xx recorded as the status: %d", w3.Status)
	}
}

// TestKeepsSendfile: behind a Writer, net/http still gets the file body
// through its ReadFrom (which uses sendfile on TCP).
func TestKeepsSendfile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	os.WriteFile(path, []byte(strings.Repeat("z", 100000)), 0o600)
	var viaReadFrom bool
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w := &Writer{ResponseWriter: rw}
		f, _ := os.Open(path)
		defer f.Close()
		_, viaReadFrom = io.Writer(w).(io.ReaderFrom)
		io.Copy(w, f)
		if w.Bytes != 100000 {
			t.Errorf("recorded %d bytes", w.Bytes)
		}
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(b) != 100000 || !viaReadFrom {
		t.Fatalf("%d bytes, ReadFrom kept %v", len(b), viaReadFrom)
	}
	if c := http.NewResponseController(&Writer{ResponseWriter: httptest.NewRecorder()}); c.Flush() != nil {
		t.Fatal("Flush not reachable")
	}
}
