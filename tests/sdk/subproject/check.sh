#!/bin/sh
# Configures, builds and runs tests/sdk/subproject against this repository:
# check.sh REPO WORK_DIR
set -eu
repo=$1
work=$2
rm -rf "$work"
mkdir -p "$work"
cmake -S "$repo/tests/sdk/subproject" -B "$work/build" -DHERALD_SOURCE_DIR="$repo" -DCMAKE_BUILD_TYPE=Release
cmake --build "$work/build" -j 2
"$work/build/users_service" "$work/users.db"
