"""Python Xoscar, the peer: the caller in the main pool's process, the actors in a sub pool process (Unix socket
between them, Xoscar's default on one host), running workloads.py. Prints one JSON object.
Run with the interpreter of a virtual environment that has `pip install xoscar`."""
import asyncio
import json
import os
import sys

import xoscar as xo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import workloads  # noqa: E402


class Echo(xo.StatelessActor):
    def echo(self, v):
        return v

    def pid(self):
        return os.getpid()


class Counter(xo.Actor):
    def __init__(self):
        self.total = 0

    def add(self, n):
        self.total += n
        return self.total

    def get(self):
        return self.total


class Sum(xo.Actor):
    def __init__(self):
        self.total = 0

    @xo.extensible
    def add(self, n):
        self.total += n
        return self.total


async def main():
    pool = await xo.create_actor_pool("127.0.0.1", n_process=1)
    async with pool:
        addr = pool.external_address
        sub = xo.allocate_strategy.RandomSubPool()
        echo = await xo.create_actor(Echo, address=addr, uid="echo", allocate_strategy=sub)
        counter = await xo.create_actor(Counter, address=addr, uid="counter", allocate_strategy=sub)
        summer = await xo.create_actor(Sum, address=addr, uid="sum", allocate_strategy=sub)
        assert await echo.pid() != os.getpid()
        out = await workloads.run_all(echo, counter, summer, quick="--quick" in sys.argv)
        from importlib.metadata import version
        out["version"] = version("xoscar")
        print(json.dumps(out))


asyncio.run(main())
