"""The worker's side of a namespace kept as shards (stream/sharded.py), against real Redis: the
same consumed messages, applied by one processor to one namespace and by a processor per shard
to three shards, give the same boards read through the merge; a shard whose partitions go
quiet still follows W; a re-delivered batch changes nothing."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from broker.producer import partition_for
from leaderboard.errors import StoreConflict
from leaderboard.events import Event
from leaderboard.perks import PerkRule
from leaderboard.plan import Message
from leaderboard.settings import WorkerSettings
from leaderboard.store import Store
from leaderboard.store.shards import shard_of, shard_prefix
from stream.processor import Processor, Raw
from stream.rank_judge import RankJudge
from stream.sharded import ShardedProcessor
from tests.conftest import Namespace
from tests.leaderboard.test_store_shards import DAY, PARTITIONS, RULES, SHARDS, T0, _messages
from tests.stream.test_processor import Letters

pytestmark = pytest.mark.integration


def _raw(m: Message) -> Raw:
    events = [e for e in m.items if isinstance(e, Event)]
    return Raw(m.partition, m.offset, orjson.dumps([e.to_json() for e in events]), events[-1].ts)


async def test_a_processor_per_shard_makes_the_boards_of_one_namespace(
    namespace: Namespace,
) -> None:
    settings = WorkerSettings(decay_rebase_after_s=3 * DAY)
    single = Processor(namespace.store, RULES, settings, Letters())
    stores = [
        Store.connect(namespace.settings.redis.url, shard_prefix(namespace.store.prefix, k), RULES)
        for k in range(SHARDS)
    ]
    letters = Letters()
    # (a shard behind W is raised whenever W crossed a window bucket's edge: the boards agree
    # after every batch, not only in the end)
    sharded = ShardedProcessor(stores, lambda s: Processor(s, RULES, settings, letters))
    try:
        raws = [_raw(m) for m in _messages(3)]
        for n, i in enumerate(range(0, len(raws), 7)):
            await single.process(raws[i : i + 7])
            await sharded.process(raws[i : i + 7])
            if n % 10 == 0:
                for board in ("1h", "24h", "decayed"):
                    whole, size = await namespace.store.page(board, limit=100)
                    merged, msize = await sharded.shards.page(board, limit=100)
                    assert (msize, [e.member for e in merged]) == (
                        size,
                        [e.member for e in whole],
                    ), (board, i)
        # a re-delivered batch (a worker restarted before committing its offsets)
        await sharded.process(raws[-20:])
        # two days later, a burst on one partition only: the quiet shards' windows must empty
        # as the one namespace's do, with no event of their own
        late = max(r.record_ts or 0.0 for r in raws) + 2 * DAY
        p = raws[0].partition
        targets = [
            m for m in (f"m{j}" for j in range(80)) if partition_for(m.encode(), PARTITIONS) == p
        ]
        burst = Raw(
            p,
            10_000,
            orjson.dumps(
                [
                    {"id": f"late{i}", "ts": late + i, "kind": "share", "actor": "x", "target": t}
                    for i, t in enumerate(targets[:40])
                ]
            ),
            late + 40,
        )
        await single.process([burst])
        await sharded.process([burst])
        assert (await sharded.shards.clock())[0] == (await namespace.store.clock())[0]
        assert await sharded.shards.stats() == await namespace.store.stats()
        boards = [*RULES.base_boards, "all:rust", "7d:go", "decayed:rust"]
        for board in boards:
            whole, size = await namespace.store.page(board, limit=200)
            merged, msize = await sharded.shards.page(board, limit=200)
            assert msize == size, board
            assert [(e.rank, e.member) for e in merged] == [(e.rank, e.member) for e in whole]
            assert [e.score for e in merged] == pytest.approx([e.score for e in whole], rel=1e-9)
        # the windows did cut, on the quiet shards too
        assert (await namespace.store.page("1h"))[1] == (await sharded.shards.page("1h"))[1]
        assert (await namespace.store.page("1h"))[1] < (await namespace.store.page("all"))[1]
        assert letters.letters == []
        assert {shard_of(q, SHARDS) for q in range(PARTITIONS)} == set(range(SHARDS))
        # a quiet shard's W went back (a fail-over to a replica that missed its raise): the
        # next batch, though it crosses no bucket edge, raises it again (each shard's W is read
        # from Redis per batch, not remembered)
        quiet = next(k for k in range(SHARDS) if k != shard_of(p, SHARDS))
        w_now = (await sharded.shards.clock())[0]
        assert w_now is not None
        back = stores[quiet]
        await back.client.set(back.key("wm"), repr(w_now - 3600))
        again = Raw(
            p,
            10_001,
            orjson.dumps(
                {"id": "again", "ts": w_now, "kind": "like", "actor": "y", "target": targets[0]}
            ),
            w_now,
        )
        await sharded.process([again])
        assert (await back.clock())[0] == w_now

        # a retired shard (the rebuild's, once it switched: the live workers' from then on)
        # takes nothing more, neither its own messages nor a raise to W
        sharded.retire(quiet)
        await back.client.set(back.key("wm"), repr(w_now - 3600))
        before = (await back.fences(), await back.stats())
        q = next(q for q in range(PARTITIONS) if shard_of(q, SHARDS) == quiet)
        theirs = next(
            m for m in (f"m{j}" for j in range(400)) if partition_for(m.encode(), PARTITIONS) == q
        )
        later = w_now + 7200

        def share(part: int, offset: int, eid: str, target: str) -> Raw:
            event = {"id": eid, "ts": later, "kind": "share", "actor": "z", "target": target}
            return Raw(part, offset, orjson.dumps(event), later)

        await sharded.process([share(q, 20_000, "r1", theirs), share(p, 10_002, "r2", targets[1])])
        assert (await back.fences(), await back.stats()) == before
        assert (await back.clock())[0] == w_now - 3600
        assert (await stores[shard_of(p, SHARDS)].clock())[0] == later
    finally:
        for s in stores:
            await s.close()


async def test_rank_rules_are_judged_on_the_merged_board(namespace: Namespace) -> None:
    """A shard's best member is not the board's: the rank rules look at the merged board, the
    tie policy holds across shards, and a re-delivered batch unlocks nothing twice."""
    stores = [
        Store.connect(namespace.settings.redis.url, shard_prefix(namespace.store.prefix, k), RULES)
        for k in range(SHARDS)
    ]
    first = PerkRule("first", "Number one", "all", 1, None, {"crown": True})
    top2 = PerkRule("top2", "Top two", "all", 2, None, {}, max_ties=0)
    letters = Letters()
    sharded = ShardedProcessor(
        stores, lambda s: Processor(s, RULES, WorkerSettings(), letters), [first, top2]
    )
    sharded.partitions = PARTITIONS

    def on(shard: int) -> str:
        return next(
            m
            for m in (f"u{j}" for j in range(1000))
            if shard_of(partition_for(m.encode(), PARTITIONS), SHARDS) == shard
        )

    a, b, c = on(0), on(1), on(2)
    offsets: dict[int, int] = {}
    n = 0

    def shares(target: str, count: int) -> list[Raw]:
        nonlocal n
        part = partition_for(target.encode(), PARTITIONS)
        out = []
        for _ in range(count):
            n += 1
            offsets[part] = offsets.get(part, -1) + 1
            e = {"id": f"e{n}", "ts": T0 + n, "kind": "share", "actor": f"x{n}", "target": target}
            out.append(Raw(part, offsets[part], orjson.dumps(e), T0 + n))
        return out

    async def holders(rule: str) -> dict[str, dict[str, Any]]:
        out = {}
        for m in (a, b, c):
            for u in await sharded.shards.perks_of(m) or []:
                if u["rule"] == rule:
                    out[m] = u
        return out

    try:
        # a leads the board; b leads shard 1's slice and c shard 2's, but neither is number one
        await sharded.process([*shares(a, 3), *shares(b, 2), *shares(c, 1)])
        assert set(await holders("first")) == {a}
        assert set(await holders("top2")) == {a, b}
        got = (await holders("first"))[a]
        assert (got["rank"], got["payload"], got["at"]) == (1, {"crown": True}, T0 + n)
        assert got["score"] == (await sharded.shards.standing("all", a, 0)).score  # type: ignore[union-attr]
        # b and c draw level with a: a tie of three at place 1 fits "first" (max_ties 10), and
        # does not fit "top2" (max_ties 0): none of it unlocks there, and the tie is recorded
        batch = [*shares(b, 1), *shares(c, 2)]
        await sharded.process(batch)
        assert set(await holders("first")) == {a, b, c}
        assert {u["rank"] for u in (await holders("first")).values()} == {1}
        assert set(await holders("top2")) == {a, b}
        ties = (await sharded.shards.perk_ties())["top2"]
        assert (ties["tied"], ties["rank"], ties["cap"]) == (3, 1, 2)
        # the batch again (a worker restarted before committing), judged by a new worker's judge
        # (which has seen no mark yet, so it looks): nothing is unlocked twice
        before = await sharded.shards.outbox_recent(100)
        await sharded.process(batch)
        fresh = RankJudge(sharded.shards, [first, top2])
        assert await fresh.check(T0 + n) == []
        assert await sharded.shards.outbox_recent(100) == before
        ids = [u["id"] for u in before]
        assert len(ids) == len(set(ids)) == 5
        assert letters.letters == []
    finally:
        for s in stores:
            await s.close()


async def test_the_community_cap_is_the_namespaces_not_each_shards(namespace: Namespace) -> None:
    """With a cap of two communities over three shards, the third community has a board on no
    shard, and one admitted first on one shard has its board on every shard."""
    settings = WorkerSettings(max_communities=2)
    stores = [
        Store.connect(namespace.settings.redis.url, shard_prefix(namespace.store.prefix, k), RULES)
        for k in range(SHARDS)
    ]
    letters = Letters()
    sharded = ShardedProcessor(
        stores, lambda s: Processor(s, RULES, settings, letters), gate=namespace.store
    )
    sharded.partitions = PARTITIONS
    members = [
        next(
            m
            for m in (f"u{j}" for j in range(1000))
            if shard_of(partition_for(m.encode(), PARTITIONS), SHARDS) == k
        )
        for k in range(SHARDS)
    ]
    offsets: dict[int, int] = {}

    def share(n: int, target: str, community: str) -> Raw:
        part = partition_for(target.encode(), PARTITIONS)
        offsets[part] = offsets.get(part, -1) + 1
        e = {
            "id": f"c{n}", "ts": T0 + n, "kind": "share", "actor": f"x{n}", "target": target,
            "communities": [community],
        }  # fmt: skip
        return Raw(part, offsets[part], orjson.dumps(e), T0 + n)

    try:
        a, b, c = members
        await sharded.process([share(1, a, "rust")])  # shard 0 admits rust
        await sharded.process([share(2, b, "go")])  # shard 1 admits go: the cap is full
        # shard 2 had admitted neither: on its own it would admit zig and keep rust off
        await sharded.process([share(3, c, "zig"), share(4, c, "rust")])
        boards: set[str] = set()
        cursor = 0
        while True:  # (the board list comes a shard at a time)
            listed, cursor = await sharded.shards.boards(cursor, limit=1000)
            boards |= {b for b, _ in listed}
            if not cursor:
                break
        assert {b for b in boards if b.startswith("all:")} == {"all:rust", "all:go"}
        rust, size = await sharded.shards.page("all:rust")
        assert size == 2 and {e.member for e in rust} == {a, c}
        assert await namespace.store.communities() == {"rust", "go"}
        assert letters.letters == []
    finally:
        for s in stores:
            await s.close()


async def test_a_raise_that_met_a_conflict_is_tried_again_at_once(
    namespace: Namespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another worker moved a quiet shard's landmark between the raise's read and its call:
    the raise reads again at once, so the shard's windows do not wait for a next batch that
    may never come."""
    stores = [
        Store.connect(namespace.settings.redis.url, shard_prefix(namespace.store.prefix, k), RULES)
        for k in range(SHARDS)
    ]
    sharded = ShardedProcessor(stores, lambda s: Processor(s, RULES, WorkerSettings(), Letters()))
    sharded.partitions = PARTITIONS
    target = next(
        m
        for m in (f"u{j}" for j in range(1000))
        if shard_of(partition_for(m.encode(), PARTITIONS), SHARDS) == 0
    )
    part = partition_for(target.encode(), PARTITIONS)
    quiet = stores[1]
    real = quiet.raise_watermark
    met: list[float] = []

    async def conflict_once(floor: float, max_rows: int = 0) -> float | None:
        if not met:
            met.append(floor)
            raise StoreConflict("landmark moved")
        return await real(floor, max_rows)

    monkeypatch.setattr(quiet, "raise_watermark", conflict_once)
    try:
        e = {"id": "r", "ts": T0, "kind": "share", "actor": "x", "target": target}
        await sharded.process([Raw(part, 0, orjson.dumps(e), T0)])
        assert met == [T0]
        assert (await quiet.clock())[0] == T0
    finally:
        for s in stores:
            await s.close()
