#!/bin/sh
# `cmake --install` of a full build gives a prefix where herald works on its
# own: the binaries, and herald finding its sibling herald-sdk there.
#   install.sh BUILD_DIR WORK_DIR
set -eu
build=$1
work=$2
rm -rf "$work"
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cd "$work"
"$work/prefix/bin/herald" --version
"$work/prefix/bin/herald" dlq --help | grep -q "Inspect, replay or skip dead letters"
"$work/prefix/bin/herald" saga --help | grep -q "Usage: herald saga"
for f in include/herald/sdk/replica/replica.h include/herald/common/result.h lib/cmake/herald/heraldConfig.cmake \
         lib/cmake/herald/heraldTargets.cmake lib/libherald_sdk.a lib/libherald_common.a; do
  test -f "$work/prefix/$f" || { echo "missing from the install: $f" >&2; exit 1; }
done
echo "installed prefix complete"
