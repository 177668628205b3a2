"""The whole pipeline on real servers: replay → Tansu → Faust worker(s) → Redis, checked against the
independent oracle on slices of the real data. The full-data runs are `make verify`."""

from __future__ import annotations

import asyncio
import dataclasses
import random

import pytest

from tests.conftest import DATA, Namespace, configure
from tests.oracle import assert_board_equal, calendar_boards, compute, read_edges

pytestmark = pytest.mark.integration

BOARDS = ("all", "1h", "24h", "7d", "decayed")
HIGGS = DATA / "higgs" / "higgs-activity_time.txt.gz"
SX = DATA / "mathoverflow" / "sx-mathoverflow-typed.DERIVED.txt.gz"


async def check_boards(
    ns: Namespace,
    events: list[dict[str, object]],
    boards: tuple[str, ...] = BOARDS,
    keep: dict[str, int] | None = None,
) -> None:
    """Every board of ``boards`` and every calendar board, live and archived, equals the
    oracle's; and the archived periods the namespace lists are the ones the oracle keeps."""
    expected = compute(events, keep=keep)
    for board in (*boards, *calendar_boards(expected)):
        assert_board_equal(board, await ns.export(board), expected.get(board, {}))
    await check_periods(ns, expected)


async def check_periods(ns: Namespace, expected: dict[str, dict[str, float]]) -> None:
    for unit in ("day", "week", "month"):
        listed = [b for b, _ in await ns.store.periods(unit, 1000)]
        kept = sorted(b for b in expected if b.startswith(unit + "@") and ":" not in b)
        assert listed == kept[::-1][:1000], f"{unit}: {listed[:5]} … against {kept[-5:]}"


async def test_higgs_envelopes_match_the_contract(namespace: Namespace) -> None:
    events = read_edges(
        HIGGS, "higgs", 20_000
    )  # 47 h of the real stream: 1h and 24h windows expire
    namespace.start_worker()
    produced = await namespace.replay(events, envelope=500)
    await namespace.wait(produced)
    await check_boards(namespace, events)
    stats = await namespace.store.stats()
    assert stats["total"] == len(events)
    assert stats["applied"] + stats["ignored"] == len(events)
    assert stats["ignored"] == sum(1 for e in events if e["actor"] == e["target"])


async def test_higgs_single_event_messages_match_the_contract(namespace: Namespace) -> None:
    events = read_edges(HIGGS, "higgs", 6_000)
    namespace.start_worker()
    produced = await namespace.replay(events, envelope=1)
    assert produced.messages == len(events)
    await namespace.wait(produced)
    await check_boards(namespace, events)


async def test_mathoverflow_two_workers_four_partitions_with_landmark_moves(
    namespace: Namespace,
) -> None:
    # 99 days of MathOverflow; a 20-day rebase threshold moves the decay landmark several times
    configure(
        namespace,
        worker=dataclasses.replace(namespace.settings.worker, decay_rebase_after_s=20 * 86400),
    )
    events = read_edges(SX, "sx", 20_000)
    namespace.start_worker()
    namespace.start_worker()
    produced = await namespace.replay(events, envelope=200)
    await namespace.wait(produced)
    await check_boards(namespace, events)
    fences = await namespace.store.fences()
    assert sorted(fences) == [0, 1, 2, 3]
    _, landmark = await namespace.store.clock()
    assert landmark is not None and landmark > int(events[0]["ts"]) + 20 * 86400  # type: ignore[call-overload]


async def test_mathoverflow_six_and_a_half_years_of_calendar_periods(namespace: Namespace) -> None:
    """One event in 25 of the whole MathOverflow log (2009-09 to 2016-03): every day, ISO week
    and month archive of 6.5 years, kept whole (KUDOS_PERIODS_KEEP_* = 0)."""
    configure(
        namespace,
        periods=dataclasses.replace(
            namespace.settings.periods, keep_days=0, keep_weeks=0, keep_months=0
        ),
    )
    events = read_edges(SX, "sx", 10**9)[::25]
    namespace.start_worker()
    produced = await namespace.replay(events, envelope=500)
    await namespace.wait(produced)
    keep = {"day": 0, "week": 0, "month": 0}
    expected = compute(events, keep=keep)
    assert sum(b.startswith("month@") for b in expected) > 75  # (the whole log, not a slice)
    await check_boards(namespace, events, ("all",), keep=keep)


async def test_sigkill_three_times_changes_no_score(namespace: Namespace) -> None:
    events = read_edges(HIGGS, "higgs", 12_000)
    # small batches so the worker is mid-apply most of the time when it is killed
    configure(namespace, worker=dataclasses.replace(namespace.settings.worker, batch_messages=5))
    worker = namespace.start_worker()
    producing = asyncio.create_task(namespace.replay(events, envelope=4, rate=1500))
    rng = random.Random(7)
    kills = 0
    fences_at_kill = []
    while kills < 3:
        await asyncio.sleep(rng.uniform(1.5, 3.0))  # not a wait: a kill at a random moment
        fences_at_kill.append(sum((await namespace.store.fences()).values()))
        namespace.kill_worker(worker)
        kills += 1
        worker = namespace.start_worker()
    produced = await producing
    await namespace.wait(produced)
    # the kills happened while work was in flight, not before or after it
    assert fences_at_kill[-1] < sum(o for o in produced.end_offsets.values())
    await check_boards(namespace, events)
    stats = await namespace.store.stats()
    assert stats["total"] == len(events), stats


async def test_resending_every_event_changes_nothing(namespace: Namespace) -> None:
    events = read_edges(HIGGS, "higgs", 5_000)
    namespace.start_worker()
    await namespace.wait(await namespace.replay(events, envelope=100))
    before = {b: await namespace.export(b) for b in BOARDS}
    await namespace.wait(await namespace.replay(events, envelope=37))
    after = {b: await namespace.export(b) for b in BOARDS}
    assert after == before
    stats = await namespace.store.stats()
    assert stats["duplicate"] == len(events)
    assert stats["total"] == 2 * len(events)
