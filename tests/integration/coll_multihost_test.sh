#!/usr/bin/env bash
# Collectives across two hosts: Linux network namespaces joined by a veth pair (addresses we create, removed on
# exit), each host started by `xoscar up FILE --host NAME` with two sub pools that own host devices and load the
# collectives test module. Four members (two per host) allreduce and allgather; each checks its result against the
# CPU reference itself. Members on one host could map each other's device memory, but not across hosts, so the
# group must choose the message ring over TCP; small allreduces take the direct exchange.
# Needs root and iproute2 (network namespaces); exits 77 (skipped) without them.
#
#   coll_multihost_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
cli=$build/cluster/xoscar
module=$build/tests/services/coll/libxo_test_coll.so
. "$(dirname "$0")/netns.sh"

cleanup() {
    if [ -n "${work:-}" ]; then
        ip netns exec "$nsa" "$cli" down "$work/cluster.yaml" --host a >/dev/null 2>&1 || true
        ip netns exec "$nsb" "$cli" down "$work/cluster.yaml" --host b >/dev/null 2>&1 || true
        rm -rf "$work"
    fi
    netns_down
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

if ! netns_up "xc$$" 10.232.0; then
    echo "SKIP: network namespaces need root and iproute2"
    exit 77
fi

port=$((22000 + (RANDOM % 1000) * 10))
work=$(mktemp -d)
export XO_RUN_DIR=$work/run XO_SECRET="collectives multihost secret"
cat >"$work/cluster.yaml" <<YAML
name: collectives
secret: "$XO_SECRET"
modules: [$module]
hosts:
  - {name: a, address: 10.232.0.1, port: $port, launcher: none, pools: [{count: 2, device: host}]}
  - {name: b, address: 10.232.0.2, port: $port, launcher: none, pools: [{count: 2, device: host}]}
YAML
for h in a b; do
    ns=$([ $h = a ] && echo "$nsa" || echo "$nsb")
    ip netns exec "$ns" env XO_LISTEN_ANY=1 "$cli" up "$work/cluster.yaml" --host $h >"$work/up-$h.out" 2>&1 ||
        fail "xoscar up --host $h: $(cat "$work/up-$h.out")"
done
rdv="10.232.0.1:$port"
addrs=("10.232.0.1:$port/1" "10.232.0.1:$port/2" "10.232.0.2:$port/1" "10.232.0.2:$port/2")
nss=("$nsa" "$nsa" "$nsb" "$nsb")
for r in 0 1 2 3; do
    [ "$(ip netns exec "${nss[$r]}" "$cli" create "${addrs[$r]}" CollMember --uid "m$r")" = "m$r" ] ||
        fail "creating member $r at ${addrs[$r]}"
done

# Runs op on all four members at once (a CLI call per member, from its own host); prints each member's answer.
run() {
    local name=$1 op=$2 count=$3
    for r in 0 1 2 3; do
        ip netns exec "${nss[$r]}" "$cli" --timeout 60000 call "${addrs[$r]}" "m$r" check \
            "[\"$name\", $r, 4, \"$rdv\", \"$op\", $count]" >"$work/$name.$r" 2>&1 &
    done
    wait
    for r in 0 1 2 3; do cat "$work/$name.$r"; done
}

out=$(run big-sum allreduce 300007)
[ "$(echo "$out" | grep -c '^\[true, "ring"\]$')" -eq 4 ] || fail "allreduce of 2.4 MB across hosts: $out"
out=$(run small-sum allreduce 5)
[ "$(echo "$out" | grep -c '^\[true, "direct"\]$')" -eq 4 ] || fail "small allreduce across hosts: $out"
out=$(run gather allgather 50000)
[ "$(echo "$out" | grep -c '^\[true, "ring"\]$')" -eq 4 ] || fail "allgather across hosts: $out"
echo "PASS: four members on two hosts (network namespaces, TCP between them): allreduce (ring, 2.4 MB; direct, 40 B) and allgather match the CPU reference on every member"
