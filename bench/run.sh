#!/usr/bin/env bash
# run.sh [ROUNDS]
# Starts the harness origin, nginx and Varnish (when installed) and the
# repository's edge (examples/edge, TCP mode, disk cache, -no-sync), runs
# bench.sh ROUNDS times (default 1) against each, interleaved per round,
# writes $RESULTS/run-<ts>.log, and prints the README's performance table
# (ratios to nginx) and the full comparison, also saved as
# $RESULTS/run-<ts>.md. Stops everything it started on exit.
#
# RUN defaults to ${TMPDIR:-/tmp}/onioncdn-bench, RESULTS to $RUN/results,
# PORT_BASE to 18000 (see common.sh). TARGETS replaces the list of labels
# (default "nginx varnish origin onioncdn"; also goproxy, goproxypool);
# EXTRA="label=http://127.0.0.1:PORT ..." adds proxies you started yourself
# in front of the origin (127.0.0.1:PORT_BASE).
set -euo pipefail
. "$(dirname "$0")/common.sh"
ROUNDS=${1:-1}
case "$ROUNDS" in ''|*[!0-9]*) echo "usage: $0 [ROUNDS]" >&2; exit 2 ;; esac
command -v go >/dev/null || { echo "go not found" >&2; exit 2; }
command -v curl >/dev/null || { echo "curl not found" >&2; exit 2; }
ORIGIN=http://127.0.0.1:$ORIGIN_PORT
declare -A URLS=([nginx]=http://127.0.0.1:$NGINX_PORT [varnish]=http://127.0.0.1:$VARNISH_PORT
  [goproxy]=http://127.0.0.1:$GOPROXY_PORT [goproxypool]=http://127.0.0.1:$GOPROXYPOOL_PORT
  [origin]=$ORIGIN [onioncdn]=http://127.0.0.1:$EDGE_PORT)
WANT=${TARGETS:-"nginx varnish origin onioncdn"}
LIST="" ONLY="origin"
for l in $WANT; do
  case $l in
    nginx) command -v nginx >/dev/null || { echo "nginx not installed: left out" >&2; continue; } ;;
    varnish) command -v varnishd >/dev/null || { echo "varnish not installed: left out" >&2; continue; } ;;
  esac
  [ -n "${URLS[$l]:-}" ] || { echo "unknown target $l" >&2; exit 2; }
  LIST="$LIST $l=${URLS[$l]}"
  [ "$l" = origin ] || ONLY="$ONLY $l"
done
LIST="$LIST ${EXTRA:-}"
export ONLY
RESULTS=${RESULTS:-$RUN/results}
mkdir -p "$RESULTS"
LOG=$(cd "$RESULTS" && pwd)/run-$(date -u +%Y%m%dT%H%M%SZ).log

cleanup() { "$HERE/anchors.sh" stop; }
trap cleanup EXIT
"$HERE/anchors.sh" start
build_bins report

bg_busy() { # busy % of all CPUs over 1 s while the harness is idle (= other tenants)
  local u n s i w q sq st _x u2 n2 s2 i2 w2 q2 sq2 st2 busy idle steal
  read -r _x u n s i w q sq st _ </proc/stat
  sleep 1
  read -r _x u2 n2 s2 i2 w2 q2 sq2 st2 _ </proc/stat
  busy=$(( (u2-u)+(n2-n)+(s2-s)+(q2-q)+(sq2-sq) )); idle=$(( (i2-i)+(w2-w) )); steal=$((st2-st))
  echo "$(( 100*busy/(busy+idle+steal+1) ))"
}

# Wait (up to QUIET_MAX_WAIT s) until other tenants use < QUIET_PCT % of the CPUs.
QUIET_PCT=${QUIET_PCT:-15}
QUIET_MAX_WAIT=${QUIET_MAX_WAIT:-120}
wait_quiet() {
  local t0=$SECONDS b
  while :; do
    b=$(bg_busy)
    if [ "$b" -lt "$QUIET_PCT" ] || [ $((SECONDS - t0)) -ge "$QUIET_MAX_WAIT" ]; then
      echo "waited_s=$((SECONDS - t0)) bg_cpu_busy_pct=$b"; return
    fi
  done
}

{
  echo "# run $(date -u +%FT%TZ) rounds=$ROUNDS host=$(hostname) cpus=$(nproc) kernel=$(uname -r) commit=$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "# $(nginx -v 2>&1 | sed 's/.*: //' || true), $(varnishd -V 2>&1 | head -1 || true), $(go version), $(wrk -v 2>&1 | head -1 || echo 'no wrk: Go load client')"
  for r in $(seq 1 "$ROUNDS"); do
    for t in $LIST; do
      label=${t%%=*} url=${t#*=}
      echo "# round=$r label=$label $(wait_quiet) load=$(cut -d' ' -f1-3 /proc/loadavg)"
      "$HERE/bench.sh" "$url" "$ORIGIN" "$label" 2>&1 || echo "# bench failed for $label"
      sleep 2
    done
  done
} | tee "$LOG"

echo
echo "log: $LOG"
order=$(for t in $LIST; do printf '%s,' "${t%%=*}"; done); order=${order%,}
{
  "$BIN/report" -ref nginx -order "$order" -readme "$LOG"
  echo
  "$BIN/report" -ref nginx -order "$order" "$LOG"
} | tee "${LOG%.log}.md"
