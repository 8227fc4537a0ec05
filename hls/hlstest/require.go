package hlstest

import (
	"os"
	"os/exec"
	"testing"
)

// RequireFFmpeg returns the path of ffmpeg. When ffmpeg is not installed it
// skips tb, or fails it when the environment says the test must run:
// CI=true or ONIONCDN_REQUIRE_TOR=1 (CI installs both tor and ffmpeg).
func RequireFFmpeg(tb testing.TB) string {
	tb.Helper()
	path, err := exec.LookPath("ffmpeg")
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" || os.Getenv("ONIONCDN_REQUIRE_TOR") == "1" {
		tb.Fatalf("ffmpeg is required (CI=true or ONIONCDN_REQUIRE_TOR=1) but not found: %v", err)
	}
	tb.Skipf("ffmpeg not found (apt-get install -y ffmpeg): %v", err)
	return ""
}
