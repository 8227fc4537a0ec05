#!/usr/bin/env bash
# bench.sh PROXY_URL ORIGIN_URL [LABEL]
#
# Benchmarks one caching proxy (or the origin itself: pass the origin URL twice)
# that fronts the harness origin (cmd/origin). Everything must be on 127.0.0.1.
#
#   a) hit throughput: warm /small/1 and /seg/1.ts, then wrk on each
#   b) collapsed miss: COLLAPSE_N concurrent clients on a cold /slow/K.ts
#   c) cold-miss latency: COLD_N sequential cold /small/K via proxy vs origin
#
# Env knobs: PARTS="a b c"  WRK_THREADS=2 WRK_CONNS=64 WRK_DURATION=10s
#            COLLAPSE_N=50 COLLAPSE_SPREAD=0s COLD_N=50
#            SMALL_PATH=/small/1 SEG_PATH=/seg/1.ts
#            LOAD=wrk|go (default: wrk if installed, else the Go client cmd/load)
# Output: human-readable sections plus one line per metric:
#   RESULT label=<L> test=<hit_small|hit_seg|collapse|coldmiss> key=value ...
# Tools (collapse, coldmiss, cpuwatch, load) are built from cmd/ into $RUN/bin
# on first use (see common.sh).
set -euo pipefail

PROXY=${1:?usage: bench.sh PROXY_URL ORIGIN_URL [LABEL]}
ORIGIN=${2:?usage: bench.sh PROXY_URL ORIGIN_URL [LABEL]}
LABEL=${3:-proxy}
PROXY=${PROXY%/}
ORIGIN=${ORIGIN%/}
PARTS=${PARTS:-"a b c"}
WRK_THREADS=${WRK_THREADS:-2}
WRK_CONNS=${WRK_CONNS:-64}
WRK_DURATION=${WRK_DURATION:-10s}
COLLAPSE_N=${COLLAPSE_N:-50}
COLLAPSE_SPREAD=${COLLAPSE_SPREAD:-0s}
COLD_N=${COLD_N:-50}
SMALL_PATH=${SMALL_PATH:-/small/1}
SEG_PATH=${SEG_PATH:-/seg/1.ts}

. "$(dirname "$0")/common.sh"
LUA=$HERE/conf/wrk-report.lua

for u in "$PROXY" "$ORIGIN"; do
  case "$u" in
    http://127.0.0.1:*) ;;
    *) echo "refusing non-127.0.0.1 URL: $u" >&2; exit 2 ;;
  esac
done
build_bins collapse coldmiss cpuwatch load
LOAD=${LOAD:-$(command -v wrk >/dev/null && echo wrk || echo go)}

CURL=(curl -sS --noproxy '*' --max-time 30)
port_of() { local hp=${1#http://}; hp=${hp%%/*}; echo "${hp##*:}"; }
PPORT=$(port_of "$PROXY"); OPORT=$(port_of "$ORIGIN")
# cpuwatch wraps a load command and appends a CPUWATCH line (proxy/origin/client/foreign cores)
CPUW=("$BIN/cpuwatch" -proxy-port "$PPORT" -origin-port "$OPORT" --)
origin_total() { "${CURL[@]}" "$ORIGIN/_count?total=1"; }

echo "### bench label=$LABEL proxy=$PROXY origin=$ORIGIN load=$LOAD $(date -u +%FT%TZ) loadavg=[$(cut -d' ' -f1-3 /proc/loadavg)]"

hit_test() { # name path
  local name=$1 path=$2 xc before after out line cw extra
  "${CURL[@]}" -o /dev/null "$PROXY$path"
  xc=$("${CURL[@]}" -o /dev/null -D - "$PROXY$path" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-cache"{print $2}')
  before=$(origin_total)
  if [ "$LOAD" = wrk ]; then
    out=$("${CPUW[@]}" wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"$WRK_DURATION" -s "$LUA" "$PROXY$path")
  else
    out=$("${CPUW[@]}" "$BIN/load" -c "$WRK_CONNS" -d "$WRK_DURATION" "$PROXY$path")
  fi
  after=$(origin_total)
  echo "$out" >&2
  line=$(grep '^WRK ' <<<"$out"); cw=$(grep '^CPUWATCH ' <<<"$out")
  # proxy CPU per request (us) = proxy_cores * wall / requests
  extra=$(awk -v l="${line#WRK } ${cw#CPUWATCH }" 'BEGIN{n=split(l,a," ");for(i=1;i<=n;i++){split(a[i],kv,"=");v[kv[1]]=kv[2]}
    if (v["requests"]>0) printf "proxy_cpu_us_per_req=%.1f", v["proxy_cores"]*v["wall_s"]/v["requests"]*1e6}')
  echo "RESULT label=$LABEL test=$name ${line#WRK } ${cw#CPUWATCH } $extra origin_reqs_during=$((after - before)) warm_xcache=${xc:-none}"
}

case " $PARTS " in *" a "*)
  echo "## (a) hit throughput: $LOAD -t$WRK_THREADS -c$WRK_CONNS -d$WRK_DURATION"
  hit_test hit_small "$SMALL_PATH"
  hit_test hit_seg "$SEG_PATH"
;; esac

case " $PARTS " in *" b "*)
  K=$(date +%s%N)$RANDOM
  echo "## (b) collapsed miss: $COLLAPSE_N concurrent clients on cold /slow/$K.ts (spread $COLLAPSE_SPREAD)"
  out=$("${CPUW[@]}" "$BIN/collapse" -url "$PROXY/slow/$K.ts" -origin "$ORIGIN" -n "$COLLAPSE_N" -spread "$COLLAPSE_SPREAD" -label "$LABEL" ${COLLAPSE_VERBOSE:+-v})
  grep -v '^CPUWATCH ' <<<"$out" | grep -v '^RESULT ' || true
  echo "$(grep '^RESULT ' <<<"$out") foreign_cores=$(grep -o 'foreign_cores=[-0-9.]*' <<<"$out" | cut -d= -f2)"
;; esac

case " $PARTS " in *" c "*)
  echo "## (c) cold-miss latency: $COLD_N x cold /small/K via proxy vs direct"
  out=$("${CPUW[@]}" "$BIN/coldmiss" -proxy "$PROXY" -origin "$ORIGIN" -n "$COLD_N" -label "$LABEL")
  grep -v '^CPUWATCH ' <<<"$out" | grep -v '^RESULT ' || true
  echo "$(grep '^RESULT ' <<<"$out") foreign_cores=$(grep -o 'foreign_cores=[-0-9.]*' <<<"$out" | cut -d= -f2)"
;; esac
