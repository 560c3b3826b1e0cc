# Shared by the bench scripts (sourced, not run): the binaries, a work
# directory cleaned up on exit with every process started, free ports, two
# nginx backends and the configs that route to them.
# Needs: $needs (tools to check for).
for tool in $needs; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install $needs)" >&2; exit 1; }
done
cargo build --release --quiet -p rollgate -p rollgate-bench
# ROLLGATE=path/to/rollgate measures another build (e.g. a copy of the last commit's) with the same script.
rg="${ROLLGATE:-$PWD/target/release/rollgate}"
loadgen="$PWD/target/release/loadgen"

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
b1=$(port); b2=$(port)
body='{"label":"approve","score":0.9731,"model":"fraud-v1","ok":1}'

nginx_conf() { # name, http-block body: writes $work/NAME/nginx.conf
  mkdir -p "$work/$1"
  cat >"$work/$1/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; pid $work/$1/pid; error_log $work/$1/error.log;
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

proxy_conf() { # name, listen port: nginx as the proxy, keep-alive upstreams, split_clients 5%
  nginx_conf "$1" "upstream v1 { server 127.0.0.1:$b1; keepalive 64; }
  upstream v2 { server 127.0.0.1:$b2; keepalive 64; }
  split_clients \"\${request_id}\" \$variant { 5% v2; * v1; }
  server { listen 127.0.0.1:$2; location / { proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_pass http://\$variant; } }"
}

gateway_conf() { # file, extra service lines: rollgate with a 5% split to v2
  local sha; sha=$(printf 'a%.0s' $(seq 64))
  cat >"$1" <<CONF
[services.bench]
route = { path_prefix = "/" }
protocol = "json"
stable = "v1"
split = { v1 = 95, v2 = 5 }
$2
[services.bench.versions.v1]
endpoints = ["http://127.0.0.1:$b1"]
artifact = { uri = "bench://v1", sha256 = "$sha" }
owner = "bench"
[services.bench.versions.v2]
endpoints = ["http://127.0.0.1:$b2"]
artifact = { uri = "bench://v2", sha256 = "$sha" }
owner = "bench"
CONF
}
