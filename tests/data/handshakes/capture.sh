#!/usr/bin/env bash
# Re-create the handshake corpus: a throwaway ECDSA PKI, then one real openssl s_server /
# s_client session per scenario relayed through capture.py. The captures are committed; this
# script documents how they were made (run from this directory; needs openssl and python3).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }
key ca
openssl req -x509 -new -key ca.key -subj "/O=mtlscope corpus/CN=Corpus Client CA" -days 3650 \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign -out ca.pem
for who in server client; do
  key "$who"
  cn=$([ "$who" = server ] && echo localhost || echo "corpus client")
  eku=$([ "$who" = server ] && echo serverAuth || echo clientAuth)
  openssl req -new -key "$who.key" -subj "/CN=$cn" -out "$who.csr"
  printf "extendedKeyUsage=%s\nsubjectAltName=DNS:localhost\n" "$eku" > "$who.ext"
  openssl x509 -req -in "$who.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
    -extfile "$who.ext" -out "$who.pem" 2>/dev/null
done

sport=24433; lport=24434
# scenario NAME "s_server flags" "s_client flags" "client stdin script" ["server stdin script"]
scenario() {
  local name=$1 sflags=$2 cflags=$3 cscript=$4 sscript=${5:-}
  rm -f srv_in; mkfifo srv_in
  # shellcheck disable=SC2086
  openssl s_server -accept $sport -naccept 1 -cert server.pem -key server.key $sflags \
    < srv_in > "srv-$name.log" 2>&1 &
  local srv=$!
  exec 3> srv_in
  sleep 0.4
  python3 "$here/capture.py" $lport $sport "$here/$name.tlscap" &
  local cap=$!
  sleep 0.3
  # shellcheck disable=SC2086
  (eval "$cscript") | timeout 15 openssl s_client -connect 127.0.0.1:$lport -servername localhost \
    $cflags > "cli-$name.log" 2>&1 &
  local cli=$!
  if [ -n "$sscript" ]; then eval "$sscript"; fi
  wait $cli || true
  exec 3>&-
  wait $cap || true
  kill $srv 2>/dev/null || true; wait $srv 2>/dev/null || true
  echo "$name: $(wc -c < "$here/$name.tlscap") bytes"
}
ccert="-cert client.pem -key client.key"
ask="-Verify 1 -CAfile ca.pem"
talk='sleep 0.5; echo hello; sleep 0.5; echo Q'
scenario tls12-plain "-tls1_2" "-tls1_2" "$talk"
scenario tls12-cr-cert "-tls1_2 $ask" "-tls1_2 $ccert" "$talk"
scenario tls12-cr-nocert "-tls1_2 $ask" "-tls1_2" "$talk"
scenario tls13-plain "-tls1_3" "-tls1_3" "$talk"
scenario tls13-cr-cert-pha "-tls1_3 $ask" "-tls1_3 -enable_pha $ccert" "$talk"
scenario tls13-hrr "-tls1_3 -groups P-384" "-tls1_3 -groups X25519:P-384" "$talk"
# Server-initiated renegotiation asking for a certificate (s_server's "R" command), as Apache's
# per-location SSLVerifyClient does.
# Without a session cache or tickets the renegotiation is a full handshake.
reneg_talk='sleep 0.5; echo before; sleep 1.5; echo after; sleep 0.5; echo Q'
scenario tls12-reneg-server-cr "-tls1_2 -CAfile ca.pem -no_cache -no_ticket" "-tls1_2 $ccert" \
  "$reneg_talk" 'sleep 1.2; echo R >&3'
scenario tls12-reneg-server-cr-nocert "-tls1_2 -CAfile ca.pem -no_cache -no_ticket" "-tls1_2" \
  "$reneg_talk" 'sleep 1.2; echo R >&3'
# With tickets, OpenSSL's client resumes in the renegotiation: no certificate request then.
scenario tls12-reneg-server-resumed "-tls1_2 -CAfile ca.pem" "-tls1_2 $ccert" \
  "$reneg_talk" 'sleep 1.2; echo R >&3'
# Client-initiated renegotiation (s_client's "R" command) without a certificate request.
scenario tls12-reneg-client "-tls1_2 -client_renegotiation" "-tls1_2" \
  'sleep 0.5; echo before; sleep 0.5; echo R; sleep 0.8; echo after; sleep 0.5; echo Q'
