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
