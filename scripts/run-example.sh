#!/usr/bin/env bash
# The main job: install dependencies, build, run the example.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo
build/examples/hello_actors
