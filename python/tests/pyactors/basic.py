"""Python actors the pools of test_pyactors.py load (modules: [python:pyactors.basic]): sync and async methods,
hooks, calls to C actors and to other Python actors, errors, ordering, batches, stateless concurrency."""
import os
import time

import xoscar_c
from xoscar_c import sync

# hooks of destroyed actors, by uid: the test asks a live actor of the same pool for them
HOOKS = {}


class PyCounter(xoscar_c.Actor):
    def __init__(self, start=0):
        self.n = start
        self.log = []
        self.created_uid = self.uid  # the uid is known in __init__ already

    def __post_create__(self):
        self.log.append("post_create")

    def __pre_destroy__(self):
        HOOKS[self.uid] = self.log + ["pre_destroy"]

    def add(self, k):
        self.n += k
        return self.n

    def get(self):
        return self.n

    def hooks(self):
        return self.log

    def hooks_of(self, uid):
        return HOOKS.get(uid)

    def whoami(self):
        return [self.uid, self.address, self.created_uid, os.getpid()]

    async def add_slowly(self, k, ms):
        """Stateful: the read, the wait and the write are one step for other callers (one message at a time)."""
        n = self.n
        await xoscar_c.sleep(ms / 1000)
        self.n = n + k
        return self.n

    def echo(self, *args):
        return list(args)

    def fail(self, text):
        raise ValueError(text)

    async def fail_async(self, text):
        await xoscar_c.sleep(0.001)
        raise KeyError(text)

    def unpackable(self):
        return object()

    async def await_asyncio(self):
        import asyncio
        fut = asyncio.Future  # an asyncio primitive: refused with a clear text
        await asyncio.sleep(0.01)
        return fut

    def busy_ms(self, ms):
        """Holds the GIL: another Python call of this pool waits for it (the GIL is one per process)."""
        end = time.perf_counter() + ms / 1000
        while time.perf_counter() < end:
            pass
        return ms

    @xoscar_c.extensible
    def put(self, x):
        self.log.append(x)
        return x * 2

    @xoscar_c.extensible
    def bulk(self, x):
        return -x

    def bulk_batch(self, calls):
        return [sum(args) * 10 for args in calls]

    @xoscar_c.no_lock
    def peek(self):
        return self.n

    def self_call(self):
        """Calls itself through its own ref, in the method's call chain: reentrant, as C actors are."""
        return sync.SyncActorRef(self.ref()._c).get()


class Relay(xoscar_c.Actor):
    """Calls other actors (C or Python, any pool) from Python."""

    async def call(self, address, uid, method, *args):
        ref = await xoscar_c.actor_ref(address, uid)
        return await getattr(ref, method)(*args)

    def call_sync(self, address, uid, method, *args):
        return getattr(sync.actor_ref(address, uid), method)(*args)

    async def fan_out(self, address, uids, method, *args):
        """Every call is sent before the first is awaited (xoscar_c.gather)."""
        refs = [await xoscar_c.actor_ref(address, u) for u in uids]
        return await xoscar_c.gather(*[getattr(r, method)(*args) for r in refs])

    async def create_and_call(self, class_name, *args):
        ref = await xoscar_c.create_actor(class_name, *args)
        try:
            return [ref.address, await ref.get()]
        finally:
            await xoscar_c.destroy_actor(ref)

    async def ping_loop(self, address, uid, n):
        """n sequential awaited calls of ping(): their round-trip times in microseconds, sorted (the bench)."""
        ref = await xoscar_c.actor_ref(address, uid)
        out = []
        for _ in range(n):
            t = time.perf_counter_ns()
            await ref.ping(b"12345678")
            out.append((time.perf_counter_ns() - t) / 1000)
        out.sort()
        return out

    def call_catching(self, address, uid, method, *args):
        """A failing call seen from Python: its exception class and text."""
        try:
            return ["ok", getattr(sync.actor_ref(address, uid), method)(*args)]
        except xoscar_c.XoscarError as e:
            return [type(e).__name__, e.text]


class Pinger(xoscar_c.StatelessActor):
    def ping(self, x):
        return x

    async def nap(self, ms):
        await xoscar_c.sleep(ms / 1000)
        return ms

    def pid(self):
        return os.getpid()
