"""xoscar_c: a Python client of Xoscar-C clusters, in the shape of Xoscar's API.

    import asyncio, xoscar_c
    async def main():
        cluster = xoscar_c.Cluster.from_file("cluster.yaml").connect()
        ref = await xoscar_c.create_actor("Counter", 40, address=cluster.main_address)
        print(await ref.add(2))                      # 42, computed by the C actor in a sub pool
    asyncio.run(main())
"""
from . import strategy, sync
from ._api import (ActorRef, ActorRefMethod, actor_ref, create_actor, default_address, destroy_actor, gather,
                   has_actor, set_secret, sleep)
from .actor import Actor, StatelessActor, extensible, no_lock
from .cluster import Cluster, xoscar_binary
from .errors import *  # noqa: F401,F403
from .errors import XoscarError

__all__ = ["ActorRef", "ActorRefMethod", "actor_ref", "create_actor", "destroy_actor", "has_actor", "set_secret",
           "default_address", "Cluster", "xoscar_binary", "strategy", "sync", "XoscarError", "Actor", "StatelessActor",
           "extensible", "no_lock", "sleep", "gather"]
