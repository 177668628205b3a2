"""A long jump of the watermark against real Redis: the expiry of every window bucket and the
decay landmark move it needs run in bounded Lua calls, and readers between those calls see boards
that are exactly the contract at the watermark they are shown with."""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from leaderboard.plan import DeadLetter
from leaderboard.scoring import ScoringRules
from leaderboard.settings import WorkerSettings
from leaderboard.store import Store
from stream.processor import Processor, Raw
from tests.conftest import Servers
from tests.oracle import assert_board_equal, compute

pytestmark = pytest.mark.integration
RULES = ScoringRules.load()
T0 = 1_700_000_000
DAY = 86400
#: board rows one Lua call may expire or rescale; no bucket of the data below is near it
BOUND = 120
MEMBERS = 400
#: the boards the oracle computes (base and per community)
ORACLE_BOARDS = ("all", "1h", "24h", "7d", "decayed")
_ids = itertools.count()


class Letters:
    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    async def __call__(self, letters: Sequence[DeadLetter]) -> None:
        self.letters += letters


@pytest.fixture
def prefix() -> str:
    return f"expiry-{next(_ids)}-{os.getpid()}"


def week_of_events() -> list[dict[str, Any]]:
    """2,000 events of 400 members over the 7 days up to T0 (a third also in a community)."""
    n = 2000
    out: list[dict[str, Any]] = []
    for j in range(n):
        e: dict[str, Any] = {
            "id": f"w{j}",
            "ts": T0 - 7 * DAY + 1 + (7 * DAY - 1) * j // (n - 1),
            "kind": ("like", "share", "comment")[j % 3],
            "actor": f"a{j % 11}",
            "target": f"m{(j * 7) % MEMBERS}",
        }
        if j % 3 == 0:
            e["communities"] = ["physics"]
        out.append(e)
    return out


def envelopes(events: list[dict[str, Any]], partition: int, first: int, size: int) -> list[Raw]:
    return [
        Raw(
            partition,
            first + k,
            orjson.dumps(events[s : s + size]),
            float(max(e["ts"] for e in events[s : s + size])),
        )
        for k, s in enumerate(range(0, len(events), size))
    ]


def contract_at(events: list[dict[str, Any]], w: float) -> dict[str, dict[str, float]]:
    """The contract for ``events`` with the watermark at ``w`` (≥ their newest ts): the oracle's
    boards with one more scored event at ``w`` for a member of its own, left out again."""
    clock = {"id": "~clock", "ts": w, "kind": "like", "actor": "~a", "target": "~clock"}
    boards = compute([*events, clock])
    return {b: {m: v for m, v in rows.items() if m != "~clock"} for b, rows in boards.items()}


async def assert_boards(store: Store, expected: dict[str, dict[str, float]]) -> None:
    names = set(await store.client.smembers(store.key("boards"))) | set(expected)
    checked = 0
    for board in sorted(names):
        if board.partition(":")[0] not in ORACLE_BOARDS:
            continue
        rows = [r async for r in store.export(board)]
        assert_board_equal(board, rows, expected.get(board, {}))
        checked += 1
    assert checked >= 2 * len(ORACLE_BOARDS)


