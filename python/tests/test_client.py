"""The asyncio client against a real cluster: calls across processes, values, errors, tells, batches, placement,
lookups, cancellation, a pool killed mid-call, a wrong secret, and the blocking variants."""
import asyncio
import os
import signal
import subprocess
import sys
import time

import pytest

import xoscar_c
from xoscar_c import strategy

from conftest import SECRET, ClusterProc, XOSCAR

_uid = [0]


def uid(prefix="a"):
    _uid[0] += 1
    return f"{prefix}-{os.getpid()}-{_uid[0]}"


def run(coro, timeout=20):
    """Every test coroutine gets a deadline: a hang fails the test instead of the suite."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def test_cluster_from_file(cluster):
    h = xoscar_c.Cluster.from_file(cluster.path)
    assert h.secret == SECRET
    assert h.main_address == cluster.main
    with pytest.raises(ValueError, match="nosuch.yaml"):
        xoscar_c.Cluster.from_file(os.path.join(os.path.dirname(cluster.path), "nosuch.yaml"))


def test_call_in_another_process(cluster):
    async def main():
        ref = await xoscar_c.create_actor("Counter", 40, address=cluster.main, uid=uid("counter"))
        assert ref.address.startswith(cluster.main + "/")  # placed in a sub pool (round robin by default)
        assert await ref.add(2) == 42
        assert await ref.get() == 42
        echo = await xoscar_c.create_actor("Echo", address=cluster.main)
        assert await echo.pid() != os.getpid()
        # a ref found through the main pool reaches the actor in its sub pool
        again = await xoscar_c.actor_ref(cluster.main, ref.uid)
        assert again.address == ref.address and await again.get() == 42
        await xoscar_c.destroy_actor(ref)
        await xoscar_c.destroy_actor(echo)

    run(main())


def test_values_round_trip(cluster):
    np = pytest.importorskip("numpy")

    async def main():
        echo = await xoscar_c.create_actor("Echo", address=cluster.main)
        values = [None, True, False, 0, -1, 2**63 - 1, -(2**63), 2**64 - 1, 1.5, "", "héllo ☃", b"", b"\x00\xff" * 3,
                  [1, [2, [3]]], {"a": 1, "b": [True, None]}, {1: "int key"}]
        for v in values:
            assert await echo.echo(v) == v, v
        assert await echo.echo((1, "t")) == [1, "t"]          # tuples travel as arrays
        assert await echo.echo(bytearray(b"ba")) == b"ba"      # buffers travel as bin
        assert await echo.echo(memoryview(b"mv")) == b"mv"
        arr = np.arange(1000, dtype=np.float64)
        back = await echo.echo(arr)
        assert isinstance(back, bytes) and np.array_equal(np.frombuffer(back, dtype=np.float64), arr)
        big = os.urandom(1 << 20)
        assert await echo.echo(big) == big
        await xoscar_c.destroy_actor(echo)

    run(main())


def test_bad_input_raises_and_nothing_crashes(cluster):
    np = pytest.importorskip("numpy")

    async def main():
        echo = await xoscar_c.create_actor("Echo", address=cluster.main)
        with pytest.raises(TypeError, match="cannot send a object"):
            await echo.echo(object())
        with pytest.raises(OverflowError):
            await echo.echo(2**70)
        deep = []
        for _ in range(100):
            deep = [deep]
        with pytest.raises(ValueError, match="deeper than 64"):
            await echo.echo(deep)
        with pytest.raises(TypeError, match="C-contiguous"):
            await echo.echo(np.arange(10)[::2])
        # a reply Python cannot hold: a map keyed by an array (sent as a tuple key) comes back with a list key
        with pytest.raises(TypeError, match="unhashable"):
            await echo.echo({(1, 2): 3})
        # bad calls of the API itself
        with pytest.raises(TypeError):
            await xoscar_c.create_actor(123, address=cluster.main)
        with pytest.raises(TypeError):
            await xoscar_c.destroy_actor("not a ref")
        with pytest.raises(xoscar_c.ServerClosed, match="not a process pool address"):
            await xoscar_c.create_actor("Echo", address="not an address at all")
        # the actor and the connection are fine after all that
        assert await echo.echo("still here") == "still here"
        await xoscar_c.destroy_actor(echo)

    run(main())


def test_errors_carry_status_and_remote_text(cluster):
    async def main():
        with pytest.raises(xoscar_c.ActorNotExist) as e:
            await xoscar_c.actor_ref(cluster.main, "no-such-actor")
        assert e.value.status == -20 and e.value.status_name == "XO_ENOACTOR"
        u = uid("dup")
        ref = await xoscar_c.create_actor("Counter", address=cluster.main, uid=u)
        with pytest.raises(xoscar_c.ActorAlreadyExist):
            await xoscar_c.create_actor("Counter", address=cluster.main, uid=u)
        with pytest.raises(xoscar_c.errors.NoSuchMethod):
            await ref.no_such_method()
        with pytest.raises(xoscar_c.errors.BadArguments) as e:
            await ref.add("not a number")
        assert "argument 1" in e.value.text  # the remote xo_unpack text
        echo = await xoscar_c.create_actor("Echo", address=cluster.main)
        with pytest.raises(xoscar_c.errors.BadArguments, match="negative time -1"):
            await echo.sleep_ms(-1)
        with pytest.raises(xoscar_c.errors.NoSuchClass):
            await xoscar_c.create_actor("NoSuchClass", address=cluster.main)
        assert issubclass(xoscar_c.ActorNotExist, xoscar_c.XoscarError)
        await xoscar_c.destroy_actor(ref)
        with pytest.raises(xoscar_c.ActorNotExist):
            await ref.get()
        with pytest.raises(xoscar_c.ActorNotExist):
            await xoscar_c.destroy_actor(ref)
        await xoscar_c.destroy_actor(echo)

    run(main())


def test_tell_then_call_in_order(cluster):
    async def main():
        ref = await xoscar_c.create_actor("Counter", address=cluster.main)
        for i in range(1, 101):
            assert await ref.add.tell(i) is None
        assert await ref.get() == 5050  # tells from one sender run in order, before its later call
        await ref.add.tell_delay(1, delay=0.05)
        await asyncio.sleep(0.3)
        assert await ref.get() == 5051
        await xoscar_c.destroy_actor(ref)

    run(main())


def test_batch_is_one_message(cluster):
    async def main():
        s = await xoscar_c.create_actor("Sum", address=cluster.main)
        res = await s.add.batch(*[s.add.delay(i) for i in range(1, 101)])
        assert res == [i * (i + 1) // 2 for i in range(1, 101)]
        assert await s.batches() == 1  # the batch handler ran once for the 100 calls
        with pytest.raises(xoscar_c.errors.BadArguments, match="call 1"):
            await s.add.batch(s.add.delay(1), s.add.delay("x"))
        with pytest.raises(ValueError, match="one method"):
            await s.add.batch(s.batches.delay())
        assert await s.add.batch() == []
        await xoscar_c.destroy_actor(s)

    run(main())


def test_destroy_and_has_actor(cluster):
    async def main():
        ref = await xoscar_c.create_actor("Counter", 1, address=cluster.main)
        assert await xoscar_c.has_actor(ref)
        await xoscar_c.destroy_actor(ref)
        assert not await xoscar_c.has_actor(ref)

    run(main())


def test_allocate_strategies(cluster):
    async def main():
        a = await xoscar_c.create_actor("Counter", address=cluster.main, allocate_strategy=strategy.ProcessIndex(2))
        assert a.address == cluster.main + "/2"
        b = await xoscar_c.create_actor("Counter", address=cluster.main, allocate_strategy=strategy.MainPool())
        assert b.address == cluster.main
        # Xoscar's style: create at a sub pool's address
        c = await xoscar_c.create_actor("Counter", address=cluster.main + "/1")
        assert c.address == cluster.main + "/1"
        d = await xoscar_c.create_actor("Counter", address=cluster.main, allocate_strategy="least_loaded")
        assert d.address.startswith(cluster.main)
        with pytest.raises(TypeError):
            await xoscar_c.create_actor("Counter", address=cluster.main, allocate_strategy=42)
        with pytest.raises(ValueError, match="device_mem"):
            await xoscar_c.create_actor("Counter", address=cluster.main,
                                        allocate_strategy=strategy.MostFreeMemory(device_mem=1 << 20))
        for r in (a, b, c, d):
            await xoscar_c.destroy_actor(r)

    run(main())


def test_concurrent_calls_and_the_loop_keeps_running(cluster):
    async def main():
        echo = await xoscar_c.create_actor("Echo", address=cluster.main)
        res = await asyncio.gather(*[echo.echo(i) for i in range(100)])
        assert res == list(range(100))
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        t = asyncio.create_task(ticker())
        t0 = time.monotonic()
        assert await echo.sleep_ms(300) == 300
        assert time.monotonic() - t0 >= 0.29
        t.cancel()
        assert ticks >= 10, ticks  # the loop ran other work while the call was out
        await xoscar_c.destroy_actor(echo)

    run(main())


def test_cancelling_the_task_cancels_the_call(cluster):
    async def main():
        echo = await xoscar_c.create_actor("Echo", address=cluster.main, allocate_strategy=strategy.ProcessIndex(1))
        before = await echo.sleeps_cancelled()
        task = asyncio.create_task(echo.sleep_ms(10_000))
        await asyncio.sleep(0.2)  # the call is running in the sub pool
        t0 = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - t0 < 1.0
        # the cancel reached the pool: its sleep ended with XO_ECANCELED, long before its 10 s
        for _ in range(100):
            if await echo.sleeps_cancelled() == before + 1:
                break
            await asyncio.sleep(0.02)
        assert await echo.sleeps_cancelled() == before + 1
        # asyncio.wait_for's timeout cancels the same way
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(echo.sleep_ms(10_000), 0.2)
        for _ in range(100):
            if await echo.sleeps_cancelled() == before + 2:
                break
            await asyncio.sleep(0.02)
        assert await echo.sleeps_cancelled() == before + 2
        await xoscar_c.destroy_actor(echo)

    run(main())


def test_sync_api(cluster):
    ref = xoscar_c.sync.create_actor("Counter", 40, address=cluster.main, uid=uid("sync"))
    assert ref.add(2) == 42
    ref.add.tell(1)
    assert ref.get() == 43
    again = xoscar_c.sync.actor_ref(cluster.main, ref.uid)
    assert again.get() == 43
    s = xoscar_c.sync.create_actor("Sum", address=cluster.main)
    assert s.add.batch(s.add.delay(1), s.add.delay(2)) == [1, 3]
    echo = xoscar_c.sync.create_actor("Echo", address=cluster.main)
    t0 = time.monotonic()
    with pytest.raises(xoscar_c.errors.CallTimeout):
        echo.sleep_ms(5000, timeout=0.1)
    assert time.monotonic() - t0 < 2
    assert xoscar_c.sync.has_actor(ref)
    for r in (ref, s, echo):
        xoscar_c.sync.destroy_actor(r)
    assert not xoscar_c.sync.has_actor(ref)
    with pytest.raises(xoscar_c.ActorNotExist):
        ref.get()


def test_pool_killed_mid_call_gives_server_closed(port_base, workdir):
    c = ClusterProc(workdir, "pykill", port_base + 5)  # its sub pools listen on +6, +7
    try:
        xoscar_c.Cluster.from_file(c.path).connect()

        async def main():
            echo = await xoscar_c.create_actor("Echo", address=c.main, allocate_strategy=strategy.ProcessIndex(1))
            pid = await echo.pid()
            call = asyncio.ensure_future(echo.sleep_ms(30_000))
            others = [asyncio.ensure_future(echo.sleep_ms(30_000)) for _ in range(20)]
            await asyncio.sleep(0.2)
            os.kill(pid, signal.SIGKILL)
            t0 = time.monotonic()
            with pytest.raises(xoscar_c.ServerClosed):
                await asyncio.wait_for(call, 10)  # never a hang: a TimeoutError here fails the test
            # every call in flight to the dead pool fails the same way
            res = await asyncio.wait_for(asyncio.gather(*others, return_exceptions=True), 10)
            assert all(isinstance(r, xoscar_c.ServerClosed) for r in res), res
            assert time.monotonic() - t0 < 5
            # later calls to the dead pool fail the same way (restart: none)
            with pytest.raises(xoscar_c.ServerClosed):
                await asyncio.wait_for(echo.pid(), 10)

        run(main())
    finally:
        c.down()


WRONG_SECRET_CLIENT = """
import asyncio, sys, xoscar_c
async def main():
    try:
        await xoscar_c.create_actor("Counter", address=sys.argv[1])
    except xoscar_c.XoscarError as e:
        print(type(e).__name__, e.status_name, isinstance(e, xoscar_c.ServerClosed))
        return
    print("no error")
