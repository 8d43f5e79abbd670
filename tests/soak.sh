#!/usr/bin/env bash
# Soak test (not part of CI): the headless monitor on a looping clip for 30
# minutes, sampling its resident memory, open file descriptors and threads
# every 10 s; after a minute's warm-up they should stay flat (memory within a
# few MB).
#
#   tests/soak.sh [MINUTES] [CLIP]
#
# MINUTES: how long (default 30). CLIP: a video, GIF or folder replayed with
# --loop (default: the built-in demo clip, --demo). SOAK_INTERVAL sets the
# sampling interval in seconds (default 10), SOAK_OUT the output folder
# (default target/soak): samples.csv, the monitor's JSON Lines, its log.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-30}
clip=${2:-}
interval=${SOAK_INTERVAL:-10}
out=${SOAK_OUT:-target/soak}
warmup=60

cargo build --release --quiet
bin=target/release/signtop
mkdir -p "$out"
if [ -n "$clip" ]; then
  source_args=(--input "$clip" --loop)
else
  source_args=(--demo)
fi
"$bin" --headless --stats-interval 10 --log-file "$out/signtop.log" "${source_args[@]}" \
  >"$out/monitor.jsonl" 2>"$out/stderr.txt" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT

sample() {
  local status=/proc/$pid/status
  local rss threads fds
  rss=$(awk '/^VmRSS:/ {print $2}' "$status")
  threads=$(awk '/^Threads:/ {print $2}' "$status")
  fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 | wc -l)
  echo "$1,$rss,$fds,$threads"
}

echo "seconds,rss_kib,fds,threads" >"$out/samples.csv"
start=$(date +%s)
end=$((start + minutes * 60))
while [ "$(date +%s)" -lt "$end" ]; do
  sleep "$interval"
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "soak: the monitor exited early; see $out/stderr.txt" >&2
    exit 1
  fi
  sample $(($(date +%s) - start)) >>"$out/samples.csv"
done
kill -INT "$pid"
wait "$pid" || { echo "soak: the monitor failed; see $out/stderr.txt" >&2; exit 1; }
trap - EXIT

echo "soak: ${minutes} min of ${clip:-the demo clip}, sampled every ${interval} s ($out/samples.csv)"
awk -F, -v warmup="$warmup" '
  NR == 1 { next }
  { n++; last_rss = $2; last_fds = $3; last_threads = $4 }
  n == 1 { first_rss = $2 }
  $1 >= warmup {
    if (!seen) { seen = 1; warm_rss = $2; min_rss = max_rss = $2;
                 min_fds = max_fds = $3; min_threads = max_threads = $4 }
    if ($2 < min_rss) min_rss = $2; if ($2 > max_rss) max_rss = $2
    if ($3 < min_fds) min_fds = $3; if ($3 > max_fds) max_fds = $3
    if ($4 < min_threads) min_threads = $4; if ($4 > max_threads) max_threads = $4
  }
  END {
    printf "samples: %d; first RSS %.1f MiB\n", n, first_rss / 1024
    printf "after %d s warm-up: RSS %.1f-%.1f MiB (at warm-up %.1f, last %.1f, spread %.1f)\n",
      warmup, min_rss / 1024, max_rss / 1024, warm_rss / 1024, last_rss / 1024, (max_rss - min_rss) / 1024
    printf "open fds %d-%d (last %d), threads %d-%d (last %d)\n",
      min_fds, max_fds, last_fds, min_threads, max_threads, last_threads
  }' "$out/samples.csv"
tail -n 1 "$out/monitor.jsonl" | grep -o '"frames_in":[0-9]*,"processed":[0-9]*,"dropped":[0-9]*' || true
