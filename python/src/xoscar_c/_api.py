"""The asyncio API. Calls and batches are sent at once (xo_send, xo_batch_send) and their replies complete asyncio
futures on the event loop's thread (see _core.c: the runtime's threads only ring an eventfd the loop reads).
Lookups, creates and destroys, which libxoscar offers only as blocking calls, run in the loop's default executor so
the loop never blocks on them."""
import asyncio
import os
import selectors
import weakref
from typing import Any, Optional

from . import _core
from .actor import Actor
from .errors import _make
from .strategy import AllocateStrategy, as_strategy

_core.init(_make)

# True in a pool process whose embedded interpreter runs Python actors (python/embed): _core is then the copy built
# into the embedding, bound to the pool's own runtime. Inside an actor method (_core.in_method()), calls wait by
# suspending the method's fiber, with the GIL released, instead of through an asyncio loop.
_EMBEDDED = bool(getattr(_core, "embedded", False))


def _in_pool() -> bool:
    return _EMBEDDED and _core.in_method()

_completions: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _core.Completion]" = weakref.WeakKeyDictionary()
_last = (None, None)  # the loop and completion of the last call: one dict lookup saved per call


# How long an event loop with calls in flight, about to sleep, takes replies itself first (xo_poll_replies): a
# reply to a pool of this host then reaches the loop without waking the I/O thread and then the loop. The loop is
# idle while it spins (it was going to sleep), so nothing waits on it. 0 turns it off ($XOSCAR_C_SPIN_US).
SPIN_US = int(os.environ.get("XOSCAR_C_SPIN_US", "20"))


class _PollingSelector(selectors.BaseSelector):
    """Wraps a SelectorEventLoop's selector: before a select that would block while calls are in flight, spins up
    to SPIN_US taking replies (their callbacks ring the completion's eventfd, so the select then returns at once)."""

    def __init__(self, inner, comp):
        self._inner = inner
        self._comp = comp

    def select(self, timeout=None):
        if SPIN_US > 0 and self._comp.pending and (timeout is None or timeout > 0):
            if _core.poll_replies(SPIN_US):
                timeout = 0
        return self._inner.select(timeout)

    def register(self, fileobj, events, data=None):
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj):
        return self._inner.unregister(fileobj)

    def modify(self, fileobj, events, data=None):
        return self._inner.modify(fileobj, events, data)

    def get_key(self, fileobj):
        return self._inner.get_key(fileobj)

    def get_map(self):
        return self._inner.get_map()

    def close(self):
        self._inner.close()


def _completion(loop):
    global _last
    if _last[0] is loop:
        return _last[1]
    comp = _completions.get(loop)
    if comp is None:
        comp = _core.Completion()
        loop.add_reader(comp.fd, comp.drain)
        # Only the standard selector loop has a selector to wrap (uvloop and others keep the eventfd path alone).
        inner = getattr(loop, "_selector", None)
        if isinstance(loop, asyncio.SelectorEventLoop) and isinstance(inner, selectors.BaseSelector):
            loop._selector = _PollingSelector(inner, comp)
        _completions[loop] = comp
    _last = (loop, comp)
    return comp


def set_secret(secret: str) -> None:
    """This process's cluster secret (default: $XO_SECRET). Set it before the first call to the cluster."""
    _core.set_secret(secret)


def default_address() -> Optional[str]:
    """The main pool address `xoscar run FILE -- python ...` passes ($XO_CLUSTER_MAIN); inside a Python actor, the
    main pool of the actor's host."""
    a = os.environ.get("XO_CLUSTER_MAIN")
    if a is None and _in_pool():
        a = _core.ctx_address()
        tail = a.rsplit(":", 1)[-1]
        if "://" not in a and "/" in tail:
            a = a.rsplit("/", 1)[0]
    return a


class _Delayed:
    __slots__ = ("method", "args")

    def __init__(self, method: str, args: tuple):
        self.method = method
        self.args = args


def _batch_results(method: str, delays, pairs):
    out = []
    for ok, v in pairs:
        if not ok:
            raise v
        out.append(v)
    return out


