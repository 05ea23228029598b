#!/usr/bin/env bash
# `make bench`: Herald side by side with its peers, in one sitting.
#   1. the storage engine's own benchmark against fio (bench/storage/run.sh)
#   2. the peer harness (../shared/bench): physical limits, NATS JetStream, Redis Streams, W1-W4
#   3. the same W1-W4 against `herald serve` (acks=all, flush.policy=always), plus start-up time and idle RSS
#   4. a min/median/max table of everything, in bench/results/
#   5. latency with many partitions written at once, by flusher threads (bench/partitions)
#   6. consumer groups (bench/groups), outbox relay (bench/sdk), replica apply rate (bench/sdk_replica)
# Env: REPS (default 3), SKIP_PEERS=1 (Herald only), SKIP_STORAGE=1, SKIP_PARTITIONS=1, SKIP_SDK=1 (no step 6).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${HERALD_SHARED:-$root/../shared}
reps=${REPS:-3}
out=$root/bench/results
mkdir -p "$out"
export HERALD_PEER_BENCH_DIR=${HERALD_PEER_BENCH_DIR:-/tmp/herald-peer-bench}
rm -rf "$HERALD_PEER_BENCH_DIR/results"

if [[ -z "${SKIP_STORAGE:-}" && -x "$root/bench/storage/run.sh" ]]; then
  "$root/bench/storage/run.sh" | tee "$out/storage.txt"
fi

if [[ -z "${SKIP_PEERS:-}" ]]; then
  SKIP_INSTALL=1 "$shared/bench/run" peers "$reps"
fi

# The harness copies itself to $HERALD_PEER_BENCH_DIR on every call; make sure its tools are built.
"$shared/bench/run" >/dev/null 2>&1 || true
make -C "$HERALD_PEER_BENCH_DIR" -s bin/startwait bin/kbench

stop_pid() { kill "$1" 2>/dev/null || true; while kill -0 "$1" 2>/dev/null; do sleep 0.05; done; }

# Herald: start-up time and idle RSS (empty data dir), then W1-W4 through the same librdkafka client.
work=$(mktemp -d /tmp/herald-bench-XXXXXX)
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
res=$HERALD_PEER_BENCH_DIR/results
mkdir -p "$res"
port=19099
for r in $(seq 1 "$reps"); do
  rm -rf "$work/data"
  o=$("$HERALD_PEER_BENCH_DIR/bin/startwait" "$port" "$work/herald.log" "$root/build/herald" serve \
      --listen "127.0.0.1:$port" --data-dir "$work/data")
  pid=$(echo "$o" | sed 's/pid=\([0-9]*\).*/\1/')
  sleep 2
  rss=$(awk '/VmRSS/{printf "%.1f", $2/1024}' "/proc/$pid/status")
  echo "herald_startup rep=$r $(echo "$o" | cut -d' ' -f2) rss_MB=$rss" | tee -a "$res/kbench.txt"
  if [[ "$r" -lt "$reps" ]]; then stop_pid "$pid"; fi
done
# (run-kbench.sh exits with the status of its last test expression, not of the runs: check the lines)
SRV_PID=$pid LABEL=herald "$shared/bench/run" kbench "127.0.0.1:$port" "$reps" || true
grep -q "^herald_W4_lat_10k rep=$reps " "$res/kbench.txt" || { echo "bench: herald W1-W4 did not complete" >&2; exit 1; }
stop_pid "$pid"

"$shared/bench/run" summarize | tee "$out/TABLE.md"
cp "$res"/*.txt "$out/" 2>/dev/null || true

if [[ -z "${SKIP_PARTITIONS:-}" ]]; then
  KBENCH=$HERALD_PEER_BENCH_DIR/bin/kbench "$root/bench/partitions/run.sh" "$reps" | tee "$out/partitions.txt"
fi

if [[ -z "${SKIP_SDK:-}" ]]; then
  /usr/bin/python3 "$root/bench/groups/groups_bench.py" --herald "$root/build/herald" | tee "$out/groups.txt"
  "$root/build/bench/sdk/herald_sdk_outbox_bench" --reps "$reps" | tee "$out/sdk_outbox.txt"
  "$root/build/bench/sdk_replica/herald_replica_bench" --reps "$reps" | tee "$out/sdk_replica.txt"
  "$root/build/bench/sdk_replica/herald_replica_bench" --reps "$reps" --noop-handler \
    --only raw,rawhdr,batch,nodedup | tee "$out/sdk_replica_noop.txt"
fi
echo "raw results in bench/results/; write the ratios into bench/RESULTS.md"
