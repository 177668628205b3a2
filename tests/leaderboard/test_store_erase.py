"""``kudos erase`` in the store against real Redis (leaderboard/store/moderation.py,
lua/erase.lua, the apply's erasure guard): the member leaves every board, archive, bucket and
hash, their unlocks leave the outbox and the webhook jobs, the feed's history goes; later
events about them score nothing, and every other member's boards are what they would have been."""

from __future__ import annotations

import random
from typing import Any

import pytest

from leaderboard.errors import ModerationError, StoreConflict
from leaderboard.events import Event, Profile
from leaderboard.moderation import tombstone
from leaderboard.perks import PerkRule
from leaderboard.plan import Message, build_plan
from leaderboard.scoring import ScoringRules
from leaderboard.store import Store
from leaderboard.store.moderation import erase
from tests.conftest import Namespace
from tests.leaderboard.test_store_calendar import DAY, SUN, Applier

pytestmark = pytest.mark.integration

MEMBERS = ("ann", "bob", "cy", "gone")
PERKS = [PerkRule("five", "Five points", "all", None, 5.0)]


def log(n: int, seed: int, start: float) -> list[Event | Profile]:
    rng = random.Random(seed)
    out: list[Event | Profile] = []
    for i in range(n):
        actor, target = rng.choice(MEMBERS), rng.choice(MEMBERS)
        cs = rng.choice(((), ("physics",), ("physics", "math")))
        post = f"p{rng.randrange(5)}" if rng.random() < 0.6 else None
        ts = start + i * 3000 + rng.randrange(1000)  # about 10 days per 300 events
        kind = rng.choice(("share", "click", "reply", "conversion"))
        out.append(Event(f"e{seed}-{i}", ts, kind, actor, target, post=post, communities=cs))
    out.append(Profile(f"pr{seed}", start + 5, "gone", "Gone Person", "https://img.example/g"))
    return out


async def every_board(store: Store) -> dict[str, dict[str, float]]:
    names = [b for b, _ in (await store.boards(0, 1000))[0]]
    for unit in ("day", "week", "month"):
        names += [b for b, _ in await store.periods(unit, 1000)]
        for c in ("physics", "math"):
            names += [f"{b}:{c}" for b, _ in await store.periods(unit, 1000)]
    out = {}
    for b in sorted(set(names)):
        rows, _ = await store.page(b, 1000)
        out[b] = {e.member: e.score for e in rows}
    return out


async def keys_naming(store: Store, member: str) -> list[str]:
    """Every key of the namespace that holds ``member`` in its name, as a board or bucket row,
    in a hash field or value or in a stream entry (the detector's own state aside:
    docs/security.md)."""
    client = store.client
    found = []

    async def in_hash(key: str) -> bool:
        fields = await client.hgetall(key)
        return member in fields or any(member in v for v in fields.values())

    async for key in client.scan_iter(match=store.prefix + ":*", count=1000):
        kind = await client.type(key)
        if (
            member in key.split(":", 2)[-1]
            or (kind == "zset" and await client.zscore(key, member) is not None)
            or (kind == "hash" and ":bait:" not in key and await in_hash(key))
        ):
            found.append(key)
        elif kind == "stream":
            for _, fields in await client.xrange(key):
                if any(member in str(v) for v in fields.values()):
                    found.append(key)
                    break
    return found


def stores(namespace: Namespace, suffix: str) -> Store:
    rules = ScoringRules.load()
    return Store(namespace.store.client, namespace.store.prefix + suffix, rules, PERKS)


async def test_an_erased_member_is_gone_everywhere_and_others_stay_exact(
    namespace: Namespace,
) -> None:
    erased, reference = stores(namespace, "-e"), stores(namespace, "-r")
    first, second = log(300, 1, SUN), log(300, 2, SUN + 12 * DAY)
    for store in (erased, reference):
        apply = Applier(store)
        for item in first:
            await apply(item)  # type: ignore[arg-type]
    # gone has unlocks, their webhook jobs, a live channel
    uids = [r["id"] for r in await erased.perks_of("gone") or []]
    assert uids, "the log should unlock gone's perk"
    job = {"endpoint": "crm", "unlock": uids[0], "member": "gone"}
    kept_job = {"endpoint": "crm", "unlock": "unl_other", "member": "ann"}
    await erased.fan_out(
        [(uids[0], "gone", b'{"x":1}', [("crm:" + uids[0], job)]),
         ("unl_other", "ann", b'{"x":2}', [("crm:unl_other", kept_job)])],
        now=1.0,
    )  # fmt: skip
    epoch = await erased.feed_epoch()
    assert await keys_naming(erased, "gone")

    done = await erase([erased], erased, "gone", by="ops@example.org", reason="asked, ticket 12")
    assert done.rows > 0 and done.unlocks == len(uids) and done.webhook_jobs == 1
    assert await keys_naming(erased, "gone") == []
    assert await erased.explanation("gone") is None
    assert not await erased.member_known("gone")
    assert await erased.perks_of("gone") is None
    assert await erased.profiles(["gone"]) == {}
    assert [j["unlock"] for j in await erased.webhook_jobs("due")] == ["unl_other"]
    assert await erased.feed_epoch() != epoch
    [entry] = await erased.moderation_log()
    assert (entry["action"], entry["subject"], entry["by"], entry["reason"]) == (
        "erase", tombstone("gone"), "ops@example.org", "asked, ticket 12",
    )  # fmt: skip
    assert await erased.erased("gone") and not await erased.erased("ann")

    # new events about them (and a re-sent old one) bring nothing back
    for store in (erased, reference):
        apply = Applier(store)
        apply.offset = len(first)
        for item in second:
            await apply(item)  # type: ignore[arg-type]
    assert await keys_naming(erased, "gone") == []
    want = {
        b: {m: s for m, s in rows.items() if m != "gone"}
        for b, rows in (await every_board(reference)).items()
    }
    got = await every_board(erased)
    assert {b: r for b, r in got.items() if r} == {b: r for b, r in want.items() if r}
    stats, ref = await erased.stats(), await reference.stats()
    assert stats["erased"] > 0 and stats["total"] == ref["total"]
    assert stats["applied"] + stats["ignored"] + stats["erased"] == ref["applied"] + ref["ignored"]