async def test_a_week_long_jump_expires_and_rescales_in_bounded_calls_readers_see_exact_boards(
    real_servers: Servers, prefix: str
) -> None:
    store = Store.connect(real_servers.redis_url, prefix, RULES)
    other = Store.connect(real_servers.redis_url, prefix, RULES)  # a second worker's
    try:
        # the landmark moves every 2 days of event time, so the jump moves it too
        settings = WorkerSettings(max_maintenance_rows_per_call=BOUND, decay_rebase_after_s=2 * DAY)
        worker = Processor(store, RULES, settings, Letters())
        week = week_of_events()
        await worker.process(envelopes(week, 0, 0, 100))
        assert (await store.clock())[0] == T0
        await assert_boards(store, contract_at(week, T0))
        buckets = sum(
            [await store.client.zcard(store.key("buckets", w.name)) for w in RULES.windows]
        )
        assert buckets > 168 + 96  # (every hour of the week, every quarter of its last day)

        # while the jump's calls run, a second worker applies a batch of another partition
        # (older events: the second worker's decayed values reach the rescaled copies too)
        late = [
            {"id": f"b{j}", "ts": T0 - 3600 + j, "kind": "share", "actor": f"b{j % 3}",
             "target": f"m{j}", "communities": ["physics"]}
            for j in range(20)
        ]  # fmt: skip
        helper = Processor(other, RULES, settings, Letters())
        applied = list(week)
        seen: list[float] = []

        async def between() -> None:
            if not seen:
                await helper.process(envelopes(late, 1, 0, 20))
                applied.extend(late)
            w = (await store.clock())[0]
            assert w is not None
            seen.append(w)
            await assert_boards(store, contract_at(applied, w))

        store.between_apply_calls = between
        jump_ts = T0 + 7 * DAY + 3600
        jump = [
            {"id": "j1", "ts": jump_ts, "kind": "share", "actor": "a1", "target": "m1"},
            {"id": "j2", "ts": jump_ts, "kind": "like", "actor": "a2", "target": "new",
             "communities": ["physics"]},
        ]  # fmt: skip
        landmark_before = (await store.clock())[1]
        await worker.process(envelopes(jump, 0, 100, 10))

        # (a) every board is the contract afterwards, and the landmark moved
        everything = [*week, *late, *jump]
        await assert_boards(store, compute(everything))
        wm, landmark = await store.clock()
        assert wm == jump_ts and landmark is not None and landmark != landmark_before
        stats = await store.stats()
        assert stats["applied"] == len(everything)
        # (b) many calls, none of which expired or rescaled more than the bound (ZSCAN's COUNT
        # is a hint: a call may copy a few rows more)
        work = store.apply_work
        assert len(work) > 3000 // BOUND
        assert max(work) <= BOUND + 20, work
        assert sum(work) > 3000
        # (c) readers in between saw the watermark move forward through moments between the
        # old and the new one, with exact boards at each (checked in between())
        assert len(seen) == len(work) - 1
        assert seen == sorted(seen) and seen[0] >= T0 and seen[-1] < jump_ts
        assert len(set(seen)) > 10
        # nothing of the rescale is left behind
        assert not await store.client.exists(store.key("rescale"))
        assert not [k async for k in store.client.scan_iter(match=f"{prefix}:rescaled:*")]
    finally:
        await store.close()
        await other.close()


@pytest.mark.parametrize("bound", [0, 1500])
async def test_a_jump_past_every_bucket_drops_the_window_boards_whole(
    real_servers: Servers, prefix: str, bound: int
) -> None:
    """Every bucket leaves: the window boards end empty, so their keys are dropped rather than
    subtracted row by row, in one call (bound 0: no bound) or once the rescale is done."""
    store = Store.connect(real_servers.redis_url, prefix, RULES)
    try:
        settings = dataclasses.replace(
            WorkerSettings(), max_maintenance_rows_per_call=bound, decay_rebase_after_s=2 * DAY
        )
        worker = Processor(store, RULES, settings, Letters())
        week = week_of_events()
        await worker.process(envelopes(week, 0, 0, 100))
        jump = [{"id": "j", "ts": T0 + 8 * DAY, "kind": "like", "actor": "a", "target": "m3"}]
        await worker.process(envelopes(jump, 0, 100, 10))
        # (about 2,000 bucket rows and 530 decayed rows: row by row, over 2,500)
        work = store.apply_work
        assert len(work) == 1 if bound == 0 else (len(work) == 2 and max(work) <= bound)
        assert sum(work) < 2000
        await assert_boards(store, compute([*week, *jump]))
        assert await store.client.zcard(store.key("board", "7d")) == 1
    finally:
        await store.close()


async def test_a_batch_that_writes_more_rows_than_the_bound_expires_as_many_in_its_call(
    real_servers: Servers, prefix: str
) -> None:
    """The bound holds for a small batch (the test above); a batch that writes more board rows
    than it may expire as many in its own call, which holds Redis that long anyway: in steady
    state a window's expiry is about the rows its buckets were written with, so a fixed bound
    below that left big live batches a second round trip each, waiting for the worker's loop."""
    store = Store.connect(real_servers.redis_url, prefix, RULES)
    try:
        settings = WorkerSettings(max_maintenance_rows_per_call=BOUND, decay_rebase_after_s=2 * DAY)
        worker = Processor(store, RULES, settings, Letters())
        week = week_of_events()
        await worker.process(envelopes(week, 0, 0, 100))
        jump_ts = T0 + 7 * DAY + 3600
        big = [
            {"id": f"j{j}", "ts": jump_ts, "kind": "share", "actor": f"x{j % 7}",
             "target": f"m{j % MEMBERS}", "communities": ["physics"]}
            for j in range(2 * MEMBERS)
        ]  # fmt: skip
        await worker.process(envelopes(big, 0, 100, len(big)))
        work = store.apply_work
        assert len(work) == 1 and work[0] > 10 * BOUND, work
        await assert_boards(store, compute([*week, *big]))
    finally:
        await store.close()
