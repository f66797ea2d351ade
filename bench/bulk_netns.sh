#!/usr/bin/env bash
# Bulk data across hosts (issue #14, part 4): two "hosts" as Linux network namespaces joined by a veth pair
# (10.233.0.1 = A, 10.233.0.2 = B; names unique per run, removed on exit; tests/integration/netns.sh). Host B runs
# an xoscar-pool (XO_UCX=1, the bench module libxo_bench_actors.so); host A runs
#   cross_host_client --bulk   (args 'b', lent 'B' and results, 64 KiB..256 MiB, size / p50, GB/s = 1e9 B/s)
# against it with XO_TRANSPORT=tcp and, when the UCX plugin is built, XO_TRANSPORT=ucx. In the same run, the limits
# across the same veth: a raw TCP stream (iperf3, one connection, 1 MiB writes; cross_host_client --stream-* where
# iperf3 is missing) and ucx_perftest (UCX_TLS=tcp; ucp_put_bw and tag_bw at the bulk sizes). Prints a table and
# the ratios; the issue's target: large calls across hosts >= 0.8x the raw TCP stream.
#
#   bulk_netns.sh BUILD_DIR [--quick] [--json FILE] [--only tcp|ucx] [--no-limits]
#
#   --quick       up to 16 MiB, fewer calls (about 30 s); the full run goes to 256 MiB (about 1-2 min)
#   --only T      the xoscar runs for one transport only (the limits still run unless --no-limits)
#   --no-limits   skip iperf3 / ucx_perftest (an A/B of builds that shares one set of limits)
#   XO_BENCH_BULK_MAX=<bytes>   stop at that size (both the xoscar runs and ucx_perftest)
#
# Needs root (ip netns); iperf3 and ucx_perftest are optional (Debian: iperf3, ucx-utils). UCX is pinned to its
# tcp transport on the veth for both our runtime and ucx_perftest (UCX_TLS=tcp, UCX_NET_DEVICES): the namespaces
# share one kernel and IPC namespace, so UCX's shared-memory transports would otherwise bypass the "network".
# Extra UCX_* variables in the caller's environment reach both sides (ip netns exec keeps the environment).
set -euo pipefail
build=$(cd "$1" && pwd)
shift
quick="" json="" only="" limits=1
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=--quick ;;
        --json) json=$2; shift ;;
        --only) only=$2; shift ;;
        --no-limits) limits="" ;;
        *) echo "usage: bulk_netns.sh BUILD_DIR [--quick] [--json FILE] [--only tcp|ucx] [--no-limits]" >&2; exit 2 ;;
    esac
    shift
done
pool=$build/cluster/xoscar-pool
client=$build/bench/cross_host_client
module=$build/bench/libxo_bench_actors.so
for f in "$pool" "$client" "$module"; do [ -e "$f" ] || { echo "missing $f (build the bench targets)" >&2; exit 2; }; done
[ "$(id -u)" -eq 0 ] || { echo "bulk_netns.sh needs root (ip netns)" >&2; exit 2; }
transports="tcp"
if [ -e "$build/lib/xoscar/libxoscar-ucx.so" ]; then transports="tcp ucx"; fi
[ -n "$only" ] && transports=$only

. "$(dirname "$0")/../tests/integration/netns.sh"
tag="xb$$"
tmp=$(mktemp -d /tmp/xo-bulk-netns.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    sleep 0.2
    for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
    netns_down
    rm -rf "$tmp"
}
trap cleanup EXIT
netns_up "$tag" 10.233.0 || { echo "cannot create network namespaces" >&2; exit 2; }
va="${tag}va" vb="${tag}vb"
ona="ip netns exec $nsa env UCX_TLS=tcp UCX_NET_DEVICES=$va"
onb="ip netns exec $nsb env UCX_TLS=tcp UCX_NET_DEVICES=$vb"
hostb=10.233.0.2
out=$tmp/metrics.jsonl
: > "$out"
echo "hosts: network namespaces $nsa (10.233.0.1) and $nsb ($hostb), veth $va <-> $vb; load $(cut -d' ' -f1-3 /proc/loadavg)"

