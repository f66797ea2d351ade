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
pool=$build/cluster/xoscar-pool
cli=$build/cluster/xoscar
module=$build/tests/modules/libxo_test_actors.so
. "$(dirname "$0")/netns.sh"
pids=()

cleanup() {
    for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
    [ -n "${work:-}" ] && rm -rf "$work"
    netns_down
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

if netns_up "xo$$" 10.231.0; then
    ona="ip netns exec $nsa" onb="ip netns exec $nsb"
    hostb=10.231.0.2
    echo "hosts: network namespaces $nsa (10.231.0.1) and $nsb (10.231.0.2), veth between them"
else
    ona="" onb=""
    hostb=127.0.0.3
    echo "hosts: network namespaces unavailable here; using loopback addresses 127.0.0.2 and 127.0.0.3 instead"
fi

port=$((20000 + (RANDOM % 2000) * 10))
main="$hostb:$port" sub="$hostb:$port/1"
hosta=${hostb%.*}.$(( ${hostb##*.} - 1 ))
# Host B is started as a cluster host is: `xoscar up FILE --host b`, run in its namespace (a daemon: its main pool,
# and sub pool 1 as a child process). UCX is preferred to TCP in the file, so its pools also listen on ucx://
# (port + 500 + N) when this build has UCX; XO_LISTEN_ANY=1: they bind every interface and advertise their address.
work=$(mktemp -d)
export XO_RUN_DIR=$work/run XO_SECRET="multihost test secret"
cat >"$work/cluster.yaml" <<YAML
name: multihost
secret: "$XO_SECRET"
modules: [$module]
transport: {prefer: [shm, unix, ucx, tcp]}
hosts:
  - {name: a, address: $hosta, port: $port, launcher: none}
  - {name: b, address: $hostb, port: $port, launcher: none, pools: [{count: 1}]}
YAML
$onb env XO_LISTEN_ANY=1 "$cli" up "$work/cluster.yaml" --host b >"$work/up.out" 2>&1 ||
    fail "xoscar up --host b: $(cat "$work/up.out")"
grep -q "host b up at $main" "$work/up.out" || fail "host B did not come up: $(cat "$work/up.out")"
# the pids of host B's pools, to kill them later as a dying host would
# (status exits 3: host a, which nobody started, is down)
pids=($( ($onb "$cli" status "$work/cluster.yaml" 2>/dev/null || true) | awk '$1 == "b" && $5 == "up" {print $3}'))
[ ${#pids[@]} -eq 2 ] || fail "host B's status: expected 2 pools up, got ${#pids[@]}"

# host A: the CLI, forced over TCP so the loopback fallback also crosses a socket between "hosts"
export XO_TRANSPORT=tcp
[ "$($ona "$cli" create "$main" Counter --uid c '[40]')" = c ] || fail "create on the main pool"
[ "$($ona "$cli" call "$main" c add '[2]')" = 42 ] || fail "call on the main pool"
[ "$($ona "$cli" create "$sub" Counter --uid s)" = s ] || fail "create on the sub pool"
[ "$($ona "$cli" call "$sub" s add '[7]')" = 7 ] || fail "call on the sub pool"
[ "$($ona "$cli" create "$sub" Echo --uid e)" = e ] || fail "create Echo"
[ "$($ona "$cli" create "$sub" Sum --uid sum)" = sum ] || fail "create Sum"
[ "$($ona "$cli" batch "$sub" sum add '[[1], [2], [3]]')" = "[1, 3, 6]" ] || fail "a batch across hosts"
big=$(head -c 100000 /dev/zero | tr "\\0" x)
out=$($ona "$cli" call "$sub" e echo "[\"$big\"]")
[ "${#out}" -eq $((100000 + 2)) ] || fail "100 KB echo came back with ${#out} bytes"
ucx="not built"
if ldd "$cli" | grep -q libucp; then
    # the same calls over UCX (its tcp transport: no RDMA here), from a fresh client process
    [ "$(XO_TRANSPORT=ucx $ona "$cli" call "$main" c add '[1]')" = 43 ] || fail "call over UCX (main pool)"
    [ "$(XO_TRANSPORT=ucx $ona "$cli" call "$sub" s add '[1]')" = 8 ] || fail "call over UCX (sub pool)"
    [ "$(XO_TRANSPORT=ucx $ona "$cli" batch "$sub" sum add '[[4], [5]]')" = "[10, 15]" ] || fail "batch over UCX"
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
echo "PASS: host B started by 'xoscar up FILE --host b'; create/call/batch across hosts over TCP ($ucx) to a main and a sub pool, 100 KB payload, errors, dead host -> exit 3 in $ms ms"
