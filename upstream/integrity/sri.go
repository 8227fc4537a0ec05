package integrity

import (
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"strings"
	"sync"
	"time"
)

// SRI returns the Subresource Integrity value ("sha384-…") of content, for
// the integrity attribute of a <script> or <link> element.
func SRI(content []byte) string {
	sum := sha512.Sum384(content)
	return "sha384-" + base64.StdEncoding.EncodeToString(sum[:])
}

// Assets computes Subresource Integrity values for the files of a site, so
// that pages served from the origin's own onion can load scripts and styles
// from CDN onions that cannot alter them without the browser refusing them.
// Tor Browser users mostly run without JavaScript, so in-page verification
// is out; SRI on <script> and <link> is not.
//
// Values are cached per file and recomputed when the file's size or
// modification time changes. The zero value is not usable: set FS.
// Assets is safe for concurrent use.
type Assets struct {
	// FS holds the assets; names are slash-separated paths within it.
	FS fs.FS

	mu    sync.Mutex
	cache map[string]assetSum
}

type assetSum struct {
	size  int64
	mtime time.Time
	sri   string
}

// Integrity returns the SRI value of the asset name. A leading "/" is
// ignored, so the same path can serve as URL and name.
func (a *Assets) Integrity(name string) (string, error) {
	if a.FS == nil {
		return "", fmt.Errorf("integrity: Assets has no FS")
	}
	name = strings.TrimPrefix(name, "/")
	if !fs.ValidPath(name) {
		return "", fmt.Errorf("integrity: invalid asset path %q", name)
	}
	f, err := a.FS.Open(name)
	if err != nil {
		return "", fmt.Errorf("integrity: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("integrity: %w", err)
	}
	if st.IsDir() {
		return "", fmt.Errorf("integrity: %s is a directory", name)
	}
	a.mu.Lock()
	c, ok := a.cache[name]
	a.mu.Unlock()
	if ok && c.size == st.Size() && c.mtime.Equal(st.ModTime()) {
		return c.sri, nil
	}
	h := sha512.New384()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("integrity: reading %s: %w", name, err)
	}
	sri := "sha384-" + base64.StdEncoding.EncodeToString(h.Sum(nil))
	a.mu.Lock()
	if a.cache == nil {
		a.cache = make(map[string]assetSum)
	}
	a.cache[name] = assetSum{st.Size(), st.ModTime(), sri}
	a.mu.Unlock()
	return sri, nil
}

// FuncMap returns template functions for html/template:
//
//	<script src="http://cdn…onion/app.js" integrity="{{integrity "/app.js"}}" crossorigin="anonymous"></script>
//
// "integrity" returns the SRI value of an asset; a missing asset fails the
// template execution rather than emitting an empty attribute.
func (a *Assets) FuncMap() template.FuncMap {
	return template.FuncMap{"integrity": a.Integrity}
}
