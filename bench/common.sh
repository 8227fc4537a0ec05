# shellcheck shell=bash
# common.sh: sourced by anchors.sh, bench.sh and run.sh (not run on its own).
#
#   HERE  this folder (sources: cmd/, conf/)
#   REPO  the repository (the onioncdn edge is built from ../examples/edge)
#   RUN   run directory, default ${TMPDIR:-/tmp}/onioncdn-bench; everything the
#         harness writes goes there: bin/ (built Go tools), pids/, logs/,
#         nginx/ (cache), varnish/ (workdir), edge-cache/, nginx.conf,
#         varnish.vcl (generated), results/
#   BIN   $RUN/bin
#   PORT_BASE  first port (default 18000): origin BASE, nginx BASE+80,
#         varnish BASE+81 (admin BASE+91), goproxy BASE+82, goproxypool
#         BASE+83, onioncdn edge BASE+1000. Another run (or another user of
#         the machine) on other ports: PORT_BASE=28000.
# RUN and PORT_BASE are exported so that run.sh -> anchors.sh / bench.sh agree.
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
RUN=${RUN:-${TMPDIR:-/tmp}/onioncdn-bench}
case "$RUN" in
  ''|/) echo "refusing RUN='$RUN'" >&2; exit 2 ;;
esac
mkdir -p "$RUN"
RUN=$(cd "$RUN" && pwd)
PORT_BASE=${PORT_BASE:-18000}
case "$PORT_BASE" in ''|*[!0-9]*) echo "PORT_BASE must be a number" >&2; exit 2 ;; esac
export RUN PORT_BASE
BIN=$RUN/bin
ORIGIN_PORT=$PORT_BASE
NGINX_PORT=$((PORT_BASE + 80))
VARNISH_PORT=$((PORT_BASE + 81))
VARNISH_ADMIN_PORT=$((PORT_BASE + 91))
GOPROXY_PORT=$((PORT_BASE + 82))
GOPROXYPOOL_PORT=$((PORT_BASE + 83))
EDGE_PORT=$((PORT_BASE + 1000))

# build_bins NAME... : go build ./cmd/NAME into $BIN/NAME when the binary is
# missing or older than its sources (or go.mod). GOWORK=off keeps a go.work
# higher up in the tree from capturing this module.
build_bins() {
  local t
  mkdir -p "$BIN"
  command -v go >/dev/null || { echo "go not found" >&2; return 2; }
  for t in "$@"; do
    if [ -x "$BIN/$t" ] && [ -z "$(find "$HERE/cmd/$t" "$HERE/go.mod" -newer "$BIN/$t" -print -quit)" ]; then
      continue
    fi
    echo "building $BIN/$t" >&2
    (cd "$HERE" && GOWORK=off go build -o "$BIN/$t" "./cmd/$t")
  done
}

# build_edge: go build the repository's examples/edge into $BIN/edge (always:
# the point is to measure the code as it is now).
build_edge() {
  mkdir -p "$BIN"
  echo "building $BIN/edge from $REPO" >&2
  (cd "$REPO" && GOWORK=off go build -o "$BIN/edge" ./examples/edge)
}
