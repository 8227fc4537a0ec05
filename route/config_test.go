package route

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseConfigExample(t *testing.T) {
	data, err := os.ReadFile("../examples/router/config.example.json")
	if err != nil {
		t.Fatal(err)
	}
	rt, err := ParseConfig(data, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(rt.Groups) != 2 || rt.Groups[0].Weight != 2 || len(rt.Groups[0].Edges) != 2 || rt.StickyCookie != "ocdn" || rt.StaleAfter != 30*time.Second {
		t.Fatalf("parsed %+v", rt)
	}
}

func TestParseConfigErrors(t *testing.T) {
	const key = "BTKULyH51rAbWQ3T4OkzGN3A9ADAOvYBZsh1NPe3m5I="
	const onionAddr = "73p25ie32j74o2scn4obbdjw7r73chqmrbuoqk3fr2d5ss6npxcxjyyd.onion"
	group := `{"id":"g","onion":"` + onionAddr + `","edges":[{"id":"e","public_key":"` + key + `"}]}`
	for _, tc := range []struct {
		name, json, want string
	}{
		{"not_json", `nope`, "invalid character"},
		{"unknown_field", `{"groups":[` + group + `],"colour":"red"}`, "unknown field"},
		{"no_groups", `{"groups":[]}`, "no groups"},
		{"bad_key", `{"groups":[{"id":"g","onion":"` + onionAddr + `","edges":[{"id":"e","public_key":"short"}]}]}`, "public key"},
		{"bad_duration", `{"stale_after":30,"groups":[` + group + `]}`, "durations are strings"},
		{"negative_duration", `{"stale_after":"-1s","groups":[` + group + `]}`, "negative"},
		{"trailing", `{"groups":[` + group + `]} {}`, "trailing"},
		{"negative_weight", `{"groups":[{"id":"g","onion":"` + onionAddr + `","weight":-1,"edges":[]}]}`, "negative weight"},
		{"not_an_onion", `{"groups":[{"id":"g","onion":"not-an-onion","edges":[{"id":"e","public_key":"` + key + `"}]}]}`, "route:"},
		{"too_large", `{"x":"` + strings.Repeat("a", 1<<20) + `"}`, "larger than 1 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.json), false)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "route: ") {
				t.Fatalf("err %v, want %q with the package prefix", err, tc.want)
			}
		})
	}
	// A host:port group is accepted only when asked for.
	local := `{"groups":[{"id":"g","onion":"127.0.0.1:9000","edges":[{"id":"e","public_key":"` + key + `"}]}]}`
	if _, err := ParseConfig([]byte(local), true); err != nil {
		t.Fatalf("allowNonOnion: %v", err)
	}
}
