package hlstest

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

var uriAttr = regexp.MustCompile(`URI="([^"]+)"`)

// WriteDir writes the VOD presentation o serves (its master playlist,
// media playlists and every segment they list) as files under dir, for a
// directory origin such as package origin's. o must not be live. It
// returns the number of files and bytes written.
func (o *Origin) WriteDir(dir string) (files int, size int64, err error) {
	if o.Live {
		return 0, 0, fmt.Errorf("hlstest: write: a live presentation cannot be written to files")
	}
	seen := map[string]bool{}
	queue := []string{"/master.m3u8"}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if seen[p] {
			continue
		}
		seen[p] = true
		rec := httptest.NewRecorder()
		o.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
		if rec.Code != http.StatusOK {
			return files, size, fmt.Errorf("hlstest: write: %s: status %d", p, rec.Code)
		}
		body := rec.Body.Bytes()
		name := filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(p, "/")))
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			return files, size, fmt.Errorf("hlstest: write: %w", err)
		}
		if err := os.WriteFile(name, body, 0o644); err != nil {
			return files, size, fmt.Errorf("hlstest: write: %w", err)
		}
		files++
		size += int64(len(body))
		if !strings.HasSuffix(p, ".m3u8") {
			continue
		}
		sc := bufio.NewScanner(strings.NewReader(string(body)))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			var refs []string
			switch {
			case line == "":
			case strings.HasPrefix(line, "#"):
				for _, m := range uriAttr.FindAllStringSubmatch(line, -1) {
					refs = append(refs, m[1])
				}
			default:
				refs = append(refs, line)
			}
			for _, ref := range refs {
				if strings.Contains(ref, "://") || strings.HasPrefix(ref, "/") || strings.Contains(ref, "?") {
					return files, size, fmt.Errorf("hlstest: write: %s lists %q: only relative URIs are supported", p, ref)
				}
				queue = append(queue, path.Join(path.Dir(p), ref))
			}
		}
	}
	return files, size, nil
}
