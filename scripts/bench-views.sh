#!/usr/bin/env bash
# Time and peak memory of the views over a large recording, beside `jq -c .` over the same file.
#
#   scripts/bench-views.sh [EXCHANGES] [OPEN] [PER_CONN]      # default 1000000 256 50
#   BENCH_REC=path.jsonl scripts/bench-views.sh               # an existing recording instead
#   BENCH_BIN=path/to/mtlscope …                               # an mtlscope already built
#   BENCH_ONLY=ui …                                            # only some of: cli ui
#
# The recording is written by examples/gen_recording through mtlscope's own record sink
# (diagnosis, legs_from compaction, the recording's JSON): OPEN keep-alive connections at once,
# PER_CONN exchanges each, real certificates, now and then a failure. Measured, each with
# /usr/bin/time -v (elapsed, maximum resident set size):
#
#   jq -c .                     the baseline: read and print every record
#   report                      the table and the summary
#   report --json               the same as JSON
#   export --har                HAR (legs once per connection), and its size
#   diff FILE:1 FILE:N          the first and the last record
#   ui FILE                     time until the first list page is served, RSS after the last
#                               page and the last flow were served
#
# Release build in CARGO_TARGET_DIR (default target/).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
open=${2:-256}
per_conn=${3:-50}
for tool in jq curl /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 2; }
done
target=${CARGO_TARGET_DIR:-$PWD/target}
bin=${BENCH_BIN:-$target/release/mtlscope}
[ -n "${BENCH_BIN:-}" ] || cargo build --release --quiet --bin mtlscope
[ -n "${BENCH_REC:-}" ] || cargo build --release --quiet --example gen_recording
work=$(mktemp -d)
ui_pid=
cleanup() {
    [ -n "$ui_pid" ] && kill "$ui_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

rec=${BENCH_REC:-}
if [ -z "$rec" ]; then
    rec=$work/flows.jsonl
    echo "generating $n exchanges ($open open connections, $per_conn exchanges each)…" >&2
    "$target/release/examples/gen_recording" "$rec" "$n" "$open" "$per_conn"
fi
size=$(stat -c %s "$rec")
lines=$(wc -l <"$rec")
calc() { awk "BEGIN { printf \"%.2f\", $1 }"; }
printf 'recording: %s lines, %s MB\n\n' "$lines" "$(calc "$size / 1000000")"
printf '%-28s %10s %12s  %s\n' command seconds "peak RSS MB" output

# measure NAME CMD…: run CMD under /usr/bin/time -v, stdout to a file, print a table row.
measure() {
    local name=$1
    shift
    /usr/bin/time -v -o "$work/time" "$@" >"$work/out" 2>"$work/err" || {
        echo "$name failed:" >&2
        cat "$work/err" >&2
        exit 1
    }
    local secs rss
    secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {
        n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$work/time")
    rss=$(awk -F': ' '/Maximum resident set size/ { printf "%.0f", $2 / 1024 }' "$work/time")
    printf '%-28s %10.2f %12s  %s\n' "$name" "$secs" "$rss" "${extra:-}"
    extra=
}

only=${BENCH_ONLY:-cli ui}
extra=
if [[ " $only " == *" cli "* ]]; then
measure "jq -c ." jq -c . "$rec"
measure report "$bin" report "$rec"
measure "report --json" "$bin" report --json "$rec"
measure "report --only-failures" "$bin" report --only-failures "$rec"
measure "export --har" "$bin" export --har "$work/out.har" "$rec"
har=$(stat -c %s "$work/out.har")
printf '%-28s %10s %12s  %s\n' "" "" "" "HAR $(calc "$har / 1000000") MB = $(calc "$har / $size")× the recording"
records=$(grep -c . "$rec")
measure "diff FILE:1 FILE:$records" "$bin" diff "$rec:1" "$rec:$records"
fi
[[ " $only " == *" ui "* ]] || exit 0

# ui: index, first page, last page, last flow; RSS of the running process after them.
port=$((20000 + RANDOM % 20000))
start=$(date +%s.%N)
"$bin" ui "$rec" --listen "127.0.0.1:$port" >"$work/ui.out" 2>&1 &
ui_pid=$!
for _ in $(seq 1 6000); do
    curl -sf "http://127.0.0.1:$port/api/list?limit=100" -o "$work/page1.json" 2>/dev/null && break
    kill -0 "$ui_pid" 2>/dev/null || { cat "$work/ui.out" >&2; exit 1; }
    sleep 0.1
done
first=$(calc "$(date +%s.%N) - $start")
hwm_first=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$ui_pid/status")
total=$(jq .total "$work/page1.json")
last_from=$(( (total - 1) / 100 * 100 ))
t0=$(date +%s.%N)
curl -sf "http://127.0.0.1:$port/api/list?limit=100&from=$last_from" -o "$work/pagel.json"
curl -sf "http://127.0.0.1:$port/api/flows/$total" -o "$work/flow.json"
t1=$(date +%s.%N)
curl -sf "http://127.0.0.1:$port/api/list?limit=100&finding=no-client-cert" -o "$work/filtered.json"
t2=$(date +%s.%N)
curl -sf "http://127.0.0.1:$port/api/list?limit=100&status=403" -o "$work/mid.json"
t3=$(date +%s.%N)
rss=$(awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$ui_pid/status")
hwm=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$ui_pid/status")
counted=$(jq '[.counts.statuses[]] | add' "$work/filtered.json")
printf '%-28s %10.2f %12s  %s\n' "ui FILE: first page" "$first" "$hwm_first" "$total records indexed (peak RSS)"
printf '%-28s %10.2f %12s  %s\n' "ui: last page + last flow" "$(calc "$t1 - $t0")" "$rss" "RSS after them ($(jq '.rows | length' "$work/pagel.json") rows)"
printf '%-28s %10.2f %12s  %s\n' "ui: filter no-client-cert" "$(calc "$t2 - $t1")" "" "$(jq .matched "$work/filtered.json") matching; statuses counted over $counted records"
printf '%-28s %10.2f %12s  %s\n' "ui: filter status 403" "$(calc "$t3 - $t2")" "$hwm" "$(jq .matched "$work/mid.json") matching (peak RSS of the whole run)"
