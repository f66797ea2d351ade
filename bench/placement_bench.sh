#!/usr/bin/env bash
# Placement that matters (issue 11): two hosts as network namespaces joined by a veth pair whose link is slowed with
# tc netem (2 ms delay and 200 Mbit/s each way; tbf at 200 Mbit/s where the kernel has no netem), each with two sub
# pools, started by `xoscar up FILE --host NAME`.
# A pipeline of four Stage actors (bench/bench_stage_module.c) hands 16 MiB buffers down the line: the source is
# created on host A's sub pool 1 (where the data is), the other three stages are placed through host A's xo.host
# with cluster scope by round_robin, by least_loaded, and by weighted with the profile `xoscar tune` measured and a
# `near` hint naming the previous stage's pool (16 MiB a call). Prints each end-to-end time and tuned / round robin.
#
#   placement_bench.sh BUILD_DIR [--items N] [--out FILE]
#
# Needs root (ip netns, tc). The stages are destroyed after each policy's run, so each starts from the same loads.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/tests/integration/cluster_lib.sh"
cluster_begin "$1"
shift
items=4 out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --items) items=$2; shift ;;
        --out) out=$2; shift ;;
        *) echo "usage: placement_bench.sh BUILD_DIR [--items N] [--out FILE]" >&2; exit 2 ;;
    esac
    shift
done
module=$build/bench/libxo_bench_stage.so
for f in "$cli" "$module"; do [ -e "$f" ] || { echo "missing $f (build the bench targets)" >&2; exit 2; }; done
down_hosts_on_exit a b
netns_up "xp$$" 10.234.0 || { echo "placement_bench.sh needs root and iproute2 (ip netns)" >&2; exit 2; }
ona="ip netns exec $nsa" onb="ip netns exec $nsb"
hosta=10.234.0.1 hostb=10.234.0.2
# The slow link: delay and rate on both ends of the veth, by netem; a kernel without sch_netem (this VM's) gets the
# rate alone, by tbf, and the run says so.
slow_link 200mbit 2ms || { echo "placement_bench.sh: no tc qdisc to slow the link with" >&2; exit 2; }
port=$(free_port_base)
cat >"$work/c.yaml" <<YAML
name: placebench
secret: "placement bench secret"
modules: [$module]
placement: {profile: profile.json, weights: {load: 0.1}}
hosts:
  - {name: a, address: $hosta, port: $port, launcher: none, pools: [{count: 2}]}
  - {name: b, address: $hostb, port: $port, launcher: none, pools: [{count: 2}]}
YAML
$ona env XO_LISTEN_ANY=1 "$cli" up "$work/c.yaml" --host a >/dev/null 2>"$work/a.err" || { cat "$work/a.err"; exit 1; }
$onb env XO_LISTEN_ANY=1 "$cli" up "$work/c.yaml" --host b >/dev/null 2>"$work/b.err" || { cat "$work/b.err"; exit 1; }
run() { $ona "$cli" --timeout 900000 run "$work/c.yaml" -- "$cli" --timeout 900000 "$@"; }

echo "link: $nsa <-> $nsb, $shaping; hosts $hosta (a) and $hostb (b), 2 sub pools each"
t0=$(date +%s.%N)
$ona "$cli" tune "$work/c.yaml" --quick --apply >"$work/tune.out" 2>"$work/tune.err" || { cat "$work/tune.err"; exit 1; }
t1=$(date +%s.%N)
cat "$work/tune.out"
grep -E "^pair .*(/1 -> .*/1|/1 -> .*/2):" "$work/tune.err" | grep "$hosta:$port/1 ->" || true
echo "tune: $(echo "$t1 - $t0" | bc) s"

declare -A took
for policy in round_robin least_loaded tuned; do
    run create "$hosta:$port/1" Stage --uid "src-$policy" >/dev/null
    prev_addr="$hosta:$port/1" prev_uid="src-$policy" placed=""
    for k in 1 2 3; do
        if [ "$policy" = tuned ]; then
            req="[\"Stage\", null, \"s$k-$policy\", \"weighted\", null, null, 0, [[\"$prev_addr\", 16777216]], true]"
        else
            req="[\"Stage\", null, \"s$k-$policy\", \"$policy\", null, null, 0, null, true]"
        fi
        reply=$(run call "$hosta:$port" xo.host create "$req")
        addr=$(echo "$reply" | sed 's/^\["\([^"]*\)".*/\1/')
        run call "$prev_addr" "$prev_uid" set_next "[\"$addr\", \"s$k-$policy\"]" >/dev/null
        placed="$placed $addr"
        prev_addr=$addr prev_uid="s$k-$policy"
    done
    secs=$(run call "$hosta:$port/1" "src-$policy" produce "[$items, 16777216]")
    took[$policy]=$secs
    printf "%-13s %8.3f s for %d x 16 MiB through 4 stages; stages 2-4 placed at:%s\n" "$policy" "$secs" "$items" "$placed"
    # the stages go, so the next policy starts from the same loads
    for k in 1 2 3; do
        for p in $placed; do run destroy "$p" "s$k-$policy" >/dev/null 2>&1 || true; done
    done
    run destroy "$hosta:$port/1" "src-$policy" >/dev/null
done
ratio=$(echo "scale=3; ${took[tuned]} / ${took[round_robin]}" | bc)
ratio_ll=$(echo "scale=3; ${took[tuned]} / ${took[least_loaded]}" | bc)
echo "tuned / round_robin = $ratio, tuned / least_loaded = $ratio_ll (target: tuned <= 0.5 x round robin)"
if [ -n "$out" ]; then cp "$work/tune.err" "$out.tune-log"; fi
