#!/usr/bin/env bash
# Two ca-server builds on the OCSP paths, alternating run by run so that the machine's drift
# during a sitting falls on both alike. Each build serves its own copy of one data directory
# from an earlier `bench/run.sh` (made by the older build: a newer build may convert it), is
# started fresh for each run, and its idle CPU is read from /proc over 5 s before the load.
# Usage: BEFORE=/path/to/old/ca-server AFTER=/path/to/new/ca-server WORK=<bench/run.sh folder> \
#        bash bench/ab.sh [cached|sha256|nonce]     (env: ROUNDS=3 DURATION=10 CONNECTIONS=64)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
mode=${1:-cached}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
: "${BEFORE:?set BEFORE to the older ca-server binary}"
: "${AFTER:?set AFTER to the newer ca-server binary}"
: "${WORK:?set WORK to a bench/run.sh folder}"
copies=$(mktemp -d /tmp/mamori-ab.XXXXXX)
cp -a "$WORK/mamori" "$copies/before"
cp -a "$WORK/mamori" "$copies/after"
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; true' EXIT

case $mode in
  cached) extra=""; loads=("post:$WORK/req" "get:$WORK/get-paths.txt") ;;
  sha256) extra=""; loads=("post:$WORK/req-sha256" "get:$WORK/get-paths-sha256.txt") ;;
  nonce) extra="MAMORI_OCSP_NONCE=echo"; loads=("post:$WORK/req-nonce") ;;
  *) echo "mode is cached, sha256 or nonce" >&2; exit 2 ;;
esac

load() { # kind:input
  local kind=${1%%:*} input=${1#*:}
  if [ "$kind" = post ]; then
    REQ_DIR=$input wrk -t"$(nproc)" -c"$CONNECTIONS" -d"${DURATION}s" -s bench/ocsp-post.lua http://127.0.0.1:18080
  else
    REQ_LIST=$input wrk -t"$(nproc)" -c"$CONNECTIONS" -d"${DURATION}s" -s bench/ocsp-get.lua http://127.0.0.1:18080
  fi | awk '/Requests\/sec/{print $2}'
}

run() { # name binary data
  env MAMORI_DATA_DIR="$3" MAMORI_HTTP_ADDR=127.0.0.1:18080 MAMORI_API_ADDR=127.0.0.1:18443 \
    MAMORI_PUBLIC_URL=http://127.0.0.1:18080 MAMORI_POLICIES_DIR="$root/policies" MAMORI_LOG=warn $extra \
    "$2" dev > "$copies/$1.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do curl -sf -o /dev/null http://127.0.0.1:18080/healthz && break; sleep 0.2; done
  sleep 3
  local t0 t1 line
  t0=$(awk '{print $14+$15}' "/proc/$pid/stat")
  sleep 5
  t1=$(awk '{print $14+$15}' "/proc/$pid/stat")
  line="$1	$mode	idle-cpu-ticks-per-5s $((t1 - t0))"
  for l in "${loads[@]}"; do line="$line	${l%%:*} $(load "$l")"; done
  printf '%s\n' "$line"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
}

for _ in $(seq 1 "$ROUNDS"); do
  run before "$BEFORE" "$copies/before"
  run after "$AFTER" "$copies/after"
done
rm -rf "$copies"
