#!/usr/bin/env bash
# OCSP and CRL benchmarks, side by side: Mamori (pre-signed cache, POST and GET; fresh signing
# with nonces), the `openssl ocsp` responder (-multi = cores), `cfssl ocspserve` with responses
# pre-signed by `cfssl ocspsign`, and nginx serving one response file (the ceiling of HTTP here).
# Then the CRL: Mamori (ca-core) against `openssl ca -gencrl` over the same revoked set.
#
# Mamori is also measured with SHA-256 CertIDs (RFC 9919), answered from the same cache.
# Usage: bash bench/run.sh            (CERTS=2000 REVOKED_SHARE=10 DURATION=10 CONNECTIONS=64 CRL_ENTRIES=1000000)
# Needs: Debian packages wrk, golang-cfssl, nginx-light, sqlite3, openssl (installed if missing).
# Only loopback addresses are used; every load run is bounded by DURATION.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
CERTS=${CERTS:-2000}
REVOKED_SHARE=${REVOKED_SHARE:-10}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
CRL_ENTRIES=${CRL_ENTRIES:-1000000}
CORES=$(nproc)
# WORK=<folder of an earlier run> reuses its certificate set and skips the (slow) enrolment.
if [ -n "${WORK:-}" ] && [ -f "$WORK/certs.txt" ]; then work=$WORK; reuse=1; else work=$(mktemp -d /tmp/mamori-bench.XXXXXX); reuse=0; fi
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  pkill -f "openssl ocsp -index $work" 2>/dev/null || true
}
trap cleanup EXIT
log() { printf '\n==> %s\n' "$*" >&2; }

