#!/usr/bin/env bash
# An hour of mixed load against one server (release build, SQLite, `ca-server dev`), memory and
# latency sampled every STEP seconds: RATE ambulance-terminal issuances a second from two
# threads (0: as fast as the server answers), one OCSP client asking back to back, one CRL
# download a second, one revocation and one sign-in per TOTP step (ca-server/examples/soak.rs).
# Writes the samples to $OUT.csv and plots them to $OUT.png (gnuplot): resident memory beside
# the OCSP responses held in memory (one per certificate), and the median and 99th-percentile
# latency of issuance and OCSP.
# Usage: bash bench/soak.sh     (DURATION=3600 STEP=10 RATE=20 OUT=bench/soak)
# A smoke test of the script itself: PROFILE=dev DURATION=60 STEP=5 OUT=/tmp/soak bash bench/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
DURATION=${DURATION:-3600}
STEP=${STEP:-10}
RATE=${RATE:-20}
PROFILE=${PROFILE:-release}
bin=$root/target/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
OUT=${OUT:-bench/soak}
work=$(mktemp -d /tmp/mamori-soak.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
for pkg in gnuplot-nox curl; do
  dpkg -s "$pkg" >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg"; }
done
for port in 18380 18743; do
  if ss -ltn | grep -q ":$port "; then echo "port $port is busy" >&2; exit 1; fi
done
cargo build --profile "$PROFILE" -q -p ca-server
cargo build --profile "$PROFILE" -q -p ca-server --example soak
export MAMORI_DATA_DIR=$work/data MAMORI_POLICIES_DIR=$root/policies MAMORI_LOG=warn \
  MAMORI_HTTP_ADDR=127.0.0.1:18380 MAMORI_API_ADDR=127.0.0.1:18743 \
  MAMORI_PUBLIC_URL=http://127.0.0.1:18380 MAMORI_ENROLL_ADDR= MAMORI_SCEP_HTTP_ADDR=
"$bin/ca-server" dev > "$work/server.log" 2>&1 &
pid=$!; pids+=("$pid")
deadline=$(( $(date +%s) + 120 ))
until curl -sf -o /dev/null http://127.0.0.1:18380/healthz && [ -f "$work/data/dev-officer.json" ]; do
  [ "$(date +%s)" -lt "$deadline" ] || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.2
done
echo "soak: $DURATION s of mixed load, a sample every $STEP s (the setup waits for TOTP steps)" >&2
"$bin/examples/soak" "$work/data" https://localhost:18743 http://127.0.0.1:18380 \
  "$pid" "$DURATION" "$STEP" "$OUT.csv" "$RATE" | tee "$OUT.txt"
# Columns: t, rss, then per kind (issue, ocsp, crl, revoke, login): n, errors, p50, p99; last,
# the OCSP responses cached.
gnuplot <<GP
set datafile separator ","
set terminal pngcairo size 1000,700 font ",10"
set output "$OUT.png"
set multiplot layout 2,1 title "Mamori soak: $DURATION s of mixed load, $RATE issuances/s ($(date -u +%F))"
set xlabel "seconds"
set ylabel "resident memory (MiB)"
set y2label "OCSP responses cached (thousands)"
set ytics nomirror
set y2tics
set yrange [0:*]
set y2range [0:*]
plot "$OUT.csv" using 1:2 skip 1 with lines title "ca-server RSS", \
     "$OUT.csv" using 1:(\$23/1000) skip 1 axes x1y2 with lines title "responses cached"
unset y2label
unset y2tics
set ytics mirror
set ylabel "latency (ms)"
set logscale y
set yrange [*:*]
plot "$OUT.csv" using 1:5 skip 1 with lines title "issue p50", \
     "$OUT.csv" using 1:6 skip 1 with lines title "issue p99", \
     "$OUT.csv" using 1:9 skip 1 with lines title "OCSP p50", \
     "$OUT.csv" using 1:10 skip 1 with lines title "OCSP p99"
unset multiplot
GP
echo "wrote $OUT.csv, $OUT.png, $OUT.txt" >&2
