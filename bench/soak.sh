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
# Heap in use beside resident memory: HEAPTRACK=1 builds the server with glibc's malloc (the
# `system-allocator` feature; heaptrack sees only malloc, not mimalloc) and runs it under
# heaptrack. It writes $OUT-heap.csv (heap in use over time, from heaptrack's massif output),
# $OUT-heap.txt (the allocations still held at the end, largest first) and the heap line in
# $OUT.png; if the heap stays level while resident memory climbs, the allocator holds the rest.
# Without it the server is stopped at the end and mimalloc's own statistics (what it reserved,
# committed and still had in use) go to $OUT-mimalloc.txt.
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
HEAPTRACK=${HEAPTRACK:-}
features=()
[ -n "$HEAPTRACK" ] && features=(--features system-allocator)
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
for pkg in gnuplot-nox curl ${HEAPTRACK:+heaptrack}; do
  dpkg -s "$pkg" >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg"; }
done
for port in 18380 18743; do
  if ss -ltn | grep -q ":$port "; then echo "port $port is busy" >&2; exit 1; fi
done
cargo build --profile "$PROFILE" -q -p ca-server "${features[@]}"
cargo build --profile "$PROFILE" -q -p ca-server --example soak
export MAMORI_DATA_DIR=$work/data MAMORI_POLICIES_DIR=$policies MAMORI_LOG=warn \
  MAMORI_OCSP_VALIDITY_SECS=$OCSP_VALIDITY \
  MAMORI_HTTP_ADDR=127.0.0.1:18380 MAMORI_API_ADDR=127.0.0.1:18743 \
  MAMORI_PUBLIC_URL=http://127.0.0.1:18380 MAMORI_ENROLL_ADDR= MAMORI_SCEP_HTTP_ADDR= \
  MIMALLOC_SHOW_STATS=1
deadline=$(( $(date +%s) + 120 ))
if [ -n "$HEAPTRACK" ]; then
  heaptrack -o "$work/heaptrack" "$bin/ca-server" dev > "$work/server.log" 2>&1 &
  tracer=$!; pids+=("$tracer")
  # The server is heaptrack's child; its own pid is the one whose memory is sampled.
  until pid=$(pgrep -x -P "$tracer" ca-server); do
    [ "$(date +%s)" -lt "$deadline" ] || { cat "$work/server.log" >&2; exit 1; }
    sleep 0.2
  done
else
  "$bin/ca-server" dev > "$work/server.log" 2>&1 &
  pid=$!
fi
pids+=("$pid")
until curl -sf -o /dev/null http://127.0.0.1:18380/healthz && [ -f "$work/data/dev-officer.json" ]; do
  [ "$(date +%s)" -lt "$deadline" ] || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.2
done
echo "soak: $DURATION s of mixed load, a sample every $STEP s (the setup waits for TOTP steps)" >&2
"$bin/examples/soak" "$work/data" https://localhost:18743 http://127.0.0.1:18380 \
  "$pid" "$DURATION" "$STEP" "$OUT.csv" "$RATE" "$WARMUP" | tee "$OUT.txt"
# Sign-ins hash with argon2id (19 MiB each, held for a moment): resident memory has a spike at
# each. The lowest sample of each 5-minute window after warm-up shows the level underneath.
# The lowest value of column 2 of CSV $2 in each whole 5 minutes after warm-up, labelled $1.
floors() {
  awk -F, -v warm="$WARMUP" -v what="$1" 'NR > 1 && $1 >= warm {
      w = int(($1 - warm) / 300); if (!(w in low) || $2 < low[w]) low[w] = $2; end = $1 }
    END { printf "lowest %s per whole 5 minutes after warm-up (MiB):", what
          for (i = 0; (i + 1) * 300 <= end - warm + 10; i++) printf " %s", low[i]; print "" }' \
    "$2" | tee -a "$OUT.txt"
}
floors "resident memory" "$OUT.csv"
awk -F, -v warm="$WARMUP" 'NR > 1 && $1 >= warm { if (!n++ || $26 < lo) lo = $26; if ($26 > hi) hi = $26
    if (!m++ || $24 < alo) alo = $24; if ($24 > ahi) ahi = $24 }
  END { printf "after warm-up: server threads %d-%d, anonymous resident memory %s-%s MiB\n", lo, hi, alo, ahi }' \
  "$OUT.csv" | tee -a "$OUT.txt"
heap_plot=
if [ -z "$HEAPTRACK" ]; then
  # Stopped, so that mimalloc prints its statistics at exit (MIMALLOC_SHOW_STATS=1 above).
  kill -TERM "$pid"
  deadline=$(( $(date +%s) + 60 ))
  while kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.2; done
  sed -n '/^subproc\|heap stats/,$p' "$work/server.log" > "$OUT-mimalloc.txt"
else
  # Killed, not stopped, so that what it held at that moment counts as "leaked" (still held).
  kill -KILL "$pid"; wait "$tracer" || true
  trace=$(ls "$work"/heaptrack*.zst)
  heaptrack_print -f "$trace" -M "$work/massif" --massif-detailed-freq 0 > /dev/null
  # massif snapshots: time (seconds since the server started) and heap in use (bytes). The load
  # generator's clock starts after its setup; both end at the kill, so the heap's times are
  # shifted to end where the samples end. One row per second: the lowest and highest heap.
  shift=$(awk -F= -v end="$(tail -1 "$OUT.csv" | cut -d, -f1)" '/^time=/ { t = $2 }
    END { print t - end }' "$work/massif")
  awk -F= -v shift="$shift" '/^time=/ { s = int($2 - shift) } /^mem_heap_B=/ && s >= 0 {
      m = $2 / 1048576; if (!(s in lo) || m < lo[s]) lo[s] = m; if (m > hi[s]) hi[s] = m
      if (s > last) last = s }
    END { for (i = 0; i <= last; i++) if (i in lo) printf "%d,%.2f,%.2f\n", i, lo[i], hi[i] }' \
    "$work/massif" | { echo "t_secs,heap_low_mib,heap_high_mib"; cat; } > "$OUT-heap.csv"
  heaptrack_print -f "$trace" --print-leaks 1 --print-peaks 0 --print-allocators 0 \
    --print-temporary 0 -n 25 > "$OUT-heap.txt"
  floors "heap in use" "$OUT-heap.csv"
  heap_plot=", \"$OUT-heap.csv\" using 1:2 skip 1 with lines title \"heap in use (heaptrack)\""
fi
# Columns: t, rss, then per kind (issue, ocsp, crl, revoke, login): n, errors, p50, p99; then
# the OCSP responses cached, anonymous and file-backed resident memory, threads.
gnuplot <<GP
set datafile separator ","
set terminal pngcairo size 1000,700 font ",10"
set output "$OUT.png"
set multiplot layout 2,1 title "Mamori soak: $DURATION s of mixed load, $RATE issuances/s${LIFETIME:+, certificates valid $LIFETIME}${HEAPTRACK:+, glibc malloc under heaptrack} ($(date -u +%F))"
set xlabel "seconds"
set ylabel "resident memory (MiB)"
set y2label "OCSP responses cached (thousands)"
set ytics nomirror
set y2tics
set yrange [0:*]
set y2range [0:*]
plot "$OUT.csv" using 1:2 skip 1 with lines title "ca-server RSS", \
     "$OUT.csv" using 1:24 skip 1 with lines title "anonymous (RssAnon)", \
     "$OUT.csv" using 1:(\$23/1000) skip 1 axes x1y2 with lines title "responses cached"$heap_plot
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
