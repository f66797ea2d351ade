#!/usr/bin/env bash
# The long soak of the reliability suite (tests/reliability/soak.c): a host with two sub pools under calls, actor
# churn and a kill -9 of sub pool 1 every K ms, for S seconds; its per-second table and verdict go to
# bench/results/<date>-soak-<commit>.txt with the command and the machine.
#
#   bench/soak.sh [BUILD_DIR] [SECONDS] [KILL_EVERY_MS]      (defaults: build 300 2000)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
seconds=${2:-300}
kill_ms=${3:-2000}
soak=$build/tests/reliability/xo_soak
[ -x "$soak" ] || { echo "no $soak: build the tests first (scripts/build.sh $build)" >&2; exit 2; }
out=bench/results/$(date -u +%Y-%m-%d)-soak-$(git rev-parse --short HEAD).txt
{
  echo "# $soak --seconds $seconds --kill-every-ms $kill_ms"
  echo "# $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD), $(grep -c ^processor /proc/cpuinfo) CPUs:" \
       "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(uname -r)"
  echo "# build: $(grep -m1 CMAKE_BUILD_TYPE: "$build/CMakeCache.txt" | cut -d= -f2), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  "$soak" --seconds "$seconds" --kill-every-ms "$kill_ms"
} | tee "$out"
echo "wrote $out"
