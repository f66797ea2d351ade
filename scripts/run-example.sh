#!/usr/bin/env bash
# The main job: install dependencies, build, run the examples: actors in one process, then a host whose two sub
# pools are processes bound to their cores, counting the words of this README across them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo
echo "== examples/hello_actors: one pool, one process"
build/examples/hello_actors
echo
echo "== examples/host_demo: a main pool and two sub pool processes"
build/examples/host_demo build/examples/libwordcount.so README.md
