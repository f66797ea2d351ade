#!/usr/bin/env bash
# A device buffer lent across two hosts (network namespaces joined by a veth pair): host B's pool owns a host
# device and a buffer on it; it lends the buffer in a call to a reader in host A's pool, over TCP. A is another
# host (another netns), so the reader stages a copy from B's "xo.devbuf" service (no IPC, no XO_DEVICE_IPC=0):
# the reader checks every byte, zeroes its copy, and B's buffer stays intact. Both devices are back to 0 bytes used.
# Needs root and iproute2 (namespaces we create, removed on exit); exits 77 (skipped) otherwise.
#
#   devbuf_multihost_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
pool=$build/cluster/xoscar-pool
cli=$build/cluster/xoscar
module=$build/tests/modules/libxo_devbuf_actors.so
. "$(dirname "$0")/netns.sh"
pids=()

cleanup() {
    for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "${work:-}" ] && rm -rf "$work"
    netns_down
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

if ! netns_up "xd$$" 10.232.0; then
    echo "SKIP: network namespaces unavailable (needs root and iproute2)"
    exit 77
fi

work=$(mktemp -d)
export XO_SECRET="devbuf multihost test secret"
unset XO_DEVICE_IPC
port=$((22000 + (RANDOM % 2000) * 10))
a="10.232.0.1:$port" b="10.232.0.2:$port"

# One pool per host, each owning a host device of 64 MiB; the pool prints its address when it is ready.
start_pool() { # NS ADDRESS NAME
    ip netns exec "$1" "$pool" --address "$2" --threads 2 --module "$module" --device host:0 \
        --device-capacity $((64 << 20)) >"$work/$3.out" 2>"$work/$3.err" &
    pids+=($!)
    disown $! # its death at cleanup is expected: no job report
    for _ in $(seq 100); do
        grep -q . "$work/$3.out" 2>/dev/null && return 0
        sleep 0.1
    done
    fail "pool $3 at $2 did not start: $(cat "$work/$3.err")"
}
start_pool "$nsa" "$a" a
start_pool "$nsb" "$b" b
ona="ip netns exec $nsa"

[ "$($ona "$cli" create "$a" StageReader --uid r)" = r ] || fail "create the reader on host A"
[ "$($ona "$cli" create "$b" StageOwner --uid o)" = o ] || fail "create the owner on host B"
size=$((24 << 20))
$ona "$cli" call "$b" o alloc "[$size, 11]" >/dev/null || fail "alloc on host B"
start=$(date +%s%N)
out=$($ona "$cli" call "$b" o lend "[\"$a\", \"r\", 11]") || fail "lend from B to A"
ms=$(( ($(date +%s%N) - start) / 1000000 ))
# [[pattern ok, imported (a copy to release), size, bytes used on A's device meanwhile], B's buffer intact]
echo "$out" | tr -d ' ' | grep -Eq "^\[\[true,true,$size,[0-9]+\],true\]$" ||
    fail "the reader on host A did not get a correct staged copy: $out"
[ "$($ona "$cli" call "$a" r used)" = 0 ] || fail "host A's device still holds the staged copy after the call"
[ "$($ona "$cli" call "$b" o free)" = 0 ] || fail "host B's device is not back to 0 bytes used"
# the stale descriptor's range is gone: a second lend finds no buffer to lend
$ona "$cli" call "$b" o lend "[\"$a\", \"r\", 11]" >/dev/null 2>&1 && fail "lend after free succeeded"
echo "PASS: a $((size >> 20)) MiB device buffer lent by host B ($b) was staged into host A's device ($a) over TCP" \
    "across network namespaces and checked byte for byte in $ms ms (call included); the copy's writes stayed on A"
