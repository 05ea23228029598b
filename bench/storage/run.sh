#!/usr/bin/env bash
# Storage benchmark (herald_storage_bench), Release build, then run.
# usage: bench/storage/run.sh [options]   e.g. --reps 3 --seconds 5 --dir /tmp/hsb --only append,read,startup
# Output: plain "name key=value" lines, then medians; paste them into bench/RESULTS.md.
# Needs fio (scripts/install-deps) and ~6 GiB free under --dir (default /tmp/herald-storage-bench).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build-bench}
if [[ ! -f $BUILD/CMakeCache.txt ]]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
if cmake --build "$BUILD" -j"$(nproc)" --target herald_storage_bench >/dev/null 2>&1; then
  BIN=$BUILD/bench/storage/herald_storage_bench
else
  # bench/CMakeLists.txt does not add bench/storage (yet): build the bench on its own.
  cmake -S bench/storage/standalone -B "$BUILD-storage" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD-storage" -j"$(nproc)" --target herald_storage_bench >/dev/null
  BIN=$BUILD-storage/herald_storage_bench
fi
command -v fio >/dev/null || echo "# fio not found: the disk comparison lines will read 0 (scripts/install-deps installs it)"
echo "# $(date -u +%FT%TZ) $(uname -sr), $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg), $(df -T /tmp | awk 'NR==2{print $2" on "$1}')"
exec "$BIN" "$@"
