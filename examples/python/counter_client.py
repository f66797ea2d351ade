"""The C counter_client's twin in Python: creates a Counter (examples/out-of-tree) in a sub pool, adds, checks.
Run it with the cluster's address and secret in its environment:
    xoscar run cluster.yaml -- python counter_client.py"""
import asyncio
import sys

import xoscar_c


async def main() -> int:
    ref = await xoscar_c.create_actor("Counter", 40, allocate_strategy=xoscar_c.strategy.RoundRobin())
    value = await ref.add(2)                       # runs in the sub pool's process
    print(f"Counter in {ref.address}: {value}")
    await xoscar_c.destroy_actor(ref)
    return 0 if value == 42 else 1


sys.exit(asyncio.run(main()))
