package route

import (
	"fmt"
	"html/template"
	"strings"
	"testing"
)

func testBases(n int) []string {
	b := make([]string, n)
	for i := range b {
		b[i] = fmt.Sprintf("http://shard%d.example.onion", i)
	}
	return b
}

func testPaths(n int) []string {
	p := make([]string, n)
	for i := range p {
		p[i] = fmt.Sprintf("/static/v%d/asset-%d.js", i%7, i)
	}
	return p
}

func TestShardsStable(t *testing.T) {
	s, err := NewShards(testBases(4)...)
	if err != nil {
		t.Fatal(err)
	}
	// Reversed order: same mapping (the mapping depends on the set).
	rev := testBases(4)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	s2, _ := NewShards(rev...)
	counts := map[string]int{}
	paths := testPaths(10000)
	for _, p := range paths {
		u := s.URL(p)
		if u != s.URL(p) || u != s2.URL(p) {
			t.Fatalf("%q maps to %q, then %q / %q", p, u, s.URL(p), s2.URL(p))
		}
		if !strings.HasSuffix(u, p) || s.Base(p)+p != u {
			t.Fatalf("URL(%q) = %q", p, u)
		}
		counts[s.Base(p)]++
	}
	// Balanced within ±20 % of the fair share.
	for b, n := range counts {
		if n < 2000 || n > 3000 {
			t.Errorf("base %s got %d of 10000 paths", b, n)
		}
	}
	if len(counts) != 4 {
		t.Errorf("only %d bases used", len(counts))
	}
}

func TestShardsAddingMovesFewPaths(t *testing.T) {
	for _, n := range []int{1, 2, 4, 8} {
		t.Run(fmt.Sprintf("%d_to_%d", n, n+1), func(t *testing.T) {
			old, _ := NewShards(testBases(n)...)
			all := testBases(n + 1)
			grown, _ := NewShards(all...)
			added := strings.TrimRight(all[n], "/")
			paths := testPaths(10000)
			moved := 0
			for _, p := range paths {
				a, b := old.Base(p), grown.Base(p)
				if a != b {
					moved++
					if b != added {
						t.Fatalf("%q moved from %s to %s, not to the new shard", p, a, b)
					}
				}
			}
			frac := float64(moved) / float64(len(paths))
			t.Logf("moved %.3f (ideal %.3f)", frac, 1/float64(n+1))
			if moved == 0 || frac >= 2/float64(n+1) {
				t.Errorf("moved fraction %.3f, want in (0, %.3f)", frac, 2/float64(n+1))
			}
		})
	}
}

func TestShardsURLForms(t *testing.T) {
	s, _ := NewShards("http://a.example/static/", "https://b.example")
	for _, p := range []string{"/x.js", "x.js", "/x.js?v=3"} {
		u := s.URL(p)
		if !strings.HasPrefix(u, "http://a.example/static/") && !strings.HasPrefix(u, "https://b.example/") {
			t.Errorf("URL(%q) = %q", p, u)
		}
		if strings.Contains(strings.SplitN(u, "://", 2)[1], "//") {
			t.Errorf("URL(%q) = %q has a double slash", p, u)
		}
	}
	for _, p := range []string{"https://elsewhere/x.js", "//elsewhere/x.js", "data:text/plain,x"} {
		if u := s.URL(p); u != p {
			t.Errorf("URL(%q) = %q, want unchanged", p, u)
		}
	}
	var zero Shards
	if zero.URL("/a.js") != "/a.js" || zero.Len() != 0 || zero.Base("/a") != "" {
		t.Error("zero Shards changed a path")
	}
	var nilS *Shards
	if nilS.URL("/a.js") != "/a.js" {
		t.Error("nil Shards changed a path")
	}
}

func TestShardsInvalid(t *testing.T) {
	for _, bases := range [][]string{
		nil,
		{"/relative"},
		{"ftp://x.onion"},
		{"http://x.onion?q=1"},
		{"http://x.onion#f"},
		{"http://user@x.onion"},
		{"http://a.onion", "http://a.onion/"},
		{"http://[::1"},
	} {
		if _, err := NewShards(bases...); err == nil {
			t.Errorf("NewShards(%q) succeeded", bases)
		}
	}
}

func TestShardsTemplate(t *testing.T) {
	s, _ := NewShards(testBases(3)...)
	tmpl := template.Must(template.New("p").Funcs(s.FuncMap()).Parse(
		`<script src="{{shard "/app.js"}}"></script><img src="{{shard .}}">`))
	var b strings.Builder
	if err := tmpl.Execute(&b, "/img/a b.png"); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`<script src="%s"></script><img src="%s">`, s.URL("/app.js"), strings.ReplaceAll(s.URL("/img/a b.png"), " ", "%20"))
	if b.String() != want {
		t.Errorf("template output %q, want %q", b.String(), want)
	}
}

func BenchmarkShardsURL(b *testing.B) {
	for _, n := range []int{2, 4, 8} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			s, _ := NewShards(testBases(n)...)
			b.ReportAllocs()
			for b.Loop() {
				s.URL("/static/v1/asset-12345.js")
			}
		})
	}
}
