"""Python callers against C actors in another process (Xoscar-C, xoscar_c) and against Python actors in another
process (Python Xoscar, the peer), same workloads (workloads.py), same machine, one run.

  python bench/python/bench_client.py --build build --xoscar-python VENV/bin/python [--quick] [--json OUT]

The Xoscar-C side: `xoscar up` of a cluster with a main pool and one sub pool process (1 scheduler thread) loading
the test actor module (Echo, Counter, Sum), the actors in the sub pool, this process the caller (it is no pool:
replies reach it through its I/O thread and the asyncio loop's eventfd). The peer: xoscar_peer.py, run with the
interpreter of a virtual environment where `pip install xoscar` was done; a main pool with n_process=1, the actors
in the sub pool process, the caller in the main pool's process."""
import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import workloads  # noqa: E402

import xoscar_c  # noqa: E402


def sync_rtt(echo, n):
    for _ in range(200):
        echo.echo(workloads.PAYLOAD)
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        echo.echo(workloads.PAYLOAD)
        lat.append(time.perf_counter() - t0)
    return {"sync_call_rtt_p50_us": workloads._pct(lat, 50) * 1e6, "sync_call_rtt_p99_us": workloads._pct(lat, 99) * 1e6}


def free_port():
    repo = os.path.dirname(os.path.dirname(HERE))
    p = subprocess.Popen(["bash", "-c", f". {repo}/tests/integration/ports.sh; free_port_base || exit 1; exec sleep 3600"],
                         stdout=subprocess.PIPE, text=True)
    return p, int(p.stdout.readline())


def xoscar_c_side(build, quick):
    xo_bin = os.path.join(build, "cluster", "xoscar")
    module = os.path.join(build, "tests", "modules", "libxo_test_actors.so")
    holder, port = free_port()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "bench.yaml")
        with open(path, "w") as f:
            f.write(f"name: pybench\nsecret: \"bench\"\nmodules: [{module}]\nlog_level: error\nhosts:\n"
                    f"  - name: local\n    address: 127.0.0.1\n    port: {port}\n    launcher: local\n"
                    f"    pools:\n      - count: 1\n        threads: 1\n")
        env = dict(os.environ, XO_RUN_DIR=os.path.join(d, "run"))
        with open(os.path.join(d, "up.log"), "w") as log:
            subprocess.run([xo_bin, "up", path], env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
        try:
            cluster = xoscar_c.Cluster.from_file(path).connect()
            sub = xoscar_c.strategy.ProcessIndex(1)

            async def main():
                echo = await xoscar_c.create_actor("Echo", address=cluster.main_address, allocate_strategy=sub)
                counter = await xoscar_c.create_actor("Counter", address=cluster.main_address, allocate_strategy=sub)
                summer = await xoscar_c.create_actor("Sum", address=cluster.main_address, allocate_strategy=sub)
                assert await echo.pid() != os.getpid()
                return await workloads.run_all(echo, counter, summer, quick), echo

            out, echo = asyncio.run(main())
            out.update(sync_rtt(xoscar_c.sync.actor_ref(echo.address, echo.uid), 500 if quick else 5000))
            return out
        finally:
            subprocess.run([xo_bin, "down", path], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            holder.kill()


ROWS = [
    ("call RTT p50 (µs), async await", "call_rtt_p50_us", "lower"),
    ("call RTT p99 (µs), async await", "call_rtt_p99_us", "lower"),
    ("sequential calls/s, async", "calls_per_s_sequential", "higher"),
    ("tells/s (sent + run)", "tells_per_s", "higher"),
    ("100 concurrent calls: one round p50 (µs)", "concurrent100_round_p50_us", "lower"),
    ("100 concurrent calls: calls/s", "concurrent100_calls_per_s", "higher"),
    ("batch of 100: p50 (µs)", "batch100_p50_us", "lower"),
    ("batch of 100: per item (µs)", "batch100_per_item_us", "lower"),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--xoscar-python", help="python of a venv with `pip install xoscar` (the peer)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    c = xoscar_c_side(os.path.abspath(a.build), a.quick)
    peer = None
    if a.xoscar_python:
        r = subprocess.run([a.xoscar_python, os.path.join(HERE, "xoscar_peer.py")] + (["--quick"] if a.quick else []),
                           capture_output=True, text=True, check=True)
        peer = json.loads(r.stdout.strip().splitlines()[-1])
    print(f"{'workload (Python caller, actor in another process)':52} {'Xoscar-C':>12} {'Py Xoscar':>12} {'ratio':>8}")
    for label, key, better in ROWS:
        pv = peer.get(key) if peer else None
        ratio = "" if pv is None else f"{(pv / c[key]) if better == 'lower' else (c[key] / pv):7.1f}x"
        print(f"{label:52} {c[key]:12.1f} {'' if pv is None else f'{pv:12.1f}':>12} {ratio:>8}")
    print(f"{'call RTT p50 (µs), blocking xoscar_c.sync':52} {c['sync_call_rtt_p50_us']:12.1f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"xoscar_c": c, "python_xoscar": peer, "command": " ".join(sys.argv),
                       "python": sys.version.split()[0], "machine": platform.machine(),
                       "cpus": os.cpu_count(), "load_avg": os.getloadavg(),
                       "cpu_model": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                                          if l.startswith("model name")), "?"),
                       "git": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                             text=True, cwd=HERE).stdout.strip()}, f, indent=1)


if __name__ == "__main__":
    main()
