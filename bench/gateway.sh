#!/usr/bin/env bash
# The gateway against nginx and HAProxy, side by side in one run, on loopback:
#   direct     - straight to the backend
#   nginx      - nginx proxy_pass, keep-alive upstream, split_clients 5%
#   haproxy    - HAProxy, http-reuse always, 5% to v2 by rand(100)
#   rollgate   - the rollgate gateway, 5% canary split, metrics on
#   rg+mirror  - the same with 100% of traffic mirrored to the canary's server
# Every proxy gets the same workers (WORKERS, default one per core: nginx
# worker_processes, HAProxy nbthread, rollgate --threads); the settings are
# printed with the figures.
# For each: open-loop runs at fixed rates (loadgen: latency from the due
# time, so stalls count) and saturated closed-loop runs (wrk), targets
# taking turns for ROUNDS rounds (default 3) and medians reported; then the
# proxy's peak RSS. Run by hand (not in CI): bash bench/gateway.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rates=${RATES:-"1000 5000 10000"}

needs="nginx wrk haproxy"
. bench/lib.sh
ng=$(port); hp=$(port); gw=$(port); gm=$(port)
proxy_conf proxy "$ng"
nginx_start proxy
haproxy_conf "$work/haproxy.cfg" "$hp"
haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
hp_pid=$!; pids+=($hp_pid)
gateway_conf "$work/split.toml" ""
gateway_conf "$work/mirror.toml" 'mirror = { version = "v2", percent = 100 }'
"$rg" gateway --config "$work/split.toml" --listen "127.0.0.1:$gw" --threads "$workers" >/dev/null &
gw_pid=$!; pids+=($gw_pid)
"$rg" gateway --config "$work/mirror.toml" --listen "127.0.0.1:$gm" --threads "$workers" >/dev/null &
gm_pid=$!; pids+=($gm_pid)

for p in $b1 $b2 $ng $hp $gw $gm; do
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$p/" >/dev/null 2>&1 && break; sleep 0.1; done
done
ng_pid=$(cat "$work/proxy/pid")
kill -0 "$hp_pid" 2>/dev/null || { echo "HAProxy did not start:" >&2; cat "$work/haproxy.log" >&2; exit 1; }
echo "workers: $workers each (nginx worker_processes $workers with reuseport, keepalive 64 per upstream;"
echo "  HAProxy $(haproxy -v | head -1 | awk '{print $3}') nbthread $workers, http-reuse always; rollgate --threads $workers);"
echo "  backends: two nginx processes of one worker each; ${secs}s per run, ${ROUNDS:-3} rounds taking turns"

declare -A url pid
url[direct]="http://127.0.0.1:$b1/score"; pid[direct]=""
url[nginx]="http://127.0.0.1:$ng/score"; pid[nginx]=$ng_pid
url[haproxy]="http://127.0.0.1:$hp/score"; pid[haproxy]=$hp_pid
url[rollgate]="http://127.0.0.1:$gw/score"; pid[rollgate]=$gw_pid
url[rg+mirror]="http://127.0.0.1:$gm/score"; pid[rg+mirror]=$gm_pid
targets="direct nginx haproxy rollgate rg+mirror"

# Open loop: at each rate the targets take turns, round after round (as
# for the saturated runs below), and each figure is the median over rounds.
# The added latency is taken within a round (target minus direct, measured
# seconds apart), so that the machine's slow and fast moments cancel.
rounds=${ROUNDS:-3}
runs="$work/open-loop.jsonl"
for round in $(seq 1 "$rounds"); do
  for rate in $rates; do
    for target in $targets; do
      r=$("$loadgen" "${url[$target]}" "$rate" "$secs" 128)
      echo "{\"round\": $round, \"target\": \"$target\", \"rate\": $rate, \"run\": $r}" >>"$runs"
    done
  done
done
python3 - "$runs" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
by = {}
for r in runs:
    by.setdefault((r["target"], r["rate"]), {})[r["round"]] = r["run"]
targets = list(dict.fromkeys(r["target"] for r in runs))
rates = sorted({r["rate"] for r in runs})
med = lambda xs: statistics.median(xs)
print(f"{'target':<10} {'rate':>7} {'achieved':>10} {'p50_us':>9} {'p99_us':>9} {'p999_us':>9} {'errors':>7} {'added_p50':>10}")
for t in targets:
    for rate in rates:
        rs = by[(t, rate)]
        direct = by[("direct", rate)]
        added = med([rs[k]["p50_us"] - direct[k]["p50_us"] for k in rs])
        print(f"{t:<10} {rate:>7} {med([x['achieved_rps'] for x in rs.values()]):>10.0f} "
              f"{med([x['p50_us'] for x in rs.values()]):>9.0f} {med([x['p99_us'] for x in rs.values()]):>9.0f} "
              f"{med([x['p999_us'] for x in rs.values()]):>9.0f} {sum(x['errors'] for x in rs.values()):>7} {added:>+10.0f}")
print()
print("targets (medians over rounds, each round's figures taken seconds apart):")
for rate in rates:
    add = lambda t: med([by[(t, rate)][k]["p50_us"] - by[("direct", rate)][k]["p50_us"] for k in by[(t, rate)]])
    rg, ng, hp = add("rollgate"), add("nginx"), add("haproxy")
    best = min(ng, hp)
    mirror = med([by[("rg+mirror", rate)][k]["p99_us"] / by[("rollgate", rate)][k]["p99_us"] - 1 for k in by[("rollgate", rate)]])
    print(f"  {rate:>6} req/s: added p50 rollgate {rg:+.0f} us vs nginx {ng:+.0f} us, haproxy {hp:+.0f} us "
          f"{'ok' if rg <= best else 'MISSED'};"
          f" mirroring moves p99 {mirror * 100:+.1f}% {'ok' if abs(mirror) < 0.10 else 'MISSED'}")
PY

# Saturated: the targets take turns, round after round, so that a slow
# moment of this shared machine does not land on one target only; the
# median of the rounds is reported.
declare -A sat
for _ in $(seq 1 "$rounds"); do
  for target in $targets; do
    sat[$target]+="$(wrk -t2 -c32 -d"${secs}s" "${url[$target]}" | awk '/Requests\/sec/ { print $2 }') "
  done
done
echo
printf '%-10s %14s %10s %10s %12s   %s\n' target "wrk c=32 rps" "÷ nginx" "÷ haproxy" "peak RSS" "rounds"
median() { python3 -c 'import statistics,sys; print(statistics.median(map(float, sys.argv[1].split())))' "$1"; }
nginx_median=$(median "${sat[nginx]}")
haproxy_median=$(median "${sat[haproxy]}")
for target in $targets; do
  m=$(median "${sat[$target]}")
  ratios=$(python3 -c "print(f'{$m / $nginx_median:.3f}x {$m / $haproxy_median:.3f}x')")
  printf '%-10s %14.0f %10s %10s %12s   %s\n' "$target" "$m" ${ratios} "$(rss "${pid[$target]}")" "${sat[$target]}"
done
