#!/usr/bin/env bash
# Cluster-wide placement across two hosts: network namespaces joined by a veth pair (addresses we create, removed on
# exit), each host started by `xoscar up FILE --host NAME` in its namespace with one sub pool. A create through host
# A with cluster scope and least_loaded goes to host B's idle sub pool when A's is loaded, and B records it; without
# cluster scope it stays on A. With host B dead, placement skips it (A's pool is chosen) and, when no pool is left,
# the error names it. Where namespaces cannot be made, the hosts are 127.0.0.2 and 127.0.0.3 on loopback (said so).
#
#   cluster_place_test.sh BUILD_DIR
set -euo pipefail
. "$(dirname "$0")/cluster_lib.sh"
cluster_begin "$1"
module=$build/tests/modules/libxo_test_actors.so
down_hosts_on_exit a b

if netns_up "xc$$" 10.232.0; then
    ona="ip netns exec $nsa" onb="ip netns exec $nsb"
    hosta=10.232.0.1 hostb=10.232.0.2
    echo "hosts: network namespaces $nsa ($hosta) and $nsb ($hostb), veth between them"
else
    ona="" onb=""
    hosta=127.0.0.2 hostb=127.0.0.3
    echo "hosts: network namespaces unavailable here; using loopback addresses $hosta and $hostb instead"
fi
port=$(free_port_base)
cat >"$work/c.yaml" <<YAML
name: clusterplace
secret: "cluster placement test secret"
modules: [$module]
hosts:
  - {name: a, address: $hosta, port: $port, launcher: none, pools: [{count: 1}]}
  - {name: b, address: $hostb, port: $port, launcher: none, pools: [{count: 1}]}
YAML
$ona env XO_LISTEN_ANY=1 "$cli" up "$work/c.yaml" --host a >"$work/a.out" 2>"$work/a.err" || fail "up a: $(cat "$work/a.err")"
$onb env XO_LISTEN_ANY=1 "$cli" up "$work/c.yaml" --host b >"$work/b.out" 2>"$work/b.err" || fail "up b: $(cat "$work/b.err")"
run() { $ona "$cli" run "$work/c.yaml" -- "$cli" "$@"; }
create() { run call "$hosta:$port" xo.host create "$1"; }

# Host A's sub pool holds two actors, host B's none.
run create "$hosta:$port/1" Counter --uid busy1 '[0]' >/dev/null || fail "direct create 1"
run create "$hosta:$port/1" Counter --uid busy2 '[0]' >/dev/null || fail "direct create 2"
out=$(create '["Echo", null, "here", "least_loaded", null, null, 0, null, false]')
echo "$out" | grep -q "\"$hosta:$port/1\"" || fail "host scope went to $out"
out=$(create '["Echo", null, "there", "least_loaded", null, null, 0, null, true]')
echo "$out" | grep -q "\"$hostb:$port/1\"" || fail "cluster scope went to $out"
# B created and recorded it: its main address finds the actor.
[ "$($onb "$cli" run "$work/c.yaml" -- "$cli" has "$hostb:$port" there)" = true ] || fail "B does not know 'there'"

# The same from the command line: --cluster-scope (with --strategy) reaches B; without it the create stays on A.
[ "$(run create "$hosta:$port" Echo --uid cli_there --strategy least_loaded --cluster-scope)" = cli_there ] ||
    fail "create --cluster-scope"
[ "$($onb "$cli" run "$work/c.yaml" -- "$cli" has "$hostb:$port/1" cli_there)" = true ] || fail "--cluster-scope not on B"
run create "$hosta:$port" Echo --uid cli_here --strategy least_loaded >/dev/null || fail "create --strategy"
[ "$(run has "$hosta:$port/1" cli_here)" = true ] || fail "host scope from the CLI not on A"

# Host B dies: cluster placement skips it and goes on with A; with no pool left the error names B.
$onb env XO_RUN_DIR="$work/run" "$cli" down "$work/c.yaml" --host b >/dev/null
out=$(create '["Echo", null, null, "least_loaded", null, null, 0, null, true]') || fail "create with B down: $out"
echo "$out" | grep -q "\"$hosta:$port/1\"" || fail "with B down, placed at $out"
set +e
err=$(create '["Echo", null, null, "least_loaded", "nobody", null, 0, null, true]' 2>&1)
rc=$?
set -e
[ $rc -eq 1 ] || fail "no pool left: rc $rc: $err"
echo "$err" | grep -q "hosts skipped, unreachable: $hostb:$port" || fail "no pool left: $err"
echo "ok"
