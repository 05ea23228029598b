#!/usr/bin/env bash
# End-to-end latency with many partitions written at once (acks=all, flush.policy=always), by the
# number of flusher threads: N producers, one per partition, each paced at TOTAL/N msg/s for 8 s,
# each with its own consumer (kbench --mode lat). One line per run: the median over the N
# producers of their p50 and p99, in microseconds.
# usage: bench/partitions/run.sh [REPS=3]   env: PARTS="1 8", THREADS="1 2 4", TOTAL=10000, KBENCH=path
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
reps=${1:-3}
kbench=${KBENCH:-${HERALD_PEER_BENCH_DIR:-/tmp/herald-peer-bench}/bin/kbench}
[[ -x "$kbench" ]] || { echo "no kbench at $kbench (run ../shared/bench/run once, or set KBENCH)" >&2; exit 1; }
work=$(mktemp -d /tmp/herald-partitions-XXXXXX)
port=19098
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
for r in $(seq 1 "$reps"); do
  for parts in ${PARTS:-1 8}; do
    for t in ${THREADS:-1 2 4}; do
      rm -rf "$work/data" "$work"/lat.*
      "$root/build/herald" serve --listen "127.0.0.1:$port" --data-dir "$work/data" --flush-threads "$t" \
        --log-level warn > "$work/herald.log" 2>&1 &
      pid=$!
      for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
      "$root/build/herald" topic create lat -p "$parts" -b "127.0.0.1:$port" > /dev/null
      for p in $(seq 0 $((parts - 1))); do
        "$kbench" --brokers "127.0.0.1:$port" --topic lat --mode lat --rate $(( ${TOTAL:-10000} / parts )) \
          --duration 8 --size 100 --acks all --linger-ms 0 --partition "$p" > "$work/lat.$p" 2>&1 &
      done
      wait $(jobs -p | grep -v "^$pid$")
      p50=$(grep -h -o 'p50_us=[0-9.]*' "$work"/lat.* | cut -d= -f2 | median)
      p99=$(grep -h -o 'p99_us=[0-9.]*' "$work"/lat.* | cut -d= -f2 | median)
      echo "partitions_lat rep=$r partitions=$parts flush_threads=$t msgs_per_s=${TOTAL:-10000} p50_us=$p50 p99_us=$p99"
      kill "$pid"; wait "$pid" 2>/dev/null || true
    done
  done
done