sizes=(65536 1048576 16777216 67108864 268435456)
names=(64KiB 1MiB 16MiB 64MiB 256MiB)
nsz=5
[ -n "$quick" ] && nsz=3
maxb=${XO_BENCH_BULK_MAX:-0}
if [ "$maxb" -gt 0 ]; then
    while [ "$nsz" -gt 1 ] && [ "${sizes[$((nsz - 1))]}" -gt "$maxb" ]; do nsz=$((nsz - 1)); done
fi

# ---- the limits ----------------------------------------------------------------------------------------------
if [ -n "$limits" ]; then
    secs=3
    if command -v iperf3 >/dev/null; then
        echo "raw TCP stream (iperf3, 1 MiB writes, ${secs} s) ..."
        iport=$((30000 + RANDOM % 20000))
        $onb iperf3 -s -1 -p "$iport" > "$tmp/iperf_server.out" 2>&1 & pids+=($!)
        sleep 0.5
        if $ona iperf3 -c "$hostb" -p "$iport" -t "$secs" -l 1M -J > "$tmp/iperf.json" 2>&1; then
            python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))
print(json.dumps({"name": "rawtcp.stream.bw", "value": d["end"]["sum_received"]["bits_per_second"]/8e9, "unit": "GB/s", "tool": "iperf3"}))' \
                "$tmp/iperf.json" >> "$out"
        else
            echo "iperf3 failed: $(tail -2 "$tmp/iperf.json")" >&2
        fi
    else
        echo "raw TCP stream (cross_host_client --stream-client, 1 MiB writes) ..."
        sport=$((30000 + RANDOM % 20000))
        $onb "$client" --stream-server "$sport" > "$tmp/stream_server.out" 2>&1 & pids+=($!)
        sleep 0.3
        $ona "$client" --stream-client "$hostb" "$sport" rawtcp $quick >> "$out"
    fi
    if command -v ucx_perftest >/dev/null; then
        echo "ucx_perftest (UCX_TLS=tcp) ucp_put_bw / tag_bw ..."
        for ((k = 0; k < nsz; k++)); do
            s=${sizes[$k]}
            mb=512
            [ -n "$quick" ] && mb=128
            for test in ucp_put_bw tag_bw; do
                # put_bw over UCX's tcp transport runs at tens of MB/s from 16 MiB on here: fewer of those.
                n=$(( mb * 1048576 / s ))
                [ "$test" = ucp_put_bw ] && [ "$s" -ge 16777216 ] && n=$((n / 8))
                [ "$n" -lt 2 ] && n=2
                port=$((30000 + RANDOM % 20000))
                $onb ucx_perftest -p "$port" > "$tmp/perf_server.out" 2>&1 &
                spid=$!
                pids+=("$spid")
                sleep 0.5
                line=$($ona ucx_perftest "$hostb" -p "$port" -t "$test" -s "$s" -n "$n" 2>&1 | grep '^Final:' || true)
                wait "$spid" 2>/dev/null || true
                [ -n "$line" ] || { echo "ucx_perftest $test $s failed" >&2; continue; }
                # Final: iterations lat(p50 avg overall) bw(avg overall, MB/s = 2^20 B/s) rate(avg overall)
                set -- $line
                printf '{"name": "ucx_perftest.%s.%s", "value": %s, "unit": "GB/s"}\n' "$test" "${names[$k]}" \
                    "$(awk "BEGIN{print $7*1048576/1e9}")" >> "$out"
            done
        done
    fi
fi

# ---- xoscar: one pool in B, the client in A ------------------------------------------------------------------
port=$((20000 + RANDOM % 9000))
$onb env XO_UCX=1 XO_LISTEN_ANY=1 "$pool" --address "$hostb:$port" --module "$module" > "$tmp/pool.out" 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q "$port" "$tmp/pool.out" 2>/dev/null && break; sleep 0.1; done
grep -q "$port" "$tmp/pool.out" || { echo "xoscar-pool did not start: $(cat "$tmp/pool.out")" >&2; exit 1; }
for t in $transports; do
    echo "xoscar bulk calls over $t ..."
    if ! $ona env XO_UCX=1 XO_TRANSPORT=$t XO_BENCH_BULK_MAX="$maxb" "$client" --bulk "$hostb:$port" "$t" $quick \
        >> "$out"; then
        echo "the $t run failed" >&2
    fi
