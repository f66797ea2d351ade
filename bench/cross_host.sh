#!/usr/bin/env bash
# Cross-host latency and throughput (issue #4): two "hosts" as Linux network namespaces joined by a veth pair
# (10.232.0.1 = A, 10.232.0.2 = B; names unique per run, removed on exit). Host B runs an xoscar-pool (XO_UCX=1,
# the bench module libxo_bench_actors.so); host A runs bench/cross_host_client against it, once with
# XO_TRANSPORT=tcp and once with XO_TRANSPORT=ucx. In the same run, the limits across the same veth:
# ucx_perftest (UCX_TLS=tcp; tag_lat 8 B / 1 KiB / 64 KiB, tag_bw 8 B / 64 KiB / 1 MiB) and a raw TCP ping-pong
# (cross_host_client --tcp-server/--tcp-client, 8 B each way, TCP_NODELAY). Prints a table and the ratios.
#
#   cross_host.sh BUILD_DIR [--quick] [--json FILE]
#
# Needs root (ip netns) and ucx_perftest (Debian: ucx-utils). UCX is pinned to its tcp transport on the veth for
# both our runtime and ucx_perftest (UCX_TLS=tcp, UCX_NET_DEVICES): the namespaces share one kernel and IPC
# namespace, so UCX's shared-memory transports would otherwise bypass the "network".
set -euo pipefail
build=$(cd "$1" && pwd)
shift
quick="" json=""
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=--quick ;;
        --json) json=$2; shift ;;
        *) echo "usage: cross_host.sh BUILD_DIR [--quick] [--json FILE]" >&2; exit 2 ;;
    esac
    shift
done
pool=$build/cluster/xoscar-pool
client=$build/bench/cross_host_client
module=$build/bench/libxo_bench_actors.so
for f in "$pool" "$client" "$module"; do [ -e "$f" ] || { echo "missing $f (build the bench targets)" >&2; exit 2; }; done
[ "$(id -u)" -eq 0 ] || { echo "cross_host.sh needs root (ip netns)" >&2; exit 2; }
command -v ucx_perftest >/dev/null || { echo "ucx_perftest missing: apt-get install -y ucx-utils" >&2; exit 2; }

. "$(dirname "$0")/../tests/integration/netns.sh"
tag="xh$$"
tmp=$(mktemp -d /tmp/xo-cross-host.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    sleep 0.2
    for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
    netns_down
    rm -rf "$tmp"
}
trap cleanup EXIT
netns_up "$tag" 10.232.0 || { echo "cannot create network namespaces" >&2; exit 2; }
va="${tag}va" vb="${tag}vb"
ona="ip netns exec $nsa env UCX_TLS=tcp UCX_NET_DEVICES=$va"
onb="ip netns exec $nsb env UCX_TLS=tcp UCX_NET_DEVICES=$vb"
hostb=10.232.0.2
out=$tmp/metrics.jsonl
: > "$out"
echo "hosts: network namespaces $nsa (10.232.0.1) and $nsb (10.232.0.2), veth $va <-> $vb"

