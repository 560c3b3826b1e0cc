#!/usr/bin/env bash
# The gateway against nginx, side by side in one run, on loopback:
#   direct     - straight to the backend
#   nginx      - nginx proxy_pass, keep-alive upstream, split_clients 5%
#   rollgate   - the rollgate gateway, 5% canary split, metrics on
#   rg+mirror  - the same with 100% of traffic mirrored to the canary's server
# For each: an open-loop run at fixed rates (loadgen: latency from the due
# time, so stalls count) and saturated closed-loop runs (wrk, targets taking
# turns, median of ROUNDS), then the proxy's peak RSS. Run by hand (not in CI): bash bench/gateway.sh [SECONDS]
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

declare -A url pid
url[direct]="http://127.0.0.1:$b1/score"; pid[direct]=""
url[nginx]="http://127.0.0.1:$ng/score"; pid[nginx]=$ng_pid
url[rollgate]="http://127.0.0.1:$gw/score"; pid[rollgate]=$gw_pid
url[rg+mirror]="http://127.0.0.1:$gm/score"; pid[rg+mirror]=$gm_pid
targets="direct nginx rollgate rg+mirror"

printf '%-10s %7s %10s %9s %9s %9s %7s\n' target rate achieved p50_us p99_us p999_us errors
for target in $targets; do
  for rate in $rates; do
    r=$("$loadgen" "${url[$target]}" "$rate" "$secs" 128)
    python3 - "$target" "$rate" "$r" <<'PY'
import json, sys
t, rate, r = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
print(f"{t:<10} {rate:>7} {r['achieved_rps']:>10.0f} {r['p50_us']:>9} {r['p99_us']:>9} {r['p999_us']:>9} {r['errors']:>7}")
PY
  done
done

# Saturated: the targets take turns, round after round, so that a slow
# moment of this shared machine does not land on one target only; the
# median of the rounds is reported.
rounds=${ROUNDS:-3}
declare -A sat
for _ in $(seq 1 "$rounds"); do
  for target in $targets; do
    sat[$target]+="$(wrk -t2 -c32 -d"${secs}s" "${url[$target]}" | awk '/Requests\/sec/ { print $2 }') "
  done
done
rss() { [ -n "$1" ] && awk '/VmHWM/ { printf "%.1f MiB", $2 / 1024 }' "/proc/$1/status" || echo "-"; }
echo
printf '%-10s %14s %10s %12s   %s\n' target "wrk c=32 rps" "÷ nginx" "peak RSS" "rounds"
nginx_median=$(python3 -c 'import statistics,sys; print(statistics.median(map(float, sys.argv[1].split())))' "${sat[nginx]}")
for target in $targets; do
  median=$(python3 -c 'import statistics,sys; print(statistics.median(map(float, sys.argv[1].split())))' "${sat[$target]}")
  ratio=$(python3 -c "print(f'{$median / $nginx_median:.3f}x')")
  printf '%-10s %14.0f %10s %12s   %s\n' "$target" "$median" "$ratio" "$(rss "${pid[$target]}")" "${sat[$target]}"
done
