"""The worker's side of a namespace kept as shards (stream/sharded.py), against real Redis: the
same consumed messages, applied by one processor to one namespace and by a processor per shard
to three shards, give the same boards read through the merge; a shard whose partitions go
quiet still follows W; a re-delivered batch changes nothing."""

from __future__ import annotations

import orjson
import pytest

from broker.producer import partition_for
from leaderboard.events import Event
from leaderboard.plan import Message
from leaderboard.settings import WorkerSettings
from leaderboard.store import Store
from leaderboard.store.shards import shard_of, shard_prefix
from stream.processor import Processor, Raw
from stream.sharded import ShardedProcessor
from tests.conftest import Namespace
from tests.leaderboard.test_store_shards import DAY, PARTITIONS, RULES, SHARDS, _messages
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
