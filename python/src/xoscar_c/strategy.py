"""Placement strategies for create_actor, named after Xoscar's allocate strategies; each maps to one of the runtime's
policies (include/xoscar/host.h, xo_placement_t). A plain string names a policy too ("least_loaded")."""
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class AllocateStrategy:
    strategy: str
    address: Optional[str] = None
    process_index: int = 0
    label: Optional[str] = None
    mark: Optional[str] = None
    device_mem: int = 0


def MainPool() -> AllocateStrategy:
    return AllocateStrategy("main_pool")


def RandomSubPool() -> AllocateStrategy:
    return AllocateStrategy("random_sub_pool")


def RoundRobin() -> AllocateStrategy:
    return AllocateStrategy("round_robin")


def LeastLoaded(label: Optional[str] = None) -> AllocateStrategy:
    return AllocateStrategy("least_loaded", label=label)


def MostFreeMemory(device_mem: int = 0) -> AllocateStrategy:
    return AllocateStrategy("most_free_memory", device_mem=device_mem)


def ProcessIndex(index: int) -> AllocateStrategy:
    return AllocateStrategy("process_index", process_index=index)


def AddressSpecified(address: str) -> AllocateStrategy:
    return AllocateStrategy("address", address=address)


def RandomLabel(label: str) -> AllocateStrategy:
    return AllocateStrategy("random_label", label=label)


def IdleLabel(label: str, mark: str) -> AllocateStrategy:
    return AllocateStrategy("idle_label", label=label, mark=mark)


def as_strategy(s) -> Optional[AllocateStrategy]:
    if s is None or isinstance(s, AllocateStrategy):
        return s
    if isinstance(s, str):
        return AllocateStrategy(s)
    raise TypeError(f"allocate_strategy must be an AllocateStrategy or a policy name, not {type(s).__name__}")
