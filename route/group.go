package route

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/onioncdn/onioncdn/internal/onionaddr"
)

// Group is one group of edges that publish the same onion key, and so
// share one onion address. The router redirects clients to groups.
type Group struct {
	// ID names the group in reports, statistics and logs: 1 to 64 bytes of
	// ASCII letters, digits, '.', '_' or '-'. Required, unique.
	ID string

	// Onion is the group's address: a v3 onion host ("<56 chars>.onion"),
	// optionally with ":port", which then overrides [Router.Port] for this
	// group. With [Router.AllowNonOnion] it may be any host[:port] (for
	// tests on loopback). Required.
	Onion string

	// Weight is the group's capacity relative to the other groups: a group
	// of weight 2 is expected to carry twice the load of a group of weight
	// 1. If zero, 1.
	Weight float64

	// Edges are the edges whose agents may report for this group. At least
	// one is required.
	Edges []Edge
}

// Edge is one edge of a [Group], identified in reports by ID and
// authenticated by PublicKey.
type Edge struct {
	// ID names the edge within its group (same syntax as [Group.ID]).
	// Required, unique within the group.
	ID string

	// PublicKey verifies the edge agent's reports; the agent holds the
	// private key ([Agent.Key]). Required.
	PublicKey ed25519.PublicKey
}

// validateGroups checks a router's group configuration and returns the
// redirect host ("host" or "host:port") of each group.
func validateGroups(groups []Group, allowNonOnion bool, port int) ([]string, error) {
	if len(groups) == 0 {
		return nil, errors.New("route: no groups configured")
	}
	if port < 0 || port > 65535 {
		return nil, fmt.Errorf("route: port %d out of range", port)
	}
	hosts := make([]string, len(groups))
	seen := make(map[string]bool, len(groups))
	for i, g := range groups {
		if !validID(g.ID) {
			return nil, fmt.Errorf("route: group %d: invalid id %q", i, g.ID)
		}
		if seen[g.ID] {
			return nil, fmt.Errorf("route: duplicate group id %q", g.ID)
		}
		seen[g.ID] = true
		if math.IsNaN(g.Weight) || math.IsInf(g.Weight, 0) || g.Weight < 0 {
			return nil, fmt.Errorf("route: group %q: invalid weight %v", g.ID, g.Weight)
		}
		h, err := groupHost(g.Onion, allowNonOnion, port)
		if err != nil {
			return nil, fmt.Errorf("route: group %q: %w", g.ID, err)
		}
		hosts[i] = h
		if len(g.Edges) == 0 {
			return nil, fmt.Errorf("route: group %q: no edges", g.ID)
		}
		edges := make(map[string]bool, len(g.Edges))
		for _, e := range g.Edges {
			if !validID(e.ID) {
				return nil, fmt.Errorf("route: group %q: invalid edge id %q", g.ID, e.ID)
			}
			if edges[e.ID] {
				return nil, fmt.Errorf("route: group %q: duplicate edge id %q", g.ID, e.ID)
			}
			edges[e.ID] = true
			if len(e.PublicKey) != ed25519.PublicKeySize {
				return nil, fmt.Errorf("route: group %q edge %q: public key must be %d bytes", g.ID, e.ID, ed25519.PublicKeySize)
			}
		}
	}
	return hosts, nil
}

// groupHost validates a group address and returns the host[:port] to put
// into redirects.
func groupHost(addr string, allowNonOnion bool, port int) (string, error) {
	if addr == "" {
		return "", errors.New("empty onion address")
	}
	host, p := addr, ""
	if h, pp, err := net.SplitHostPort(addr); err == nil {
		host, p = h, pp
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("bad port in %q", addr)
		}
	}
	host = strings.ToLower(host)
	if !ValidOnion(host) {
		if !allowNonOnion {
			return "", fmt.Errorf("%q is not a v3 onion address", addr)
		}
		// Any host, but it must survive url.URL unchanged.
		u, err := url.Parse("http://" + addr)
		if err != nil || u.Host != addr || u.Path != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || host == "" {
			return "", fmt.Errorf("bad host %q", addr)
		}
	}
	if p == "" && port != 0 {
		p = strconv.Itoa(port)
	}
	if p != "" {
		return net.JoinHostPort(host, p), nil
	}
	return host, nil
}

// ValidOnion reports whether host is a v3 onion address
// ("<56 base32 chars>.onion", lowercase, no subdomain) with a correct
// checksum and version byte.
func ValidOnion(host string) bool {
	id, ok := strings.CutSuffix(host, ".onion")
	if !ok {
		return false
	}
	_, err := onionaddr.Decode(id)
	return err == nil
}

// OnionAddress returns the v3 onion address ("<56 chars>.onion") of an
// onion service's ed25519 public key. It is handy for configuration and
// tests; package onion derives the same address from its keys.
func OnionAddress(pub ed25519.PublicKey) string { return onionaddr.Encode(pub) + ".onion" }
