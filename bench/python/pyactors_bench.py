"""The Python actors of bench_pyactors.py, both systems' versions side by side (the same code but for the base
class and the await of a ref): Xoscar-C pools load this file as `python:pyactors_bench` (the classes from
xoscar_c); the Python Xoscar peer (pyactors_peer.py) imports it too, and takes the classes built from xoscar's."""
import asyncio
import os
import time

PAYLOAD = b"12345678"


def _classes(base, stateless_base, gather, actor_ref):
    class Pong(stateless_base):
        def ping(self, x):
            return x

        def pid(self):
            return os.getpid()

    class Caller(base):
        """Runs a workload against another actor from inside an actor, timing it there."""

        async def ping_loop(self, target, method, n):
            """n sequential awaited calls: each round trip in microseconds, sorted."""
            ref = await actor_ref(target)
            m = getattr(ref, method)
            for _ in range(min(n, 200)):  # warm-up
                await m(PAYLOAD)
            out = []
            for _ in range(n):
                t = time.perf_counter_ns()
                await m(PAYLOAD)
                out.append((time.perf_counter_ns() - t) / 1000)
            out.sort()
            return out

        async def concurrent(self, target, method, width, rounds):
            """rounds of `width` calls in flight at once: calls per second."""
            ref = await actor_ref(target)
            m = getattr(ref, method)
            await gather(*[m(PAYLOAD) for _ in range(width)])
            t = time.perf_counter()
            for _ in range(rounds):
                await gather(*[m(PAYLOAD) for _ in range(width)])
            return width * rounds / (time.perf_counter() - t)

        def pid(self):
            return os.getpid()

    return Pong, Caller


try:
    import xoscar_c
except ImportError:  # the Python Xoscar peer's environment
    xoscar_c = None

if xoscar_c is not None:
    async def _ref_c(target):
        return await xoscar_c.actor_ref(target[0], target[1])

    Pong, Caller = _classes(xoscar_c.Actor, xoscar_c.StatelessActor, xoscar_c.gather, _ref_c)
    __xoscar_actors__ = [Pong, Caller]
