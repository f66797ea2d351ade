"""Python actors hosted by the pools (python/embed): a cluster whose pools load `python:pyactors.basic` beside the C
test module. Sync and async methods, hooks, Python calling C and C calling Python, stateful ordering, stateless
concurrency, no_lock, batches, errors that leave the pool alive, and a pool killed under a waiting Python caller."""
import asyncio
import os
import signal
import subprocess
import time

import pytest

import xoscar_c
from xoscar_c import strategy

from conftest import PY_ENV, PY_MODULE, SECRET, XOSCAR, ClusterProc
from pyactors.basic import PyCounter

_uid = [0]


def uid(prefix="p"):
    _uid[0] += 1
    return f"{prefix}-{os.getpid()}-{_uid[0]}"


def run(coro, timeout=30):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def in_pool(n):
    return strategy.ProcessIndex(n)


def test_sync_and_async_methods_in_another_process(pycluster):
    async def main():
        # created by class (its name travels) or by name, like a C class
        c = await xoscar_c.create_actor(PyCounter, 40, address=pycluster.main, uid=uid())
        assert c.address.startswith(pycluster.main + "/")
        assert await c.add(2) == 42                     # sync method
        assert await c.add_slowly(1, 5) == 43           # async method (awaits xoscar_c.sleep)
        me, address, created_uid, pid = await c.whoami()
        assert (me, address, created_uid) == (c.uid, c.address, c.uid) and pid != os.getpid()
        assert await c.echo(None, 1, "s", b"b", [1, [2]], {"k": 1.5}) == [None, 1, "s", b"b", [1, [2]], {"k": 1.5}]
        byname = await xoscar_c.create_actor("PyCounter", address=pycluster.main)
        assert await byname.get() == 0
        await xoscar_c.destroy_actor(c)
        await xoscar_c.destroy_actor(byname)

    run(main())


def test_hooks_run_in_order(pycluster):
    async def main():
        a = await xoscar_c.create_actor("PyCounter", address=pycluster.main, uid=uid(), allocate_strategy=in_pool(1))
        witness = await xoscar_c.create_actor("PyCounter", address=pycluster.main, allocate_strategy=in_pool(1))
        assert await a.hooks() == ["post_create"]
        await a.put(7)
        await xoscar_c.destroy_actor(a)
        assert not await xoscar_c.has_actor(a)
        # __pre_destroy__ ran with the actor's state and recorded it where its pool's other actors see it
        assert await witness.hooks_of(a.uid) == ["post_create", 7, "pre_destroy"]
        await xoscar_c.destroy_actor(witness)

    run(main())


def test_python_calls_c_and_c_calls_python(pycluster):
    async def main():
        relay = await xoscar_c.create_actor("Relay", address=pycluster.main, allocate_strategy=in_pool(1))
        ccount = await xoscar_c.create_actor("Counter", 10, address=pycluster.main, allocate_strategy=in_pool(2))
        pycount = await xoscar_c.create_actor("PyCounter", 20, address=pycluster.main, allocate_strategy=in_pool(2))
        # Python (pool 1) -> C (pool 2): awaited, and with a blocking call on the method's fiber
        assert await relay.call(ccount.address, ccount.uid, "add", 1) == 11
        assert await relay.call_sync(ccount.address, ccount.uid, "add", 1) == 12
        # Python -> Python across processes
        assert await relay.call(pycount.address, pycount.uid, "add", 5) == 25
        # C actor (pool 1) -> Python actor (pool 2), and C -> C for comparison
        fwd = await xoscar_c.create_actor("Forward", address=pycluster.main, allocate_strategy=in_pool(1))
        assert await fwd.call(pycount.address, pycount.uid, "add", [5]) == 30
        assert await fwd.call(ccount.address, ccount.uid, "get", []) == 12
        # a Python actor's error reaches the C caller with its status and text, and on to us
        with pytest.raises(xoscar_c.MethodError, match="ValueError: via C"):
            await fwd.call(pycount.address, pycount.uid, "fail", ["via C"])
        # the C command line as a caller
        out = subprocess.run([XOSCAR, "call", pycount.address, pycount.uid, "add", "[1]"], capture_output=True,
                             text=True, env=dict(os.environ, XO_SECRET=SECRET), timeout=20)
        assert out.returncode == 0 and out.stdout.strip() == "31", out
        # several calls in flight from one Python method (sent when made, then awaited)
        uids = []
        for k in range(4):
            r = await xoscar_c.create_actor("PyCounter", k, address=pycluster.main, allocate_strategy=in_pool(2))
            uids.append(r.uid)
        assert await relay.fan_out(pycount.address, uids, "add_slowly", 100, 200) == [100, 101, 102, 103]
        for r in (relay, ccount, pycount, fwd):
            await xoscar_c.destroy_actor(r)

    run(main())


