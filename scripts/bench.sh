#!/usr/bin/env bash
# Speed of `mtlscope reverse` against what a user would otherwise put in the same place, all
# measured in one run against the same upstream (a real nginx that requires a client
# certificate):
#
#   direct      wrk straight to the upstream nginx (on a port that does not ask for a certificate)
#   nginx       nginx as a TLS reverse proxy presenting a client certificate upstream (pooled,
#               session reuse): the baseline every ratio is against
#   paired      nginx doing mtlscope's per-connection work: a new upstream connection (and a full
#               client-certificate handshake) per client connection, proxy_ssl_session_reuse off
#   paired-rs   the same nginx resuming its upstream sessions (proxy_ssl_session_reuse on)
#   bare        the floor of mtlscope's stack: examples/bare_relay.rs, a relay built from the same
#               crates (tokio, hyper, tokio-rustls, aws-lc-rs, mimalloc) with mtlscope's upstream
#               pairing and session resumption, and none of its capture, diagnosis or recording
#   mitmproxy   mitmdump in reverse mode presenting the same client certificate (if installed)
#   mtlscope    recording on, --client-auth optional (the client is asked for a certificate);
#               upstream sessions resumed when the client resumes (the default)
#   mtlscope-pool  the same with --upstream-pool (upstream connections reused across clients)
#   mtlscope-ui    the same as mtlscope with --ui and nobody watching (the web view's own cost)
#   mtlscope-norec the same as mtlscope without --record: what writing the recording costs
#
# The paired rows open an upstream connection per request, which is per client connection only
# with a new connection per request: they are measured on those loads only.
#
#   scripts/bench.sh [SECONDS] [CONNECTIONS]
#   BENCH_UI=1 scripts/bench.sh …        # mtlscope with `--ui` and headless Chromium watching
#   BENCH_ONLY="nginx mtlscope" …         # a subset of the targets
#   BENCH_LOADS=keepalive …               # a subset of the loads (keepalive close single)
#   MTLSCOPE_WRAP="perf record -g --" …   # run mtlscope under a profiler
#
# Each proxy is pinned to CPU 0 (taskset), wrk and the upstream to the others, so proxies are
# compared on the same single CPU. Loads: keep-alive (relay cost), `Connection: close` (a new
# connection per request: every handshake, the capture, the diagnosis, a record each), and one
# client at a time with new connections (the latency a proxy adds to a handshake).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-32}
export PATH="$PATH:/usr/sbin:/sbin"
for tool in wrk nginx taskset; do
    command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install -y $tool)" >&2; exit 2; }
done
# mitmproxy last: it keeps working through its backlog on the shared CPU after wrk stops.
targets=${BENCH_ONLY:-direct nginx paired paired-rs bare mtlscope mtlscope-pool mtlscope-ui mtlscope-norec mitmproxy}
command -v mitmdump >/dev/null || targets=${targets//mitmproxy/}
ncpu=$(nproc)
proxy_cpu=0
other_cpus=$([ "$ncpu" -gt 1 ] && echo "1-$((ncpu - 1))" || echo 0)

cargo build --release --quiet
[[ $targets == *bare* ]] && cargo build --release --quiet --example bare_relay
bin=${CARGO_TARGET_DIR:-$PWD/target}/release/mtlscope
bare_bin=${CARGO_TARGET_DIR:-$PWD/target}/release/examples/bare_relay
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 150); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

"$bin" certs dev --out "$work/pki" >/dev/null
pki=$work/pki
cat "$pki/client-good.pem" "$pki/client-good.key" >"$work/client-good-combined.pem"
up=$(free_port); open=$(free_port); base=$(free_port); mt=$(free_port); mp=$(free_port)
pr=$(free_port); prs=$(free_port); mtp=$(free_port); mtu=$(free_port); mtuui=$(free_port)
bare=$(free_port); mtn=$(free_port)
declare -A port=([direct]=$open [nginx]=$base [paired]=$pr [paired-rs]=$prs [bare]=$bare [mitmproxy]=$mp [mtlscope]=$mt
    [mtlscope-pool]=$mtp [mtlscope-ui]=$mtu [mtlscope-norec]=$mtn)
ui_args=()
if [ -n "${BENCH_UI:-}" ]; then
    uiport=$(free_port)
    ui_args=(--ui "127.0.0.1:$uiport")
fi

nginx_conf() { # $1 dir, $2 worker_processes, $3 server blocks
    mkdir -p "$1"
    cat >"$1/nginx.conf" <<CONF
daemon off; master_process on; worker_processes $2; user root;
pid $1/nginx.pid; error_log $1/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; client_body_temp_path $1; proxy_temp_path $1;
  fastcgi_temp_path $1; uwsgi_temp_path $1; scgi_temp_path $1;
  $3
}
CONF
}