# ---- the limits: ucx_perftest (server in B, client in A), one server per test --------------------------------
n_lat=100000 n_bw=20000
[ -n "$quick" ] && n_lat=10000 n_bw=2000
perf() { # label test size iterations
    local label=$1 test=$2 size=$3 n=$4 port=$((30000 + RANDOM % 20000))
    $onb ucx_perftest -p "$port" > "$tmp/perf_server.out" 2>&1 &
    local spid=$!
    pids+=("$spid")
    sleep 0.5
    local line
    line=$($ona ucx_perftest "$hostb" -p "$port" -t "$test" -s "$size" -n "$n" 2>&1 | grep '^Final:' || true)
    wait "$spid" 2>/dev/null || true
    [ -n "$line" ] || { echo "ucx_perftest $test $size failed" >&2; return 0; }
    # Final: iterations p50 avg overall (usec, one way for *_lat) bw_avg bw_overall (MB/s, 2^20 B) rate_avg rate_overall
    set -- $line
    case $test in
        *_lat) printf '{"name": "ucx_perftest.%s.rtt_p50", "value": %s, "unit": "us"}\n' "$label" \
                   "$(awk "BEGIN{print 2*$3}")" >> "$out"
               printf '{"name": "ucx_perftest.%s.rtt_avg", "value": %s, "unit": "us"}\n' "$label" \
                   "$(awk "BEGIN{print 2*$4}")" >> "$out" ;;
        *_bw) printf '{"name": "ucx_perftest.%s.bw", "value": %s, "unit": "GB/s"}\n' "$label" \
                  "$(awk "BEGIN{print $7*1048576/1e9}")" >> "$out"
              printf '{"name": "ucx_perftest.%s.rate", "value": %s, "unit": "msg/s"}\n' "$label" "$9" >> "$out" ;;
    esac
}
echo "ucx_perftest (UCX_TLS=tcp) across the veth ..."
perf tag_lat.8B tag_lat 8 $n_lat
perf tag_lat.1KiB tag_lat 1024 $n_lat
perf tag_lat.64KiB tag_lat 65536 $((n_lat / 10))
perf tag_bw.8B tag_bw 8 $((n_bw * 50))
perf tag_bw.64KiB tag_bw 65536 $n_bw
perf tag_bw.1MiB tag_bw 1048576 $((n_bw / 10))

# ---- raw TCP ping-pong -----------------------------------------------------------------------------------------
rport=$((30000 + RANDOM % 20000))
$onb "$client" --tcp-server "$rport" > "$tmp/raw_server.out" 2>&1 & pids+=($!)
sleep 0.3
echo "raw TCP ping-pong ..."
$ona "$client" --tcp-client "$hostb" "$rport" rawtcp $quick >> "$out"

# ---- xoscar: one pool in B, the client in A over TCP then UCX --------------------------------------------------
port=$((20000 + RANDOM % 9000))
$onb env XO_UCX=1 XO_LISTEN_ANY=1 "$pool" --address "$hostb:$port" --module "$module" > "$tmp/pool.out" 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q "$port" "$tmp/pool.out" 2>/dev/null && break; sleep 0.1; done
grep -q "$port" "$tmp/pool.out" || { echo "xoscar-pool did not start: $(cat "$tmp/pool.out")" >&2; exit 1; }
for t in tcp ucx; do
    echo "xoscar over $t ..."
    $ona env XO_TRANSPORT=$t "$client" "$hostb:$port" "$t" $quick >> "$out"
done

# ---- table and ratios ------------------------------------------------------------------------------------------
gitrev=$(git -C "$(dirname "$0")" describe --always --dirty 2>/dev/null || echo unknown)
python3 - "$out" "$json" "$build" "$quick" "$gitrev" <<'EOF'
import json, sys, os, subprocess, platform
path, jpath, build, quick, gitrev = sys.argv[1:6]
m = {}
for line in open(path):
    line = line.strip()
    if line.startswith('{'):
        d = json.loads(line); m[d['name']] = d
def v(k): return m[k]['value'] if k in m else None
def f(x, unit):
    if x is None: return '-'
    if unit in ('msg/s', 'call/s'):
        return f'{x/1e6:.2f} M' if x >= 1e6 else f'{x/1e3:.1f}k'
    return f'{x:.3g}' if x < 100 else f'{x:.0f}'
rows = [('call 8 B p50 / p99 (us)', 'call.8B.p50', 'call.8B.p99', 'us'),
        ('call 1 KiB p50 / p99 (us)', 'call.1KiB.p50', 'call.1KiB.p99', 'us'),
        ('call 64 KiB p50 / p99 (us)', 'call.64KiB.p50', 'call.64KiB.p99', 'us'),
        ('tells/s one way, 8 B', 'tell.8B', None, 'msg/s'),
        ('calls/s sequential', 'calls_seq', None, 'call/s'),
        ('calls/s, 64 outstanding', 'calls_conc64', None, 'call/s'),
        ('xo_batch of 100 calls, msg/s', 'batch100', None, 'msg/s'),
        ('xo_batch of 100, 4 threads, msg/s', 'batch100_x4', None, 'msg/s'),
        ('xo_batch of 1000 calls, msg/s', 'batch1000', None, 'msg/s')]