done

# ---- table and ratios ----------------------------------------------------------------------------------------
gitrev=$(git -C "$(dirname "$0")" describe --always --dirty 2>/dev/null || echo unknown)
python3 - "$out" "$json" "$build" "$quick" "$gitrev" "$transports" "${names[*]:0:$nsz}" <<'EOF'
import json, sys, os, subprocess, platform
path, jpath, build, quick, gitrev, transports, names = sys.argv[1:8]
transports, names = transports.split(), names.split()
m = {}
for line in open(path):
    line = line.strip()
    if line.startswith('{'):
        d = json.loads(line); m[d['name']] = d
def v(k): return m[k]['value'] if k in m else None
def f(x): return '-' if x is None else f'{x:.3g}'
raw = v('rawtcp.stream.bw')
print()
print(f"raw TCP stream across the veth: {f(raw)} GB/s" + (f" ({m['rawtcp.stream.bw'].get('tool', 'cross_host_client')})" if raw else ''))
for t in transports:
    if f'{t}.bulk.rtt8' in m: print(f"{t}: 8 B call round trip p50 {f(v(t + '.bulk.rtt8'))} us")
print()
cols = [(t, k) for t in transports for k in ('args', 'lent', 'result')]
print('| size | ' + ' | '.join(f'{t} {k}' for t, k in cols) + ' | ucx_perftest put_bw | tag_bw |')
print('|' + ' --- |' * (len(cols) + 3))
ratios = {}
for n in names:
    cells = []
    for t, k in cols:
        x = v(f'{t}.bulk.{k}.{n}')
        cell = f(x)
        if x is not None and raw:
            r = x / raw
            cell += f' ({r:.2f}x)'
            ratios[f'{t}.bulk.{k}.{n} / rawtcp.stream.bw'] = {
                'value': r, 'target': 0.8, 'met': r >= 0.8, 'num': f'{t}.bulk.{k}.{n}', 'den': 'rawtcp.stream.bw'}
        cells.append(cell)
    pb, tb = v(f'ucx_perftest.ucp_put_bw.{n}'), v(f'ucx_perftest.tag_bw.{n}')
    print(f'| {n} | ' + ' | '.join(cells) + f' | {f(pb)} | {f(tb)} |')
    for t in transports:
        x = v(f'{t}.bulk.lent.{n}')
        if x is not None and tb:
            ratios[f'{t}.bulk.lent.{n} / ucx_perftest.tag_bw.{n}'] = {
                'value': x / tb, 'target': None, 'met': None, 'num': f'{t}.bulk.lent.{n}', 'den': f'ucx_perftest.tag_bw.{n}'}
print()
print('GB/s (1e9 B/s); (x) = ratio to the raw TCP stream, the target >= 0.8x for large calls (16 MiB and up).')
if jpath:
    def sh(c):
        try: return subprocess.check_output(c, shell=True, text=True).strip()
        except Exception: return ''
    doc = {'command': 'bench/bulk_netns.sh ' + build + (' --quick' if quick else '') + ' --json ' + jpath,
           'git': gitrev, 'cpu': sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"), 'nproc': os.cpu_count(),
           'kernel': platform.release(), 'loadavg_end': open('/proc/loadavg').read().split()[:3],
           'iperf3': sh('iperf3 --version 2>/dev/null | head -1'), 'ucx_perftest': sh('ucx_info -v 2>/dev/null | head -1'),
           'metrics': list(m.values()), 'ratios': ratios}
    with open(jpath, 'w') as fp: json.dump(doc, fp, indent=1)
    print(f'\nJSON: {jpath}')
EOF