def test_stateful_one_at_a_time_stateless_concurrent(pycluster):
    async def main():
        c = await xoscar_c.create_actor("PyCounter", address=pycluster.main, allocate_strategy=in_pool(1))
        # 20 read-wait-write steps at once: a stateful actor runs them one at a time, so none is lost
        res = await asyncio.gather(*[c.add_slowly(1, 5) for _ in range(20)])
        assert sorted(res) == list(range(1, 21)) and await c.get() == 20
        # one sender's calls run in the order sent
        c2 = await xoscar_c.create_actor("PyCounter", address=pycluster.main, allocate_strategy=in_pool(1))
        for k in range(50):
            await c2.put.tell(k)
        assert (await c2.hooks())[1:] == list(range(50))
        # a stateless actor's waits overlap: 10 naps of 300 ms take about 300 ms, not 3 s
        p = await xoscar_c.create_actor("Pinger", address=pycluster.main, allocate_strategy=in_pool(1))
        t = time.monotonic()
        assert await asyncio.gather(*[p.nap(300) for _ in range(10)]) == [300] * 10
        assert time.monotonic() - t < 2.0
        for r in (c, c2, p):
            await xoscar_c.destroy_actor(r)

    run(main())


def test_no_lock_method_runs_while_a_method_waits(pycluster):
    async def main():
        c = await xoscar_c.create_actor("PyCounter", 5, address=pycluster.main, allocate_strategy=in_pool(2))
        slow = asyncio.ensure_future(c.add_slowly(1, 1000))
        await asyncio.sleep(0.2)
        t = time.monotonic()
        assert await c.peek() == 5                      # not queued behind add_slowly
        assert time.monotonic() - t < 0.5
        t = time.monotonic()
        assert await c.get() == 6                       # a plain method waits for it
        assert time.monotonic() - t > 0.3
        assert await slow == 6
        await xoscar_c.destroy_actor(c)

    run(main())


def test_reentrant_self_call_and_batches(pycluster):
    async def main():
        c = await xoscar_c.create_actor("PyCounter", 3, address=pycluster.main)
        assert await asyncio.wait_for(c.self_call(), 5) == 3     # A -> A in one call chain: no deadlock
        assert await c.put.batch(c.put.delay(1), c.put.delay(2), c.put.delay(3)) == [2, 4, 6]
        # a batch handler (`bulk_batch`) answers a batch in one call
        assert await c.bulk.batch(c.bulk.delay(1), c.bulk.delay(2, 3)) == [10, 50]
        assert await c.bulk(4) == -4                   # a single call runs the plain method
        with pytest.raises(xoscar_c.BadBatch):
            await c.get.batch(c.get.delay())           # not extensible
        await xoscar_c.destroy_actor(c)

    run(main())


def test_python_errors_are_exceptions_and_the_pool_lives(pycluster):
    async def main():
        c = await xoscar_c.create_actor("PyCounter", 1, address=pycluster.main, allocate_strategy=in_pool(1))
        with pytest.raises(xoscar_c.MethodError) as e:
            await c.fail("boom")
        assert e.value.text == "ValueError: boom"
        with pytest.raises(xoscar_c.MethodError, match="KeyError: 'k'"):
            await c.fail_async("k")
        with pytest.raises(xoscar_c.MethodError, match="cannot send a object"):
            await c.unpackable()
        with pytest.raises(xoscar_c.MethodError, match="RuntimeError: no running event loop"):
            await c.await_asyncio()
        with pytest.raises(xoscar_c.MethodError, match="TypeError"):
            await c.add()                               # wrong arguments are the method's TypeError
        with pytest.raises(xoscar_c.NoSuchMethod):
            await c.nosuch()
        with pytest.raises(xoscar_c.NoSuchMethod):
            await c._private()                          # only public methods are exported
        # a failing __init__ fails the create, with its exception's line
        with pytest.raises(xoscar_c.ActorHookError, match="TypeError"):
            await xoscar_c.create_actor("PyCounter", 1, 2, 3, address=pycluster.main)
        # a failed call made by a Python actor keeps its status on the way back
        relay = await xoscar_c.create_actor("Relay", address=pycluster.main, allocate_strategy=in_pool(1))
        kind, text = await relay.call_catching(c.address, "nobody", "get")
        assert kind == "ActorNotExist" and "nobody" in text
        with pytest.raises(xoscar_c.ActorNotExist):
            await relay.call(c.address, "nobody", "get")
        # the pool and the actor are fine
        assert await c.add(1) == 2
        await xoscar_c.destroy_actor(c)
        await xoscar_c.destroy_actor(relay)

    run(main())


