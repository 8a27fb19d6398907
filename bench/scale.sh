#!/usr/bin/env bash
# Server-level scale figures for bench/RESULTS.md, with public tools only:
#   1. OCSP cache memory per certificate: RSS of a running ca-server before and after it has
#      pre-signed and cached OCSP_ROWS more certificates.
#   2. A CA with CRL_ROWS revoked certificates: time from start until the complete CRL is served,
#      time of one revocation through the API (the new CRL is published before the call returns),
#      and the server's peak memory (VmHWM).
#   3. Issuance through the API (zero-approval ambulance-terminal profile, persisted and audited)
#      against `cfssl serve`'s /api/v1/cfssl/sign on the same CSR, with wrk; SQLite with one
#      instance, PostgreSQL with two instances (when PostgreSQL answers on 127.0.0.1:5432), and
#      there the CPU each issuance costs PostgreSQL, the instances and the whole machine.
# Usage: bash bench/scale.sh   (env: OCSP_ROWS=100000 CRL_ROWS=1000000 DURATION=10 CONNECTIONS=16;
#        ONLY_OCSP_MEMORY=1 stops after part 1; SKIP_CRL=1 skips part 2; SKIP_ISSUANCE=1 skips part 3;
#        SKIP_POSTGRES=1 skips its PostgreSQL half;
#        PG_URL_PARAMS='?sslmode=disable' is appended to the PostgreSQL URL: without it libpq's default
#        sslmode=prefer encrypts even this loopback connection, as instances on other machines would;
#        SERVER_BIN=/path/to/ca-server measures that build instead of this tree's, to compare two;
#        PERF_OUT=/tmp/issue.perf records a perf profile of the server during SQLite issuance)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
OCSP_ROWS=${OCSP_ROWS:-100000}
CRL_ROWS=${CRL_ROWS:-1000000}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-16}
CORES=$(nproc)
work=$(mktemp -d /tmp/mamori-scale.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
log() { printf '\n==> %s\n' "$*" >&2; }
results=$work/results.txt
: > "$results"
record() { printf '%s\n' "$*" | tee -a "$results" >&2; }

need=()
for pkg in wrk golang-cfssl sqlite3 openssl postgresql-client; do dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg"); done
if [ ${#need[@]} -gt 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; fi
for port in 18180 18181 18543 18544 18888; do
  if ss -ltn | grep -q ":$port "; then echo "port $port is busy; stop what listens there first" >&2; exit 1; fi
done

log "building release binaries"
cargo build --release -q -p ca-server -p ca-cli
server=${SERVER_BIN:-$root/target/release/ca-server}
cli=$root/target/release/ca-cli

wait_for() { # url, seconds
  local deadline=$(( $(date +%s) + ${2:-120} ))
  until curl -sf -o /dev/null "$1"; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "timed out waiting for $1" >&2; return 1; }
    sleep 0.2
  done
}
data=$work/mamori
start() { # command, public port, api port, extra env...
  local cmd=$1 http=$2 api=$3; shift 3
  env MAMORI_DATA_DIR="$data" MAMORI_HTTP_ADDR=127.0.0.1:$http MAMORI_API_ADDR=127.0.0.1:$api \
    MAMORI_PUBLIC_URL=http://127.0.0.1:18180 MAMORI_POLICIES_DIR="$root/policies" MAMORI_LOG=warn \
    MAMORI_CA_PASSPHRASE_FILE="$data/dev-passphrase" "$@" \
    "$server" "$cmd" >> "$work/server-$http.log" 2>&1 &
  pid=$!
  pids+=("$pid")
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/{print $2}' "/proc/$1/status"; }
cached() { curl -s http://127.0.0.1:18180/metrics | awk '/^mamori_ocsp_cached_responses /{print $2}'; }
totp() { python3 - "$1" <<'PY'
import base64,hmac,hashlib,struct,sys,time
s=sys.argv[1]; k=base64.b32decode(s+'='*((8-len(s)%8)%8))
h=hmac.new(k,struct.pack('>Q',int(time.time())//30),hashlib.sha1).digest(); o=h[-1]&15
print('%06d'%((struct.unpack('>I',h[o:o+4])[0]&0x7fffffff)%1000000))
PY
}
# The next TOTP window (a code is accepted once; the bench needs a fresh one per step-up).
next_window() { local w=$(( $(date +%s) / 30 )); while [ $(( $(date +%s) / 30 )) -eq "$w" ]; do sleep 0.5; done; }
# Synthetic certificate rows: a random positive 16-octet serial each, unexpired.
synthetic() { # count, status
  local now; now=$(date +%s)
  local reason=NULL revoked=NULL
  if [ "$2" = revoked ]; then reason="'key-compromise'"; revoked=$((now - 7200)); fi
  sqlite3 "$data/mamori.db" "PRAGMA synchronous=OFF; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < $1)
    INSERT INTO certificates (ca_id, serial, request_id, profile_id, subject, tbs_der, der, not_before, not_after,
      status, revoked_at, revocation_reason, invalidity_date, created_at, status_changed_ms, crl_partition)
    SELECT 'issuing', '10' || lower(hex(randomblob(15))), NULL, 'ambulance-terminal', 'CN=synthetic', x'00', NULL,
      $now - 86400, $now + 31536000, '$2', $revoked, $reason, NULL, $now - 86400, ($now - 7200) * 1000, NULL FROM n;"
}

log "a dev instance, an enroller and a security officer"
start dev 18180 18543
wait_for http://127.0.0.1:18180/healthz
export MAMORI_SERVER=https://127.0.0.1:18543 MAMORI_CA_FILE=$data/root-ca.pem
admin_secret=$(python3 -c "import json;print(json.load(open('$data/dev-admin.json'))['totp_secret'])")
python3 -c "import json;print(json.load(open('$data/dev-admin.json'))['password'])" > "$work/admin-pw"
"$cli" --config-dir "$work/admin" login --username admin --password-file "$work/admin-pw" --totp "$(totp "$admin_secret")" > /dev/null
printf 'the users own password\n' > "$work/pw"
secret_of() { python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['totp_uri'].split('secret=')[1].split('&')[0])" "$1"; }
# An account made on the server (`ca-server user add`, with the CA passphrase) that sets its own
# password and TOTP with `ca-cli enrol`: name, roles, enrolment answer file, extra env.
host_user() {
  local name=$1 roles=$2 out=$3; shift 3
  env MAMORI_DATA_DIR="$data" MAMORI_POLICIES_DIR="$root/policies" MAMORI_LOG=warn \
    MAMORI_CA_PASSPHRASE_FILE="$data/dev-passphrase" "$@" \
    "$server" user add --username "$name" --roles "$roles" --json > "$out.code"
  "$cli" --json enrol --username "$name" --code "$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['enrolment_code'])" "$out.code")" \
    --password-file "$work/pw" > "$out"
}
host_user enroller device-enroller "$work/enroller.json"
enroller_secret=$(secret_of "$work/enroller.json")
# The dev instance's second trial account is the security officer.
officer_secret=$(python3 -c "import json;print(json.load(open('$data/dev-officer.json'))['totp_secret'])")
python3 -c "import json;print(json.load(open('$data/dev-officer.json'))['password'])" > "$work/officer-pw"
"$cli" --config-dir "$work/enroller" login --username enroller --password-file "$work/pw" --totp "$(totp "$enroller_secret")" > /dev/null
"$cli" --config-dir "$work/officer" login --username officer --password-file "$work/officer-pw" --totp "$(totp "$officer_secret")" > /dev/null
"$cli" key generate --out "$work/device.key" > /dev/null
"$cli" csr create --key "$work/device.key" --cn amb-bench --uri urn:mamori:device:ambulance:bench --out "$work/device.csr" > /dev/null
"$cli" --config-dir "$work/enroller" --json request submit --profile ambulance-terminal --csr "$work/device.csr" --justification bench > "$work/submitted.json"
revoke_serial=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['serial'])" "$work/submitted.json")

log "1. OCSP cache memory: $OCSP_ROWS more certificates"
# The baseline is the same command at the same stage, without the extra certificates: a `serve`
# whose upkeep has run a few times.
stop "$pid"
start serve 18180 18543 MAMORI_MAINTENANCE_INTERVAL_SECS=2
wait_for http://127.0.0.1:18180/healthz
sleep 10
baseline_cached=$(cached)
baseline_rss=$(rss_kb "$pid")
stop "$pid"
synthetic "$OCSP_ROWS" valid
start serve 18180 18543 MAMORI_MAINTENANCE_INTERVAL_SECS=2
wait_for http://127.0.0.1:18180/healthz
deadline=$(( $(date +%s) + 600 ))
while [ "$(cached)" -lt $((baseline_cached + OCSP_ROWS)) ] && [ "$(date +%s)" -lt "$deadline" ]; do sleep 1; done
loaded_cached=$(cached)
loaded_rss=$(rss_kb "$pid")
sleep 10
record "ocsp-cache	baseline ${baseline_cached} responses ${baseline_rss} KB	loaded ${loaded_cached} responses ${loaded_rss} KB	$(( (loaded_rss - baseline_rss) * 1024 / (loaded_cached - baseline_cached) )) bytes per cached response"
# 1b. Every synthetic certificate asked once with a SHA-256 CertID (RFC 9919): each entry then
# keeps that variant's signature. GET requests built from one openssl template.
curl -s http://127.0.0.1:18180/ca/issuing.pem | awk '/BEGIN/{n++} n==1' > "$work/issuing1.pem"
openssl ocsp -sha256 -issuer "$work/issuing1.pem" -serial 0x01 -no_nonce -reqout "$work/template-sha256.der" 2>/dev/null
sqlite3 "$data/mamori.db" "SELECT serial FROM certificates WHERE subject='CN=synthetic'" > "$work/synthetic.txt"
python3 - "$work/template-sha256.der" "$work/synthetic.txt" > "$work/sha256-paths.txt" <<'PY'
import base64, sys, urllib.parse
t = open(sys.argv[1], 'rb').read()
i = t.index(b'\x04\x20'); name = t[i + 2:i + 34]
j = t.index(b'\x04\x20', i + 34); key = t[j + 2:j + 34]
def tlv(tag, body):
    n = len(body)
    head = bytes([n]) if n < 128 else (bytes([0x81, n]) if n < 256 else bytes([0x82, n >> 8, n & 255]))
    return bytes([tag]) + head + body
alg = tlv(0x30, tlv(0x06, bytes.fromhex('608648016503040201')) + b'\x05\x00')
for line in open(sys.argv[2]):
    serial = bytes.fromhex(line.strip())
    if serial[0] & 0x80:
        serial = b'\x00' + serial
    cert_id = tlv(0x30, alg + tlv(0x04, name) + tlv(0x04, key) + tlv(0x02, serial))
    request = tlv(0x30, tlv(0x30, tlv(0x30, tlv(0x30, cert_id))))
    print('/ocsp/' + urllib.parse.quote(base64.b64encode(request).decode(), safe=''))
PY
first=$(head -n 1 "$work/sha256-paths.txt")
curl -s "http://127.0.0.1:18180$first" | openssl ocsp -respin /dev/stdin -noverify -resp_text 2>/dev/null | grep -q "Hash Algorithm: sha256" \
  || { echo "the SHA-256 template request was not answered under SHA-256" >&2; exit 1; }
# One pass over the list per wrk thread (each thread rotates through it from the start).
sha_out=$(REQ_LIST="$work/sha256-paths.txt" wrk -t1 -c8 -d30s -s bench/ocsp-get.lua http://127.0.0.1:18180 2>&1)
sha_requests=$(printf '%s\n' "$sha_out" | awk '/requests in/{print $1}')
sleep 2
sha_rss=$(rss_kb "$pid")
record "ocsp-cache-sha256	${sha_requests} SHA-256 GETs over ${OCSP_ROWS} certificates	${sha_rss} KB	$(( (sha_rss - baseline_rss) * 1024 / (loaded_cached - baseline_cached) )) bytes per cached response with its SHA-256 variant ($(( (sha_rss - loaded_rss) * 1024 / OCSP_ROWS )) for the variant)"
stop "$pid"
sqlite3 "$data/mamori.db" "DELETE FROM ocsp_responses WHERE serial IN (SELECT serial FROM certificates WHERE subject='CN=synthetic'); DELETE FROM certificates WHERE subject='CN=synthetic';"

if [ "${ONLY_OCSP_MEMORY:-0}" = 1 ]; then stop "$pid"; cat "$results"; exit 0; fi
if [ "${SKIP_CRL:-0}" = 1 ]; then
  start serve 18180 18543
  wait_for http://127.0.0.1:18180/healthz
  curl -s http://127.0.0.1:18180/ca/issuing.pem > "$work/chain.pem"
  stop "$pid"
else
log "2. a CA with $CRL_ROWS revoked certificates"
synthetic "$CRL_ROWS" revoked
sqlite3 "$data/mamori.db" "DELETE FROM published_crls WHERE name='issuing';"
t0=$(date +%s.%N)
# Maintenance every hour: this run measures the CRL, not the pre-signing of a million OCSP
# responses (which the upkeep does 20,000 at a time).
start serve 18180 18543 MAMORI_MAINTENANCE_INTERVAL_SECS=3600
until curl -sf -o "$work/full.crl" http://127.0.0.1:18180/crl/issuing.crl && [ "$(stat -c %s "$work/full.crl")" -gt $((CRL_ROWS * 30)) ]; do sleep 0.2; done
t1=$(date +%s.%N)
record "crl-full-at-start	$CRL_ROWS entries	$(stat -c %s "$work/full.crl") bytes	$(python3 -c "print(round($t1-$t0,2))") s from start to served (migrations, key unlock, full build from the database, sign, store)"
record "crl-peak-after-full-build	VmHWM $(hwm_kb "$pid") KB	VmRSS $(rss_kb "$pid") KB"
next_window
t0=$(date +%s.%N)
"$cli" --config-dir "$work/officer" cert revoke issuing "$revoke_serial" --reason key-compromise --totp "$(totp "$officer_secret")" > /dev/null
t1=$(date +%s.%N)
curl -sf -o "$work/after.crl" http://127.0.0.1:18180/crl/issuing.crl
n0=$(openssl crl -inform DER -in "$work/full.crl" -noout -crlnumber | cut -d= -f2)
n1=$(openssl crl -inform DER -in "$work/after.crl" -noout -crlnumber | cut -d= -f2)
curl -s http://127.0.0.1:18180/ca/issuing.pem > "$work/chain.pem"
verify=$(openssl crl -inform DER -in "$work/after.crl" -CAfile "$work/chain.pem" -noout 2>&1 || true)
record "crl-revocation	$(python3 -c "print(round($t1-$t0,3))") s for ca-cli cert revoke (CRL published before the API answers)	cRLNumber $n0 -> $n1	$(stat -c %s "$work/after.crl") bytes	openssl: $verify"
record "crl-peak-after-revocation	VmHWM $(hwm_kb "$pid") KB	VmRSS $(rss_kb "$pid") KB"
stop "$pid"
sqlite3 "$data/mamori.db" "DELETE FROM certificates WHERE subject='CN=synthetic'; DELETE FROM published_crls;"
fi

if [ "${SKIP_ISSUANCE:-0}" = 1 ]; then cat "$results"; exit 0; fi
log "3. issuance: Mamori (SQLite) against cfssl serve"
python3 - "$work/device.csr" "$work/mamori-body.json" "$work/cfssl-body.json" <<'PY'
import json, sys
csr = open(sys.argv[1]).read()
json.dump({"profile": "ambulance-terminal", "csr": csr, "justification": "re-issue known terminal"}, open(sys.argv[2], "w"))
json.dump({"certificate_request": csr}, open(sys.argv[3], "w"))
PY
token_of() { python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['token'])" "$1/session.json"; }
token=$(token_of "$work/enroller")
run_wrk() { # name, url, body, bearer, path
  local out
  out=$(BODY_FILE=$3 BEARER=$4 PATH_=$5 wrk -t"$CORES" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s bench/issue.lua "$2" 2>&1) || true
  record "$1	$(printf '%s\n' "$out" | awk '/Requests\/sec/{print $2}') req/s	p99 $(printf '%s\n' "$out" | awk '$1=="99%"{print $2}')	non-2xx $(printf '%s\n' "$out" | awk '/Non-2xx/{print $NF}')"
}
start serve 18180 18543
wait_for http://127.0.0.1:18180/healthz
before=$(sqlite3 "$data/mamori.db" "SELECT count(*) FROM certificates WHERE status='valid'")
io_cpu() { awk '/^write_bytes/{print $2}' "/proc/$pid/io"; awk '{print $14+$15}' "/proc/$pid/stat"; }
io_cpu_before=$(io_cpu)
# PERF_OUT=<file>: a perf profile (call graphs) of the server during the SQLite issuance run.
perf_pid=
if [ -n "${PERF_OUT:-}" ]; then perf record -F 499 -g -p "$pid" -o "$PERF_OUT" >/dev/null 2>&1 & perf_pid=$!; fi
run_wrk "issue-mamori-sqlite" https://127.0.0.1:18543 "$work/mamori-body.json" "$token" /api/v1/requests
if [ -n "$perf_pid" ]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
io_cpu_after=$(io_cpu)
after=$(sqlite3 "$data/mamori.db" "SELECT count(*) FROM certificates WHERE status='valid'")
record "issue-mamori-sqlite-persisted	$((after - before)) certificates stored	$(python3 - "$((after - before))" "$(getconf CLK_TCK)" $io_cpu_before $io_cpu_after <<'PY'
import sys
n, tck, w0, c0, w1, c1 = (int(x) for x in sys.argv[1:7])
n = max(n, 1)
print(f"server per issuance: {(w1 - w0) / n / 1024:.1f} KiB written, {(c1 - c0) * 1e6 / tck / n:.0f} us CPU")
PY
)"
stop "$pid"

sqlite3 "$data/mamori.db" "SELECT key_pem FROM cas WHERE id='issuing'" > "$work/issuing-enc.key"
openssl pkey -in "$work/issuing-enc.key" -passin file:"$data/dev-passphrase" -out "$work/issuing.key"
awk '/BEGIN/{n++} n==1' "$work/chain.pem" > "$work/issuing.pem"
cat > "$work/cfssl.json" <<'JSON'
{"signing": {"default": {"expiry": "8760h", "usages": ["digital signature", "key encipherment", "client auth"]}}}
JSON
cfssl serve -address 127.0.0.1 -port 18888 -ca "$work/issuing.pem" -ca-key "$work/issuing.key" -config "$work/cfssl.json" > "$work/cfssl.log" 2>&1 &
pids+=($!)
# cfssl 1.2 (Debian) has no health endpoint: wait until it answers HTTP at all.
deadline=$(( $(date +%s) + 30 ))
until curl -s -o /dev/null http://127.0.0.1:18888/; do
  [ "$(date +%s)" -lt "$deadline" ] || { echo "cfssl serve did not start" >&2; cat "$work/cfssl.log" >&2; exit 1; }
  sleep 0.2
done
run_wrk "issue-cfssl-serve" http://127.0.0.1:18888 "$work/cfssl-body.json" "" /api/v1/cfssl/sign

if [ "${SKIP_POSTGRES:-0}" != 1 ] && pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  log "3b. issuance: two Mamori instances on one PostgreSQL database"
  pgdb=mamori_bench_$$
  psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $pgdb" postgres
  pgurl=postgres://postgres@127.0.0.1:5432/$pgdb${PG_URL_PARAMS:-}
  data=$work/mamori-pg
  start dev 18180 18543 MAMORI_DATABASE_URL=$pgurl
  first=$pid
  wait_for http://127.0.0.1:18180/healthz
  start serve 18181 18544 MAMORI_DATABASE_URL=$pgurl
  second=$pid
  wait_for http://127.0.0.1:18181/healthz
  admin_secret=$(python3 -c "import json;print(json.load(open('$data/dev-admin.json'))['totp_secret'])")
  python3 -c "import json;print(json.load(open('$data/dev-admin.json'))['password'])" > "$work/admin-pw"
  export MAMORI_CA_FILE=$data/root-ca.pem
  "$cli" --config-dir "$work/pg-admin" login --username admin --password-file "$work/admin-pw" --totp "$(totp "$admin_secret")" > /dev/null
  host_user enroller device-enroller "$work/pg-enroller.json" MAMORI_DATABASE_URL="$pgurl"
  next_window
  "$cli" --config-dir "$work/pg-enroller" login --username enroller --password-file "$work/pw" --totp "$(totp "$(secret_of "$work/pg-enroller.json")")" > /dev/null
  pgtoken=$(token_of "$work/pg-enroller")
  out1=$work/wrk-pg-1.txt
  out2=$work/wrk-pg-2.txt
  # CPU per issuance over the middle half of the run: utime+stime of PostgreSQL's and the
  # instances' processes, and the whole machine's busy time (/proc/stat), per certificate stored.
  cpu_ticks() { local t=0 p; for p in $(pgrep -x "$1"); do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo "$t"; }
  cpu_sample() {
    psql -h 127.0.0.1 -U postgres -d "$pgdb" -tAc "SELECT count(*) FROM certificates"
    cpu_ticks postgres; cpu_ticks "$(basename "$server" | cut -c1-15)"
    awk '/^cpu /{print $2+$3+$4+$7+$8; print $5}' /proc/stat
  }
  ( sleep "$(python3 -c "print($DURATION / 4)")"; cpu_sample; sleep "$(python3 -c "print($DURATION / 2)")"; cpu_sample ) > "$work/pg-cpu.txt" &
  sampler=$!
  BODY_FILE=$work/mamori-body.json BEARER=$pgtoken PATH_=/api/v1/requests wrk -t1 -c$((CONNECTIONS / 2)) -d"${DURATION}s" --latency -s bench/issue.lua https://127.0.0.1:18543 > "$out1" 2>&1 &
  w1=$!
  BODY_FILE=$work/mamori-body.json BEARER=$pgtoken PATH_=/api/v1/requests wrk -t1 -c$((CONNECTIONS / 2)) -d"${DURATION}s" --latency -s bench/issue.lua https://127.0.0.1:18544 > "$out2" 2>&1
  wait "$w1" || true
  wait "$sampler" || true
  r1=$(awk '/Requests\/sec/{print $2}' "$out1"); r2=$(awk '/Requests\/sec/{print $2}' "$out2")
  record "issue-mamori-postgres-2-instances	$(python3 -c "print(round($r1+$r2,1))") req/s	(instance 1 $r1, p99 $(awk '$1=="99%"{print $2}' "$out1"); instance 2 $r2, p99 $(awk '$1=="99%"{print $2}' "$out2"))	non-2xx $(cat "$out1" "$out2" | awk '/Non-2xx/{s+=$NF} END{print s+0}')"
  record "issue-mamori-postgres-cpu-per-issuance	$(python3 - "$(getconf CLK_TCK)" $(cat "$work/pg-cpu.txt") <<'PY'
import sys
tick = 1e6 / int(sys.argv[1])
n0, pg0, ca0, busy0, idle0, n1, pg1, ca1, busy1, idle1 = map(int, sys.argv[2:12])
n = max(n1 - n0, 1)
print(f"PostgreSQL {(pg1 - pg0) * tick / n:.0f} us, ca-server instances {(ca1 - ca0) * tick / n:.0f} us, "
      f"whole machine {(busy1 - busy0) * tick / n:.0f} us (wrk included), idle {100 * (idle1 - idle0) / ((busy1 - busy0) + (idle1 - idle0)):.0f} %, "
      f"over {n} issuances in the middle half of the run")
PY
)"
  record "issue-mamori-postgres-duplicate-serials	$(psql -h 127.0.0.1 -U postgres -d "$pgdb" -tAc "SELECT count(*) - count(DISTINCT (ca_id, serial)) FROM certificates")"
  stop "$first"; stop "$second"
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE $pgdb" postgres
fi

log "results"
cat "$results"
