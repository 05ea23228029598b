#!/usr/bin/env bash
# Storage benchmark: builds herald_storage_bench (Release) in build-bench-storage/ and runs it.
# usage: bench/storage/run.sh [herald_storage_bench options]   e.g. --reps 3 --seconds 5 --dir /tmp/hsb
# Output: plain "name key=value" lines, then medians; paste them into bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build-bench-storage}
if [[ ! -x $BUILD/bench/storage/herald_storage_bench ]] || [[ -n ${REBUILD:-} ]]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  # bench/CMakeLists.txt may not add the storage bench yet: build it straight from here if so.
  if ! cmake --build "$BUILD" -j"$(nproc)" --target herald_storage_bench 2>/dev/null; then
    cmake -S bench/storage/standalone -B "$BUILD-standalone" -DCMAKE_BUILD_TYPE=Release \
      -DHERALD_SOURCE_DIR="$PWD" >/dev/null
    cmake --build "$BUILD-standalone" -j"$(nproc)" --target herald_storage_bench
    BIN=$BUILD-standalone/herald_storage_bench
  fi
fi
BIN=${BIN:-$BUILD/bench/storage/herald_storage_bench}
command -v fio >/dev/null || echo "# fio not found: the disk comparison lines will read 0 (scripts/install-deps installs it)"
echo "# $(date -u +%FT%TZ) $(uname -sr), $(nproc) cpus, $(df -T "${TMPDIR:-/tmp}" | awk 'NR==2{print $2" on "$1}')"
exec "$BIN" "$@"