def test_python_actor_creates_actors(pycluster):
    async def main():
        relay = await xoscar_c.create_actor("Relay", address=pycluster.main, allocate_strategy=in_pool(1))
        # created from inside a sub pool through its host's placement (the default address is its main pool)
        address, value = await relay.create_and_call("PyCounter", 7)
        assert address.startswith(pycluster.main + "/") and value == 7
        address, value = await relay.create_and_call("Counter", 8)   # a C class from a Python actor
        assert value == 8
        await xoscar_c.destroy_actor(relay)

    run(main())


def test_pool_killed_mid_call(py_port_base, workdir):
    c = ClusterProc(workdir, "pykillpy", py_port_base + 5, modules=[PY_MODULE], env=PY_ENV)
    try:
        xoscar_c.Cluster.from_file(c.path).connect()

        async def main():
            p = await xoscar_c.create_actor("Pinger", address=c.main, allocate_strategy=in_pool(2))
            relay = await xoscar_c.create_actor("Relay", address=c.main, allocate_strategy=in_pool(1))
            pid = await p.pid()
            direct = asyncio.ensure_future(p.nap(30_000))
            # a Python actor waiting on a call to the pool that dies
            via = asyncio.ensure_future(relay.call(p.address, p.uid, "nap", 30_000))
            await asyncio.sleep(0.3)
            os.kill(pid, signal.SIGKILL)
            t0 = time.monotonic()
            with pytest.raises(xoscar_c.ServerClosed):
                await asyncio.wait_for(direct, 10)
            with pytest.raises(xoscar_c.ServerClosed):
                await asyncio.wait_for(via, 10)          # the Python caller's await raised, and that reached us
            assert time.monotonic() - t0 < 5
            kind, _ = await relay.call_catching(p.address, p.uid, "ping", 1)
            assert kind == "ServerClosed"
            # the caller's pool is fine
            cnt = await xoscar_c.create_actor("PyCounter", address=c.main, allocate_strategy=in_pool(1))
            assert await relay.call_catching(cnt.address, cnt.uid, "add", 1) == ["ok", 1]

        run(main())
    finally:
        c.down()


def test_a_module_that_does_not_import_fails_the_cluster_clearly(py_port_base, workdir):
    with pytest.raises(RuntimeError, match="No module named 'pyactors.nosuch'"):
        ClusterProc(workdir, "pybad", py_port_base + 5, modules=["python:pyactors.nosuch"], env=PY_ENV)


def test_standalone_pool_with_python_module(py_port_base, workdir):
    """xoscar-pool --module python:... on its own, reached by address."""
    pool = os.path.join(os.path.dirname(XOSCAR), "xoscar-pool")
    addr = f"127.0.0.1:{py_port_base + 9}"
    env = dict(os.environ, XO_SECRET=SECRET, **PY_ENV)
    proc = subprocess.Popen([pool, "--address", addr, "--module", PY_MODULE, "--threads", "1"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == addr
        out = subprocess.run([XOSCAR, "create", addr, "PyCounter", "--uid", "solo", "[41]"], env=env,
                             capture_output=True, text=True, timeout=20)
        assert out.returncode == 0, out
        out = subprocess.run([XOSCAR, "call", addr, "solo", "add", "[1]"], env=env, capture_output=True, text=True,
                             timeout=20)
        assert out.stdout.strip() == "42", out
    finally:
        proc.terminate()
        assert proc.wait(10) == 0  # SIGTERM stops it cleanly: the interpreter left the signals to the pool
