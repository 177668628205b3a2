"""The store (leaderboard/store.py) on its own against real Redis: its methods called directly, with
no worker, web or deliverer process around them."""

from __future__ import annotations

import asyncio
import time

import pytest

from leaderboard.perks import unlock_id
from tests.conftest import Namespace

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