asyncio.run(main())
"""


def test_wrong_secret_is_refused(cluster):
    env = dict(os.environ, XO_SECRET="not the secret")
    env.pop("XO_CLUSTER_MAIN", None)
    r = subprocess.run([sys.executable, "-c", WRONG_SECRET_CLIENT, cluster.main], env=env, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["AuthenticationFailed", "XO_EAUTH", "True"], r.stdout + r.stderr


def test_xoscar_run_passes_the_cluster(cluster):
    script = ("import asyncio, xoscar_c\n"
              "async def m():\n"
              "    r = await xoscar_c.create_actor('Counter', 1)\n"  # address from $XO_CLUSTER_MAIN
              "    print(await r.add(1))\n"
              "asyncio.run(m())\n")
    env = dict(os.environ, XO_RUN_DIR=cluster.env["XO_RUN_DIR"])
    r = subprocess.run([XOSCAR, "run", cluster.path, "--", sys.executable, "-c", script], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "2"


def test_the_extension_refuses_garbage_without_crashing(cluster):
    from xoscar_c import _core

    ref = xoscar_c.sync.create_actor("Echo", address=cluster.main)
    raw = ref._c
    with pytest.raises(TypeError):
        raw.send("echo", (1,), object(), None)         # not a Completion
    with pytest.raises(TypeError):
        raw.call("echo", 5)                            # arguments not a tuple or list
    with pytest.raises(TypeError):
        raw.call(None, ())
    with pytest.raises(ValueError):
        raw.call("echo", (1,), -1)                     # negative timeout
    with pytest.raises(ValueError):
        raw.tell("echo", (1,), -0.5)                   # negative delay
    with pytest.raises(TypeError):
        raw.batch("echo", "not a list")
    with pytest.raises(ValueError):
        raw.batch_send("echo", [], _core.Completion(), None)
    with pytest.raises(ValueError):
        _core.create_actor("Echo", (), cluster.main, None, "process_index", None, -1)
    with pytest.raises(TypeError):
        _core.has_actor(42)
    with pytest.raises(xoscar_c.errors.BadBatch):
        ref.echo.batch(ref.echo.delay(1))              # Echo.echo is not extensible
    assert ref.echo("fine") == "fine"
    xoscar_c.sync.destroy_actor(ref)


def test_async_batch_timeout_and_loop_selector(cluster):
    async def main():
        s = await xoscar_c.create_actor("Sum", address=cluster.main)
        assert await s.add.batch(*[s.add.delay(1) for _ in range(10)], timeout=5) == list(range(1, 11))
        loop = asyncio.get_running_loop()
        # the loop's selector takes replies while it is idle with calls in flight (SPIN_US > 0)
        assert type(loop._selector).__name__ == "_PollingSelector"
        assert await asyncio.gather(*[s.batches() for _ in range(5)]) == [1] * 5
        await xoscar_c.destroy_actor(s)

    run(main())


def test_event_loops_in_several_threads(cluster):
    """Each thread's loop gets its own completion queue; replies go to the loop that sent the call."""
    import threading

    echo = xoscar_c.sync.create_actor("Echo", address=cluster.main)
    errors = []

    def worker(k):
        async def main():
            ref = await xoscar_c.actor_ref(echo.address, echo.uid)
            for _ in range(5):
                vals = [f"{k}-{i}" for i in range(50)]
                assert await asyncio.gather(*[ref.echo(v) for v in vals]) == vals

        try:
            run(main())
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert not any(t.is_alive() for t in ts)
    assert not errors, errors
    xoscar_c.sync.destroy_actor(echo)
