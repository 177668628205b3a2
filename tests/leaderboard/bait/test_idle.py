"""The detector tables' idle index (leaderboard/bait/idle.py): a sweep finds exactly the entries a
full scan finds, and reads only the hours before its cutoff."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from leaderboard.bait.detector import BaitParams, Detector
from leaderboard.bait.idle import HOUR_S, IdleIndex
from tests.leaderboard.bait.test_state import apply

T0 = 1_341_100_000.0


@dataclass
class _E:
    last: float


def _scan(entries: Mapping[str, _E], cutoff: float) -> list[str]:
    return sorted(k for k, e in entries.items() if e.last < cutoff)


class _Counting(Mapping[str, _E]):
    """A table that counts the entries read (the index's only way in)."""

    def __init__(self, entries: dict[str, _E]) -> None:
        self.entries = entries
        self.reads = 0

    def __getitem__(self, k: str) -> _E:
        self.reads += 1
        return self.entries[k]

    def get(self, k: str, default: object = None) -> _E | None:  # type: ignore[override]
        self.reads += 1
        return self.entries.get(k)

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


_KEYS = st.sampled_from([f"k{i}" for i in range(12)])
_LAST = st.one_of(
    st.floats(T0 - 5 * HOUR_S, T0 + 40 * HOUR_S, allow_nan=False),
    st.sampled_from([T0, T0 + HOUR_S, T0 + HOUR_S - 1e-6, -math.inf, math.inf, math.nan]),
)
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("new"), _KEYS, _LAST),  # made, or replaced (any last: a late event)
        st.tuples(st.just("bump"), _KEYS, st.floats(0, 10 * HOUR_S)),  # last only grows
        st.tuples(st.just("drop"), _KEYS, st.just(0.0)),  # removed by another path (a cap)
        st.tuples(st.just("sweep"), _KEYS, st.floats(T0 - 6 * HOUR_S, T0 + 50 * HOUR_S)),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(_OPS)
def test_a_sweep_finds_what_a_full_scan_finds(ops: list[tuple[str, str, float]]) -> None:
    entries: dict[str, _E] = {}
    index = IdleIndex()
    for op, key, x in ops:
        if op == "new":
            entries[key] = _E(x)
            index.add(key, x)
        elif op == "bump" and key in entries:
            entries[key].last += x
        elif op == "drop":
            entries.pop(key, None)
        elif op == "sweep":
            expected = _scan(entries, x)
            assert index.idle(entries, x) == expected
            for k in expected:
                del entries[k]
    # and whatever is left is still found (nothing alive fell out of the index)
    assert index.idle(entries, math.inf) == _scan(entries, math.inf)


def test_a_sweep_reads_only_the_hours_before_its_cutoff() -> None:
    # 100k entries active over the last 50 hours, 10 idle for a week: a sweep reads the 10, not
    # the 100k a scan reads; a cutoff inside an hour reads that hour's entries (2,000) and
    # refiles them; the survivors stay filed once each
    w = T0 - T0 % HOUR_S + 7 * 86400.0
    entries = {f"a{i}": _E(w + (i % 50) * HOUR_S + 1000.0) for i in range(100_000)}
    entries |= {f"old{i}": _E(T0 + i) for i in range(10)}
    index = IdleIndex()
    index.rebuild(entries)
    table = _Counting(entries)
    dead = index.idle(table, T0 + 86400.0)
    assert dead == sorted(f"old{i}" for i in range(10))
    assert table.reads == 10
    for k in dead:
        del entries[k]
    assert len(index) == 100_000
    table.reads = 0
    assert index.idle(table, w + 500.0) == []
    assert table.reads == 2000 * 2  # (read, then refiled)
    assert len(index) == 100_000
    table.reads = 0
    assert index.idle(table, w + 1000.5) == sorted(f"a{i}" for i in range(0, 100_000, 50))
    assert table.reads == 2000


def test_the_detector_forgets_idle_commenters_at_a_sweep_and_a_restore_does_the_same() -> None:
    params = BaitParams()
    d = Detector(params)
    # 2,000 accounts act once on day 0, one account keeps acting for ten days
    for i in range(2000):
        d.touch(T0 + i, f"fan{i}", "author")
    t = T0 + 2000
    while t < T0 + 10 * 86400.0:
        d.touch(t, "regular", "author")
        t += 3 * 3600.0
    restored = Detector.restore(_tables(d), params)
    for det in (d, restored):
        det.touch(t + 7 * 3600.0, "regular", "author")  # a sweep step of the event clock
    assert sorted(d.commenters) == sorted(restored.commenters) == ["regular"]


def _tables(d: Detector) -> dict[str, dict[str, str]]:
    tables: dict[str, dict[str, str]] = {}
    apply(tables, d.take_changes())
    return tables


def test_the_index_stays_bounded_when_the_caps_evict_a_flood() -> None:
    # 20,000 new accounts in half an hour against a cap of 100: the table stays capped, and so
    # does the index (the evicted keys' filings do not wait out the 7-day idle horizon)
    d = Detector(BaitParams(max_commenters=100))
    for i in range(20_000):
        d.touch(T0 + i * 0.1, f"spam{i}", "author")
    assert len(d.commenters) <= 2 * 100 + 1
    assert len(d._idle["c"]) <= 2 * len(d.commenters) + 64 + 1
