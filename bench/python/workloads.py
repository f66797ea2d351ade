"""The client workloads, written once for both systems: each takes refs with Xoscar's call shape (await
ref.m(...), ref.m.tell, ref.m.delay + ref.m.batch) and returns its figures. Imported by bench_client.py (Xoscar-C)
and by xoscar_peer.py (Python Xoscar, in its own virtual environment)."""
import asyncio
import statistics
import time

PAYLOAD = b"x" * 8


def _pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))]


async def call_rtt(echo, n):
    for _ in range(min(200, n)):  # warm the connection and the caches
        await echo.echo(PAYLOAD)
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        await echo.echo(PAYLOAD)
        lat.append(time.perf_counter() - t0)
    return {"call_rtt_p50_us": _pct(lat, 50) * 1e6, "call_rtt_p99_us": _pct(lat, 99) * 1e6,
            "call_rtt_mean_us": statistics.mean(lat) * 1e6, "calls_per_s_sequential": n / sum(lat)}


async def tells(counter, n):
    """n tells of add(1), then one call that runs after all of them (one sender's messages run in order)."""
    await counter.get()
    start = await counter.get()
    t0 = time.perf_counter()
    for _ in range(n):
        await counter.add.tell(1)
    sent = time.perf_counter() - t0
    total = await counter.get()
    done = time.perf_counter() - t0
    assert total == start + n, (total, start, n)
    return {"tells_per_s": n / done, "tells_sent_per_s": n / sent}


async def concurrent(echo, rounds, width=100):
    for _ in range(3):
        await asyncio.gather(*[echo.echo(PAYLOAD) for _ in range(width)])
    lat = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        res = await asyncio.gather(*[echo.echo(PAYLOAD) for _ in range(width)])
        lat.append(time.perf_counter() - t0)
        assert len(res) == width
    return {f"concurrent{width}_round_p50_us": _pct(lat, 50) * 1e6,
            f"concurrent{width}_calls_per_s": width * rounds / sum(lat)}


async def batch(summer, rounds, width=100):
    for _ in range(3):
        await summer.add.batch(*[summer.add.delay(1) for _ in range(width)])
    lat = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        res = await summer.add.batch(*[summer.add.delay(1) for _ in range(width)])
        lat.append(time.perf_counter() - t0)
        assert len(res) == width
    p50 = _pct(lat, 50)
    return {f"batch{width}_p50_us": p50 * 1e6, f"batch{width}_per_item_us": p50 * 1e6 / width}


async def run_all(echo, counter, summer, quick=False):
    out = {}
    out.update(await call_rtt(echo, 500 if quick else 5000))
    out.update(await tells(counter, 2000 if quick else 20000))
    out.update(await concurrent(echo, 10 if quick else 100))
    out.update(await batch(summer, 10 if quick else 100))
    return out