print()
print('| metric | tcp | ucx |')
print('| --- | --- | --- |')
for label, a, b, unit in rows:
    cells = []
    for t in ('tcp', 'ucx'):
        x = f(v(f'{t}.{a}'), unit)
        if b: x += ' / ' + f(v(f'{t}.{b}'), unit)
        cells.append(x)
    print(f'| {label} | {cells[0]} | {cells[1]} |')
print()
print('Limits across the same veth (ucx_perftest with UCX_TLS=tcp; its *_lat latency is one way, doubled here):')
print()
print('| limit | value |')
print('| --- | --- |')
for k, lab in [('ucx_perftest.tag_lat.8B.rtt_p50', 'ucx_perftest tag_lat 8 B round trip p50 (us)'),
               ('ucx_perftest.tag_lat.1KiB.rtt_p50', 'ucx_perftest tag_lat 1 KiB round trip p50 (us)'),
               ('ucx_perftest.tag_lat.64KiB.rtt_p50', 'ucx_perftest tag_lat 64 KiB round trip p50 (us)'),
               ('ucx_perftest.tag_bw.8B.rate', 'ucx_perftest tag_bw 8 B, msg/s'),
               ('ucx_perftest.tag_bw.64KiB.bw', 'ucx_perftest tag_bw 64 KiB (GB/s)'),
               ('ucx_perftest.tag_bw.1MiB.bw', 'ucx_perftest tag_bw 1 MiB (GB/s)'),
               ('rawtcp.rtt.8B.p50', 'raw TCP ping-pong 8 B round trip p50 (us)'),
               ('rawtcp.rtt.8B.p99', 'raw TCP ping-pong 8 B round trip p99 (us)')]:
    print(f'| {lab} | {f(v(k), m[k]["unit"] if k in m else "")} |')
print()
ratios = {}
def ratio(name, num, den, target=None, higher=False):
    a, b = v(num), v(den)
    if a is None or b is None: return
    r = a / b; ratios[name] = {'value': r, 'num': num, 'den': den, 'target': target,
                               'met': None if target is None else (r >= target if higher else r <= target)}
for t in ('tcp', 'ucx'):
    for s in ('8B', '1KiB', '64KiB'):
        ratio(f'{t}.call.{s}.p50 / ucx_perftest.tag_lat.{s}', f'{t}.call.{s}.p50',
              f'ucx_perftest.tag_lat.{s}.rtt_p50', 1.3)
    ratio(f'{t}.call.8B.p50 / rawtcp.rtt.8B.p50', f'{t}.call.8B.p50', 'rawtcp.rtt.8B.p50')
    ratio(f'{t}.tell.8B / ucx_perftest.tag_bw.8B.rate', f'{t}.tell.8B', 'ucx_perftest.tag_bw.8B.rate')
    for b in ('batch100', 'batch100_x4', 'batch1000'):
        a = v(f'{t}.{b}')
        if a is not None:
            ratios[f'{t}.{b} / 1M msg/s'] = {'value': a / 1e6, 'num': f'{t}.{b}', 'den': '1e6 msg/s (target)',
                                            'target': 1.0, 'met': a >= 1e6}
print('Ratios:')
for k, r in ratios.items():
    tgt = '' if r['target'] is None else (f"  target {'>=' if k.endswith('msg/s') else '<='} {r['target']}: " +
                                          ('met' if r['met'] else 'MISSED'))
    print(f'  {k} = {r["value"]:.2f}x{tgt}')
if jpath:
    def sh(c):
        try: return subprocess.check_output(c, shell=True, text=True).strip()
        except Exception: return ''
    doc = {'command': 'bench/cross_host.sh ' + build + (' --quick' if quick else '') + ' --json ' + jpath,
           'git': gitrev,
           'cpu': sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"), 'nproc': os.cpu_count(),
           'kernel': platform.release(), 'loadavg_end': open('/proc/loadavg').read().split()[:3],
           'ucx_perftest': sh('ucx_info -v | head -1'),
           'metrics': list(m.values()), 'ratios': ratios}
    with open(jpath, 'w') as fp: json.dump(doc, fp, indent=1)
    print(f'\nJSON: {jpath}')
EOF