def _check_delays(method: str, delays):
    for d in delays:
        if not isinstance(d, _Delayed):
            raise TypeError(f"batch takes the results of ref.{method}.delay(...), not {type(d).__name__}")
        if d.method != method:
            raise ValueError(f"a batch calls one method: {method}, not {d.method}")
    return [d.args for d in delays]


class ActorRefMethod:
    """ref.method: await it called, .tell, .delay + .batch; the blocking forms are on the sync ref."""

    __slots__ = ("_ref", "_name")

    def __init__(self, ref: "ActorRef", name: str):
        self._ref = ref
        self._name = name

    def __call__(self, *args):
        """An awaitable of the call. Inside a Python actor the call is sent at once (so several can be in flight
        before the first await) and awaiting it suspends the method."""
        if _EMBEDDED and _core.in_method():
            return self._ref._c.pending(self._name, args)
        return self._acall(args)

    async def _acall(self, args):
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        call = self._ref._c.send(self._name, args, _completion(loop), fut)
        try:
            return await fut
        except asyncio.CancelledError:
            # The task was cancelled while waiting: cancel the call too (it will not run if it has not started).
            call.cancel()
            raise

    async def tell(self, *args) -> None:
        self._ref._c.tell(self._name, args)

    async def tell_delay(self, *args, delay: float) -> None:
        self._ref._c.tell(self._name, args, delay)

    def delay(self, *args) -> _Delayed:
        return _Delayed(self._name, args)

    async def batch(self, *delays, timeout: Optional[float] = None) -> list:
        calls = _check_delays(self._name, delays)
        if not calls:
            return []
        if _in_pool():  # a blocking batch suspends the method's fiber
            return _batch_results(self._name, delays, self._ref._c.batch(self._name, calls, timeout))
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        call = self._ref._c.batch_send(self._name, calls, _completion(loop), fut)
        try:
            pairs = await (fut if timeout is None else asyncio.wait_for(fut, timeout))
        except asyncio.CancelledError:
            call.cancel()
            raise
        except asyncio.TimeoutError:
            call.cancel()
            raise
        return _batch_results(self._name, delays, pairs)


class _RefBase:
    """What the asyncio and the blocking refs share: the C ref, its address and uid, and attribute access naming a
    method, each method object made once (by the subclass's _method) and kept."""

    __slots__ = ("_c", "_methods")

    def __init__(self, c):
        self._c = c
        self._methods = {}

    @property
    def address(self) -> str:
        return self._c.address

    @property
    def uid(self) -> str:
        return self._c.uid

    def _method(self, name: str):
        raise NotImplementedError

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        m = self._methods.get(name)
        if m is None:
            m = self._methods[name] = self._method(name)
        return m


class ActorRef(_RefBase):
    """A reference to an actor (address, uid). Attribute access names a method: `await ref.add(1)`."""

    __slots__ = ("__weakref__",)

    def _method(self, name: str) -> ActorRefMethod:
        return ActorRefMethod(self, name)

    def __repr__(self) -> str:
        return f"ActorRef(address={self.address!r}, uid={self.uid!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, ActorRef) and (self.address, self.uid) == (other.address, other.uid)

    def __hash__(self) -> int:
        return hash((self.address, self.uid))


def _uid_str(uid) -> Optional[str]:
    if uid is None or isinstance(uid, str):
        return uid
    if isinstance(uid, bytes):
        return uid.decode()
    raise TypeError(f"uid must be str or bytes, not {type(uid).__name__}")


def _pool_index(index: str, address: str) -> int:
    if not index.isdigit():
        raise ValueError(f"{address!r} is not a pool address (host:port or host:port/N)")
    return int(index)


def _index_in(main: str, address: Optional[str]) -> int:
    if address == main:
        return 0
    if address and address.startswith(main + "/"):
        return _pool_index(address[len(main) + 1:], address)
    raise ValueError(f"AddressSpecified({address!r}): not a pool of the host at {main}")


