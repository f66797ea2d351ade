#!/usr/bin/env bash
# Placement that matters for device buffers (issue 11, the benchmark's second case): stages placed on pools whose
# devices can map each other's memory beat stages that must stage copies. Two hosts as network namespaces joined by
# a veth pair, each with two sub pools owning the host device (device memory on host memory), started by
# `xoscar up FILE --host NAME`. Inside a host a lent device buffer is imported (device IPC: the receiver maps the
# owner's memory); between the two hosts it can only be staged (the receiver fetches a copy over TCP).
# A pipeline of four DevStage actors (bench/bench_stage_module.c) lends 16 MiB device buffers down the line, each
# stage copying what it got into a buffer of its own device and lending that on: the source is created on host
# A's sub pool 1, the other three stages are placed through host A's xo.host with cluster scope by round_robin, by
# weighted with the profile `xoscar tune` measured and a `near` hint on the previous stage's pool for 16 MiB of
# host payload, and by the same with the hint saying the bytes are device buffers (`:dev`, the third element true).
# Both hints are inbound (the fourth element, `:in`): the previous stage lends to the new one, so the pair that
# counts is (previous, candidate); device-buffer paths are not symmetric (see --ipc-off).
# Prints each end-to-end time and the ratios to round robin.
#
# --ipc-off: the case where only the device-buffer figures can tell the pools apart. A third host, c, runs in host
# A's namespace under XO_DEVICE_IPC=0, so its pools reach A's by the same TCP path as A's own sub pools do for host
# payloads, but must stage device buffers. The source's pool (a/1, label src) is kept out of the candidates by the
# label filter (label stage: a/2, b/1, b/2, c/1, c/2), so stage 2 has to choose between a/2 (device IPC), c/x
# (staging, same network path) and b/x (staging over the veth).
#
#   placement_devbuf_bench.sh BUILD_DIR [--items N] [--ipc-off] [--out FILE]
#
# Needs root (ip netns). The stages are destroyed after each policy's run, so each starts from the same loads.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/tests/integration/cluster_lib.sh"
cluster_begin "$1"
shift
items=8 out="" ipc_off=""
while [ $# -gt 0 ]; do
    case "$1" in
        --items) items=$2; shift ;;
        --ipc-off) ipc_off=1 ;;
        --out) out=$2; shift ;;
        *) echo "usage: placement_devbuf_bench.sh BUILD_DIR [--items N] [--ipc-off] [--out FILE]" >&2; exit 2 ;;
    esac
    shift
done
module=$build/bench/libxo_bench_stage.so
for f in "$cli" "$module"; do [ -e "$f" ] || { echo "missing $f (build the bench targets)" >&2; exit 2; }; done
down_hosts_on_exit a b $([ -n "$ipc_off" ] && echo c)
netns_up "xd$$" 10.235.0 || { echo "placement_devbuf_bench.sh needs root and iproute2 (ip netns)" >&2; exit 2; }
ona="ip netns exec $nsa" onb="ip netns exec $nsb"
hosta=10.235.0.1 hostb=10.235.0.2
port=$(free_port_base)
label=null
if [ -n "$ipc_off" ]; then
    portc=$(free_port_base)
    label='"stage"'
    cat >"$work/c.yaml" <<YAML
name: placedevbench
secret: "placement devbuf bench secret"
modules: [$module]
placement: {profile: profile.json, weights: {load: 0.1}}
hosts:
  - {name: a, address: $hosta, port: $port, launcher: none,
     pools: [{count: 1, device: host, labels: [src]}, {count: 1, device: host, labels: [stage]}]}
  - {name: b, address: $hostb, port: $port, launcher: none, pools: [{count: 2, device: host, labels: [stage]}]}
  - {name: c, address: $hosta, port: $portc, launcher: none, pools: [{count: 2, device: host, labels: [stage]}]}
YAML
else
    cat >"$work/c.yaml" <<YAML
