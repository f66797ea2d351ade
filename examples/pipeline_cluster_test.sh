#!/usr/bin/env bash
# examples/pipeline.yaml end to end, as the README runs it: xoscar up, the pipeline client through xoscar run (its
# stages on three device pools, checked against the CPU), the training client (an allreduce of gradients across the
# same pools), xoscar down with nothing left running. The file is used
# as written except for its port (a free one) and its module paths (this build tree).
#
#   pipeline_cluster_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$(dirname "$0")" && pwd)
cli=$build/cluster/xoscar
work=$(mktemp -d)
export XO_RUN_DIR=$work/run
. "$(dirname "$0")/../tests/integration/ports.sh"
fail() { echo "FAIL: $*" >&2; exit 1; }
trap '"$cli" down "$work/pipeline.yaml" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
# A port taken by something outside the reservations between the check and the bind: another one, twice at most.
for attempt in 1 2 3; do
    port=$(free_port_base)
    sed -e "s|port: 7400|port: $port|" -e "s|\.\./build/|$build/|" "$src/pipeline.yaml" >"$work/pipeline.yaml"
    grep -q "port: $port" "$work/pipeline.yaml" || fail "examples/pipeline.yaml has no 'port: 7400' to replace"
    "$cli" up "$work/pipeline.yaml" >"$work/up.out" 2>"$work/up.err" && break
    grep -q "Address already in use" "$work/up.err" && [ $attempt -lt 3 ] || fail "up: $(cat "$work/up.out" "$work/up.err")"
    echo "port $port was taken meanwhile: $(cat "$work/up.err")" >&2
done
cat "$work/up.out"
cat "$work/up.err" >&2
grep -q "3 sub pools" "$work/up.out" || fail "up: $(cat "$work/up.out")"
out=$("$cli" run "$work/pipeline.yaml" -- "$build/examples/pipeline_client" 200000) || fail "pipeline_client: $out"
echo "$out"
echo "$out" | grep -q "sum .*: match" || fail "no matching sum"
echo "$out" | grep -q "(sum_buf): .*: match" || fail "no matching sum over Kernels device buffers"
echo "$out" | grep -q "equal to the CPU's, exactly" || fail "no matching matmul"
# Each stage ran in its own sub pool, on the device `device: auto` chose: a GPU if up found one, else the host.
for p in 1 2 3; do echo "$out" | grep -q "in pool 127.0.0.1:$port/$p on " || fail "no stage in sub pool $p"; done
if grep -q "device: auto: no CUDA device" "$work/up.err"; then
  [ "$(echo "$out" | grep -c 'on host:0 (host C kernel)')" -eq 3 ] || fail "fallback to the host device expected"
else
  [ "$(echo "$out" | grep -c 'on cuda:[0-9]* (CUDA kernel)')" -eq 3 ] || fail "GPU pools expected"
fi
# Data-parallel training on the same pools: gradients averaged by an allreduce on their devices, one model for all.
out=$("$cli" run "$work/pipeline.yaml" -- "$build/examples/train_client") || fail "train_client: $out"
echo "$out"
echo "$out" | grep -q "^converged: every trainer holds the same weights" || fail "training did not converge"
[ "$(echo "$out" | grep -c "in 127.0.0.1:$port/[123]: mse")" -eq 3 ] || fail "three trainers in the three sub pools"
# A Kernels actor with no arguments wants its pool's device: the main pool owns none, which the error says.
set +e
err=$("$cli" run "$work/pipeline.yaml" -- "$cli" create "127.0.0.1:$port" Kernels 2>&1); rc=$?
set -e
[ $rc -ne 0 ] || fail "Kernels created in a pool without a device"
echo "$err" | grep -q "owns no device" || fail "Kernels without a device: $err"
pids=$("$cli" status "$work/pipeline.yaml" | awk 'NR > 1 {print $3}')
[ "$(echo "$pids" | wc -w)" -eq 4 ] || fail "status: $pids"
"$cli" down "$work/pipeline.yaml" >/dev/null
# Gone: no such process, or a zombie nobody has reaped yet (down may have had to SIGKILL a slow main pool, e.g.
# under ThreadSanitizer); sub pools exit when their main pool does, so give them a few seconds.
gone() { ! kill -0 "$1" 2>/dev/null || [[ "$(ps -o stat= -p "$1" 2>/dev/null)" == Z* ]]; }
for pid in $pids; do
  for _ in $(seq 50); do gone "$pid" && break; sleep 0.1; done
  gone "$pid" || fail "pool process $pid left running"
done
