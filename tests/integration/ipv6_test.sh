#!/usr/bin/env bash
# A pool at an IPv6 address ([::1]:port): created and called over TCP and over the same-host default path. Passes
# with a note where the machine has no IPv6 loopback.
#
#   ipv6_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
if ! ip -6 addr show dev lo 2>/dev/null | grep -q "::1"; then echo "SKIP-PASS: no IPv6 loopback here"; exit 0; fi
. "$(dirname "$0")/ports.sh"
port=$(free_port_base)
addr="[::1]:$port"
out=$(mktemp)
"$build/cluster/xoscar-pool" --address "$addr" --module "$build/tests/modules/libxo_test_actors.so" >"$out" 2>&1 &
pid=$!
trap 'kill -9 $pid 2>/dev/null || true; rm -f "$out"' EXIT
for i in $(seq 50); do [ -s "$out" ] && break; sleep 0.1; done
grep -qxF "$addr" "$out" || { echo "FAIL: pool did not start at $addr: $(cat "$out")"; exit 1; }
[ "$(XO_TRANSPORT=tcp "$build/cluster/xoscar" create "$addr" Counter --uid v '[5]')" = v ] || { echo "FAIL: create"; exit 1; }
[ "$(XO_TRANSPORT=tcp "$build/cluster/xoscar" call "$addr" v add '[1]')" = 6 ] || { echo "FAIL: tcp6 call"; exit 1; }
[ "$("$build/cluster/xoscar" call "$addr" v add '[1]')" = 7 ] || { echo "FAIL: same-host call"; exit 1; }
echo "PASS: pool at $addr reached over tcp6 and over shm"
