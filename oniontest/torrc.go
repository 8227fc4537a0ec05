package oniontest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// joinLines are the torrc lines, besides the DirAuthority lines, that a
// client or onion-service tor needs to use the network. TestingTorNetwork
// requires DirAuthority to be set; PathsNeededToBuildCircuits matches the
// rest of the network; the empty GeoIP files save ~35 MB per process.
var joinLines = [...]string{
	"TestingTorNetwork 1",
	"PathsNeededToBuildCircuits 0.67",
	`GeoIPFile ""`,
	`GeoIPv6File ""`,
}

// quote returns s as a torrc quoted string.
func quote(s string) string {
	return strconv.Quote(s)
}

// noticeLog is the path of a node's notice log.
func noticeLog(dataDir string) string { return filepath.Join(dataDir, "notice.log") }

// commonTorrc is the block every node of the network shares (the recipe's
// "common" block).
func commonTorrc(b *strings.Builder, nick, dataDir string, dirAuths []string) {
	for _, l := range joinLines {
		fmt.Fprintln(b, l)
	}
	for _, l := range dirAuths {
		fmt.Fprintln(b, l)
	}
	fmt.Fprintf(b, "DataDirectory %s\n", quote(dataDir))
	fmt.Fprintf(b, "Nickname %s\n", nick)
	fmt.Fprintf(b, "Log notice file %s\n", noticeLog(dataDir)) // Log values cannot be quoted
	b.WriteString(`SafeLogging 0
ShutdownWaitLength 0
AssumeReachable 1
TestingDirAuthVoteExit *
TestingDirAuthVoteHSDir *
TestingDirAuthVoteGuard *
TestingMinExitFlagThreshold 0
V3AuthNIntervalsValid 2
`)
}

// authority describes one directory authority (which is also a relay,
// guard and HSDir).
type authority struct {
	nick    string
	dataDir string
	orPort  int
	dirPort int
	v3ident string // from the authority certificate
	fpr     string // relay identity fingerprint
}

// dirAuthorityLine is the DirAuthority line every node uses for a.
func (a *authority) dirAuthorityLine() string {
	return fmt.Sprintf("DirAuthority %s orport=%d no-v2 v3ident=%s 127.0.0.1:%d %s",
		a.nick, a.orPort, a.v3ident, a.dirPort, a.fpr)
}

// writeAuthorityTorrc writes the torrc of a and returns its path.
func writeAuthorityTorrc(a *authority, dirAuths []string) (string, error) {
	var b strings.Builder
	commonTorrc(&b, a.nick, a.dataDir, dirAuths)
	fmt.Fprintf(&b, `SocksPort 0
Address 127.0.0.1
ORPort 127.0.0.1:%d
DirPort 127.0.0.1:%d
ExitRelay 0
ExitPolicy reject *:*
AuthoritativeDirectory 1
V3AuthoritativeDirectory 1
ContactInfo oniontest-%s
TestingV3AuthInitialVotingInterval 10
TestingV3AuthInitialVoteDelay 2
TestingV3AuthInitialDistDelay 2
V3AuthVotingInterval 10
V3AuthVoteDelay 2
V3AuthDistDelay 2
`, a.orPort, a.dirPort, a.nick)
	return writeTorrc(a.dataDir, b.String())
}

// clientFiles are the files through which the client tells us its
// control port and cookie.
type clientFiles struct {
	controlPortFile string
	cookieFile      string
}

func newClientFiles(dataDir string) clientFiles {
	return clientFiles{
		controlPortFile: filepath.Join(dataDir, "controlport"),
		cookieFile:      filepath.Join(dataDir, "control_auth_cookie"),
	}
}

// writeClientTorrc writes the client's torrc and returns its path. The
// SOCKS and control ports are picked by tor ("auto"), so they cannot
// collide; we learn them from ControlPortWriteToFile and GETINFO.
func writeClientTorrc(nick, dataDir string, dirAuths []string) (string, error) {
	f := newClientFiles(dataDir)
	var b strings.Builder
	commonTorrc(&b, nick, dataDir, dirAuths)
	fmt.Fprintf(&b, `SocksPort 127.0.0.1:auto IsolateSOCKSAuth
ControlPort 127.0.0.1:auto
ControlPortWriteToFile %s
CookieAuthentication 1
CookieAuthFile %s
`, quote(f.controlPortFile), quote(f.cookieFile))
	return writeTorrc(dataDir, b.String())
}

func writeTorrc(dataDir, content string) (string, error) {
	path := filepath.Join(dataDir, "torrc")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return "", fmt.Errorf("oniontest: writing torrc: %w", err)
	}
	return path, nil
}
