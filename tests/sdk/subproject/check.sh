#!/bin/sh
# Builds and runs tests/sdk/subproject against this repository twice: taking
# the SDK in with add_subdirectory, then from a copy installed with
# `cmake --install` into a temporary prefix (find_package).
#   check.sh REPO WORK_DIR
set -eu
repo=$1
work=$2
rm -rf "$work"
mkdir -p "$work"
cmake -S "$repo/tests/sdk/subproject" -B "$work/build" -DHERALD_SOURCE_DIR="$repo" -DCMAKE_BUILD_TYPE=Release
cmake --build "$work/build" -j 2
"$work/build/users_service" "$work/users.db"

# The SDK's own build (HERALD_SDK_ONLY) was just made inside the subproject's
# build tree; install it from there and build the service against the prefix.
cmake --install "$work/build/herald" --prefix "$work/prefix"
test -f "$work/prefix/include/herald/sdk/outbox/outbox.h"
test -f "$work/prefix/lib/cmake/herald/heraldConfig.cmake" || test -f "$work/prefix/lib/x86_64-linux-gnu/cmake/herald/heraldConfig.cmake"
cmake -S "$repo/tests/sdk/subproject" -B "$work/installed" -DHERALD_INSTALLED=ON \
  -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_BUILD_TYPE=Release
cmake --build "$work/installed" -j 2
# The installed build takes its headers from the prefix, not from the source tree.
flags=$work/installed/CMakeFiles/users_service.dir/flags.make
grep -q -- "$work/prefix/include/herald" "$flags"
if grep -q -- "$repo/src" "$flags"; then
  echo "the installed package points into the source tree" >&2
  exit 1
fi
"$work/installed/users_service" "$work/users2.db"
