"""Envelopes: grouping events into messages by partition of their target (broker/producer.py)."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from broker.formats import Item
from broker.producer import Envelopes, Message, partition_for


def ev(n: int, target: str, text: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"id": f"e{n}", "ts": n, "kind": "like", "actor": "a", "target": target}
    if text:
        out["text"] = text
    return out


def run(grouping: Envelopes, items: list[Item]) -> list[Message]:
    out = [m for item in items for m in grouping.add(item)]
    return out + grouping.flush()


def test_size_one_sends_every_event_alone_with_its_partition() -> None:
    items: list[Item] = [ev(1, "amy"), ev(2, "bob")]
    out = run(Envelopes(4, 1), items)
    assert [orjson.loads(m.value) for m in out] == items
    assert [m.partition for m in out] == [partition_for(t, 4) for t in (b"amy", b"bob")]
    assert [m.key for m in out] == [b"amy", b"bob"] and {m.events for m in out} == {1}


def test_unreadable_lines_go_alone_as_they_are() -> None:
    out = run(Envelopes(4, 10), [ev(1, "amy"), b"garbage", ev(2, "amy")])
    assert out[0] == Message(partition_for(b"garbage", 4), b"garbage", b"garbage", 1)
    assert orjson.loads(out[1].value) == [ev(1, "amy"), ev(2, "amy")]


def test_a_full_envelope_goes_at_once() -> None:
    grouping = Envelopes(4, 3)
    assert grouping.add(ev(1, "amy")) == [] and grouping.add(ev(2, "amy")) == []
    [full] = grouping.add(ev(3, "amy"))
    assert full.events == 3 and full.key == b"amy" and grouping.flush() == []


def test_a_quiet_partition_is_not_held_back() -> None:
    """Every size × partitions events all buffers go, so one slow target is not kept waiting."""
    busy = next(t for t in ("b0", "b1", "b2", "b3", "b4") if partition_for(t.encode(), 2) == 0)
    quiet = next(t for t in ("q0", "q1", "q2", "q3", "q4") if partition_for(t.encode(), 2) == 1)
    grouping = Envelopes(2, 3)
    out = [m for m in grouping.add(ev(0, quiet))]
    for n in range(1, 6):
        out += grouping.add(ev(n, busy))
    assert [(m.key, m.events) for m in out] == [
        (busy.encode(), 3),
        (quiet.encode(), 1),
        (busy.encode(), 2),
    ]


def test_max_bytes_closes_an_envelope_before_it_grows_past() -> None:
    items: list[Item] = [ev(n, "amy", "x" * 300) for n in range(10)]
    out = run(Envelopes(1, 100, max_bytes=1000), items)
    assert all(len(m.value) <= 1000 for m in out) and len(out) > 1
    assert [e for m in out for e in orjson.loads(m.value)] == items
    # one event bigger than the limit still goes, alone
    [alone] = run(Envelopes(1, 100, max_bytes=100), [ev(1, "amy", "y" * 500)])
    assert alone.events == 1


@given(
    targets=st.lists(st.sampled_from(["amy", "bob", "cy", "dee", "eve", "fay"]), max_size=80),
    partitions=st.integers(1, 5),
    size=st.integers(1, 9),
    max_bytes=st.one_of(st.none(), st.integers(150, 600)),
)
def test_every_event_once_in_log_order_per_partition(
    targets: list[str], partitions: int, size: int, max_bytes: int | None
) -> None:
    items: list[Item] = [ev(n, t) for n, t in enumerate(targets)]
    out = run(Envelopes(partitions, size, max_bytes=max_bytes), items)
    seen: dict[int, list[int]] = {}
    for m in out:
        value = orjson.loads(m.value)
        batch = value if isinstance(value, list) else [value]
        assert m.events == len(batch) <= size
        assert max_bytes is None or len(batch) == 1 or len(m.value) <= max_bytes
        for e in batch:
            assert partition_for(e["target"].encode(), partitions) == m.partition
            seen.setdefault(m.partition, []).append(e["ts"])
    assert sorted(n for ns in seen.values() for n in ns) == list(range(len(items)))
    assert all(ns == sorted(ns) for ns in seen.values())
