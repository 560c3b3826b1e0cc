#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind: repeatable on a
# shared, noisy machine where timings are not (valgrind counts instructions,
# not seconds). For each proxy, a run of N requests and a run of 2N at the
# same rate; the difference over N is the cost of one request (start-up and
# the idle loop cancel out). Each proxy runs on one thread.
# Run by hand (not in CI): bash bench/instructions.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000}
rate=200
needs="nginx valgrind"
WORKERS=1 # one process, one thread each: callgrind follows no children
. bench/lib.sh
front=$(port)
proxy_conf proxy "$front"
gateway_conf "$work/split.toml" ""
gateway_conf "$work/mirror.toml" 'mirror = { version = "v2", percent = 100 }'

# Instructions for `requests` requests through the proxy started by "$@" under callgrind.
count() {
  local requests=$1; shift
  local out="$work/cg.$RANDOM"
  valgrind --tool=callgrind --callgrind-out-file="$out" "$@" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 1 300); do curl -fs "http://127.0.0.1:$front/" >/dev/null 2>&1 && break; sleep 0.2; done
  "$loadgen" "http://127.0.0.1:$front/score" "$rate" "$((requests / rate))" 8 >/dev/null
  kill -INT "$pid" 2>/dev/null || true; kill -QUIT "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'
}
per_request() { # name, command...
  local name=$1; shift
  local one two
  one=$(count "$n" "$@"); two=$(count "$((2 * n))" "$@")
  printf '%-10s %14d\n' "$name" "$(((two - one) / n))"
}
printf '%-10s %14s\n' proxy "instr/request"
per_request nginx nginx -p "$work/proxy" -c "$work/proxy/nginx.conf"
per_request rollgate "$rg" gateway --threads 1 --config "$work/split.toml" --listen "127.0.0.1:$front"
per_request rg+mirror "$rg" gateway --threads 1 --config "$work/mirror.toml" --listen "127.0.0.1:$front"
