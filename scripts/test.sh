#!/usr/bin/env bash
# Builds and runs the whole test suite (every test has a ctest TIMEOUT), then the Python client's pytest suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh >/dev/null   # idempotent: what the build and the Python tests need, on a fresh machine too
scripts/build.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@"
# The Python client (python/, xoscar_c) against a real cluster; needs scripts/install-deps.sh's environment.
scripts/test-python.sh build
