# Sourced by the tests and benches that run clusters from a cluster file on this machine (tests/integration,
# bench/placement*_bench.sh): the set-up and clean-up they all repeated.
#
#   cluster_begin BUILD_DIR    build, cli (the xoscar CLI), work (a new temp dir) and XO_RUN_DIR ($work/run) set;
#                              fail() defined; ports.sh and netns.sh sourced
#   down_local_on_exit FILE    on exit: `xoscar down FILE`, $work removed
#   down_hosts_on_exit H...    on exit: each host H of $work/c.yaml down in its namespace (a in $nsa, b in $nsb, any
#                              other in $nsa; none when there are no namespaces), $work removed, namespaces down
#   slow_link RATE DELAY       both ends of the $nsa-$nsb veth shaped to RATE ("200mbit") each way, with DELAY ("2ms")
#                              by netem where the kernel has it, else RATE alone by tbf; sets netem=1 or 0 and
#                              shaping (what was done, in words); returns 1 when neither qdisc can be added
lib_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$lib_dir/ports.sh"
. "$lib_dir/netns.sh"

fail() { echo "FAIL: $*" >&2; exit 1; }

cluster_begin() {
    build=$(cd "$1" && pwd)
    cli=$build/cluster/xoscar
    work=$(mktemp -d)
    export XO_RUN_DIR=$work/run
}

down_local_on_exit() {
    down_local_file=$1
    trap '"$cli" down "$down_local_file" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
}

down_hosts_on_exit() {
    down_hosts=("$@")
    trap _down_hosts EXIT
}

_down_hosts() {
    local h ns
    for h in "${down_hosts[@]}"; do
        ns=${nsa:-}
        [ "$h" = b ] && ns=${nsb:-}
        if [ -n "$ns" ] && [ -e "/var/run/netns/$ns" ]; then
            ip netns exec "$ns" env XO_RUN_DIR="$work/run" "$cli" down "$work/c.yaml" --host "$h" >/dev/null 2>&1 || true
        else
            "$cli" down "$work/c.yaml" --host "$h" >/dev/null 2>&1 || true
        fi
    done
    rm -rf "$work"
    netns_down
}

slow_link() {
    local rate=$1 delay=$2 ns dev
    netem=1
    shaping="netem delay $delay rate $rate (each way)"
    for ns in "$nsa" "$nsb"; do
        dev=${ns%?}v${ns: -1} # netns_up's veth ends: ${tag}va in ${tag}a, ${tag}vb in ${tag}b
        if ! ip netns exec "$ns" tc qdisc add dev "$dev" root netem delay "$delay" rate "$rate" 2>/dev/null; then
            ip netns exec "$ns" tc qdisc add dev "$dev" root tbf rate "$rate" burst 256kb latency 50ms 2>/dev/null ||
                return 1
            netem=0
            shaping="tbf rate $rate (no sch_netem in this kernel: no added delay)"
        fi
    done
}
