package route

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"html/template"
	"net/url"
	"strings"
)

// Shards maps asset paths to one of several base URLs, typically the
// onions of several edge groups serving the same content. Tor Browser
// opens separate circuits per onion key (not per onion subdomain), so
// spreading a page's assets over several onions loads them in parallel.
//
// The mapping is rendezvous (highest random weight) hashing: each path goes
// to the base with the highest SHA-256(base, path) score. It depends only on
// the set of bases and the path, not on their order or on the process, so
// every edge rendering the page agrees and an asset always maps to the same
// shard (caches stay warm). Adding an (N+1)th base moves only about
// 1/(N+1) of the paths, all to the new base; removing a base moves only
// the paths it held.
//
// The zero value has no bases and returns paths unchanged. Shards is
// immutable and safe for concurrent use.
type Shards struct {
	bases []string
}

// NewShards returns a Shards over the given base URLs, each an absolute
// http or https URL without query or fragment, e.g.
// "http://<56 chars>.onion" or "http://<56 chars>.onion/static". Duplicate
// bases are an error.
func NewShards(bases ...string) (*Shards, error) {
	s := &Shards{bases: make([]string, 0, len(bases))}
	seen := make(map[string]bool, len(bases))
	for _, b := range bases {
		u, err := url.Parse(b)
		if err != nil {
			return nil, fmt.Errorf("route: shard base %q: %w", b, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
			return nil, fmt.Errorf("route: shard base %q: want an absolute http(s) URL without query or fragment", b)
		}
		b = strings.TrimRight(b, "/")
		if seen[b] {
			return nil, fmt.Errorf("route: duplicate shard base %q", b)
		}
		seen[b] = true
		s.bases = append(s.bases, b)
	}
	if len(s.bases) == 0 {
		return nil, errors.New("route: no shard bases")
	}
	return s, nil
}

// Len returns the number of bases.
func (s *Shards) Len() int {
	if s == nil {
		return 0
	}
	return len(s.bases)
}

// Base returns the base URL (without trailing slash) that path maps to, or
// "" if s has no bases.
func (s *Shards) Base(path string) string {
	if s == nil || len(s.bases) == 0 {
		return ""
	}
	best, bestScore := 0, uint64(0)
	for i, b := range s.bases {
		h := sha256.New()
		h.Write([]byte(b))
		h.Write([]byte{0})
		h.Write([]byte(path))
		var sum [sha256.Size]byte
		sc := binary.BigEndian.Uint64(h.Sum(sum[:0]))
		if i == 0 || sc > bestScore || sc == bestScore && b < s.bases[best] {
			best, bestScore = i, sc
		}
	}
	return s.bases[best]
}

// URL returns path (e.g. "/static/app.js", with or without a leading
// slash, optionally with a query) on the base it maps to. The whole string
// is hashed as given. Absolute URLs and scheme-relative ("//host/…") paths,
// and every path when s has no bases, are returned unchanged.
func (s *Shards) URL(path string) string {
	if s == nil || len(s.bases) == 0 || strings.HasPrefix(path, "//") || strings.Contains(strings.SplitN(path, "/", 2)[0], ":") {
		return path
	}
	return s.Base(path) + "/" + strings.TrimPrefix(path, "/")
}

// FuncMap returns template functions for html/template and text/template:
// "shard" maps a path to its URL as [Shards.URL] does:
//
//	<script src="{{shard "/static/app.js"}}"></script>
func (s *Shards) FuncMap() template.FuncMap {
	return template.FuncMap{"shard": s.URL}
}
