"""Actor classes written in Python, hosted by Xoscar-C pools (docs/modules.md, "Python actors").

A pool loads a Python module named in the cluster file (`modules: [python:mypkg.actors]`) or on its command line
(`xoscar-pool --module python:mypkg.actors`). Its actor classes are the subclasses of Actor or StatelessActor
defined in that module (or the classes its `__xoscar_actors__` list names). Each becomes a C actor class of the
pool, named after the class (`__xoscar_name__` overrides the name), so callers create it by that name, from C, the
CLI or Python, and cannot tell it from a C actor:

    class Counter(xoscar_c.Actor):
        def __init__(self, start=0):      # the create's arguments
            self.n = start
        def add(self, k):                 # a method: public (no leading underscore), sync or async
            self.n += k
            return self.n
        async def add_via(self, other_uid, k):
            other = await xoscar_c.actor_ref(self.address, other_uid)
            return await other.add(k)     # suspends this method only; the pool runs other actors meanwhile

Hooks: `__post_create__` after __init__ (a failure fails the create), `__pre_destroy__` before the actor goes.
Stateful classes (Actor) run one message at a time; StatelessActor's messages may run concurrently (they share the
GIL, which every wait releases). `@no_lock` is Xoscar's no_lock, `@extensible` allows batches.

Inside a pool, `await` works on actor calls (`ref.method(...)`, `ref.method.batch(...)`), on this package's
actor_ref / create_actor / destroy_actor / has_actor, and on `xoscar_c.sleep` and `xoscar_c.gather`; asyncio's own
primitives (asyncio.sleep, asyncio.gather, tasks) need an event loop, which pool methods do not run in."""
import types

from . import _core

_EXTENSIBLE = "__xoscar_extensible__"
_NO_LOCK = "__xoscar_no_lock__"

# Method flags, as xoscar.h numbers them (XO_METHOD_EXTENSIBLE, XO_METHOD_NO_LOCK).
_FLAG_EXTENSIBLE = 0x1
_FLAG_NO_LOCK = 0x2


class Actor:
    """A stateful actor: one message at a time, as C actors (XO_ACTOR_STATEFUL)."""

    _xo_uid = None
    _xo_address = None

    @property
    def uid(self) -> str:
        """This actor's uid (during __init__ too)."""
        return self._xo_uid if self._xo_uid is not None else _core.ctx_uid()

    @property
    def address(self) -> str:
        """The address of the pool this actor lives in."""
        return self._xo_address if self._xo_address is not None else _core.ctx_address()

    def ref(self):
        """An ActorRef to this actor (valid inside its methods and hooks)."""
        from ._api import ActorRef
        return ActorRef(_core.self_ref())


class StatelessActor(Actor):
    """A stateless actor: its messages may run concurrently on the pool's threads (XO_ACTOR_STATELESS)."""


def extensible(fn):
    """Marks a method as callable in batches (ref.method.batch(ref.method.delay(...), ...)): one message carries the
    calls and the method runs once per call. Give the class a method named `<name>_batch` taking a list of argument
    tuples and returning a list of results to handle a batch in one call instead."""
    setattr(fn, _EXTENSIBLE, True)
    return fn


def no_lock(fn):
    """Xoscar's no_lock: a call of this method does not wait for a stateful actor's one-at-a-time turn (it runs
    while another method of the actor waits), and does not hold the actor while it waits itself."""
    setattr(fn, _NO_LOCK, True)
    return fn


_BASE_NAMES = frozenset(dir(StatelessActor))


def _is_actor_class(obj) -> bool:
    return isinstance(obj, type) and issubclass(obj, Actor) and obj not in (Actor, StatelessActor)


def _describe(module: types.ModuleType) -> list:
    """What the pool registers for module: [(class, name, stateless, [(method, flags, batch_name_or_None)], has
    __post_create__, has __pre_destroy__)]. Called by the embedding (python/embed) when it loads the module."""
    listed = getattr(module, "__xoscar_actors__", None)
    if listed is not None:
        classes = list(listed)
        for c in classes:
            if not _is_actor_class(c):
                raise TypeError(f"{module.__name__}.__xoscar_actors__: {c!r} is not a subclass of xoscar_c.Actor")
    else:
        classes = [c for c in vars(module).values() if _is_actor_class(c) and c.__module__ == module.__name__]
    out = []
    for c in classes:
        name = getattr(c, "__xoscar_name__", c.__name__)
        methods = []
        for attr in sorted(dir(c)):
            if attr.startswith("_") or attr in _BASE_NAMES:
                continue
            fn = getattr(c, attr)
            if not callable(fn) or isinstance(fn, type):
                continue
            flags = (_FLAG_EXTENSIBLE if getattr(fn, _EXTENSIBLE, False) else 0) | \
                    (_FLAG_NO_LOCK if getattr(fn, _NO_LOCK, False) else 0)
            batch = None
            if flags & _FLAG_EXTENSIBLE and callable(getattr(c, attr + "_batch", None)):
                batch = attr + "_batch"
            methods.append((attr, flags, batch))
        out.append((c, name, issubclass(c, StatelessActor), methods,
                    hasattr(c, "__post_create__"), hasattr(c, "__pre_destroy__")))
    return out
