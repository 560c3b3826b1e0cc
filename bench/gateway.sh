#!/usr/bin/env bash
# The gateway against nginx, side by side in one run, on loopback:
#   direct     - straight to the backend
#   nginx      - nginx proxy_pass, keep-alive upstream, split_clients 5%
#   rollgate   - the rollgate gateway, 5% canary split, metrics on
#   rg+mirror  - the same with 100% of traffic mirrored to the canary's server
# For each: an open-loop run at fixed rates (loadgen: latency from the due
# time, so stalls count) and a saturated closed-loop run (wrk), then the
# proxy's peak RSS. Run by hand (not in CI): bash bench/gateway.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rates=${RATES:-"1000 5000 10000"}

needs="nginx wrk"
. bench/lib.sh
ng=$(port); gw=$(port); gm=$(port)
proxy_conf proxy "$ng"
nginx_start proxy
gateway_conf "$work/split.toml" ""
gateway_conf "$work/mirror.toml" 'mirror = { version = "v2", percent = 100 }'
"$rg" gateway --config "$work/split.toml" --listen "127.0.0.1:$gw" >/dev/null &
gw_pid=$!; pids+=($gw_pid)
"$rg" gateway --config "$work/mirror.toml" --listen "127.0.0.1:$gm" >/dev/null &
gm_pid=$!; pids+=($gm_pid)

for p in $b1 $b2 $ng $gw $gm; do
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$p/" >/dev/null 2>&1 && break; sleep 0.1; done
done
ng_pid=$(cat "$work/proxy/pid")

rss() { [ -n "$1" ] && awk '/VmHWM/ { printf "%.1f MiB", $2 / 1024 }' "/proc/$1/status" || echo "-"; }

printf '%-10s %7s %10s %9s %9s %9s %7s\n' target rate achieved p50_us p99_us p999_us errors
declare -A sat mem
for target in direct nginx rollgate rg+mirror; do
  case $target in
    direct) url="http://127.0.0.1:$b1/score"; pid="" ;;
    nginx) url="http://127.0.0.1:$ng/score"; pid=$ng_pid ;;
    rollgate) url="http://127.0.0.1:$gw/score"; pid=$gw_pid ;;
    rg+mirror) url="http://127.0.0.1:$gm/score"; pid=$gm_pid ;;
  esac
  for rate in $rates; do
    r=$("$loadgen" "$url" "$rate" "$secs" 128)
    python3 - "$target" "$rate" "$r" <<'PY'
import json, sys
t, rate, r = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
print(f"{t:<10} {rate:>7} {r['achieved_rps']:>10.0f} {r['p50_us']:>9} {r['p99_us']:>9} {r['p999_us']:>9} {r['errors']:>7}")
PY
  done
  sat[$target]=$(wrk -t2 -c32 -d"${secs}s" "$url" | awk '/Requests\/sec/ { print $2 }')
  mem[$target]=$(rss "$pid")
done
echo
printf '%-10s %14s %12s\n' target "wrk c=32 rps" "peak RSS"
for target in direct nginx rollgate rg+mirror; do
  printf '%-10s %14s %12s\n' "$target" "${sat[$target]}" "${mem[$target]}"
done
