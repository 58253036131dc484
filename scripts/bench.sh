#!/usr/bin/env bash
# Throughput, latency and memory of `mtlscope reverse` against a baseline measured in the same
# run: nginx as a TLS-terminating reverse proxy in front of the same upstream (a real nginx that
# requires client certificates). Both proxies present the same client certificate upstream.
#
#   scripts/bench.sh [SECONDS] [CONNECTIONS]
#   BENCH_UI=1 scripts/bench.sh …   # the same with `--ui` and headless Chromium watching it live
#   BENCH_UI=nobrowser …            # `--ui` with nobody watching
#
# Two loads with wrk: keep-alive (relay cost) and `Connection: close` (a new TLS connection per
# request: both legs' handshakes, the capture, the diagnosis and one record per exchange).
# Figures are reported as ratios to the baseline; absolute numbers depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-16}
export PATH="$PATH:/usr/sbin:/sbin"
for tool in wrk nginx; do
    command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install -y $tool)" >&2; exit 2; }
done

cargo build --release --quiet
bin=$PWD/target/release/mtlscope
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

"$bin" certs dev --out "$work/pki" >/dev/null
pki=$work/pki
up=$(free_port); base=$(free_port); mt=$(free_port)
ui_args=()
if [ -n "${BENCH_UI:-}" ]; then
    uiport=$(free_port)
    ui_args=(--ui "127.0.0.1:$uiport")
fi

nginx_conf() { # $1 dir, $2 server block
    mkdir -p "$1"
    cat >"$1/nginx.conf" <<CONF
daemon off; master_process on; worker_processes auto; user root;
pid $1/nginx.pid; error_log $1/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; client_body_temp_path $1; proxy_temp_path $1;
  fastcgi_temp_path $1; uwsgi_temp_path $1; scgi_temp_path $1;
  $2
}
CONF
}

nginx_conf "$work/up" "server { listen 127.0.0.1:$up ssl; ssl_certificate $pki/server.pem; ssl_certificate_key $pki/server.key;
  ssl_verify_client on; ssl_client_certificate $pki/root.pem; ssl_verify_depth 3;
  keepalive_requests 1000000; location / { return 200 \"ok\\n\"; } }"
nginx_conf "$work/base" "upstream up { server 127.0.0.1:$up; keepalive 64; }
  server { listen 127.0.0.1:$base ssl; ssl_certificate $pki/server.pem; ssl_certificate_key $pki/server.key;
  keepalive_requests 1000000;
  location / { proxy_pass https://up; proxy_http_version 1.1; proxy_set_header Connection \"\";
    proxy_ssl_certificate $pki/client-good.pem; proxy_ssl_certificate_key $pki/client-good.key;
    proxy_ssl_trusted_certificate $pki/root.pem; proxy_ssl_verify on; proxy_ssl_name localhost;
    proxy_ssl_session_reuse on; } }"

nginx -p "$work/up" -c "$work/up/nginx.conf" & pids+=($!)
nginx -p "$work/base" -c "$work/base/nginx.conf" & pids+=($!)
${MTLSCOPE_WRAP:-} "$bin" reverse --quiet --listen "127.0.0.1:$mt" --upstream "https://localhost:$up" \
    --server-cert "$pki/server.pem,$pki/server.key" --upstream-ca "$pki/root.pem" \
    --identity "$pki/client-good.pem,$pki/client-good.key" --record "$work/record.jsonl" \
    "${ui_args[@]}" 2>"$work/mtlscope.log" & mpid=$!; pids+=($mpid)
wait_port "$up"; wait_port "$base"; wait_port "$mt"
if [ -n "${BENCH_UI:-}" ] && [ "$BENCH_UI" != nobrowser ]; then
    # A browser on the live list for the whole run: the relay must not wait for it.
    wait_port "$uiport"
    chromium --headless=new --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --remote-debugging-port=0 --user-data-dir="$work/chromium" \
        "http://127.0.0.1:$uiport/" >/dev/null 2>&1 </dev/null & pids+=($!)
    sleep 3
fi

# wrk prints "Requests/sec: N" and a latency distribution; keep rps and p99 (in ms).
run() { # $1 port, $2.. extra wrk args
    local port=$1; shift
    wrk -t2 -c"$conns" -d"${secs}s" --latency "$@" "https://localhost:$port/" 2>&1 |
        awk '/Requests\/sec/ {rps=$2} / 99%/ {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; p99=v}
             END {printf "%.0f %.2f\n", rps, p99}'
}

printf '%-28s %12s %12s %10s\n' "load" "nginx rps" "mtlscope rps" "ratio"
for mode in ${BENCH_MODES:-keepalive close}; do
    extra=(); [ "$mode" = close ] && extra=(-H "Connection: close")
    read -r b_rps b_p99 < <(run "$base" "${extra[@]}")
    read -r m_rps m_p99 < <(run "$mt" "${extra[@]}")
    ratio=$(awk -v m="$m_rps" -v b="$b_rps" 'BEGIN { if (b > 0) printf "%.2f", m / b; else print "n/a" }')
    printf '%-28s %12s %12s %10s\n' "$mode ($conns conns, ${secs}s)" "$b_rps" "$m_rps" "$ratio"
    printf '%-28s %12s %12s %10s\n' "  p99 latency (ms)" "$b_p99" "$m_p99" \
        "$(awk -v m="$m_p99" -v b="$b_p99" 'BEGIN { if (b > 0) printf "%.2f", m / b; else print "n/a" }')"
done

cp "$work/record.jsonl" /tmp/bench-record.jsonl 2>/dev/null || true
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$mpid/status")
nginx_kb=$(for p in $(pgrep -f "nginx.*$work/base"); do awk '/VmHWM/ {print $2}' "/proc/$p/status"; done | awk '{s+=$1} END {print s}')
records=$(wc -l <"$work/record.jsonl")
echo "peak RSS: mtlscope ${rss_kb} KiB, nginx baseline (all processes) ${nginx_kb} KiB, ratio $(awk -v m="$rss_kb" -v b="$nginx_kb" 'BEGIN {printf "%.2f", m/b}')"
echo "mtlscope wrote $records records"
if [ -n "${BENCH_UI:-}" ]; then
    curl -s "http://127.0.0.1:$uiport/api/stats"; echo " (web view: flows kept, dropped)"
fi
