#!/usr/bin/env bash
# TLS to the model servers: what it adds, and rollgate against nginx with
# both speaking TLS to the same backend, side by side in one run on loopback:
#   nginx / nginx-tls       - nginx proxy_pass to the backend in plain HTTP / over
#                             TLS (verified, SNI, sessions reused, keep-alive 64)
#   rollgate / rollgate-tls - the rollgate gateway to the same, plain / https://
#                             endpoint with the test CA in `tls.ca_file`
# The backend is nginx serving the same answer on a plain and a TLS port. Every
# proxy gets the same workers (WORKERS, default one per core). For each target:
# an open-loop run at RATE (default 1000 req/s; the added p50 is taken against
# the backend's plain port in the same round) and a saturated wrk run, targets
# taking turns for ROUNDS rounds (default 3), medians reported.
# Run by hand (not in CI): bash bench/tls.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
rate=${RATE:-1000}
rounds=${ROUNDS:-3}

needs="nginx wrk openssl"
. bench/lib.sh

# A CA and a certificate for localhost, as a team's internal CA would issue.
( cd "$work"
  ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.pem -days 2 -subj "/CN=bench CA" 2>/dev/null
  openssl req "${ec[@]}" -keyout localhost.key -out localhost.csr -subj /CN=localhost 2>/dev/null
  echo "subjectAltName=DNS:localhost" > localhost.ext
  openssl x509 -req -in localhost.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out localhost.pem -days 2 \
    -extfile localhost.ext 2>/dev/null )

bt=$(port); ng=$(port); nt=$(port); gw=$(port); gt=$(port)
nginx_conf backend-tls "server { listen 127.0.0.1:$bt ssl; server_name localhost;
  ssl_certificate $work/localhost.pem; ssl_certificate_key $work/localhost.key; keepalive_requests 100000;
  location / { default_type application/json; return 200 '$body'; } }"
nginx_start backend-tls
nginx_conf proxies "upstream plain { server 127.0.0.1:$b1; keepalive 64; }
  upstream tls { server localhost:$bt; keepalive 64; }
  server { listen 127.0.0.1:$ng reuseport; location / { proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_pass http://plain; } }
  server { listen 127.0.0.1:$nt reuseport; location / { proxy_http_version 1.1; proxy_set_header Connection \"\";
    proxy_pass https://tls; proxy_ssl_trusted_certificate $work/ca.pem; proxy_ssl_verify on;
    proxy_ssl_server_name on; proxy_ssl_name localhost; proxy_ssl_session_reuse on; } }" "$workers"
nginx_start proxies

bench_service "$work/plain.toml" "" "v1=http://127.0.0.1:$b1"
bench_service "$work/tls.toml" "tls = { ca_file = \"$work/ca.pem\" }" "v1=https://localhost:$bt"
"$rg" gateway --config "$work/plain.toml" --listen "127.0.0.1:$gw" --threads "$workers" >/dev/null &
pids+=($!)
"$rg" gateway --config "$work/tls.toml" --listen "127.0.0.1:$gt" --threads "$workers" >/dev/null &
pids+=($!)
for p in $b1 $ng $nt $gw $gt; do
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$p/" >/dev/null 2>&1 && break; sleep 0.1; done
done
for p in $nt $gt; do
  curl -fs "http://127.0.0.1:$p/" >/dev/null || { echo "the TLS path through port $p does not answer" >&2; exit 1; }
done
echo "workers: $workers each (nginx worker_processes $workers, reuseport, keepalive 64, proxy_ssl_session_reuse on;"
echo "  rollgate --threads $workers); backend: nginx, one worker, plain and TLS (ECDSA P-256) ports;"
echo "  ${secs}s per run, $rounds rounds taking turns, open loop at $rate req/s"

declare -A url
url[direct]="http://127.0.0.1:$b1/score"
url[nginx]="http://127.0.0.1:$ng/score"; url[nginx-tls]="http://127.0.0.1:$nt/score"
url[rollgate]="http://127.0.0.1:$gw/score"; url[rollgate-tls]="http://127.0.0.1:$gt/score"
targets="direct nginx nginx-tls rollgate rollgate-tls"
runs="$work/runs.jsonl"
for round in $(seq 1 "$rounds"); do
  for target in $targets; do
    r=$("$loadgen" "${url[$target]}" "$rate" "$secs" 128)
    s=$(wrk -t2 -c32 -d"${secs}s" "${url[$target]}" | awk '/Requests\/sec/ { print $2 }')
    echo "{\"round\": $round, \"target\": \"$target\", \"open\": $r, \"saturated\": $s}" >>"$runs"
  done
done
python3 - "$runs" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
by = {}
for r in runs:
    by.setdefault(r["target"], {})[r["round"]] = r
med = statistics.median
added = lambda t: med([by[t][k]["open"]["p50_us"] - by["direct"][k]["open"]["p50_us"] for k in by[t]])
sat = lambda t: med([by[t][k]["saturated"] for k in by[t]])
print(f"{'target':<13} {'p50_us':>8} {'p99_us':>8} {'added_p50':>10} {'errors':>7} {'wrk c=32 rps':>13}")
for t in by:
    print(f"{t:<13} {med([x['open']['p50_us'] for x in by[t].values()]):>8.0f} "
          f"{med([x['open']['p99_us'] for x in by[t].values()]):>8.0f} {added(t):>+10.0f} "
          f"{sum(x['open']['errors'] for x in by[t].values()):>7} {sat(t):>13.0f}")
print()
print(f"TLS adds to the p50: rollgate {added('rollgate-tls') - added('rollgate'):+.0f} us, "
      f"nginx {added('nginx-tls') - added('nginx'):+.0f} us")
print(f"over TLS, rollgate vs nginx: added p50 {added('rollgate-tls'):+.0f} vs {added('nginx-tls'):+.0f} us; "
      f"saturated {sat('rollgate-tls') / sat('nginx-tls'):.3f}x")
PY
