#!/usr/bin/env bash
# xoscar tune with pools that own devices (the host device): the profile (version 2) records each device's copy
# bandwidth and launch cost, and for every ordered pair of device pools the way the runtime took for a lent device
# buffer and its bandwidth. The way is measured, not predicted from addresses: the same cluster started with
# XO_DEVICE_IPC=0 (the pools then stage copies between processes) measures staging where it measured device IPC.
#
#   tune_devbuf_test.sh BUILD_DIR
set -euo pipefail
. "$(dirname "$0")/cluster_lib.sh"
cluster_begin "$1"
port=$(free_port_base)
cat >"$work/c.yaml" <<YAML
name: tunedev
secret: "tune devbuf secret"
modules: [$build/tests/modules/libxo_test_actors.so]
placement: {policy: weighted, profile: tuned.json}
hosts:
  - name: solo
    address: 127.0.0.1
    port: $port
    launcher: local
    pools: [{count: 2, device: host}]
YAML
down_local_on_exit "$work/c.yaml"

tune() { # $1: label; the rest: environment for up
    local label=$1
    shift
    env "$@" "$cli" up "$work/c.yaml" 2>"$work/up.$label.err" | grep -q "host solo up" || fail "up: $(cat "$work/up.$label.err")"
    timeout 60 "$cli" tune "$work/c.yaml" --quick --out "$work/$label.json" >"$work/$label.out" 2>"$work/$label.err" ||
        fail "tune $label: $(cat "$work/$label.err")"
    "$cli" down "$work/c.yaml" >/dev/null
    grep -q "9 of 9 pairs measured" "$work/$label.out" || fail "tune $label: $(cat "$work/$label.out")"
}
sub1=127.0.0.1:$port/1
sub2=127.0.0.1:$port/2

tune ipc
err=$work/ipc.err
for p in $sub1 $sub2; do
    grep -q "^pool $p: device host[:0-9]*, copy .* at 16 MiB, launch launch_host p50 [0-9.]* us" "$err" ||
        fail "device figures of $p: $(cat "$err")"
done
grep -q "^pool 127.0.0.1:$port: device" "$err" && fail "the main pool owns no device: $(cat "$err")"
# Between the two sub pool processes of one host: device IPC; a pool to itself: the pointer; the main pool: none.
for pair in "$sub1 -> $sub2" "$sub2 -> $sub1"; do
    grep -q "^pair [0-9] of 9: $pair: shm, .*; device buffers by ipc, .* at 16 MiB" "$err" || fail "$pair: $(cat "$err")"
done
for p in $sub1 $sub2; do
    grep -q "^pair [0-9] of 9: $p -> $p: inproc, .*; device buffers by inproc" "$err" || fail "$p self: $(cat "$err")"
done
[ "$(grep -c 'device buffers by' "$err")" -eq 4 ] || fail "device pairs: $(cat "$err")"
# The profile says so in version 2, and loads (status reads it back through the cluster file).
python3 - "$work/ipc.json" "$sub1" "$sub2" <<'PY' || fail "profile: $(cat "$work/ipc.json")"
import json, sys
p = json.load(open(sys.argv[1]))
assert p["xoscar_profile"] == 2, p["xoscar_profile"]
pools = {q["address"]: q for q in p["pools"]}
for a in sys.argv[2:]:
    assert pools[a]["kernel_launch"]["via"] == "launch_host", pools[a]
    assert [b["bytes"] for b in pools[a]["copy_bandwidth"]] == [1 << 20, 16 << 20], pools[a]
pairs = {(q["from"], q["to"]): q for q in p["pairs"]}
d = pairs[(sys.argv[2], sys.argv[3])]["device_buf"]
assert d["path"] == "ipc" and [b["bytes"] for b in d["bandwidth"]] == [1 << 20, 16 << 20], d
assert all(b["min_Bps"] <= b["median_Bps"] <= b["max_Bps"] for b in d["bandwidth"]), d
assert sum("device_buf" in q for q in p["pairs"]) == 4
PY

# The same cluster with device IPC off: the processes stage copies, and the profile says staging.
tune staging XO_DEVICE_IPC=0
err=$work/staging.err
for pair in "$sub1 -> $sub2" "$sub2 -> $sub1"; do
    grep -q "^pair [0-9] of 9: $pair: shm, .*; device buffers by staging, .* at 16 MiB" "$err" || fail "$pair: $(cat "$err")"
done
grep -q "device buffers by ipc" "$err" && fail "ipc with XO_DEVICE_IPC=0: $(cat "$err")"
python3 - "$work/ipc.json" "$work/staging.json" "$sub1" "$sub2" <<'PY' || fail "ipc vs staging"
import json, sys
def bw(f):
    p = json.load(open(f))
    d = [q for q in p["pairs"] if q["from"] == sys.argv[3] and q["to"] == sys.argv[4]][0]["device_buf"]
    return d["path"], d["bandwidth"][-1]["median_Bps"]
(pi, bi), (ps, bs) = bw(sys.argv[1]), bw(sys.argv[2])
print(f"16 MiB device buffer /1 -> /2: {pi} {bi / 1e9:.2f} GB/s, {ps} {bs / 1e9:.2f} GB/s")
assert pi == "ipc" and ps == "staging"
PY
echo "ok"
