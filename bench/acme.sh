#!/usr/bin/env bash
# ACME orders completed per second, one sitting, one server (SQLite, release build, `ca-server
# dev`), profile tls-server: one account registered with an EAB key a security officer minted
# through ca-cli; WORKERS threads of ca-server/examples/acme_load.rs each complete one order
# after another for a new name (newOrder, authorization, http-01 challenge answered by the
# load generator's own responder on 127.0.0.1:18402, authorization polled every 20 ms until
# valid, finalize with a fresh P-256 CSR, certificate download). Load generator, responder and
# server share the two cores over loopback. The figure is orders whose certificate was
# downloaded, per second; the server's table is checked to agree.
# Usage: bash bench/acme.sh   (WORKERS=16 DURATION=10 SERVER_BIN=...)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
WORKERS=${WORKERS:-16}
DURATION=${DURATION:-10}
work=$(mktemp -d /tmp/mamori-acme.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
log() { printf '\n==> %s\n' "$*" >&2; }

for pkg in sqlite3 openssl curl; do dpkg -s "$pkg" >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg"; }; done
for port in 18380 18743 18744 18402; do
  if ss -ltn | grep -q ":$port "; then echo "port $port is busy" >&2; exit 1; fi
done
log "building release binaries"
cargo build --release -q -p ca-server -p ca-cli
cargo build --release -q -p ca-server --example acme_load
server=${SERVER_BIN:-$root/target/release/ca-server}
cli=$root/target/release/ca-cli
data=$work/data
export MAMORI_DATA_DIR=$data MAMORI_LOG=${MAMORI_LOG:-warn} \
  MAMORI_HTTP_ADDR=127.0.0.1:18380 MAMORI_API_ADDR=127.0.0.1:18743 \
  MAMORI_ENROLL_ADDR=127.0.0.1:18744 MAMORI_SCEP_HTTP_ADDR= \
  MAMORI_PUBLIC_URL=http://127.0.0.1:18380 \
  MAMORI_ACME_HTTP01_PORT=18402 MAMORI_ACME_RESOLVE=hospital.example=127.0.0.1
"$server" dev > "$work/server.log" 2>&1 &
pid=$!; pids+=("$pid")
deadline=$(( $(date +%s) + 120 ))
until curl -sf -o /dev/null http://127.0.0.1:18380/healthz && [ -f "$data/dev-officer.json" ]; do
  [ "$(date +%s)" -lt "$deadline" ] || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.2
done
totp() { python3 - "$1" "$2" <<'PY'
import base64,hmac,hashlib,struct,sys,time
s=sys.argv[1]; k=base64.b32decode(s+'='*((8-len(s)%8)%8))
h=hmac.new(k,struct.pack('>Q',int(time.time())//30+int(sys.argv[2])),hashlib.sha1).digest(); o=h[-1]&15
print('%06d'%((struct.unpack('>I',h[o:o+4])[0]&0x7fffffff)%1000000))
PY
}
field() { python3 -c "import json,sys;print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
cli() { "$cli" --server https://127.0.0.1:18743 --ca-file "$data/root-ca.pem" --config-dir "$work/cli" "$@"; }
field "$data/dev-officer.json" password > "$work/pw"
secret=$(field "$data/dev-officer.json" totp_secret)
cli login --username officer --password-file "$work/pw" --totp "$(totp "$secret" 0)" > /dev/null
# The next step's code: the login used this one, and the server takes one step of drift.
cli --json acme eab create --profile tls-server --name '*.ehr.hospital.example' \
  --label "bench/acme.sh" --totp "$(totp "$secret" 1)" > "$work/eab.json"

log "load: $WORKERS workers, $DURATION s"
before=$(sqlite3 "$data/mamori.db" "SELECT count(*) FROM certificates WHERE profile_id='tls-server'")
"$root/target/release/examples/acme_load" https://127.0.0.1:18744/acme/tls-server/directory \
  "$data/root-ca.pem" "$(field "$work/eab.json" id)" "$(field "$work/eab.json" hmac_key)" \
  18402 "$WORKERS" "$DURATION" | tee "$work/result.txt"
after=$(sqlite3 "$data/mamori.db" "SELECT count(*) FROM certificates WHERE profile_id='tls-server'")
echo "certificates stored: $((after - before)); orders valid: $(sqlite3 "$data/mamori.db" "SELECT count(*) FROM acme_orders WHERE status='valid'")"
