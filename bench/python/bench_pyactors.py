"""Python actors in Xoscar-C pools against Python Xoscar: calls made from inside an actor in one sub pool process to
an actor in another, timed inside the calling actor, same machine, one run.

  python bench/python/bench_pyactors.py --build build --xoscar-python VENV/bin/python [--n 5000] [--json OUT]

Xoscar-C: `xoscar up` of a main pool and two sub pool processes (1 scheduler thread each) loading the C test module
and python:pyactors_bench; Caller (Python) in sub pool 1, Pong (Python) and Echo (C) in sub pool 2, and Forward (C)
in sub pool 1 for the C caller rows. The peer (pyactors_peer.py, run with the given interpreter): a main pool with
n_process=2, Caller in sub pool 1, Pong in sub pool 2. Payload 8 bytes; n sequential calls after 200 warm-up; 100
concurrent: 50 rounds of 100 calls in flight from one method."""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_client import free_port  # noqa: E402

import xoscar_c  # noqa: E402
from xoscar_c import strategy, sync  # noqa: E402

PAYLOAD = b"12345678"


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p / 100))]


def xoscar_c_side(build, n):
    xo_bin = os.path.join(build, "cluster", "xoscar")
    module = os.path.join(build, "tests", "modules", "libxo_test_actors.so")
    holder, port = free_port()
    out = {}
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "bench.yaml")
        with open(path, "w") as f:
            f.write(f"name: pyactors-bench\nsecret: \"bench\"\nmodules: [{module}, python:pyactors_bench]\n"
                    f"log_level: error\nhosts:\n  - name: local\n    address: 127.0.0.1\n    port: {port}\n"
                    f"    launcher: local\n    pools:\n      - count: 2\n        threads: 1\n")
        env = dict(os.environ, XO_RUN_DIR=os.path.join(d, "run"), XO_PYTHON=sys.executable,
                   PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""))
        with open(os.path.join(d, "up.log"), "w") as log:
            rc = subprocess.run([xo_bin, "up", path], env=env, stdout=log, stderr=subprocess.STDOUT).returncode
        if rc != 0:
            with open(os.path.join(d, "up.log")) as log:
                raise SystemExit(f"xoscar up failed: {log.read()}")
        try:
            main = xoscar_c.Cluster.from_file(path).connect().main_address
            caller = sync.create_actor("Caller", address=main, allocate_strategy=strategy.ProcessIndex(1))
            fwd = sync.create_actor("Forward", address=main, allocate_strategy=strategy.ProcessIndex(1))
            pong = sync.create_actor("Pong", address=main, allocate_strategy=strategy.ProcessIndex(2))
            echo = sync.create_actor("Echo", address=main, allocate_strategy=strategy.ProcessIndex(2))
            assert caller.pid() != pong.pid() != os.getpid()
            tp, te = [pong.address, pong.uid], [echo.address, echo.uid]
            lat = caller.ping_loop(tp, "ping", n)
            out["py_py_rtt_p50_us"], out["py_py_rtt_p99_us"] = pct(lat, 50), pct(lat, 99)
            out["py_py_100_concurrent_calls_per_s"] = caller.concurrent(tp, "ping", 100, 50)
            lat = caller.ping_loop(te, "echo", n)
            out["py_c_rtt_p50_us"] = pct(lat, 50)
            fwd.loop(pong.address, pong.uid, "ping", PAYLOAD, 200)
            ns = fwd.loop(pong.address, pong.uid, "ping", PAYLOAD, n)
            out["c_py_rtt_p50_us"], out["c_py_rtt_p99_us"] = pct(ns, 50) / 1000, pct(ns, 99) / 1000
            fwd.loop(echo.address, echo.uid, "echo", PAYLOAD, 200)
            ns = fwd.loop(echo.address, echo.uid, "echo", PAYLOAD, n)
            out["c_c_rtt_p50_us"] = pct(ns, 50) / 1000
        finally:
            subprocess.run([xo_bin, "down", path], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            holder.kill()
    return out


ROWS = [
    ("Python actor -> Python actor, RTT p50 (µs)", "py_py_rtt_p50_us"),
    ("Python actor -> Python actor, RTT p99 (µs)", "py_py_rtt_p99_us"),
    ("Python actor -> Python actor, 100 in flight (calls/s)", "py_py_100_concurrent_calls_per_s"),
    ("Python actor -> C actor, RTT p50 (µs)", "py_c_rtt_p50_us"),
    ("C actor -> Python actor, RTT p50 (µs)", "c_py_rtt_p50_us"),
    ("C actor -> Python actor, RTT p99 (µs)", "c_py_rtt_p99_us"),
    ("C actor -> C actor, RTT p50 (µs)", "c_c_rtt_p50_us"),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--xoscar-python", help="interpreter of a venv with `pip install xoscar` (the peer)")
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--json")
    a = ap.parse_args()
    ours = xoscar_c_side(os.path.abspath(a.build), a.n)
    peer = {}
    if a.xoscar_python:
        peer = json.loads(subprocess.run([a.xoscar_python, os.path.join(HERE, "pyactors_peer.py"), str(a.n)],
                                         check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    print(f"{'workload (actor in sub pool 1 calling sub pool 2)':56} {'Xoscar-C':>10} {'Py Xoscar':>10} {'ratio':>7}")
    for label, key in ROWS:
        o, p = ours.get(key), peer.get(key)
        ratio = "" if o is None or p is None else f"{(o / p if 'per_s' in key else p / o):6.1f}x"
        print(f"{label:56} {o:10.1f} {'' if p is None else f'{p:10.1f}':>10} {ratio:>7}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"xoscar_c": ours, "xoscar": peer, "python": platform.python_version(),
                       "load": os.getloadavg()}, f, indent=1)


if __name__ == "__main__":
    main()
