#!/usr/bin/env bash
# Builds and runs the whole test suite (every test has a ctest TIMEOUT).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@"
