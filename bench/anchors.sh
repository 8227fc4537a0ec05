#!/usr/bin/env bash
# anchors.sh start|stop|status
#   origin      127.0.0.1:BASE       ($RUN/bin/origin, from cmd/origin: serves from memory with net/http)
#   nginx       127.0.0.1:BASE+80    (conf/nginx.conf.tmpl -> $RUN/nginx.conf; on-disk cache in $RUN/nginx/cache)
#   varnish     127.0.0.1:BASE+81    (conf/varnish.vcl.tmpl, -s malloc,1g; admin BASE+91; workdir $RUN/varnish)
#   goproxy     127.0.0.1:BASE+82    ($RUN/bin/goproxy, non-caching httputil.ReverseProxy, minimal)
#   goproxypool 127.0.0.1:BASE+83    (same + -bufpool: sync.Pool BufferPool)
#   onioncdn    127.0.0.1:BASE+1000  (the repository's examples/edge in TCP mode, disk cache in $RUN/edge-cache)
# BASE is PORT_BASE (default 18000); RUN defaults to ${TMPDIR:-/tmp}/onioncdn-bench.
# PIDs are kept in $RUN/pids; stop kills exactly those PIDs.
# ONLY="origin nginx" limits which services start (default: all but goproxy*).
# ORIGIN_FLAGS / VARNISH_FLAGS / EDGE_FLAGS add flags (EDGE_FLAGS replaces the
# default "-no-sync -log-level warn"); NGINX_CONF=FILE uses another nginx
# template.
set -euo pipefail
. "$(dirname "$0")/common.sh"
PIDS=$RUN/pids
ONLY=${ONLY:-"origin nginx varnish onioncdn"}
EDGE_FLAGS=${EDGE_FLAGS:-"-no-sync -log-level warn"}
mkdir -p "$PIDS" "$RUN/logs"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { # port name
  for _ in $(seq 1 100); do
    if port_open "$1"; then return 0; fi
    kill -0 "$(cat "$PIDS/$2.pid")" 2>/dev/null || break
    sleep 0.1
  done
  echo "$2: port $1 did not open (log: $RUN/logs/$2.log)" >&2; tail -5 "$RUN/logs/$2.log" >&2 || true
  return 1
}
need_free() { # port name
  if port_open "$1"; then echo "$2: 127.0.0.1:$1 is already in use by a process not started by this harness (try another PORT_BASE)" >&2; return 1; fi
}
alive() { [ -f "$PIDS/$1.pid" ] && kill -0 "$(cat "$PIDS/$1.pid")" 2>/dev/null; }
want() { case " $ONLY " in *" $1 "*) return 0 ;; esac; return 1; }

# render TEMPLATE OUT: replace @RUN@ and the port markers
render() {
  local esc
  esc=$(printf '%s' "$RUN" | sed -e 's/[\\|&]/\\&/g')
  sed -e "s|@RUN@|$esc|g" -e "s|@ORIGIN_PORT@|$ORIGIN_PORT|g" -e "s|@NGINX_PORT@|$NGINX_PORT|g" "$1" >"$2"
}