tls="ssl_certificate $pki/server.pem; ssl_certificate_key $pki/server.key;"
nginx_conf "$work/up" auto "server { listen 127.0.0.1:$up ssl; $tls
    ssl_verify_client on; ssl_client_certificate $pki/root.pem; ssl_verify_depth 3;
    location / { return 200 \"ok\\n\"; } }
  server { listen 127.0.0.1:$open ssl; $tls location / { return 200 \"ok\\n\"; } }"
nginx_conf "$work/base" 1 "upstream up { server 127.0.0.1:$up; keepalive 64; }
  server { listen 127.0.0.1:$base ssl; $tls
  location / { proxy_pass https://up; proxy_http_version 1.1; proxy_set_header Connection \"\";
    proxy_ssl_certificate $pki/client-good.pem; proxy_ssl_certificate_key $pki/client-good.key;
    proxy_ssl_trusted_certificate $pki/root.pem; proxy_ssl_verify on; proxy_ssl_name localhost;
    proxy_ssl_session_reuse on; } }"

paired_server() { # $1 port, $2 on|off
    echo "server { listen 127.0.0.1:$1 ssl; $tls
  location / { proxy_pass https://127.0.0.1:$up; proxy_http_version 1.1;
    proxy_ssl_certificate $pki/client-good.pem; proxy_ssl_certificate_key $pki/client-good.key;
    proxy_ssl_trusted_certificate $pki/root.pem; proxy_ssl_verify on; proxy_ssl_name localhost;
    proxy_ssl_server_name on; proxy_ssl_session_reuse $2; } }"
}
nginx_conf "$work/paired" 1 "$(paired_server "$pr" off)"
nginx_conf "$work/paired-rs" 1 "$(paired_server "$prs" on)"

taskset -c "$other_cpus" nginx -p "$work/up" -c "$work/up/nginx.conf" & pids+=($!)
taskset -c "$proxy_cpu" nginx -p "$work/base" -c "$work/base/nginx.conf" & pids+=($!)
taskset -c "$proxy_cpu" nginx -p "$work/paired" -c "$work/paired/nginx.conf" & pids+=($!)
taskset -c "$proxy_cpu" nginx -p "$work/paired-rs" -c "$work/paired-rs/nginx.conf" & pids+=($!)
if [[ $targets == *bare* ]]; then
    taskset -c "$proxy_cpu" "$bare_bin" "127.0.0.1:$bare" "127.0.0.1:$up" "$pki/server.pem" \
        "$pki/server.key" "$pki/client-good.pem" "$pki/client-good.key" "$pki/root.pem" \
        2>"$work/bare.log" </dev/null & bare_pid=$!; pids+=($bare_pid)
fi
if [[ $targets == *mitmproxy* ]]; then
    taskset -c "$proxy_cpu" mitmdump -q --mode "reverse:https://localhost:$up" \
        --listen-host 127.0.0.1 --listen-port "$mp" --set confdir="$work/mitm" \
        --set client_certs="$work/client-good-combined.pem" --ssl-insecure \
        >"$work/mitm.log" 2>&1 </dev/null & mitm_pid=$!; pids+=($mitm_pid)
fi
mtlscope_args=(reverse --quiet --upstream "https://localhost:$up"
    --server-cert "$pki/server.pem,$pki/server.key" --upstream-ca "$pki/root.pem"
    --identity "$pki/client-good.pem,$pki/client-good.key" --client-auth optional
    --client-ca "$pki/root.pem")
taskset -c "$proxy_cpu" ${MTLSCOPE_WRAP:-} "$bin" "${mtlscope_args[@]}" --listen "127.0.0.1:$mt" \
    --record "$work/record.jsonl" "${ui_args[@]}" 2>"$work/mtlscope.log" </dev/null & mpid=$!
pids+=($mpid)
if [[ $targets == *mtlscope-pool* ]]; then
    taskset -c "$proxy_cpu" "$bin" "${mtlscope_args[@]}" --listen "127.0.0.1:$mtp" --upstream-pool \
        --record "$work/record-pool.jsonl" 2>"$work/mtlscope-pool.log" </dev/null & mppid=$!
    pids+=($mppid)
fi
if [[ $targets == *mtlscope-ui* ]]; then
    taskset -c "$proxy_cpu" "$bin" "${mtlscope_args[@]}" --listen "127.0.0.1:$mtu" \
        --ui "127.0.0.1:$mtuui" --record "$work/record-ui.jsonl" 2>"$work/mtlscope-ui.log" \
        </dev/null & mupid=$!
    pids+=($mupid)
fi
if [[ $targets == *mtlscope-norec* ]]; then
    taskset -c "$proxy_cpu" "$bin" "${mtlscope_args[@]}" --listen "127.0.0.1:$mtn" \
        2>"$work/mtlscope-norec.log" </dev/null & mnpid=$!
    pids+=($mnpid)
fi
for t in $targets; do wait_port "${port[$t]}"; done
if [ -n "${BENCH_UI:-}" ] && [ "$BENCH_UI" != nobrowser ]; then
    # A browser on the live list for the whole run: the relay must not wait for it.
    wait_port "$uiport"
    taskset -c "$other_cpus" chromium --headless=new --no-sandbox --disable-gpu --disable-quic \
        --no-first-run --disable-background-networking --disable-component-update \
        --disable-sync --remote-debugging-port=0 --user-data-dir="$work/chromium" \
        "http://127.0.0.1:$uiport/" >/dev/null 2>&1 </dev/null & pids+=($!)
    sleep 3
fi

# wrk prints "Requests/sec: N", the latency distribution and socket errors; keep rps, mean and
# p99 latency (ms) and non-2xx/errors.
run() { # $1 port, $2 connections, $3.. extra wrk args
    local port=$1 c=$2; shift 2
    taskset -c "$other_cpus" wrk -t1 -c"$c" -d"${secs}s" --latency "$@" "https://localhost:$port/" 2>&1 |
        awk 'function ms(v) { if (v ~ /us$/) {sub(/us/,"",v); return v/1000} if (v ~ /ms$/) {sub(/ms/,"",v); return v} if (v ~ /s$/) {sub(/s/,"",v); return v*1000} return v }
             /Requests\/sec/ {rps=$2} /^ +Latency +[0-9]/ {mean=ms($2)} / 99%/ {p99=ms($2)}
             /Non-2xx/ {bad+=$NF} /Socket errors/ {gsub(/,/,""); bad+=$4+$6+$8+$10}
             END {printf "%.0f %.3f %.2f %d\n", rps, mean, p99, bad}'
}

# CPU time the target's processes used (utime + stime, in clock ticks): on this small machine
# the load generator and the upstream share the other CPU, so req/s alone can measure them; CPU
# per request measures the proxy itself.
hz=$(getconf CLK_TCK)
target_pids() {
    case $1 in
        mtlscope) echo "$mpid" ;;
        mtlscope-pool) echo "${mppid:-}" ;;
        mtlscope-ui) echo "${mupid:-}" ;;
        mtlscope-norec) echo "${mnpid:-}" ;;
        nginx) nginx_pids "$work/base" ;;
        paired) nginx_pids "$work/paired/" ;;
        paired-rs) nginx_pids "$work/paired-rs" ;;
        direct) nginx_pids "$work/up" ;;
        mitmproxy) echo "${mitm_pid:-}" ;;
        bare) echo "${bare_pid:-}" ;;
    esac
}
nginx_pids() { local m; for m in $(pgrep -f "nginx.*$1"); do echo "$m"; pgrep -P "$m"; done; }
cpu_ticks() { for p in $(target_pids "$1"); do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null; done | awk '{s += $1} END {print s + 0}'; }

