#!/usr/bin/env bash
# Speed and memory of `mtlscope analyze` against `tshark -r FILE -Y tls.handshake` on the same
# capture, each pinned to one CPU (taskset -c 0).
#
#   scripts/bench-analyze.sh [SIZE_MB]          # default 1024
#   BENCH_BIN=path/to/mtlscope scripts/bench-analyze.sh …
#   BENCH_MSS=0 scripts/bench-analyze.sh …      # keep loopback's 64 KB segments (default: cut
#                                               # to 1448-byte segments, as on Ethernet)
#
# The capture is made, not downloaded: dumpcap records a few real TLS connections on loopback
# (curl to nginx over TLS 1.2 and 1.3, each fetching a 2 MB file, one refused for lack of a
# client certificate), and the script then repeats those packets with other client ports and
# later times until the file reaches SIZE_MB (pcap, Ethernet). Prints MB/s and peak RSS of both.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${1:-1024}
export PATH="$PATH:/usr/sbin:/sbin"
for tool in nginx dumpcap tshark curl taskset python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 2; }
done
if [ -n "${BENCH_BIN:-}" ]; then
    bin=$BENCH_BIN
else
    cargo build --release --quiet
    bin=${CARGO_TARGET_DIR:-$PWD/target}/release/mtlscope
fi
work=$(mktemp -d)
cleanup() {
    [ -f "$work/dumpcap.pid" ] && kill "$(cat "$work/dumpcap.pid")" 2>/dev/null || true
    [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
"$bin" certs dev --out "$work/pki" >/dev/null
head -c $((2 * 1024 * 1024)) /dev/urandom >"$work/big.bin"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; pid $work/nginx.pid; error_log $work/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path $work/t1; proxy_temp_path $work/t2; fastcgi_temp_path $work/t3;
  uwsgi_temp_path $work/t4; scgi_temp_path $work/t5;
  server {
    listen 127.0.0.1:$port ssl;
    ssl_certificate $work/pki/server.pem; ssl_certificate_key $work/pki/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_verify_client optional; ssl_client_certificate $work/pki/root.pem;
    location / { root $work; }
    location /app { if (\$ssl_client_verify != SUCCESS) { return 403; } root $work; }
  }
}
CONF
nginx -c "$work/nginx.conf" -p "$work" &
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
dumpcap -q -P -i lo -f "tcp port $port" -w "$work/seed.pcap" 2>"$work/dumpcap.err" &
echo $! >"$work/dumpcap.pid"
for _ in $(seq 100); do grep -q "Capturing on" "$work/dumpcap.err" && break; sleep 0.05; done
sleep 1 # libpcap's first packet comes a moment after "Capturing on"
for v in 1.2 1.3; do
    curl -s -o /dev/null --tls-max "$v" --cacert "$work/pki/root.pem" "https://localhost:$port/big.bin"
    curl -s -o /dev/null --tls-max "$v" --cacert "$work/pki/root.pem" "https://localhost:$port/app/big.bin"
done
sleep 0.5
kill -INT "$(cat "$work/dumpcap.pid")"; wait "$(cat "$work/dumpcap.pid")" 2>/dev/null || true
rm -f "$work/dumpcap.pid"
python3 - "$work/seed.pcap" "$work/bench.pcap" "$size_mb" "$port" "${BENCH_MSS:-1448}" <<'PY'
import struct, sys
seed, out, size_mb, port, mss = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
data = open(seed, "rb").read()
header, recs, at = data[:24], [], 24
while at + 16 <= len(data):
    ts, us, cap, orig = struct.unpack("<IIII", data[at:at + 16])
    frame = bytearray(data[at + 16:at + 16 + cap])
    at += 16 + cap
    ihl = (frame[14] & 0x0F) * 4
    tcp = 14 + ihl
    off = tcp + (frame[tcp + 12] >> 4) * 4
    payload = frame[off:]
    if mss <= 0 or len(payload) <= mss:
        recs.append((ts, us, frame, orig))
        continue
    seq = struct.unpack(">I", frame[tcp + 4:tcp + 8])[0]
    for i in range(0, len(payload), mss):
        part = frame[:off] + payload[i:i + mss]
        part[16:18] = struct.pack(">H", len(part) - 14)
        part[tcp + 4:tcp + 8] = struct.pack(">I", (seq + i) & 0xFFFFFFFF)
        recs.append((ts, us, part, len(part)))
t0 = recs[0][0]
limit = size_mb * 1024 * 1024
with open(out, "wb") as f:
    f.write(header)
    written, round_ = 24, 0
    while written < limit:
        shift = round_ * 2  # later times, so connections do not overlap in time
        for ts, us, frame, orig in recs:
            frame = bytearray(frame)
            ihl = (frame[14] & 0x0F) * 4
            tcp = 14 + ihl
            sport, dport = struct.unpack(">HH", frame[tcp:tcp + 4])
            # Move the client's ephemeral port so each round is a new set of connections.
            if sport != port:
                sport = 1024 + (sport + round_ * 7) % 60000
            if dport != port:
                dport = 1024 + (dport + round_ * 7) % 60000
            frame[tcp:tcp + 4] = struct.pack(">HH", sport, dport)
            f.write(struct.pack("<IIII", ts - t0 + shift, us, len(frame), orig))
            f.write(frame)
            written += 16 + len(frame)
        round_ += 1
PY
mb=$(du -m "$work/bench.pcap" | cut -f1)
echo "capture: $mb MB ($(tshark -r "$work/seed.pcap" 2>/dev/null | wc -l) frames captured, cut to ${BENCH_MSS:-1448}-byte segments, repeated)"
measure() {
    local name=$1; shift
    /usr/bin/time -f "%e %M" -o "$work/time" taskset -c 0 "$@" >"$work/$name.out" 2>"$work/$name.err" || true
    read -r secs kb <"$work/time"
    printf "%-10s %7.2f s  %8.1f MB/s  peak RSS %6d MB\n" "$name" "$secs" \
        "$(python3 -c "print($mb / max($secs, 0.01))")" $((kb / 1024))
}
measure mtlscope "$bin" analyze "$work/bench.pcap" --record "$work/r.jsonl"
measure tshark tshark -r "$work/bench.pcap" -Y tls.handshake
echo "records: $(wc -l <"$work/r.jsonl"); tshark handshake lines: $(wc -l <"$work/tshark.out")"