start() {
  build_bins origin goproxy collapse coldmiss cpuwatch report load
  if want origin && ! alive origin; then
    need_free "$ORIGIN_PORT" origin
    # shellcheck disable=SC2086
    "$BIN/origin" -addr "127.0.0.1:$ORIGIN_PORT" ${ORIGIN_FLAGS:-} >"$RUN/logs/origin.log" 2>&1 &
    echo $! >"$PIDS/origin.pid"; wait_port "$ORIGIN_PORT" origin
  fi
  if want nginx && ! alive nginx; then
    command -v nginx >/dev/null || { echo "nginx not installed (apt-get install -y nginx): leave it out with ONLY=" >&2; exit 2; }
    need_free "$NGINX_PORT" nginx
    rm -rf "$RUN/nginx"; mkdir -p "$RUN/nginx/cache"
    render "${NGINX_CONF:-$HERE/conf/nginx.conf.tmpl}" "$RUN/nginx.conf"
    nginx -t -q -p "$RUN/nginx/" -e "$RUN/nginx/error.log" -c "$RUN/nginx.conf"
    nginx -p "$RUN/nginx/" -e "$RUN/nginx/error.log" -c "$RUN/nginx.conf" -g 'daemon off;' >"$RUN/logs/nginx.log" 2>&1 &
    echo $! >"$PIDS/nginx.pid"; wait_port "$NGINX_PORT" nginx
  fi
  if want varnish && ! alive varnish; then
    command -v varnishd >/dev/null || { echo "varnishd not installed (apt-get install -y varnish): leave it out with ONLY=" >&2; exit 2; }
    need_free "$VARNISH_PORT" varnish; need_free "$VARNISH_ADMIN_PORT" varnish-admin
    rm -rf "$RUN/varnish"; mkdir -p "$RUN/varnish"
    render "$HERE/conf/varnish.vcl.tmpl" "$RUN/varnish.vcl"
    # shellcheck disable=SC2086
    varnishd -F -a "127.0.0.1:$VARNISH_PORT" -T "127.0.0.1:$VARNISH_ADMIN_PORT" -n "$RUN/varnish" \
      -f "$RUN/varnish.vcl" -s malloc,1g ${VARNISH_FLAGS:-} >"$RUN/logs/varnish.log" 2>&1 </dev/null &
    echo $! >"$PIDS/varnish.pid"; wait_port "$VARNISH_PORT" varnish
  fi
  if want goproxy && ! alive goproxy; then
    need_free "$GOPROXY_PORT" goproxy
    "$BIN/goproxy" -addr "127.0.0.1:$GOPROXY_PORT" -upstream "http://127.0.0.1:$ORIGIN_PORT" >"$RUN/logs/goproxy.log" 2>&1 &
    echo $! >"$PIDS/goproxy.pid"; wait_port "$GOPROXY_PORT" goproxy
  fi
  if want goproxypool && ! alive goproxypool; then
    need_free "$GOPROXYPOOL_PORT" goproxypool
    "$BIN/goproxy" -addr "127.0.0.1:$GOPROXYPOOL_PORT" -upstream "http://127.0.0.1:$ORIGIN_PORT" -bufpool >"$RUN/logs/goproxypool.log" 2>&1 &
    echo $! >"$PIDS/goproxypool.pid"; wait_port "$GOPROXYPOOL_PORT" goproxypool
  fi
  if want onioncdn && ! alive onioncdn; then
    need_free "$EDGE_PORT" onioncdn
    build_edge
    rm -rf "$RUN/edge-cache"
    # shellcheck disable=SC2086
    "$BIN/edge" -listen "127.0.0.1:$EDGE_PORT" -upstream "http://127.0.0.1:$ORIGIN_PORT" -cache-dir "$RUN/edge-cache" \
      $EDGE_FLAGS >"$RUN/logs/onioncdn.log" 2>&1 &
    echo $! >"$PIDS/onioncdn.pid"; wait_port "$EDGE_PORT" onioncdn
  fi
  status
}

stop() {
  local s f p
  for s in onioncdn goproxypool goproxy varnish nginx origin; do
    f=$PIDS/$s.pid
    [ -f "$f" ] || continue
    p=$(cat "$f")
    if kill -0 "$p" 2>/dev/null; then
      kill -TERM "$p" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$p" 2>/dev/null; then echo "$s ($p) still alive, sending KILL"; kill -KILL "$p" || true; fi
    fi
    rm -f "$f"
    echo "stopped $s ($p)"
  done
}

status() {
  local s
  for s in origin nginx varnish goproxy goproxypool onioncdn; do
    if alive "$s"; then echo "$s: running pid $(cat "$PIDS/$s.pid")"; else echo "$s: not running"; fi
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status   (RUN=$RUN PORT_BASE=$PORT_BASE)" >&2; exit 2 ;;
esac