def _create_args(class_name, args: tuple, address: Optional[str], uid, allocate_strategy):
    if isinstance(class_name, type) and issubclass(class_name, Actor):  # a Python actor class: by its name
        class_name = getattr(class_name, "__xoscar_name__", class_name.__name__)
    if not isinstance(class_name, str):
        raise TypeError("create_actor takes the class's name (a str) or a xoscar_c.Actor subclass")
    address = address or default_address()
    if not address:
        raise ValueError("create_actor needs address= (a main pool's address) or $XO_CLUSTER_MAIN")
    st = as_strategy(allocate_strategy)
    main = address
    # A sub pool's address (host:port/N): create there through its main pool, as Xoscar creates at an address.
    tail = address.rsplit(":", 1)[-1]
    if "://" not in address and "/" in tail:
        main, index = address.rsplit("/", 1)
        if st is None:
            st = AllocateStrategy("process_index", process_index=_pool_index(index, address))
    if st is not None and st.strategy == "address":
        # xo_create_actor_placed carries no address to the main pool's service: name the pool by its index there.
        st = AllocateStrategy("process_index", process_index=_index_in(main, st.address), label=st.label,
                              mark=st.mark, device_mem=st.device_mem)
    if st is not None and st.device_mem:
        # Refused rather than dropped: xo_create_actor_placed does not carry device_mem to the main pool yet.
        raise ValueError("allocate_strategy with device_mem is not supported by xo_create_actor_placed yet")
    if st is None:
        return (class_name, args, main, _uid_str(uid))
    return (class_name, args, main, _uid_str(uid), st.strategy, st.address, st.process_index, st.label, st.mark,
            st.device_mem)


def _lookup_args(address, uid):
    if isinstance(address, ActorRef):
        return address.address, address.uid
    if address is None:
        address = default_address()
    if not isinstance(address, str):
        raise TypeError("actor_ref(address, uid): address must be a str")
    return address, _uid_str(uid)


async def actor_ref(address, uid=None) -> ActorRef:
    """A checked ref: ActorNotExist when no such actor. address may be a main pool (finds actors in its sub pools)."""
    address, uid = _lookup_args(address, uid)
    if uid is None:
        raise ValueError("actor_ref needs a uid")
    if _in_pool():  # inside a Python actor the blocking call suspends the method's fiber, not the pool
        return ActorRef(_core.actor_ref(address, uid))
    loop = asyncio.get_running_loop()
    return ActorRef(await loop.run_in_executor(None, _core.actor_ref, address, uid))


async def create_actor(class_name, *args, address: Optional[str] = None, uid=None,
                       allocate_strategy=None) -> ActorRef:
    """Creates an actor of a class the pools know (a module loaded there), placed by the main pool at address.
    class_name is the class's name, or a xoscar_c.Actor subclass (created by its name)."""
    a = _create_args(class_name, args, address, uid, allocate_strategy)
    if _in_pool():
        return ActorRef(_core.create_actor(*a))
    loop = asyncio.get_running_loop()
    return ActorRef(await loop.run_in_executor(None, _core.create_actor, *a))


async def destroy_actor(ref: ActorRef) -> None:
    if not isinstance(ref, ActorRef):
        raise TypeError("destroy_actor takes an ActorRef")
    if _in_pool():
        return _core.destroy_actor(ref._c)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, _core.destroy_actor, ref._c)


async def has_actor(ref: ActorRef) -> bool:
    if not isinstance(ref, ActorRef):
        raise TypeError("has_actor takes an ActorRef")
    if _in_pool():
        return _core.has_actor(ref._c)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, _core.has_actor, ref._c)


async def sleep(seconds: float) -> None:
    """asyncio.sleep in a client; inside a Python actor, suspends the method only (xo_sleep_ms)."""
    if _in_pool():
        return _core.sleep(seconds)
    await asyncio.sleep(seconds)


async def gather(*aws) -> list:
    """asyncio.gather in a client; inside a Python actor, awaits each in turn: actor calls are sent when made, so
    `await gather(a.f(), b.g())` has both in flight at once."""
    if _in_pool():
        return [await a for a in aws]
    return list(await asyncio.gather(*aws))
