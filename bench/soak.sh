#!/usr/bin/env bash
# An hour of mixed load against one server (release build, SQLite, `ca-server dev`), memory and
# latency sampled every STEP seconds: RATE ambulance-terminal issuances a second from two
# threads (0: as fast as the server answers), one OCSP client asking back to back, one CRL
# download a second, one revocation and one sign-in per TOTP step (ca-server/examples/soak.rs).
# Writes the samples to $OUT.csv and plots them to $OUT.png (gnuplot): resident memory beside
# the OCSP responses held in memory (one per certificate), and the median and 99th-percentile
# latency of issuance and OCSP.
# Usage: bash bench/soak.sh     (DURATION=3600 STEP=10 RATE=20 OUT=bench/soak)
# A constant population: LIFETIME=5m OCSP_VALIDITY=300 issues certificates valid 5 minutes (a
# copy of policies/ with ambulance-terminal's validity set to LIFETIME) and signs OCSP responses
# valid 300 s, so that certificates expire as fast as they are issued and the OCSP cache holds
# a steady number (each response leaves memory at its nextUpdate once its certificate expired),
# as staff and vendor certificates come and go in a hospital. WARMUP (seconds, a sixth of the
# run by default) is where "after warm-up" starts.
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
LIFETIME=${LIFETIME:-}
OCSP_VALIDITY=${OCSP_VALIDITY:-3600}
WARMUP=${WARMUP:-$((DURATION / 6))}
work=$(mktemp -d /tmp/mamori-soak.XXXXXX)
policies=$root/policies
if [ -n "$LIFETIME" ]; then
  policies=$work/policies
  cp -r "$root/policies" "$policies"
  sed -i "s/^default = .*/default = \"$LIFETIME\"/; s/^max = \"398d\"/max = \"$LIFETIME\"/" \
    "$policies/ambulance-terminal.toml"
  grep -q "default = \"$LIFETIME\"" "$policies/ambulance-terminal.toml"
fi
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
export MAMORI_DATA_DIR=$work/data MAMORI_POLICIES_DIR=$policies MAMORI_LOG=warn \
  MAMORI_OCSP_VALIDITY_SECS=$OCSP_VALIDITY \
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
  "$pid" "$DURATION" "$STEP" "$OUT.csv" "$RATE" "$WARMUP" | tee "$OUT.txt"
# Sign-ins hash with argon2id (19 MiB each, held for a moment): resident memory has a spike at
# each. The lowest sample of each 5-minute window after warm-up shows the level underneath.
awk -F, -v warm="$WARMUP" 'NR > 1 && $1 >= warm {
    w = int(($1 - warm) / 300); if (!(w in low) || $2 < low[w]) low[w] = $2; end = $1 }
  END { printf "lowest resident memory per whole 5 minutes after warm-up (MiB):"
        for (i = 0; (i + 1) * 300 <= end - warm + 10; i++) printf " %s", low[i]; print "" }' \
  "$OUT.csv" | tee -a "$OUT.txt"
# Columns: t, rss, then per kind (issue, ocsp, crl, revoke, login): n, errors, p50, p99; last,
# the OCSP responses cached.
gnuplot <<GP
set datafile separator ","
set terminal pngcairo size 1000,700 font ",10"
set output "$OUT.png"
set multiplot layout 2,1 title "Mamori soak: $DURATION s of mixed load, $RATE issuances/s${LIFETIME:+, certificates valid $LIFETIME} ($(date -u +%F))"
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
