#!/usr/bin/env bash
# Device enrollments per second, one sitting, one server (SQLite, release build), profile
# mdm-tablet (no approval), each request a new enrollment:
#   - JSON API:  POST /api/v1/requests as a device enroller (bearer token), a distinct CSR each;
#   - EST:       POST /.well-known/est/mdm-tablet/simpleenroll, base64 CSR, a distinct CSR each,
#                the profile's static challenge as the Basic password (a one-time code per
#                request would measure code minting, not enrollment);
#   - SCEP:      POST /scep/mdm-tablet?operation=PKIOperation, a distinct transaction each:
#                a PKCSReq signed (RSA 2048) and encrypted to the RA (AES-256).
# Bodies are written beforehand by ca-server/examples/enroll_load.rs (POOL of each).
# The rate is what the database gained (certificates stored / seconds of load), so answers to a
# body wrk sent twice (EST and SCEP answer a retry from its first result) never count.
# wrk -t2 -c$CONNECTIONS -d$DURATION, load generator and server on the same two cores.
# Usage: bash bench/enroll.sh   (POOL=30000 DURATION=10 CONNECTIONS=16 SERVER_BIN=...)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
POOL=${POOL:-30000}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-16}
work=$(mktemp -d /tmp/mamori-enroll.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
log() { printf '\n==> %s\n' "$*" >&2; }
record() { printf '%s\n' "$*" | tee -a "$work/results.txt" >&2; }

for pkg in wrk sqlite3 openssl; do dpkg -s "$pkg" >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg"; }; done
for port in 18280 18281 18643 18644; do
  if ss -ltn | grep -q ":$port "; then echo "port $port is busy" >&2; exit 1; fi
done
log "building release binaries"
cargo build --release -q -p ca-server -p ca-cli
cargo build --release -q -p ca-server --example enroll_load
server=${SERVER_BIN:-$root/target/release/ca-server}
cli=$root/target/release/ca-cli
data=$work/data
cp -r policies "$work/policies"
challenge="bench static challenge"
printf 'static_challenge_sha256 = "%s"\nstatic_challenge_owner = "enroller"\n' \
  "$(printf %s "$challenge" | sha256sum | cut -d' ' -f1)" >> "$work/policies/mdm-tablet.toml"
export MAMORI_DATA_DIR=$data MAMORI_POLICIES_DIR=$work/policies MAMORI_LOG=${MAMORI_LOG:-warn} \
  MAMORI_HTTP_ADDR=127.0.0.1:18280 MAMORI_API_ADDR=127.0.0.1:18643 \
  MAMORI_ENROLL_ADDR=127.0.0.1:18644 MAMORI_SCEP_HTTP_ADDR=127.0.0.1:18281 \
  MAMORI_PUBLIC_URL=http://127.0.0.1:18280
"$server" dev > "$work/server.log" 2>&1 &
pid=$!; pids+=("$pid")
deadline=$(( $(date +%s) + 120 ))
until curl -sf -o /dev/null http://127.0.0.1:18280/healthz && [ -f "$data/dev-admin.json" ]; do
  [ "$(date +%s)" -lt "$deadline" ] || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.2
done
export MAMORI_CA_PASSPHRASE_FILE=$data/dev-passphrase
totp() { python3 - "$1" <<'PY'
import base64,hmac,hashlib,struct,sys,time
s=sys.argv[1]; k=base64.b32decode(s+'='*((8-len(s)%8)%8))
h=hmac.new(k,struct.pack('>Q',int(time.time())//30),hashlib.sha1).digest(); o=h[-1]&15
print('%06d'%((struct.unpack('>I',h[o:o+4])[0]&0x7fffffff)%1000000))
PY
}
cli() { "$cli" --server https://127.0.0.1:18643 --ca-file "$data/root-ca.pem" "$@"; }
printf 'the enrollers own password\n' > "$work/pw"
"$server" user add --username enroller --roles device-enroller --json > "$work/code.json"
cli --json enrol --username enroller --password-file "$work/pw" \
  --code "$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['enrolment_code'])" "$work/code.json")" > "$work/enrolled.json"
secret=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['totp_uri'].split('secret=')[1].split('&')[0])" "$work/enrolled.json")
cli --config-dir "$work/cli" login --username enroller --password-file "$work/pw" --totp "$(totp "$secret")" > /dev/null
token=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['token'])" "$work/cli/session.json")

log "writing $POOL CSRs (JSON and EST) and $POOL SCEP messages"
"$root/target/release/examples/enroll_load" csrs "$work/csr" "$POOL" mdm-tablet
openssl genrsa -out "$work/scep.key" 2048 2>/dev/null
cat > "$work/req.cnf" <<CNF
[req]
prompt = no
distinguished_name = dn
attributes = attrs
[dn]
O = Mamori Hospital
CN = tablet-scep
[attrs]
challengePassword = $challenge
CNF
openssl req -new -key "$work/scep.key" -config "$work/req.cnf" -outform DER -out "$work/scep-csr.der"
curl -s "http://127.0.0.1:18281/scep/mdm-tablet?operation=GetCACert" \
  | openssl pkcs7 -inform DER -print_certs \
  | awk '/subject=.*SCEP RA/{keep=1} /BEGIN/{buf=""} {buf=buf $0 "\n"} /END/{if(keep){printf "%s", buf; keep=0}}' \
  | openssl x509 -outform DER -out "$work/ra.der"
"$root/target/release/examples/enroll_load" scep "$work/ra.der" "$work/scep.key" "$work/scep-csr.der" "$work/scep" "$POOL"

count() { sqlite3 "$data/mamori.db" "SELECT count(*) FROM certificates WHERE profile_id='mdm-tablet'"; }
run() { # name, url, list, content type, authorization
  local before after out
  before=$(count)
  out=$(FILE_LIST=$3 CTYPE=$4 AUTH=$5 PATH_=/${2#*//*/} wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/post-files.lua "$2" 2>&1) || true
  after=$(count)
  record "$1	$(python3 -c "print(round(($after - $before) / $DURATION))") enrollments/s stored	$(printf '%s\n' "$out" | awk '/Requests\/sec/{print $2}') req/s	p99 $(printf '%s\n' "$out" | awk '$1=="99%"{print $2}')	non-2xx $(printf '%s\n' "$out" | awk '/Non-2xx/{print $NF}')	$((after - before)) stored"
}
log "load, $DURATION s each"
run json-api "https://127.0.0.1:18643/api/v1/requests" "$work/csr/json.list" application/json "Bearer $token"
run est "https://127.0.0.1:18644/.well-known/est/mdm-tablet/simpleenroll" "$work/csr/est.list" application/pkcs10 \
  "Basic $(printf 'device:%s' "$challenge" | base64 -w0)"
run scep "http://127.0.0.1:18281/scep/mdm-tablet?operation=PKIOperation" "$work/scep/list.txt" application/x-pki-message ""
cat "$work/results.txt"
