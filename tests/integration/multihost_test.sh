#!/usr/bin/env bash
# Two hosts as Linux network namespaces joined by a veth pair (addresses we create, removed on exit). Host B runs
# a main pool and a sub pool (xoscar-pool, each with the test actor module); host A calls them over TCP with the
# xoscar CLI: create, call, a 100 KB argument (out of band on the wire), errors; then B's pools are killed and A's calls fail fast (exit 3).
# Where namespaces cannot be created (no root, no iproute2), the two "hosts" are 127.0.0.2 and 127.0.0.3 on
# loopback instead, and the test says so.
#
#   multihost_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
pool=$build/runtime/xoscar-pool
cli=$build/runtime/xoscar
module=$build/tests/modules/libxo_test_actors.so
tag="xo$$"
nsa="${tag}a" nsb="${tag}b"
pids=()

cleanup() {
    for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
    ip netns del "$nsa" 2>/dev/null || true
    ip netns del "$nsb" 2>/dev/null || true
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

if [ "$(id -u)" -eq 0 ] && command -v ip >/dev/null && ip netns add "$nsa" 2>/dev/null; then
    ip netns add "$nsb"
    ip link add "${tag}va" type veth peer name "${tag}vb"
    ip link set "${tag}va" netns "$nsa"
    ip link set "${tag}vb" netns "$nsb"
    ip -n "$nsa" addr add 10.231.0.1/24 dev "${tag}va"
    ip -n "$nsb" addr add 10.231.0.2/24 dev "${tag}vb"
    for ns in "$nsa" "$nsb"; do ip -n "$ns" link set lo up; done
    ip -n "$nsa" link set "${tag}va" up
    ip -n "$nsb" link set "${tag}vb" up
    ona="ip netns exec $nsa" onb="ip netns exec $nsb"
    hostb=10.231.0.2
    echo "hosts: network namespaces $nsa (10.231.0.1) and $nsb (10.231.0.2), veth between them"
else
    ona="" onb=""
    hostb=127.0.0.3
    echo "hosts: network namespaces unavailable here; using loopback addresses 127.0.0.2 and 127.0.0.3 instead"
fi

port=$((20000 + RANDOM % 20000))
main="$hostb:$port" sub="$hostb:$port/1"
# host B: a main pool and its sub pool 1 (which listens on TCP port+1 for other hosts)
# XO_UCX=1: the pools also listen on ucx:// (port + 500 + N) when this build has UCX; XO_LISTEN_ANY=1: the main
# pool binds every interface and advertises its address
$onb env XO_UCX=1 XO_LISTEN_ANY=1 "$pool" --address "$main" --module "$module" > /tmp/$tag.main.out 2>&1 & pids+=($!)
$onb env XO_UCX=1 "$pool" --address "$sub" --module "$module" > /tmp/$tag.sub.out 2>&1 & pids+=($!)
for i in $(seq 50); do
    [ -s /tmp/$tag.main.out ] && [ -s /tmp/$tag.sub.out ] && break
    sleep 0.1
done
grep -q "$port" /tmp/$tag.main.out || fail "host B's main pool did not start: $(cat /tmp/$tag.main.out)"

# host A: the CLI, forced over TCP so the loopback fallback also crosses a socket between "hosts"
export XO_TRANSPORT=tcp
[ "$($ona "$cli" create "$main" Counter --uid c '[40]')" = c ] || fail "create on the main pool"
[ "$($ona "$cli" call "$main" c add '[2]')" = 42 ] || fail "call on the main pool"
[ "$($ona "$cli" create "$sub" Counter --uid s)" = s ] || fail "create on the sub pool"
[ "$($ona "$cli" call "$sub" s add '[7]')" = 7 ] || fail "call on the sub pool"
[ "$($ona "$cli" create "$sub" Echo --uid e)" = e ] || fail "create Echo"
big=$(head -c 100000 /dev/zero | tr "\\0" x)
out=$($ona "$cli" call "$sub" e echo "[\"$big\"]")
[ "${#out}" -eq $((100000 + 2)) ] || fail "100 KB echo came back with ${#out} bytes"
ucx="not built"
if ldd "$cli" | grep -q libucp; then
    # the same calls over UCX (its tcp transport: no RDMA here), from a fresh client process
    [ "$(XO_TRANSPORT=ucx $ona "$cli" call "$main" c add '[1]')" = 43 ] || fail "call over UCX (main pool)"
    [ "$(XO_TRANSPORT=ucx $ona "$cli" call "$sub" s add '[1]')" = 8 ] || fail "call over UCX (sub pool)"
    out=$(XO_TRANSPORT=ucx $ona "$cli" call "$sub" e echo "[\"$big\"]")
    [ "${#out}" -eq $((100000 + 2)) ] || fail "100 KB echo over UCX came back with ${#out} bytes"
    ucx="also over UCX"
fi
set +e
$ona "$cli" call "$main" c nope 2>/dev/null; rc=$?
[ $rc -eq 1 ] || fail "unknown method: exit $rc, expected 1"
$ona "$cli" call "$main" nobody get 2>/dev/null; rc=$?
[ $rc -eq 1 ] || fail "unknown actor: exit $rc, expected 1"

# host B dies: A's calls fail fast, with exit code 3, no hang
kill -9 "${pids[@]}"
start=$(date +%s%N)
$ona "$cli" --timeout 5000 call "$main" c get 2>/dev/null; rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
set -e
[ $rc -eq 3 ] || fail "call to a dead host: exit $rc, expected 3"
[ $ms -lt 4000 ] || fail "call to a dead host took $ms ms"
echo "PASS: create/call across hosts over TCP ($ucx) to a main and a sub pool, 100 KB payload, errors, dead host -> exit 3 in $ms ms"