need=()
for pkg in wrk golang-cfssl nginx-light sqlite3 openssl; do dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg"); done
if [ ${#need[@]} -gt 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; fi

for port in 18080 18090 18091 18092; do
  if ss -ltn | grep -q ":$port "; then echo "port $port is busy; stop what listens there first" >&2; exit 1; fi
done

log "building release binaries"
cargo build --release -q -p ca-server -p ca-cli
server=$root/target/release/ca-server
cli=$root/target/release/ca-cli

wait_for() { for _ in $(seq 1 300); do curl -sf -o /dev/null "$1" && return 0; sleep 0.2; done; echo "timed out waiting for $1" >&2; return 1; }
# Waits (60 s at most) until something listens on port $1.
wait_port() { for _ in $(seq 1 300); do ss -ltn | grep -q ":$1 " && return 0; sleep 0.2; done; echo "nothing listens on port $1" >&2; return 1; }

start_mamori() { # $1 = extra env (e.g. MAMORI_OCSP_NONCE=echo)
  env MAMORI_DATA_DIR="$work/mamori" MAMORI_HTTP_ADDR=127.0.0.1:18080 MAMORI_API_ADDR=127.0.0.1:18443 \
    MAMORI_PUBLIC_URL=http://127.0.0.1:18080 MAMORI_POLICIES_DIR="$root/policies" MAMORI_LOG=warn $1 \
    "$server" dev > "$work/mamori.log" 2>&1 &
  mamori_pid=$!
  pids+=("$mamori_pid")
  wait_for http://127.0.0.1:18080/healthz
}
stop_mamori() { kill "$mamori_pid"; wait "$mamori_pid" 2>/dev/null || true; }

db=$work/mamori/mamori.db
if [ "$reuse" = 0 ]; then
log "Mamori dev instance and $CERTS ambulance terminals"
start_mamori ""
admin=$work/mamori/dev-admin.json
secret=$(python3 -c "import json;print(json.load(open('$admin'))['totp_secret'])")
password=$(python3 -c "import json;print(json.load(open('$admin'))['password'])")
totp() { python3 - "$secret" <<'PY'
import base64,hmac,hashlib,struct,sys,time
s=sys.argv[1]; k=base64.b32decode(s+'='*((8-len(s)%8)%8))
h=hmac.new(k,struct.pack('>Q',int(time.time())//30),hashlib.sha1).digest(); o=h[-1]&15
print('%06d'%((struct.unpack('>I',h[o:o+4])[0]&0x7fffffff)%1000000))
PY
}
export MAMORI_SERVER=https://127.0.0.1:18443 MAMORI_PUBLIC_URL=http://127.0.0.1:18080 MAMORI_CA_FILE=$work/mamori/root-ca.pem
printf '%s\n' "$password" > "$work/pw"
"$cli" --config-dir "$work/admin" login --username admin --password-file "$work/pw" --totp "$(totp)" > /dev/null
# The enroller is made on the server (`ca-server user add`, with the CA passphrase) and sets
# its own password and TOTP with `ca-cli enrol`.
env MAMORI_DATA_DIR="$work/mamori" MAMORI_POLICIES_DIR="$root/policies" MAMORI_LOG=warn \
  MAMORI_CA_PASSPHRASE_FILE="$work/mamori/dev-passphrase" \
  "$server" user add --username enroller --roles device-enroller --json > "$work/enroller-code.json"
code=$(python3 -c "import json;print(json.load(open('$work/enroller-code.json'))['enrolment_code'])")
printf 'the enrollers own password\n' > "$work/pw3"
"$cli" --json enrol --username enroller --code "$code" --password-file "$work/pw3" > "$work/enroller.json"
esecret=$(python3 -c "import json;print(json.load(open('$work/enroller.json'))['totp_uri'].split('secret=')[1].split('&')[0])")
secret=$esecret "$cli" --config-dir "$work/enroller" login --username enroller --password-file "$work/pw3" --totp "$(secret=$esecret; totp)" > /dev/null
{ echo "id"; for i in $(seq -w 1 "$CERTS"); do echo "d$i"; done; } > "$work/fleet.csv"
time "$cli" --config-dir "$work/enroller" device import "$work/fleet.csv" --keys-dir "$work/fleet" >&2
stop_mamori

log "revoking ${REVOKED_SHARE}% directly in the database, then letting Mamori re-sign"
now=$(date +%s)
sqlite3 "$db" "UPDATE certificates SET status='revoked', revoked_at=$now, revocation_reason='key-compromise', status_changed_ms=${now}000 WHERE profile_id='ambulance-terminal' AND abs(random()) % 100 < $REVOKED_SHARE; DELETE FROM ocsp_responses;"
sqlite3 "$db" "SELECT serial, status, not_after FROM certificates WHERE profile_id='ambulance-terminal'" > "$work/certs.txt"
echo "revoked: $(grep -c '|revoked|' "$work/certs.txt") of $(wc -l < "$work/certs.txt")" >&2
fi
now=$(date +%s)

log "the issuing CA's key for the other responders"
sqlite3 "$db" "SELECT key_pem FROM cas WHERE id='issuing'" > "$work/issuing-enc.key"
openssl pkey -in "$work/issuing-enc.key" -passin file:"$work/mamori/dev-passphrase" -out "$work/issuing.key"
start_mamori ""
curl -s http://127.0.0.1:18080/ca/issuing.pem | awk '/BEGIN/{n++} n==1' > "$work/issuing.pem"

log "OCSP requests (SHA-1 CertIDs, as clients send them): without and with nonces"
rm -rf "$work/req" "$work/req-nonce" "$work/req-sha256"
mkdir -p "$work/req" "$work/req-nonce" "$work/req-sha256"
head -n 200 "$work/certs.txt" | while IFS='|' read -r serial status _; do
  openssl ocsp -issuer "$work/issuing.pem" -serial "0x$serial" -no_nonce -reqout "$work/req/$serial.der" 2>/dev/null
  openssl ocsp -issuer "$work/issuing.pem" -serial "0x$serial" -reqout "$work/req-nonce/$serial.der" 2>/dev/null
  # RFC 9919 recommends SHA-256 CertIDs.
  openssl ocsp -sha256 -issuer "$work/issuing.pem" -serial "0x$serial" -no_nonce -reqout "$work/req-sha256/$serial.der" 2>/dev/null
done
paths() { for f in "$1"/*.der; do printf '/ocsp/%s\n' "$(base64 -w0 "$f" | sed 's/+/%2B/g; s/\//%2F/g; s/=/%3D/g')"; done; }
paths "$work/req" > "$work/get-paths.txt"
paths "$work/req-sha256" > "$work/get-paths-sha256.txt"
for f in "$work"/req/*.der; do one=$f; break; done
curl -s -X POST -H 'content-type: application/ocsp-request' --data-binary @"$one" http://127.0.0.1:18080/ocsp -o "$work/one-response.der"
# Refresh runs at start-up; wait until every response is pre-signed.
for _ in $(seq 1 300); do
  n=$(sqlite3 "$db" "SELECT count(*) FROM ocsp_responses")
  [ "$n" -ge "$CERTS" ] && break; sleep 0.5
done

results=$work/results.txt
: > "$results"
run_wrk() { # name, url, script, env...
  local name=$1 url=$2 script=$3; shift 3
  local out
  out=$(env "$@" wrk -t"$CORES" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$script" "$url" 2>&1) || true
  local rps p99 non2xx
  rps=$(printf '%s\n' "$out" | awk '/Requests\/sec/{print $2}')
  p99=$(printf '%s\n' "$out" | awk '$1=="99%"{print $2}')
  non2xx=$(printf '%s\n' "$out" | awk '/Non-2xx/{print $NF}')
  printf '%s\t%s\t%s\t%s\n' "$name" "$rps" "$p99" "${non2xx:-0}" | tee -a "$results" >&2
}

log "load: Mamori (cached POST, cached GET)"
rss_before=$(ps -o rss= -p "$mamori_pid")
run_wrk "mamori-post-cached" http://127.0.0.1:18080 bench/ocsp-post.lua REQ_DIR="$work/req"
run_wrk "mamori-get-cached" http://127.0.0.1:18080 bench/ocsp-get.lua REQ_LIST="$work/get-paths.txt"
run_wrk "mamori-post-cached-sha256" http://127.0.0.1:18080 bench/ocsp-post.lua REQ_DIR="$work/req-sha256"
run_wrk "mamori-get-cached-sha256" http://127.0.0.1:18080 bench/ocsp-get.lua REQ_LIST="$work/get-paths-sha256.txt"
rss_after=$(ps -o rss= -p "$mamori_pid")
printf 'mamori-rss-kb\t%s\t%s\t%s\n' "$rss_before" "$rss_after" "$CERTS" | tee -a "$results" >&2
stop_mamori

log "load: Mamori with nonces echoed (signed per request)"
start_mamori "MAMORI_OCSP_NONCE=echo"
run_wrk "mamori-post-nonce" http://127.0.0.1:18080 bench/ocsp-post.lua REQ_DIR="$work/req-nonce"
stop_mamori

log "load: openssl ocsp -multi $CORES"
: > "$work/index.txt"
echo "unique_subject = no" > "$work/index.txt.attr"
while IFS='|' read -r serial status not_after; do
  exp=$(date -u -d "@$not_after" +%y%m%d%H%M%SZ)
  up=$(echo "$serial" | tr a-f A-F)
  if [ "$status" = revoked ]; then
    printf 'R\t%s\t%s,keyCompromise\t%s\tunknown\t/CN=x\n' "$exp" "$(date -u -d "@$now" +%y%m%d%H%M%SZ)" "$up" >> "$work/index.txt"
  else
    printf 'V\t%s\t\t%s\tunknown\t/CN=x\n' "$exp" "$up" >> "$work/index.txt"
  fi
done < "$work/certs.txt"
openssl ocsp -index "$work/index.txt" -port 18090 -rsigner "$work/issuing.pem" -rkey "$work/issuing.key" -CA "$work/issuing.pem" -multi "$CORES" -ndays 1 > "$work/openssl-ocsp.log" 2>&1 &
pids+=($!)
wait_port 18090
run_wrk "openssl-ocsp-post" http://127.0.0.1:18090 bench/ocsp-post.lua REQ_DIR="$work/req"
# Its -multi children keep spinning after the load ends; stop them before the next contender.
pkill -f "openssl ocsp -index $work" 2>/dev/null || true

log "load: cfssl ocspserve with responses pre-signed by cfssl ocspsign"
: > "$work/cfssl-responses.txt"
for f in "$work"/fleet/*.pem; do
  printf '%s %s\n' "$(openssl x509 -in "$f" -noout -serial | cut -d= -f2 | tr A-F a-f)" "$f"
done > "$work/serial-files.txt"
head -n 200 "$work/certs.txt" | while IFS='|' read -r serial status _; do
  leaf=$(awk -v s="$serial" '$1==s{print $2}' "$work/serial-files.txt")
  [ -n "$leaf" ] || continue
  awk '/BEGIN/{n++} n==1' "$leaf" > "$work/leaf.pem"
  st=good; [ "$status" = revoked ] && st=revoked
  reason=0; [ "$st" = revoked ] && reason=1
  cfssl ocspsign -ca "$work/issuing.pem" -responder "$work/issuing.pem" -responder-key "$work/issuing.key" -cert "$work/leaf.pem" -status "$st" -reason "$reason" 2>/dev/null \
    | python3 -c 'import json,sys;print(json.load(sys.stdin)["ocspResponse"])' >> "$work/cfssl-responses.txt" || true
done
cfssl ocspserve -port 18091 -responses "$work/cfssl-responses.txt" > "$work/cfssl.log" 2>&1 &
pids+=($!)
wait_port 18091
run_wrk "cfssl-ocspserve-post" http://127.0.0.1:18091 bench/ocsp-post.lua REQ_DIR="$work/req"

log "load: nginx serving one response file (ceiling)"
mkdir -p "$work/nginx/www/ocsp"
cp "$work/one-response.der" "$work/nginx/www/ocsp/response"
cat > "$work/nginx/nginx.conf" <<NGINX
user root;
worker_processes $CORES;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  server {
    listen 127.0.0.1:18092;
    root $work/nginx/www;
    location /ocsp { default_type application/ocsp-response; try_files /ocsp/response =404; }
  }
}
NGINX
nginx -c "$work/nginx/nginx.conf"
pids+=("$(cat "$work/nginx/nginx.pid")")
wait_for "http://127.0.0.1:18092$(head -n 1 "$work/get-paths.txt")"
run_wrk "nginx-static-get" http://127.0.0.1:18092 bench/ocsp-get.lua REQ_LIST="$work/get-paths.txt"
nginx -c "$work/nginx/nginx.conf" -s stop || true

log "CRL: openssl ca -gencrl over $CRL_ENTRIES revoked entries"
mkdir -p "$work/crl"
python3 - "$CRL_ENTRIES" "$work/crl/index.txt" <<'PY'
import sys, os
n=int(sys.argv[1])
with open(sys.argv[2],'w') as f:
    for i in range(n):
        f.write("R\t300101000000Z\t261101000000Z,keyCompromise\t%032X\tunknown\t/CN=x\n" % (i+1))
PY
cat > "$work/crl/ca.cnf" <<CNF
[ ca ]
default_ca = d
[ d ]
database = $work/crl/index.txt
crlnumber = $work/crl/crlnumber
default_md = sha256
default_crl_days = 1
CNF
echo 01 > "$work/crl/crlnumber"
echo "unique_subject = no" > "$work/crl/index.txt.attr"
/usr/bin/time -f "openssl-gencrl\t%e s\t%M KB" openssl ca -config "$work/crl/ca.cnf" -gencrl -keyfile "$work/issuing.key" -cert "$work/issuing.pem" -out "$work/crl/openssl.crl" 2>&1 | grep openssl-gencrl | tee -a "$results" >&2
log "CRL: Mamori (ca-core criterion bench, 1M entries)"
cargo bench -q -p ca-core --bench crl -- crl/build_and_sign_1000000 --noplot 2>&1 | grep -E "time:" | sed 's/^/mamori-crl-1M\t/' | tee -a "$results" >&2

log "results (name, requests/s, p99, non-2xx)"
cat "$results"
