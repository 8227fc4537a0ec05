package route

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// duration is a time.Duration in JSON as a Go duration string ("30s").
type duration time.Duration

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`durations are strings such as "30s"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	if v < 0 {
		return fmt.Errorf("negative duration %q", s)
	}
	*d = duration(v)
	return nil
}

// config is the JSON form of a router configuration (see ParseConfig).
type config struct {
	StickyCookie string   `json:"sticky_cookie"`
	StickyTTL    duration `json:"sticky_ttl"`
	StaleAfter   duration `json:"stale_after"`
	Scheme       string   `json:"scheme"`
	Port         int      `json:"port"`
	ReportPath   string   `json:"report_path"`
	RetryAfter   duration `json:"retry_after"`
	Groups       []struct {
		ID     string  `json:"id"`
		Onion  string  `json:"onion"`
		Weight float64 `json:"weight"`
		Edges  []struct {
			ID        string `json:"id"`
			PublicKey string `json:"public_key"`
		} `json:"edges"`
	} `json:"groups"`
}

// ParseConfig decodes a router configuration (JSON, strictly: unknown
// fields and trailing data are errors) into a Router, and validates it:
//
//	{
//	  "sticky_cookie": "ocdn",   // optional: stickiness cookie name; omit for none
//	  "sticky_ttl": "10m",       // optional: cookie and mapping lifetime (default 10m)
//	  "stale_after": "30s",      // optional: how long a report counts (default 30s)
//	  "scheme": "http",          // optional: scheme of redirect targets (default http)
//	  "port": 0,                 // optional: port of redirect targets (default none)
//	  "report_path": "…",        // optional (default /.well-known/onioncdn/report)
//	  "retry_after": "30s",      // optional: Retry-After of the 503 when no group is healthy
//	  "groups": [                // required
//	    {"id": "eu",             // group id, as the edges' agents report it
//	     "onion": "<56 chars>.onion",  // the address the group's edges share
//	     "weight": 2,            // optional capacity weight (default 1)
//	     "edges": [{"id": "eu-1", "public_key": "<base64 ed25519 public key>"}]}
//	  ]
//	}
//
// Public keys take any form [ParsePublicKey] accepts. allowNonOnion sets
// [Router.AllowNonOnion] (host:port group addresses, for tests on
// loopback). The other fields of the Router (Logger, Now...) are the
// caller's to set.
func ParseConfig(data []byte, allowNonOnion bool) (*Router, error) {
	if len(data) > 1<<20 {
		return nil, errors.New("route: config: larger than 1 MiB")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var c config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("route: config: %w", err)
	}
	if dec.More() {
		return nil, errors.New("route: config: trailing data after the JSON object")
	}
	rt := &Router{AllowNonOnion: allowNonOnion,
		StickyCookie: c.StickyCookie, StickyTTL: time.Duration(c.StickyTTL), StaleAfter: time.Duration(c.StaleAfter),
		Scheme: c.Scheme, Port: c.Port, ReportPath: c.ReportPath, RetryAfter: time.Duration(c.RetryAfter),
	}
	if len(c.Groups) == 0 {
		return nil, errors.New("route: config: no groups")
	}
	for _, g := range c.Groups {
		rg := Group{ID: g.ID, Onion: g.Onion, Weight: g.Weight}
		if g.Weight < 0 {
			return nil, fmt.Errorf("route: config: group %q: negative weight", g.ID)
		}
		for _, e := range g.Edges {
			pub, err := ParsePublicKey(e.PublicKey)
			if err != nil {
				return nil, fmt.Errorf("route: config: group %q edge %q: %w", g.ID, e.ID, err)
			}
			rg.Edges = append(rg.Edges, Edge{ID: e.ID, PublicKey: pub})
		}
		rt.Groups = append(rt.Groups, rg)
	}
	if _, err := rt.Stats(); err != nil { // validates the groups
		return nil, err
	}
	return rt, nil
}
