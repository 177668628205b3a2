"""A namespace kept as shards (leaderboard/store/shards.py) against real Redis: the same messages
applied to one namespace, and to three shard namespaces by partition with the largest W as a
floor, give the same boards, read through the merge."""

from __future__ import annotations

import random

import pytest

from broker.producer import partition_for
from leaderboard.errors import ShardCountMismatch
from leaderboard.events import Event
from leaderboard.owned import OwnedState
from leaderboard.plan import Message, build_plan
from leaderboard.scoring import ScoringRules
from leaderboard.store import Store
from leaderboard.store.shards import Shards, check_shards, shard_of, shard_prefix
from tests.conftest import Namespace

RULES = ScoringRules.load()
DAY = 86400
T0 = 1_341_100_800
PARTITIONS = 6
SHARDS = 3

pytestmark = pytest.mark.integration


def _messages(seed: int) -> list[Message]:
    """Envelopes of one partition each, in the order a worker might consume them: ten days of
    interactions among 80 members, some in communities, a few hours' bursts and quiet days."""
    rng = random.Random(seed)
    members = [f"m{i}" for i in range(80)]
    kinds = [k for k, w in RULES.weights_mp.items() if w > 0 and k not in ("comment", "reply")]
    by_partition: dict[int, list[Event]] = {}
    ts = float(T0)
    for i in range(3000):
        ts += rng.choice((1, 5, 30, 600, 3600, 6 * 3600)) if rng.random() < 0.2 else 7
        actor, target = rng.sample(members, 2)
        comm = (rng.choice(("rust", "go")),) if rng.random() < 0.3 else ()
        ev = Event(f"e{i}", float(int(ts)), rng.choice(kinds), actor, target, communities=comm)
        by_partition.setdefault(partition_for(target.encode(), PARTITIONS), []).append(ev)
    out: list[Message] = []
    offsets = dict.fromkeys(by_partition, 0)
    cursors = dict.fromkeys(by_partition, 0)
    while any(cursors[p] < len(evs) for p, evs in by_partition.items()):
        for p in sorted(by_partition, key=lambda _: rng.random()):
            evs = by_partition[p]
            n = rng.randint(1, 40)
            if cursors[p] < len(evs):
                out.append(Message(p, offsets[p], evs[cursors[p] : cursors[p] + n]))
                cursors[p] += n
                offsets[p] += 1
    return out


def _plan(owned: OwnedState, batch: list[Message], floor: float | None = None):  # type: ignore[no-untyped-def]
    return build_plan(
        batch,
        owned.store_state(),
        RULES,
        dedupe_horizon_s=7 * DAY,
        rebase_after_s=3 * DAY,  # (the decay landmark moves, at different times per shard)
        max_future_s=300,
        watermark_floor=floor,
    )


async def _apply(
    store: Store, owned: OwnedState, batch: list[Message], floor: float | None
) -> None:
    await store.load_partitions(sorted({m.partition for m in batch}), owned)
    await (await store.send_apply(_plan(owned, batch, floor)))
    owned.forget()


