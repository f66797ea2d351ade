"""Python Xoscar, the peer of bench_pyactors.py: a main pool with n_process=2, Caller in sub pool 1 and Pong in sub
pool 2 (the classes of pyactors_bench.py on xoscar's base classes), the same workloads, timed inside Caller. Prints
one JSON object. Run with the interpreter of a virtual environment that has `pip install xoscar`."""
import asyncio
import json
import os
import sys

import xoscar as xo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pyactors_bench  # noqa: E402


async def _ref(target):
    return await xo.actor_ref(target[0], target[1])


Pong, Caller = pyactors_bench._classes(xo.Actor, xo.StatelessActor, asyncio.gather, _ref)


def pct(v, p):
    return v[min(len(v) - 1, int(len(v) * p / 100))]


async def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    pool = await xo.create_actor_pool("127.0.0.1", n_process=2)
    async with pool:
        addr = pool.external_address
        caller = await xo.create_actor(Caller, address=addr, uid="caller",
                                       allocate_strategy=xo.allocate_strategy.ProcessIndex(1))
        pong = await xo.create_actor(Pong, address=addr, uid="pong",
                                     allocate_strategy=xo.allocate_strategy.ProcessIndex(2))
        assert await caller.pid() != await pong.pid() != os.getpid()
        lat = await caller.ping_loop([pong.address, "pong"], "ping", n)
        rate = await caller.concurrent([pong.address, "pong"], "ping", 100, 50)
        from importlib.metadata import version
        print(json.dumps({"py_py_rtt_p50_us": pct(lat, 50), "py_py_rtt_p99_us": pct(lat, 99),
                          "py_py_100_concurrent_calls_per_s": rate, "version": version("xoscar")}))


asyncio.run(main())
