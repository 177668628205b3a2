"""The compact dedupe state against plain dict models: exact membership and counts after any
sequence of adds, day drops and blob round trips, and blobs that survive Redis APPEND."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leaderboard import fingerprint as fingerprint_module
from leaderboard.fingerprint import (
    FP_SIZE,
    FingerprintSet,
    PairCounters,
    fingerprint,
    pair_fingerprint,
)

# a small pool, so that sequences repeat ids; big enough (> 32 a shard) to make tables split
POOL = [hashlib.sha256(str(i).encode()).digest()[:FP_SIZE] for i in range(120)]
# fingerprints that differ only in their last byte share a prefix of 15 with another
POOL += [POOL[0][:15] + bytes((b,)) for b in range(5)]
fps = st.sampled_from(POOL)
days = st.integers(min_value=15_520, max_value=15_530)


def test_fingerprints_are_stable_across_processes_and_releases() -> None:
    # Redis keeps them: a change of function would make every stored id unknown (double counts)
    assert fingerprint("higgs-1").hex() == "cbefadce005fe1b8cccf568686eeb1d2"
    assert len(pair_fingerprint("a", "b")) == FP_SIZE
    assert pair_fingerprint("a", "b") == fingerprint("a\x1fb")
    assert pair_fingerprint("a", "b") != pair_fingerprint("b", "a")
    assert fingerprint("e1") != fingerprint("\x1fe1")  # an evidence id never shadows an event's


def test_a_needle_across_two_records_is_not_a_member() -> None:
    s = FingerprintSet()
    fp = bytes(range(16))
    s.add(fp, 0x0102)
    s.add(bytes(range(100, 116)), 0x0102)
    # the tail of the first fingerprint, its day tag, and nothing more: a valid 16-byte run
    straddle = fp[2:] + (0x0102).to_bytes(2, "little")
    assert straddle not in s
    assert fp[:8] not in s  # a shorter needle is never a member either
    c = PairCounters()
    c.set(1, fp, 7)
    c.set(1, bytes(range(100, 116)), 9)
    assert c.get(1, fp[1:] + bytes((7,))) == 0


def test_a_later_add_keeps_the_id_until_its_later_day_goes() -> None:
    s = FingerprintSet()
    fp = fingerprint("e")
    assert s.add(fp, 10)
    assert not s.add(fp, 12)
    assert not s.add(fp, 11)  # an earlier day does not take it back
    assert s.day_of(fp) == 12 and s.days() == [12]
    s.drop_days_before(12)
    assert fp in s and len(s) == 1
    s.drop_days_before(13)
    assert fp not in s and len(s) == 0 and s.day_of(fp) is None


def test_days_65536_apart_cannot_be_held_together_but_follow_each_other() -> None:
    s = FingerprintSet()
    a, b = fingerprint("a"), fingerprint("b")
    s.add(a, 5)
    with pytest.raises(ValueError, match="too far"):
        s.add(b, 5 + 65_536)
    s.drop_days_before(6)  # the tag of day 5 is dead, its record not swept yet
    s.add(b, 5 + 65_536)
    assert b in s and a not in s and len(s) == 1


def test_bad_fingerprints_and_blobs_are_refused() -> None:
    s, c = FingerprintSet(), PairCounters()
    with pytest.raises(ValueError):
        s.add(b"short", 1)
    with pytest.raises(ValueError):
        s.load_day(1, b"x" * 17)
    with pytest.raises(ValueError):
        c.load_day(1, b"x" * 15)
    with pytest.raises(ValueError):
        c.set(1, fingerprint("a"), 0)
    with pytest.raises(ValueError):
        c.get(1, b"short")


def test_counts_past_255_stay_exact() -> None:
    # weight_mp // k is not 0 until k passes the weight (10,000 for a conversion)
    c = PairCounters()
    fp = pair_fingerprint("bot", "star")
    for _ in range(300):
        c.add(20_000, fp)
    assert c.get(20_000, fp) == 300
    c.set(20_000, fp, 254)
    assert c.get(20_000, fp) == 254
    back = PairCounters()
    back.load_day(20_000, c.dump_day(20_000))
    assert back.get(20_000, fp) == 254


def test_a_million_ids_take_at_most_24_bytes_each() -> None:
    s = FingerprintSet()
    n = 200_000  # (the bench measures 1M and 5M; the cost per id is flat past a few thousand)
    for j in range(n):
        s.add(fingerprint(f"higgs-{j}"), 15_523 + j * 8 // n)
    assert len(s) == n
    assert s.nbytes() <= 24 * n
    s.drop_days_before(15_527)
    s.compact()
    assert len(s) == n // 2
    assert s.nbytes() <= 24 * len(s)  # (the filter is rebuilt for what is left)
    assert all(fingerprint(f"higgs-{j}") in s for j in range(n // 2, n, 997))
    assert not any(fingerprint(f"higgs-{j}") in s for j in range(0, n // 2, 997))


def test_ids_that_share_a_half_are_told_apart() -> None:
    # runs are sorted by the first 8 bytes; ids equal there are found by the other 8
    base = fingerprint("x")
    same_hi = [base[:8] + bytes((j,)) * 8 for j in range(40)]
    s = FingerprintSet()
    s.add_many(same_hi[::2], [7] * 20)
    s.add_many(same_hi[1::4], [8] * 10)
    assert s.days_of_many(same_hi) == [
        7 if j % 2 == 0 else 8 if j % 4 == 1 else None for j in range(40)
    ]
    assert [f in s for f in same_hi] == [j % 2 == 0 or j % 4 == 1 for j in range(40)]
    c = PairCounters()
    c.set_many([(3, f, j + 1) for j, f in enumerate(same_hi[:30])])
    assert c.get_many([(3, f) for f in same_hi]) == [j + 1 if j < 30 else 0 for j in range(40)]


def test_a_bad_batch_changes_nothing() -> None:
    s, c = FingerprintSet(), PairCounters()
    good = fingerprint("a")
    with pytest.raises(ValueError):
        s.add_many([good, b"short"], [1, 1])
    with pytest.raises(ValueError):
        s.add_many([good, fingerprint("b")], [1, 1 + 65_536])
    with pytest.raises(ValueError):
        s.add_many([good], [1, 2])
    with pytest.raises(ValueError):
        c.set_many([(1, good, 3), (1, fingerprint("b"), 0)])
    with pytest.raises(ValueError):
        c.get_many([(1, b"short")])
    assert len(s) == 0 and good not in s and len(c) == 0 and c.get(1, good) == 0


def test_a_million_ids_in_batches_take_at_most_24_bytes_each() -> None:
    s, c = FingerprintSet(), PairCounters()
    n, batch = 200_000, 1_000
    for j in range(0, n, batch):
        b = [fingerprint(f"higgs-{i}") for i in range(j, j + batch)]
        d = 15_523 + j * 8 // n
        s.add_many(b, [d] * batch)
        c.set_many([(d, f, 1) for f in b])
    assert len(s) == len(c) == n
    assert s.nbytes() <= 24 * n and c.nbytes() <= 24 * n
    probe = [fingerprint(f"higgs-{i}") for i in range(0, 2 * n, 997)]
    assert s.days_of_many(probe) == [
        15_523 + (i // batch * batch) * 8 // n if i < n else None for i in range(0, 2 * n, 997)
    ]


# -- properties against models ---------------------------------------------------------------


_SMALL_RUNS = {
    # a few ids a run and a tiny per-item dict, so a short sequence flushes, merges and caps
    "_BUF_MIN": 3,
    "_MIN_CAP": 24,
    "_SMALL": 4,
    "_TAIL_RUNS": 2,
    # a filter of ~1 bit a record, rebuilt every few: most absent ids answer "maybe" (the runs
    # must still say no), and rebuilds, merges and filter updates go by chunks of 5
    "_BLOOM_BITS": 1,
    "_BLOOM_MIN": 4,
    "_BLOOM_CHUNK": 5,
}


@contextmanager
def _small_runs() -> Iterator[None]:
    saved = {name: getattr(fingerprint_module, name) for name in _SMALL_RUNS}
    for name, value in _SMALL_RUNS.items():
        setattr(fingerprint_module, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(fingerprint_module, name, value)


def _assert_filter_covers(store: fingerprint_module._Store) -> None:
    # the Bloom filter answers "maybe" for every record of the runs: a clear bit would make a
    # held id look new (a double count)
    for r in store.runs:
        if len(r):
            assert store.bloom.maybe(r.hi, r.lo).all()


id_ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), fps, days),
        st.tuples(st.just("add_many"), st.lists(st.tuples(fps, days), max_size=40)),
        st.tuples(st.just("days_of_many"), st.lists(fps, max_size=40)),
        st.tuples(st.just("drop"), days),
        st.tuples(st.just("reload")),
        st.tuples(st.just("compact")),
    ),
    max_size=250,
)


def _reload_ids(s: FingerprintSet) -> FingerprintSet:
    back = FingerprintSet()
    for d in s.days():
        back.load_day(d, s.dump_day(d))
    return back


@settings(max_examples=150, deadline=None)
@given(id_ops)
def test_the_set_holds_exactly_what_a_dict_of_latest_days_holds(ops: list[tuple]) -> None:  # type: ignore[type-arg]
    with _small_runs():
        _check_ids(ops)


def _check_ids(ops: list[tuple]) -> None:  # type: ignore[type-arg]
    s = FingerprintSet()
    model: dict[bytes, int] = {}
    for op in ops:
        if op[0] == "add":
            _, fp, day = op
            assert s.add(fp, day) == (fp not in model)
            model[fp] = max(day, model.get(fp, day))
        elif op[0] == "add_many":
            # as the planner calls it: the days of the batch first, then the batch added
            batch = [fp for fp, _ in op[1]]
            assert s.days_of_many(batch) == [model.get(fp) for fp in batch]
            s.add_many(batch, [day for _, day in op[1]])
            for fp, day in op[1]:
                model[fp] = max(day, model.get(fp, day))
        elif op[0] == "days_of_many":
            assert s.days_of_many(op[1]) == [model.get(fp) for fp in op[1]]
        elif op[0] == "drop":
            s.drop_days_before(op[1])
            model = {f: d for f, d in model.items() if d >= op[1]}
        elif op[0] == "reload":
            s = _reload_ids(s)
        else:
            s.compact()
        assert len(s) == len(model)
        _assert_filter_covers(s._s)
    assert {f for f in POOL if f in s} == set(model)
    assert {f: s.day_of(f) for f in model} == model
    assert s.days_of_many(POOL) == [model.get(f) for f in POOL]
    assert s.days() == sorted(set(model.values()))
    for d in s.days():
        blob = s.dump_day(d)
        assert len(blob) % FP_SIZE == 0
        held = {blob[j : j + FP_SIZE] for j in range(0, len(blob), FP_SIZE)}
        assert held == {f for f, fd in model.items() if fd == d}


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(fps, max_size=60), max_size=5), days)
def test_appended_id_blobs_load_as_one(chunks: list[list[bytes]], day: int) -> None:
    # apply.lua APPENDs each apply's new fingerprints to seen:<p>:<day>; a GET loads them all
    appended = FingerprintSet()
    for chunk in chunks:
        appended.load_day(day, b"".join(chunk))
    whole = FingerprintSet()
    whole.load_day(day, b"".join(b"".join(c) for c in chunks))
    expected = {f for c in chunks for f in c}
    assert {f for f in POOL if f in whole} == {f for f in POOL if f in appended} == expected
    assert len(whole) == len(expected)


counter_ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), days, fps, st.integers(min_value=1, max_value=300)),
        st.tuples(st.just("set"), days, fps, st.integers(min_value=1, max_value=600)),
        st.tuples(
            st.just("set_many"),
            st.lists(st.tuples(days, fps, st.integers(min_value=1, max_value=600)), max_size=40),
        ),
        st.tuples(st.just("get_many"), st.lists(st.tuples(days, fps), max_size=40)),
        st.tuples(st.just("drop"), days),
        st.tuples(st.just("reload")),
    ),
    max_size=150,
)


def _reload_counters(c: PairCounters) -> PairCounters:
    back = PairCounters()
    for d in c.days():
        back.load_day(d, c.dump_day(d))
    return back


@settings(max_examples=150, deadline=None)
@given(counter_ops)
def test_counters_count_exactly_what_a_dict_counts(ops: list[tuple]) -> None:  # type: ignore[type-arg]
    with _small_runs():
        _check_counters(ops)


def _check_counters(ops: list[tuple]) -> None:  # type: ignore[type-arg]
    c = PairCounters()
    model: dict[tuple[int, bytes], int] = {}
    for op in ops:
        if op[0] == "add":
            _, day, fp, delta = op
            model[(day, fp)] = model.get((day, fp), 0) + delta
            assert c.add(day, fp, delta) == model[(day, fp)]
        elif op[0] == "set":
            _, day, fp, k = op
            c.set(day, fp, k)
            model[(day, fp)] = k
        elif op[0] == "set_many":
            # as the planner calls it: the counts of the batch first, then the new counts set
            keys = [(day, fp) for day, fp, _ in op[1]]
            assert c.get_many(keys) == [model.get(key, 0) for key in keys]
            c.set_many(op[1])
            for day, fp, k in op[1]:
                model[(day, fp)] = k  # (the last of a key wins)
        elif op[0] == "get_many":
            assert c.get_many(op[1]) == [model.get(key, 0) for key in op[1]]
        elif op[0] == "drop":
            c.drop_days_before(op[1])
            model = {k: v for k, v in model.items() if k[0] >= op[1]}
        else:
            c = _reload_counters(c)
        assert len(c) == len(model)
        for store, _ in c._days.values():
            _assert_filter_covers(store)
    seen_days = {d for d, _ in model}
    assert set(c.days()) == seen_days
    for d in seen_days:
        for fp in POOL:
            assert c.get(d, fp) == model.get((d, fp), 0)
        assert c.get_many([(d, fp) for fp in POOL]) == [model.get((d, fp), 0) for fp in POOL]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(fps, max_size=40), max_size=5), days)
def test_appended_counter_logs_load_as_one(applies: list[list[bytes]], day: int) -> None:
    # each apply appends a pair's fingerprint once per event it counted: the count is the total
    appended = PairCounters()
    for events in applies:
        appended.load_day(day, b"".join(events))
    whole = PairCounters()
    whole.load_day(day, b"".join(b"".join(e) for e in applies))
    for fp in POOL:
        n = sum(e.count(fp) for e in applies)
        assert whole.get(day, fp) == appended.get(day, fp) == n