@pytest.mark.parametrize("seed", [1, 2])
async def test_boards_of_three_shards_read_merged_are_the_boards_of_one_namespace(
    namespace: Namespace, seed: int
) -> None:
    single = namespace.store
    shards = Shards(
        [
            Store.connect(namespace.settings.redis.url, shard_prefix(single.prefix, k), RULES)
            for k in range(SHARDS)
        ],
        partitions=PARTITIONS,
    )
    try:
        messages = _messages(seed)
        one = OwnedState()
        owned = [OwnedState() for _ in range(SHARDS)]
        for i in range(0, len(messages), 5):
            batch = messages[i : i + 5]
            await _apply(single, one, batch, None)
            # each shard gets its partitions' messages, with the largest W of the shards as floor
            floor, _ = await shards.clock()
            for k in range(SHARDS):
                mine = [m for m in batch if shard_of(m.partition, SHARDS) == k]
                if mine:
                    await _apply(shards.stores[k], owned[k], mine, floor)
        # then two days later, a burst on one partition only: the other shards' windows must
        # empty as the one namespace's do, with no event of their own
        late = max(m.items[-1].ts for m in messages) + 2 * DAY  # type: ignore[union-attr]
        p = messages[0].partition
        targets = [
            m for m in (f"m{j}" for j in range(80)) if partition_for(m.encode(), PARTITIONS) == p
        ]
        burst = [
            Message(
                p,
                10_000,
                [Event(f"late{i}", late + i, "share", "x", m) for i, m in enumerate(targets[:3])],
            )
        ]
        await _apply(single, one, burst, None)
        k = shard_of(p, SHARDS)
        floor, _ = await shards.clock()
        await _apply(shards.stores[k], owned[k], burst, floor)
        # a shard whose partitions went quiet still follows W
        floor, _ = await shards.clock()
        assert floor == (await single.clock())[0]
        assert floor is not None
        for store in shards.stores:
            assert await store.raise_watermark(floor) == floor
        assert await shards.stats() == await single.stats()
        boards = [*RULES.base_boards, "all:rust", "7d:go", "decayed:rust"]
        for board in boards:
            whole, size = await single.page(board, limit=100)
            assert size == await shards.count(board), board
            for offset, limit in ((0, 100), (7, 13), (40, 5)):
                merged, msize = await shards.page(board, limit=limit, offset=offset)
                assert msize == size
                want = whole[offset : offset + limit]
                assert [(e.rank, e.member) for e in merged] == [(e.rank, e.member) for e in want], (
                    board,
                    offset,
                )
                assert [e.score for e in merged] == pytest.approx([e.score for e in want], rel=1e-9)
        # a member's standing: rank, percentile and neighbours, which come from other shards
        # too (ties included: many members share a score on the window boards)
        for board in boards:
            whole, _ = await single.page(board, limit=100)
            for e in whole[:: max(1, len(whole) // 9)] + whole[-2:]:
                for around in (0, 1, 3):
                    ref = await single.standing(board, e.member, around)
                    got = await shards.standing(board, e.member, around)
                    assert ref is not None and got is not None
                    assert (got.rank, got.members, got.percentile) == (
                        ref.rank,
                        ref.members,
                        ref.percentile,
                    ), (board, e.member)
                    assert [(n.rank, n.member) for n in got.around] == [
                        (n.rank, n.member) for n in ref.around
                    ], (board, e.member, around)
                    assert got.score == pytest.approx(ref.score, rel=1e-9)
            assert await shards.standing(board, "nobody") is None
        # the board list, paged a few at a time: every board once, sizes merged
        want_list, _ = await single.boards(0, 1000)
        got_list: list[tuple[str, int]] = []
        cursor, pages = 0, 0
        while True:
            page, cursor = await shards.boards(cursor, 2)
            got_list += page
            pages += 1
            if cursor == 0:
                break
        assert sorted(got_list) == sorted(want_list) and pages > 2
        assert [b for b, _ in got_list[:8]] == list(RULES.base_boards)
        # the export: the whole merged board streamed, a few rows of each shard at a time
        for board in boards:
            whole_export = [x async for x in single.export(board)]
            merged_export = [x async for x in shards.export(board, chunk=7)]
            assert [(r, m) for r, m, _ in merged_export] == [(r, m) for r, m, _ in whole_export]
            if board.startswith("decayed"):
                assert [float(t) for _, _, t in merged_export] == pytest.approx(
                    [float(t) for _, _, t in whole_export], rel=1e-9
                )
            else:
                assert [t for _, _, t in merged_export] == [t for _, _, t in whole_export], board
        # a peer board (cohort): a third of the members and one who is not on the board, ranked
        # among themselves in the board's own order, with their ranks on the whole board
        for board in boards:
            whole, size = await single.page(board, limit=1000)
            asked = [*(e.member for e in reversed(whole[::3])), "nobody"]
            picked = [e for e in whole if e.member in asked]
            want = [
                (1 + sum(1 for o in picked if o.score > e.score), e.member, e.rank) for e in picked
            ]
            for store in (single, shards):
                got, gsize, missing = await store.cohort(board, asked)
                assert gsize == size and missing == ["nobody"], board
                assert [(c.rank, c.member, c.global_rank) for c in got] == want, (board, store)
                assert [c.score for c in got] == pytest.approx([e.score for e in picked], rel=1e-9)
        # the windows did cut: a one-hour board is not the all-time board
        assert (await single.page("1h", limit=100))[1] < (await single.page("all", limit=100))[1]
    finally:
        for s in shards.stores:
            await s.close()


async def test_a_namespace_holding_boards_in_one_piece_is_not_claimed_for_shards(
    namespace: Namespace,
) -> None:
    store = namespace.store
    assert await store.shard_count() is None  # (nothing applied: any count will do)
    await check_shards(store, 3, claim=False)
    await _apply(store, OwnedState(), _messages(3)[:5], None)
    # a worker on shards finds boards in one piece: the count stays one, and it refuses
    assert await store.shard_count() == 1
    assert await store.claim_shards(3) == 1
    with pytest.raises(ShardCountMismatch, match="kept as 1 shard"):
        await check_shards(store, 3)


async def test_the_first_worker_on_shards_claims_the_count(namespace: Namespace) -> None:
    store = namespace.store
    await check_shards(store, 3)
    assert await store.shard_count() == 3
    await check_shards(store, 3)  # (the same count again: accepted)
    for other in (1, 2):
        with pytest.raises(ShardCountMismatch, match="KUDOS_REDIS_SHARDS=3 for every process"):
            await check_shards(store, other)


async def test_a_worker_on_one_piece_claims_it_before_its_first_apply(namespace: Namespace) -> None:
    # (else a worker on shards started meanwhile would claim shards, and both would run)
    store = namespace.store
    await check_shards(store, 1)
    assert await store.shard_count() == 1
    with pytest.raises(ShardCountMismatch, match="kept as 1 shard"):
        await check_shards(store, 3)


class Twin:
    """One namespace and the same namespace kept as shards (with its own store for the feed
    and the audit log), fed the same messages as a worker on each would apply them."""

    def __init__(self, single: Store, rules: ScoringRules = RULES) -> None:
        client, prefix = single.client, single.prefix
        self.single = single
        self.shards = Shards(
            [Store(client, shard_prefix(prefix, k), rules) for k in range(SHARDS)],
            partitions=PARTITIONS,
            base=Store(client, prefix + "-own", rules),
        )
        self._one, self._owned = OwnedState(), [OwnedState() for _ in range(SHARDS)]

    async def feed(self, messages: list[Message]) -> None:
        for i in range(0, len(messages), 5):
            batch = messages[i : i + 5]
            await _apply(self.single, self._one, batch, None)
            floor, _ = await self.shards.clock()
            for k in range(SHARDS):
                mine = [m for m in batch if shard_of(m.partition, SHARDS) == k]
                if mine:
                    await _apply(self.shards.stores[k], self._owned[k], mine, floor)