declare -A rps p99 mean bad cpu busy
loads=${BENCH_LOADS:-keepalive close single}
for load in $loads; do
    extra=(); c=$conns
    [ "$load" != keepalive ] && extra=(-H "Connection: close")
    [ "$load" = single ] && c=1
    for t in $targets; do
        if [[ $t == paired* && $load == keepalive ]]; then
            rps[$t,$load]=-; p99[$t,$load]=-; cpu[$t,$load]=-; busy[$t,$load]=-; bad[$t,$load]=-
            continue
        fi
        before=$(cpu_ticks "$t")
        read -r rps[$t,$load] mean[$t,$load] p99[$t,$load] bad[$t,$load] < <(run "${port[$t]}" "$c" "${extra[@]}")
        used=$(( $(cpu_ticks "$t") - before ))
        cpu[$t,$load]=$(awk -v u="$used" -v hz="$hz" -v r="${rps[$t,$load]}" -v s="$secs" 'BEGIN { if (r > 0) printf "%.3f", u * 1000 / hz / (r * s); else print "n/a" }')
        busy[$t,$load]=$(awk -v u="$used" -v hz="$hz" -v s="$secs" 'BEGIN { printf "%.0f", u * 100 / hz / s }')
    done
done

ratio() { awk -v m="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", m / b; else print "n/a" }'; }
echo "wrk -t1, ${secs}s per run; proxies pinned to CPU $proxy_cpu; ratios against nginx as TLS reverse proxy"
echo "(CPU per request: the target's own processes; its ratio is nginx/mtlscope, so above 1 means cheaper than nginx)"
printf '%-34s' "load"; for t in $targets; do printf '%16s' "$t"; done; printf '%20s%20s\n' "mtlscope/nginx" "mtlscope/paired-rs"
for load in $loads; do
    case $load in
        keepalive) label="keep-alive, $conns conns (req/s)" ;;
        close) label="new conn/request, $conns (req/s)" ;;
        single) label="new conn/request, 1 (req/s)" ;;
    esac
    printf '%-34s' "$label"; for t in $targets; do printf '%16s' "${rps[$t,$load]}"; done
    printf '%20s%20s\n' "$(ratio "${rps[mtlscope,$load]:-0}" "${rps[nginx,$load]:-0}")" \
        "$(ratio "${rps[mtlscope,$load]:-0}" "${rps[paired-rs,$load]:-0}")"
    printf '%-34s' "  p99 latency (ms)"; for t in $targets; do printf '%16s' "${p99[$t,$load]}"; done; echo
    printf '%-34s' "  CPU per request (ms)"; for t in $targets; do printf '%16s' "${cpu[$t,$load]}"; done
    printf '%20s\n' "$(ratio "${cpu[nginx,$load]:-0}" "${cpu[mtlscope,$load]:-0}")"
    printf '%-34s' "  its CPU busy (% of one)"; for t in $targets; do printf '%16s' "${busy[$t,$load]}"; done; echo
    printf '%-34s' "  failed (non-2xx, socket errors)"; for t in $targets; do printf '%16s' "${bad[$t,$load]}"; done; echo
