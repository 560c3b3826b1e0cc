# Shared by the bench scripts (sourced, not run): the binaries, a work
# directory cleaned up on exit with every process started, free ports, two
# nginx backends and the configs that route to them. Every proxy raced gets
# the same number of workers: WORKERS (default: one per core) is rollgate's
# --threads, nginx's worker_processes and HAProxy's nbthread.
# Needs: $needs (tools to check for).
for tool in $needs; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install $needs)" >&2; exit 1; }
done
cargo build --release --quiet -p rollgate -p rollgate-bench
# ROLLGATE=path/to/rollgate measures another build (e.g. a copy of the last commit's) with the same script.
rg="${ROLLGATE:-$PWD/target/release/rollgate}"
loadgen="$PWD/target/release/loadgen"

workers=${WORKERS:-$(nproc)}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
b1=$(port); b2=$(port)
body='{"label":"approve","score":0.9731,"model":"fraud-v1","ok":1}'

nginx_conf() { # name, http-block body[, workers]: writes $work/NAME/nginx.conf
  mkdir -p "$work/$1"
  local n=${3:-1} master=off
  [ "$n" -gt 1 ] && master=on
  cat >"$work/$1/nginx.conf" <<CONF
daemon off; master_process $master; worker_processes $n; pid $work/$1/pid; error_log $work/$1/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/$1; proxy_temp_path $work/$1; fastcgi_temp_path $work/$1; uwsgi_temp_path $work/$1; scgi_temp_path $work/$1;
  $2
}
CONF
}
nginx_start() { # name
  nginx -p "$work/$1" -c "$work/$1/nginx.conf" &
  pids+=($!)
}

# Each version's backend is a process of its own, as two model deployments
# would be: the shadow's copies must not queue in the primary's event loop.
for v in 1 2; do
  p=$b1; [ $v = 2 ] && p=$b2
  nginx_conf "backend-v$v" "server { listen 127.0.0.1:$p; location / { default_type application/json; return 200 '$body'; } }"
  nginx_start "backend-v$v"
done

proxy_conf() { # name, listen port: nginx as the proxy on $workers workers, keep-alive upstreams, split_clients 5%
  nginx_conf "$1" "upstream v1 { server 127.0.0.1:$b1; keepalive 64; }
  upstream v2 { server 127.0.0.1:$b2; keepalive 64; }
  split_clients \"\${request_id}\" \$variant { 5% v2; * v1; }
  server { listen 127.0.0.1:$2 reuseport; location / { proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_pass http://\$variant; } }" "$workers"
}

haproxy_conf() { # file, listen port: HAProxy on $workers threads, connections to the backends reused, 5% to v2
  cat >"$1" <<CONF
global
  nbthread $workers
  maxconn 4096
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend bench
  bind 127.0.0.1:$2
  use_backend v2 if { rand(100) lt 5 }
  default_backend v1
backend v1
  server v1 127.0.0.1:$b1
backend v2
  server v2 127.0.0.1:$b2
CONF
}

# Peak RSS of a process and its children (nginx's workers), summed.
rss() {
  [ -n "$1" ] || { echo "-"; return; }
  local total=0 p
  for p in "$1" $(pgrep -P "$1" || true); do
    total=$((total + $(awk '/VmHWM/ { print $2 }' "/proc/$p/status")))
  done
  awk -v kb="$total" 'BEGIN { printf "%.1f MiB", kb / 1024 }'
}

bench_service() { # file, extra service lines, NAME=ENDPOINT per version: rollgate's config for service `bench`
  local file=$1 extra=$2 pair sha; shift 2
  sha=$(printf 'a%.0s' $(seq 64))
  {
    printf '[services.bench]\nroute = { path_prefix = "/" }\nprotocol = "json"\nstable = "v1"\n%s\n' "$extra"
    for pair in "$@"; do
      printf '[services.bench.versions.%s]\nendpoints = ["%s"]\nartifact = { uri = "bench://%s", sha256 = "%s" }\nowner = "bench"\n' \
        "${pair%%=*}" "${pair#*=}" "${pair%%=*}" "$sha"
    done
  } >"$file"
}

gateway_conf() { # file, extra service lines: rollgate with a 5% split to v2
  bench_service "$1" "split = { v1 = 95, v2 = 5 }
$2" "v1=http://127.0.0.1:$b1" "v2=http://127.0.0.1:$b2"
}
