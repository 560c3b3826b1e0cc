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
for tool in nginx valgrind callgrind_annotate; do
  command -v "$tool" >/dev/null || { echo "needs $tool: apt-get install nginx valgrind" >&2; exit 1; }
done
cargo build --release --quiet -p rollgate -p rollgate-bench
rg="$PWD/target/release/rollgate"
loadgen="$PWD/target/release/loadgen"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
b1=$(port); b2=$(port); front=$(port)
body='{"label":"approve","score":0.9731,"model":"fraud-v1","ok":1}'
conf() { # dir, server blocks
  mkdir -p "$work/$1"
  cat >"$work/$1/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; pid $work/$1/pid; error_log $work/$1/error.log;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path $work/$1; proxy_temp_path $work/$1; fastcgi_temp_path $work/$1; uwsgi_temp_path $work/$1; scgi_temp_path $work/$1;
$2 }
CONF
}
conf backend "server { listen 127.0.0.1:$b1; location / { default_type application/json; return 200 '$body'; } }
  server { listen 127.0.0.1:$b2; location / { default_type application/json; return 200 '$body'; } }"
nginx -p "$work/backend" -c "$work/backend/nginx.conf" &
pids+=($!)
conf proxy "upstream v1 { server 127.0.0.1:$b1; keepalive 64; }
  upstream v2 { server 127.0.0.1:$b2; keepalive 64; }
  split_clients \"\${request_id}\" \$variant { 5% v2; * v1; }
  server { listen 127.0.0.1:$front; location / { proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_pass http://\$variant; } }"
gateway_conf() { # file, extra service lines
  local sha; sha=$(printf 'a%.0s' $(seq 64))
  printf '[services.bench]\nroute = { path_prefix = "/" }\nprotocol = "json"\nstable = "v1"\nsplit = { v1 = 95, v2 = 5 }\n%s\n' "$2" >"$1"
  for v in v1 v2; do
    local p=$b1; [ $v = v2 ] && p=$b2
    printf '[services.bench.versions.%s]\nendpoints = ["http://127.0.0.1:%s"]\nartifact = { uri = "bench://%s", sha256 = "%s" }\nowner = "bench"\n' "$v" "$p" "$v" "$sha" >>"$1"
  done
}
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