async def test_a_batch_planned_before_an_erase_is_refused_and_planned_again(
    namespace: Namespace,
) -> None:
    store = stores(namespace, "")
    apply = Applier(store)
    await apply(Event("a", SUN + 1, "share", "ann", "gone"))
    await store.load_partitions([0], apply.owned)
    stale = build_plan(
        [Message(0, 1, [Event("b", SUN + 2, "share", "bob", "gone")])],
        apply.owned.store_state(),
        store.rules,
        dedupe_horizon_s=7 * DAY,
        rebase_after_s=120 * DAY,
        max_future_s=300,
    )
    await erase([store], store, "gone", by="ops")
    with pytest.raises(StoreConflict, match="erasures"):
        await (await store.send_apply(stale))
    apply.owned.forget()
    apply.offset = 1
    await apply(Event("b", SUN + 2, "share", "bob", "gone"))
    assert await store.explanation("gone") is None
    assert (await store.stats())["erased"] == 1
    # a quiet shard's watermark still follows the others' after an erase
    assert await store.raise_watermark(SUN + 10 * DAY) == SUN + 10 * DAY
    # what read the member before the erase and writes after finds the tombstone: a rank
    # judge's unlock, a deliverer's fan-out (no webhook job, no frame), a web process's watch
    from leaderboard.perks import Unlock

    late = Unlock(id="unl_late", rule="five", title="Five", member="gone", board="all",
                  rank=1, score=9.0, at=SUN, payload={})  # fmt: skip
    assert await store.record_unlocks([late]) == []
    job = ("crm:unl_late", {"endpoint": "crm", "unlock": "unl_late"})
    assert await store.fan_out([("unl_late", "gone", b"{}", [job])], now=1.0) == []
    assert await store.webhook_jobs("due") == []
    await store.feed_watch(["gone", "ann"], 60)
    assert await store.client.zrange(store.key("watched"), 0, -1) == ["ann"]
    assert await keys_naming(store, "gone") == []


async def test_an_erase_waits_for_a_running_rebuild_and_checks_what_it_logs(
    namespace: Namespace,
) -> None:
    store = stores(namespace, "")
    await Applier(store)(Event("a", SUN + 1, "share", "ann", "gone"))
    assert await store.lock_rebuild("rebuild-token", 60) is None
    with pytest.raises(StoreConflict, match="rebuild is running"):
        await erase([store], store, "gone", by="ops")
    assert await store.explanation("gone") is not None  # nothing was touched
    assert await store.lock_rebuild("rebuild-token", 60) is None  # still the rebuild's
    await store.unlock_rebuild("rebuild-token")
    bad: list[dict[str, Any]] = [
        {"member": "", "by": "ops"},
        {"member": "gone", "by": "two words"},
        {"member": "gone", "by": "ops", "reason": "\x07"},
    ]
    for kw in bad:
        with pytest.raises(ModerationError):
            await erase([store], store, **kw)
    assert await store.moderation_log() == []
    assert await store.client.get(store.key("rebuilding")) is None  # released every time


async def test_on_shards_the_member_goes_from_every_shard_and_the_merged_boards_agree(
    namespace: Namespace,
) -> None:
    from tests.leaderboard.test_store_shards import Twin, _messages

    twin = Twin(namespace.store)
    single, shards = twin.single, twin.shards
    rules = single.rules
    messages = _messages(3)
    feed = twin.feed

    half = len(messages) // 2
    await feed(messages[:half])
    assert await shards.explanation("m5") is not None
    await erase([single], single, "m5", by="ops")
    await erase(list(shards.stores), shards.own, "m5", by="ops")
    await feed(messages[half:])
    for store in shards.stores:
        assert await store.erased("m5")
    assert await shards.explanation("m5") is None and await single.explanation("m5") is None
    assert await shards.stats() == await single.stats()
    for board in (*rules.base_boards, "all:rust", "7d:go"):
        whole, size = await single.page(board, limit=100)
        merged, msize = await shards.page(board, limit=100)
        assert "m5" not in {e.member for e in whole} and msize == size, board
        assert [(e.rank, e.member) for e in merged] == [(e.rank, e.member) for e in whole], board
