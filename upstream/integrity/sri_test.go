package integrity

import (
	"bytes"
	"html"
	"html/template"
	"os/exec"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// The example of the W3C Subresource Integrity specification (§3.2).
func TestSRISpecExample(t *testing.T) {
	const want = "sha384-H8BRh8j48O9oYatfu5AZzq6A9RINhZO5H16dQZngK7T62em8MUt1FLm52t+eX6xO"
	if got := SRI([]byte("alert('Hello, world.');")); got != want {
		t.Errorf("SRI = %s, want %s", got, want)
	}
}

// Compare with openssl, an independent implementation, when it is there.
func TestSRIMatchesOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed; TestSRISpecExample covers the format")
	}
	content := bytes.Repeat([]byte("body{color:red}\n"), 1000)
	cmd := exec.Command("sh", "-c", "openssl dgst -sha384 -binary | openssl base64 -A")
	cmd.Stdin = bytes.NewReader(content)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := SRI(content), "sha384-"+strings.TrimSpace(string(out)); got != want {
		t.Errorf("SRI = %s, openssl says %s", got, want)
	}
}

func TestAssets(t *testing.T) {
	fsys := fstest.MapFS{
		"js/app.js":    {Data: []byte("alert('Hello, world.');"), ModTime: time.Unix(1, 0)},
		"css/site.css": {Data: []byte("p{}"), ModTime: time.Unix(1, 0)},
	}
	a := &Assets{FS: fsys}
	got, err := a.Integrity("/js/app.js")
	if err != nil || got != SRI(fsys["js/app.js"].Data) {
		t.Fatalf("Integrity = %q, %v", got, err)
	}
	// A changed file gets a new value, not the cached one.
	fsys["js/app.js"] = &fstest.MapFile{Data: []byte("alert(2);"), ModTime: time.Unix(2, 0)}
	if got, _ := a.Integrity("js/app.js"); got != SRI([]byte("alert(2);")) {
		t.Errorf("stale Integrity after change: %s", got)
	}
	for _, bad := range []string{"missing.js", "../etc/passwd", "js", ""} {
		if _, err := a.Integrity(bad); err == nil {
			t.Errorf("Integrity(%q) = nil error", bad)
		}
	}
	tmpl := template.Must(template.New("p").Funcs(a.FuncMap()).Parse(
		`<link rel="stylesheet" href="/css/site.css" integrity="{{integrity "/css/site.css"}}" crossorigin="anonymous">`))
	var b strings.Builder
	if err := tmpl.Execute(&b, nil); err != nil {
		t.Fatal(err)
	}
	// html/template writes "+" as "&#43;" in attributes; browsers decode it.
	if want := `integrity="` + SRI([]byte("p{}")) + `"`; !strings.Contains(html.UnescapeString(b.String()), want) {
		t.Errorf("template output %s lacks %s", b.String(), want)
	}
	bad := template.Must(template.New("p").Funcs(a.FuncMap()).Parse(`{{integrity "/nope.js"}}`))
	if err := bad.Execute(&b, nil); err == nil {
		t.Error("template with a missing asset executed without error")
	}
}
