"""Blocking variants for scripts: the same calls, waiting on the calling thread with the GIL released.

    ref = xoscar_c.sync.create_actor("Counter", 40, address=main)
    ref.add(2)            # 42
    ref.add.tell(1); ref.add.batch(ref.add.delay(1), ref.add.delay(2))
"""
from typing import Optional

from . import _core
from ._api import (_batch_results, _check_delays, _create_args, _Delayed, _lookup_args, _RefBase,
                   ActorRef as _AsyncRef)


class SyncActorRefMethod:
    __slots__ = ("_c", "_name")

    def __init__(self, c, name: str):
        self._c = c
        self._name = name

    def __call__(self, *args, timeout: Optional[float] = None):
        return self._c.call(self._name, args, timeout)

    def tell(self, *args) -> None:
        self._c.tell(self._name, args)

    def tell_delay(self, *args, delay: float) -> None:
        self._c.tell(self._name, args, delay)

    def delay(self, *args) -> _Delayed:
        return _Delayed(self._name, args)

    def batch(self, *delays, timeout: Optional[float] = None) -> list:
        return _batch_results(self._name, delays, self._c.batch(self._name, _check_delays(self._name, delays), timeout))


class SyncActorRef(_RefBase):
    __slots__ = ()

    def _method(self, name: str) -> SyncActorRefMethod:
        return SyncActorRefMethod(self._c, name)

    def to_async(self) -> _AsyncRef:
        return _AsyncRef(self._c)

    def __repr__(self) -> str:
        return f"SyncActorRef(address={self.address!r}, uid={self.uid!r})"


def actor_ref(address, uid=None) -> SyncActorRef:
    address, uid = _lookup_args(address, uid)
    if uid is None:
        raise ValueError("actor_ref needs a uid")
    return SyncActorRef(_core.actor_ref(address, uid))


def create_actor(class_name: str, *args, address: Optional[str] = None, uid=None, allocate_strategy=None) -> SyncActorRef:
    return SyncActorRef(_core.create_actor(*_create_args(class_name, args, address, uid, allocate_strategy)))


def destroy_actor(ref) -> None:
    _core.destroy_actor(_raw(ref))


def has_actor(ref) -> bool:
    return _core.has_actor(_raw(ref))


def _raw(ref):
    if isinstance(ref, (SyncActorRef, _AsyncRef)):
        return ref._c
    raise TypeError("expected an actor ref")
