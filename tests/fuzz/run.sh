#!/usr/bin/env bash
# Runs each libFuzzer target for SECONDS on a copy of its corpus; new crashes
# are left in the working directory (crash-*), to be added to the corpus.
set -euo pipefail
build=${1:-build-fuzz}
seconds=${2:-60}
here=$(cd "$(dirname "$0")" && pwd)
for t in batch request; do
  work=$(mktemp -d)
  cp -r "$here/corpus/$t/." "$work/" 2>/dev/null || true
  echo "== fuzz_$t for ${seconds}s"
  "$build/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -print_final_stats=1 "$work" 2>&1 | tail -n 12
  rm -rf "$work"
done
