#!/usr/bin/env bash
# The main job: install dependencies, build, then
#   1. examples/hello_actors: actors in one process;
#   2. the cluster of examples/cluster.yaml on this machine (a main pool, two sub pool processes bound to their
#      cores, the word count module loaded in each): `xoscar up`, a word count of this README placed across it by
#      examples/wordcount_client, `xoscar status`, `xoscar down`;
#   3. GPU pools: the cluster of examples/pipeline.yaml, three sub pools that each own a device (`device: auto`: a
#      GPU where there is one, the host device where there is none, which `xoscar up` logs): a buffer produced in one
#      pool is transformed (SAXPY) and reduced in the others without being copied, then SAXPY, sum and a tiled matrix
#      multiply over Kernels actors passing device buffers across the same pools, each stage running the kernels of
#      its device (CUDA or host C), all checked against a CPU reference (examples/pipeline_client); then
#      data-parallel training on the same pools, gradients averaged by an allreduce on their devices
#      (examples/train_client);
#   4. examples/host_demo: a host from a program, with a sub pool killed (kill -9) and recovered.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh build -DCMAKE_BUILD_TYPE=RelWithDebInfo
xoscar=build/cluster/xoscar

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
echo "== 3. GPU pools: a device pipeline on the cluster of examples/pipeline.yaml"
$xoscar down examples/pipeline.yaml >/dev/null 2>&1 || true
$xoscar up examples/pipeline.yaml
trap '$xoscar down examples/pipeline.yaml' EXIT
$xoscar status examples/pipeline.yaml
$xoscar run examples/pipeline.yaml -- build/examples/pipeline_client
$xoscar run examples/pipeline.yaml -- build/examples/train_client
$xoscar down examples/pipeline.yaml
trap - EXIT

echo
echo "== 4. examples/host_demo: a host from a program; supervision"
build/examples/host_demo build/examples/libwordcount.so README.md
