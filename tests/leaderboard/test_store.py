"""The store (leaderboard/store/) on its own against real Redis: its methods called directly, with
no worker, web or deliverer process around them."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.client import NEVER_DECODE

from leaderboard.events import Event
from leaderboard.fingerprint import fingerprint, pair_fingerprint
from leaderboard.owned import OwnedState
from leaderboard.perks import unlock_id
from leaderboard.plan import Message, Plan, build_plan
from leaderboard.scoring import ScoringRules
from tests.conftest import Namespace

RULES = ScoringRules.load()
DAY = 86400
T0 = 1_341_100_800  # a UTC day boundary

pytestmark = pytest.mark.integration


async def test_fan_out_happens_once_even_when_raced(namespace: Namespace) -> None:
    """Two deliverers handling the same outbox entry at once: one pushes and makes the jobs."""
    store = namespace.store
    uid = unlock_id("top10", "m1")
    item = (
        uid,
        "m1",
        b'{"as_of":1,"boards":null,"events":[{"event":"perk"}]}',
        [(f"e:{uid}", {"endpoint": "e", "unlock": uid, "body": "{}"})],
    )
    await store.feed_watch(["m1"], 600)
    results = await asyncio.gather(*(store.fan_out([item, item], time.time()) for _ in range(8)))
    assert sorted(results, key=len) == [[]] * 7 + [[uid]]
    assert await store.fan_out([item], time.time()) == []
    assert await store.fanned_out([uid, "unl_other"]) == {uid}
    (job,) = await store.webhook_jobs("due")
    assert job["job"] == f"e:{uid}" and job["attempts"] == "0"
    assert await store.client.xlen(store.key("feedlog", "member:m1")) == 1


async def test_boards_page_through_every_board_once_at_a_bounded_cost(
    namespace: Namespace,
) -> None:
    """GET /api/boards reads a page at a time: every board exactly once over the pages, base
    boards first, sizes right, and no page much longer than asked whatever the number of boards."""
    store = namespace.store
    communities = [f"c{i:04d}" for i in range(600)]
    pipe = store.client.pipeline(transaction=False)
    for c in communities:
        board = f"7d:{c}"
        pipe.sadd(store.key("boards"), board)
        pipe.zadd(store.key("board", board), {"m1": 1000.0, "m2": 2000.0})
    await pipe.execute()
    seen: list[str] = []
    pages = 0
    cursor = 0
    while True:
        rows, cursor = await store.boards(cursor, 100)
        pages += 1
        assert len(rows) <= 2 * 100 + len(store.rules.base_boards)
        if pages == 1:
            assert [b for b, _ in rows[:5]] == list(store.rules.base_boards)
        seen += [b for b, _ in rows]
        assert all(n == 2 for b, n in rows if b.startswith("7d:"))
        if cursor == 0:
            break
    assert pages > 2
    assert sorted(seen) == sorted([*store.rules.base_boards, *(f"7d:{c}" for c in communities)])


def _plan(owned: OwnedState, *messages: Message) -> Plan:
    return build_plan(
        list(messages),
        owned.store_state(),
        RULES,
        dedupe_horizon_s=7 * DAY,
        rebase_after_s=120 * DAY,
        max_future_s=300,
    )


async def test_dedupe_ids_and_counters_survive_a_reload_as_fingerprints(
    namespace: Namespace,
) -> None:
    """A worker that loads a partition afterwards (a restart, a rebalance) finds every applied id
    a duplicate and every pair's count where it was, from 16-byte records (one per id, one per
    counted event of a pair) appended per day: no id or actor name is stored."""
    store = namespace.store
    first = OwnedState()
    await store.load_partitions([0], first)
    shares = [Event(f"s{i}", T0 + i, "share", "ann", "tom") for i in range(3)]
    plan = _plan(
        first, Message(0, 0, shares), Message(0, 1, [Event("d1", T0 + DAY, "share", "bob", "tom")])
    )
    await (await store.send_apply(plan))
    day = T0 // DAY
    blob = await store.client.execute_command(
        "GET", store.key("ids", 0, day), **{NEVER_DECODE: True}
    )
    assert blob == b"".join(fingerprint(f"s{i}") for i in range(3))
    counted = await store.client.execute_command(
        "GET", store.key("drc", 0, day), **{NEVER_DECODE: True}
    )
    assert counted == pair_fingerprint("ann", "tom") * 3
    assert await store.client.zrange(store.key("iddays", 0), 0, -1) == [str(day), str(day + 1)]
    # a fresh worker: the ids are duplicates, ann's fourth share of tom that day earns 1/4
    again = OwnedState()
    await store.load_partitions([0], again)
    replay = _plan(again, Message(0, 2, [*shares, Event("s3", T0 + 9, "share", "ann", "tom")]))
    assert replay.stats == {"duplicate": 3, "applied": 1}
    assert dict(replay.totals) == {("all", "tom"): RULES.weights_mp["share"] // 4}


async def test_a_namespace_from_before_fingerprints_keeps_its_dedupe_and_counts(
    namespace: Namespace,
) -> None:
    """Ids (``seen:<p>``, id → ts) and counters (``dr:<p>:<day>`` hashes) written before the
    compact form are still read on load, so an upgrade neither double counts a resent event nor
    restarts diminishing returns; counts since then add to the old ones."""
    store = namespace.store
    day = T0 // DAY
    await store.client.zadd(store.key("seen", 0), {"old1": T0, "old2": T0 + 1})
    await store.client.hset(store.key("dr", 0, day), "ann\x1ftom", 2)
    await store.client.zadd(store.key("drdays", 0), {str(day): day})
    await store.client.hset(store.key("fence"), "0", 4)
    owned = OwnedState()
    await store.load_partitions([0], owned)
    plan = _plan(
        owned,
        Message(
            0,
            5,
            [Event("old1", T0, "share", "ann", "tom"), Event("n1", T0 + 5, "share", "ann", "tom")],
        ),
    )
    assert plan.stats == {"duplicate": 1, "applied": 1}
    assert dict(plan.totals) == {("all", "tom"): RULES.weights_mp["share"] // 3}
    await (await store.send_apply(plan))
    later = OwnedState()
    await store.load_partitions([0], later)
    fourth = _plan(later, Message(0, 6, [Event("n2", T0 + 6, "share", "ann", "tom")]))
    assert dict(fourth.totals) == {("all", "tom"): RULES.weights_mp["share"] // 4}