name: placedevbench
secret: "placement devbuf bench secret"
modules: [$module]
placement: {profile: profile.json, weights: {load: 0.1}}
hosts:
  - {name: a, address: $hosta, port: $port, launcher: none, pools: [{count: 2, device: host}]}
  - {name: b, address: $hostb, port: $port, launcher: none, pools: [{count: 2, device: host}]}
YAML
fi
$ona env XO_LISTEN_ANY=1 "$cli" up "$work/c.yaml" --host a >/dev/null 2>"$work/a.err" || { cat "$work/a.err"; exit 1; }
$onb env XO_LISTEN_ANY=1 "$cli" up "$work/c.yaml" --host b >/dev/null 2>"$work/b.err" || { cat "$work/b.err"; exit 1; }
if [ -n "$ipc_off" ]; then
    $ona env XO_LISTEN_ANY=1 XO_DEVICE_IPC=0 "$cli" up "$work/c.yaml" --host c >/dev/null 2>"$work/c.err" ||
        { cat "$work/c.err"; exit 1; }
fi
run() { $ona "$cli" --timeout 900000 run "$work/c.yaml" -- "$cli" --timeout 900000 "$@"; }

echo "hosts $hosta (a) and $hostb (b) in two network namespaces (veth, not shaped), 2 sub pools each on the host device"
[ -z "$ipc_off" ] || echo "host c: $hosta:$portc in a's namespace under XO_DEVICE_IPC=0 (2 sub pools); stages only on label stage"
t0=$(date +%s.%N)
$ona "$cli" tune "$work/c.yaml" --quick --apply >"$work/tune.out" 2>"$work/tune.err" || { cat "$work/tune.err"; exit 1; }
t1=$(date +%s.%N)
cat "$work/tune.out"
grep "^pair .*: $hosta:$port/1 -> .*device buffers" "$work/tune.err" || true
grep "^pool " "$work/tune.err" || true
echo "tune: $(echo "$t1 - $t0" | bc) s"

declare -A took
for policy in round_robin tuned_host tuned_dev; do
    run create "$hosta:$port/1" DevStage --uid "src-$policy" >/dev/null
    prev_addr="$hosta:$port/1" prev_uid="src-$policy" placed=""
    for k in 1 2 3; do
        case $policy in
            tuned_host) req="[\"DevStage\", null, \"s$k-$policy\", \"weighted\", $label, null, 0, [[\"$prev_addr\", 16777216, false, true]], true]" ;;
            tuned_dev) req="[\"DevStage\", null, \"s$k-$policy\", \"weighted\", $label, null, 0, [[\"$prev_addr\", 16777216, true, true]], true]" ;;
            *) req="[\"DevStage\", null, \"s$k-$policy\", \"$policy\", $label, null, 0, null, true]" ;;
        esac
        reply=$(run call "$hosta:$port" xo.host create "$req")
        addr=$(echo "$reply" | sed 's/^\["\([^"]*\)".*/\1/')
        run call "$prev_addr" "$prev_uid" set_next "[\"$addr\", \"s$k-$policy\"]" >/dev/null
        placed="$placed $addr"
        prev_addr=$addr prev_uid="s$k-$policy"
    done
    secs=$(run call "$hosta:$port/1" "src-$policy" produce "[$items, 16777216]")
    took[$policy]=$secs
    printf "%-12s %8.3f s for %d x 16 MiB device buffers through 4 stages; stages 2-4 placed at:%s\n" "$policy" "$secs" \
        "$items" "$placed"
    for k in 1 2 3; do
        for p in $placed; do run destroy "$p" "s$k-$policy" >/dev/null 2>&1 || true; done
    done
    run destroy "$hosta:$port/1" "src-$policy" >/dev/null
done
r_dev=$(echo "scale=3; ${took[tuned_dev]} / ${took[round_robin]}" | bc)
r_host=$(echo "scale=3; ${took[tuned_host]} / ${took[round_robin]}" | bc)
echo "tuned (device-buffer hint) / round_robin = $r_dev; tuned (host-payload hint) / round_robin = $r_host"
if [ -n "$out" ]; then cp "$work/tune.err" "$out.tune-log"; fi