done
# Same-run ratios of each mtlscope variant (req/s against nginx-proxy, and against paired-rs on
# the new-connection loads; CPU per request nginx/variant, above 1 cheaper than nginx).
echo "ratios (req/s variant/nginx, variant/paired-rs; CPU per request nginx/variant):"
for t in $targets; do
    [[ $t == mtlscope* || $t == bare ]] || continue
    for load in $loads; do
        printf '  %-14s %-10s %6s %6s %6s\n' "$t" "$load" "$(ratio "${rps[$t,$load]:-0}" "${rps[nginx,$load]:-0}")" \
            "$(ratio "${rps[$t,$load]:-0}" "${rps[paired-rs,$load]:-0}")" \
            "$(ratio "${cpu[nginx,$load]:-0}" "${cpu[$t,$load]:-0}")"
    done
done
if [[ " $targets " == *" mtlscope-ui "* && " $targets " == *" mtlscope "* ]]; then
    for load in $loads; do
        echo "--ui unwatched, $load: CPU per request $(ratio "${cpu[mtlscope-ui,$load]:-0}" "${cpu[mtlscope,$load]:-0}")× mtlscope's, req/s $(ratio "${rps[mtlscope-ui,$load]:-0}" "${rps[mtlscope,$load]:-0}")×"
    done
fi
if [[ " $targets " == *" mtlscope-norec "* && " $targets " == *" mtlscope "* ]]; then
    for load in $loads; do
        echo "--record, $load: CPU per request $(ratio "${cpu[mtlscope,$load]:-0}" "${cpu[mtlscope-norec,$load]:-0}")× that without, req/s $(ratio "${rps[mtlscope,$load]:-0}" "${rps[mtlscope-norec,$load]:-0}")×"
    done
fi
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
if [[ $targets == *direct* ]]; then
    # wrk's latency leaves out connecting; one client at a time, 1/rps is the whole request.
    added() { awk -v m="${rps[$1,single]:-0}" -v d="${rps[direct,single]}" 'BEGIN { if (m > 0 && d > 0) printf "%.2f", 1000/m - 1000/d; else print "n/a" }'; }
    echo "added time per new connection, one client at a time (ms, from req/s):" \
        "mtlscope $(added mtlscope), nginx $(added nginx)"
fi

rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$mpid/status" 2>/dev/null || echo 0)
nginx_kb=$(for p in $(pgrep -f "nginx.*$work/base"); do awk '/VmHWM/ {print $2}' "/proc/$p/status"; done | awk '{s+=$1} END {print s+0}')
echo "peak RSS: mtlscope ${rss_kb} KiB, nginx proxy (all processes) ${nginx_kb} KiB"
if [ -n "${BENCH_UI:-}" ]; then
    curl -s "http://127.0.0.1:$uiport/api/stats" || true; echo " (web view: flows kept, dropped)"
fi
# SIGTERM: mtlscope writes every record and exits 0.
kill -TERM "$mpid" 2>/dev/null || true
wait "$mpid" 2>/dev/null && echo "mtlscope exited 0 on SIGTERM" || echo "mtlscope exit status $? on SIGTERM"
cp "$work/record.jsonl" /tmp/bench-record.jsonl 2>/dev/null || true
records=$(wc -l <"$work/record.jsonl")
bytes=$(wc -c <"$work/record.jsonl")
compact=$(grep -c '"legs_from"' "$work/record.jsonl" || true)
echo "mtlscope wrote $records records, $((bytes / (records > 0 ? records : 1))) bytes each on average ($compact with legs_from)"
