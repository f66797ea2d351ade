#!/usr/bin/env bash
# The main job: install dependencies, build, then
#   1. examples/hello_actors: actors in one process;
#   2. the cluster of examples/cluster.yaml on this machine (a main pool, two sub pool processes bound to their
#      cores, the word count module loaded in each): `xoscar up`, a word count of this README placed across it by
#      examples/wordcount_client, `xoscar status`, `xoscar down`;
#   3. examples/host_demo: the same from a program, with a sub pool killed (kill -9) and recovered;
#   4. examples/pipeline: three pools that own devices (the host device where there is no GPU): a buffer produced in
#      one is transformed and reduced in the others without being copied, checked against a CPU reference.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo
xoscar=build/runtime/xoscar

echo "== 1. examples/hello_actors: one pool, one process"
build/examples/hello_actors

echo
echo "== 2. a cluster from examples/cluster.yaml"
$xoscar down examples/cluster.yaml >/dev/null 2>&1 || true   # a previous run interrupted
$xoscar up examples/cluster.yaml
trap '$xoscar down examples/cluster.yaml' EXIT
$xoscar status examples/cluster.yaml
$xoscar run examples/cluster.yaml -- build/examples/wordcount_client README.md
$xoscar down examples/cluster.yaml
trap - EXIT

echo
echo "== 3. examples/host_demo: a host from a program; supervision"
build/examples/host_demo build/examples/libwordcount.so README.md

echo
echo "== 4. examples/pipeline: device buffers lent across three pools"
build/examples/pipeline_demo build/examples/libpipeline.so
