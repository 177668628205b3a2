"""The worker's collector policy (stream/heap.py): long-lived state is frozen out of the full
collections, a batch's own cyclic garbage still goes at once, and a cycle among frozen objects at
the next periodic full collection."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from stream.heap import HeapKeeper


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> tuple[Node, weakref.ref[Node]]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a, weakref.ref(a)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.collect()


def test_state_that_survives_a_batch_is_frozen_out_of_full_collections() -> None:
    clock = Clock()
    keeper = HeapKeeper(300.0, clock)
    state = {f"k{i}": Node() for i in range(1000)}
    keeper.after_apply()
    assert gc.get_freeze_count() >= len(state)
    assert not any(o is state for o in gc.get_objects(generation=2))
    # a chunk's own cyclic garbage is collected after the next apply, frozen or not
    dead = cycle()[1]
    keeper.after_apply()
    assert dead() is None and keeper.full_collections == 0


def test_a_cycle_among_frozen_objects_goes_at_the_next_full_collection() -> None:
    clock = Clock()
    keeper = HeapKeeper(300.0, clock)
    node, ref = cycle()
    keeper.after_apply()  # frozen while alive
    del node
    clock.now += 299
    keeper.after_apply()
    assert ref() is not None  # (frozen: no collection walks it until the periodic one)
    clock.now += 1
    keeper.after_apply()
    assert ref() is None and keeper.full_collections == 1
    assert gc.get_freeze_count() > 0  # and the rest frozen again


def test_zero_leaves_pythons_collector_alone() -> None:
    keeper = HeapKeeper(0.0, Clock())
    _state = [Node() for _ in range(100)]
    keeper.after_apply()
    assert gc.get_freeze_count() == 0
