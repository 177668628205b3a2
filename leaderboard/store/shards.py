"""Board reads of a namespace kept as shards: one :class:`Store` per shard, read and merged.

A shard *k* of S is a whole namespace, ``<prefix>|s<k>`` (on a Redis Cluster its hash tag, so a
shard is one slot), holding the partitions p with ``p mod S == k`` and so every member keyed to
them: a board is the union of its shards' slices, disjoint by member (docs/scaling.md, "One
namespace over many slots"). Each shard is applied to as a namespace of its own, with the largest W of
all shards as a floor (``build_plan(watermark_floor=…)``, :meth:`Store.raise_watermark`), so that
its windows are cut where one namespace's would be. Here the reads: each shard's slice is read
with its own atomic script, and :mod:`leaderboard.merge` merges them.

The worker's side is :mod:`stream.sharded`; the live feed and the web's other reads are
:mod:`.shards_live`. Not built yet (rank-rule perks, the rebuild on shards): see docs/scaling.md.
A merged read is not atomic across shards: an apply between two slices' reads shows in one of
them only.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Sequence
from typing import Any

from redis.crc import key_slot

from broker.producer import partition_for
from leaderboard.errors import PageTooDeep, ShardCountMismatch, StoreConflict
from leaderboard.explain import Explanation, Place
from leaderboard.merge import Window, merge_around, merge_page, merge_stream, merged_size, rebase
from leaderboard.perks import PerkRule
from leaderboard.ranking import CohortEntry, Entry, percentile, rank_cohort
from leaderboard.scoring import DECAYED, ScoringRules
from leaderboard.settings import RedisSettings
from leaderboard.store import Standing, Store
from leaderboard.store.base import clock_of
from leaderboard.store.boards import export_lines
from leaderboard.store.keys import namespace_prefix
from leaderboard.store.shards_live import ShardsLiveMixin

#: The deepest row a page of a board kept as shards may reach (offset + limit): each shard sends
#: its first offset + limit rows, so a deeper page would cost every shard's whole board.
MAX_MERGED_DEPTH = 10_000
#: Slots of a Redis Cluster.
CLUSTER_SLOTS = 16384
#: A standing read again when a shard's landmark moved between its two calls.
STANDING_RETRIES = 3


async def _nothing() -> None:
    """A shard with nothing to count (an awaitable for the gather)."""
    return None


def shard_prefix(prefix: str, shard: int, shards: int = 0) -> str:
    """The namespace prefix of shard ``shard`` of namespace ``prefix``: ``<prefix>|s<k>``.

    With ``shards`` (on a Redis Cluster, where the prefix is the shard's hash tag), the first
    ``<prefix>|s<k>.<n>`` whose slot lies in the k-th of ``shards`` equal ranges of the slot
    space: a cluster whose primaries serve equal contiguous ranges (``kudos up --redis-cluster``,
    ``redis-cli --cluster create``) then serves the shards evenly, as far as their counts allow,
    where tags left to chance put two of three shards on one primary 7 times in 9. About
    ``shards`` CRC16s per shard, the same names in every process.
    """
    base = f"{prefix}|s{shard}"
    if shards <= 1:
        return base
    lo, hi = shard * CLUSTER_SLOTS // shards, (shard + 1) * CLUSTER_SLOTS // shards
    n = 0
    while not lo <= key_slot(f"{base}.{n}".encode()) < hi:
        n += 1
    return f"{base}.{n}"


def shard_of(partition: int, shards: int) -> int:
    """The shard holding partition ``partition`` (partitions are dealt round the shards)."""
    return partition % shards


def connect_shards(
    redis: RedisSettings,
    partitions: int,
    rules: ScoringRules,
    perk_rules: Sequence[PerkRule] = (),
    scoring_id: str | None = None,
    *,
    base: Store | None = None,
) -> Shards:
    """The ``redis.shards`` shard stores of namespace ``redis.prefix`` and its own store (the
    live feed's; ``base`` when the caller has it connected already), on one client."""
    if base is None:
        base = Store.connect(redis.url, redis.prefix, rules, cluster=redis.cluster)
    stores = [
        Store(
            base.client,
            namespace_prefix(
                shard_prefix(redis.prefix, k, redis.shards if redis.cluster else 0), redis.cluster
            ),
            rules,
            perk_rules,
            scoring_id,
        )
        for k in range(redis.shards)
    ]
    return Shards(stores, partitions, base)


async def check_shards(store: Store, shards: int, *, claim: bool = True) -> None:
    """Refuse to run with ``shards`` (``KUDOS_REDIS_SHARDS``) on a namespace kept as another
    number; ``store`` is the namespace's own (base prefix). With ``claim`` (the workers), the
    first process on shards claims the count; readers only compare.

    Raises:
        ShardCountMismatch: the namespace is kept as another number of shards.
    """
    kept = await (store.claim_shards(shards) if claim else store.shard_count())
    if kept is not None and kept != shards:
        raise ShardCountMismatch(kept, shards)


class Shards(ShardsLiveMixin):
    """The reads of one namespace over its shards' stores (in shard order); ``partitions``,
    the topic's partition count, finds a member's shard (the reads of one member need it);
    ``base``, the namespace's own store, holds the live feed (:mod:`.shards_live`)."""

    def __init__(
        self, stores: Sequence[Store], partitions: int | None = None, base: Store | None = None
    ) -> None:
        if not stores:
            raise ValueError("a sharded namespace needs at least one shard")
        self.stores = tuple(stores)
        self.partitions = partitions
        self.base = base
        self.rules = self.stores[0].rules

    def store_of(self, member: str) -> Store:
        """The shard holding ``member``'s points: the one of its partition (events are keyed by
        target, and a worker on shards dead-letters any that is not, ``wrong_partition``)."""
        if self.partitions is None:
            raise ValueError("a member's shard needs the topic's partition count")
        p = partition_for(member.encode(), self.partitions)
        return self.stores[shard_of(p, len(self.stores))]

    async def fences(self) -> dict[int, int]:
        """Every shard's partition fences (each partition is in one shard only)."""
        out: dict[int, int] = {}
        for part in await asyncio.gather(*(s.fences() for s in self.stores)):
            out.update(part)
        return out

    async def close(self) -> None:
        stores = [*self.stores, *([self.base] if self.base is not None else [])]
        for client in {id(s.client): s.client for s in stores}.values():
            await client.aclose()

    async def explanation(self, member: str) -> Explanation | None:
        """The member's explain view from its shard, with its places on the merged boards (rank,
        size, percentile; decayed points at the namespace's W)."""
        got = await self.store_of(member).explanation(member)
        if got is None:
            return None
        places = await asyncio.gather(*(self.standing(b, member, 0) for b in got.boards))
        boards = {
            b: Place(st.rank, st.score, st.members, st.percentile)
            for b, st in zip(got.boards, places, strict=True)
            if st is not None
        }
        as_of, _ = await self.clock()
        return dataclasses.replace(got, boards=boards, as_of=as_of)

    async def profiles(self, members: list[str]) -> dict[str, dict[str, str]]:
        """Display names and avatars, each from its member's shard."""
        by_store: dict[int, list[str]] = {}
        for m in members:
            by_store.setdefault(self.stores.index(self.store_of(m)), []).append(m)
        got = await asyncio.gather(*(self.stores[k].profiles(ms) for k, ms in by_store.items()))
        return {m: p for part in got for m, p in part.items()}

    async def perks_of(self, member: str) -> list[dict[str, Any]] | None:
        """The member's unlocks (from its shard)."""
        return await self.store_of(member).perks_of(member)

    async def clock(self) -> tuple[float | None, int | None]:
        """(W, L): the largest W of the shards (the namespace's), and the landmark of the shard
        that has it."""
        clocks = await asyncio.gather(*(s.clock() for s in self.stores))
        known = [c for c in clocks if c[0] is not None]
        return max(known, key=lambda c: c[0] or 0.0) if known else (None, None)

    async def count(self, board: str) -> int:
        return merged_size(await asyncio.gather(*(s.count(board) for s in self.stores)))

    async def stats(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for part in await asyncio.gather(*(s.stats() for s in self.stores)):
            for k, v in part.items():
                total[k] = total.get(k, 0) + v
        return total

    async def page(self, board: str, limit: int = 10, offset: int = 0) -> tuple[list[Entry], int]:
        """One page of the merged board, best first, with competition ranks; and its size.
        Each shard sends its first ``offset + limit`` rows (deep pages cost that per shard).

        Raises:
            UnknownBoard: ``board`` is not a valid board id.
            PageTooDeep: ``offset + limit`` is past :data:`MAX_MERGED_DEPTH`.
        """
        if offset + limit > MAX_MERGED_DEPTH:
            raise PageTooDeep(
                f"offset {offset} + limit {limit} is past row {MAX_MERGED_DEPTH:,}, the deepest "
                "a page of a board kept as shards reaches (KUDOS_REDIS_SHARDS): read the whole "
                "board with kudos export"
            )
        stop = offset + limit - 1
        reads = await asyncio.gather(*(s._read(board, "page", 0, stop) for s in self.stores))
        clocks = [clock_of(r[3], r[4]) for r in reads if r is not None]
        known = [w for w, _ in clocks if w is not None]
        # points at one W, the namespace's (a decayed value shrinks as W grows)
        common = max(known) if known else None
        slices = []
        size = 0
        for store, res in zip(self.stores, reads, strict=True):
            assert res is not None
            flat = res[0]
            _, lm = clock_of(res[3], res[4])
            at = (common, lm) if board.partition(":")[0] == DECAYED else (None, None)
            slices.append(
                [
                    (m, store._to_points(board, float(s), at))
                    for m, s in zip(flat[0::2], flat[1::2], strict=True)
                ]
            )
            size += int(res[2])
        return merge_page(slices, offset, limit), size

    async def standing(self, board: str, member: str, around: int = 2) -> Standing | None:
        """A member's rank, points, percentile and the ``around`` members above and below on the
        merged board (:func:`leaderboard.merge.merge_around`); None if absent. Two round trips:
        the member's own shard, then every other one at the member's score.

        Raises:
            UnknownBoard: ``board`` is not a valid board id.
            StoreConflict: shards' landmarks kept moving under the read.
        """
        own = self.store_of(member)
        decayed = board.partition(":")[0] == DECAYED
        fetch = max(around, 1)  # (merge_around needs a row before the place, when there is one)
        for _ in range(STANDING_RETRIES):
            first, clocks = await asyncio.gather(
                own._read(board, "member", member, fetch),
                asyncio.gather(*(s.clock() for s in self.stores)),
            )
            if first is None:
                return None
            stored, (_, own_lm) = first[5], clock_of(first[3], first[4])
            asked: list[int | None] = []
            calls = []
            for s, (_, lm) in zip(self.stores, clocks, strict=True):
                if s is own:
                    continue
                at = stored  # (milli-points: the same units on every shard)
                if decayed and own_lm is not None and lm is not None:
                    # a decayed value is stored against its shard's landmark
                    at = repr(rebase(float(stored), own_lm, lm, self.rules.half_life_s))
                asked.append(lm)
                calls.append(s._read(board, "near", at, member, fetch))
            got = [r for r in await asyncio.gather(*calls) if r is not None]  # ('near': never None)
            moved = (clock_of(r[3], r[4])[1] != lm for r, lm in zip(got, asked, strict=True))
            if decayed and any(moved):
                continue  # (a landmark moved since it was read: the place asked for is off)
            it = iter(got)
            reads = [first if s is own else next(it) for s in self.stores]
            return self._standing(board, member, around, reads)
        raise StoreConflict("shards' decay landmarks kept moving under a standing read")

    async def cohort(
        self, board: str, members: Sequence[str]
    ) -> tuple[list[CohortEntry], int, list[str]]:
        """A peer board on the merged board, as :meth:`Store.cohort` gives one namespace's:
        each member's score and rank from its own shard, then every other shard's count of
        rows above each of those scores (restated on its own decay landmark), two rounds of
        one call per shard; read again if a landmark moved in between.

        Raises:
            UnknownBoard: ``board`` is not a valid board id.
            StoreConflict: shards' landmarks kept moving under the read.
        """
        n = len(self.stores)
        mine: list[list[str]] = [[] for _ in range(n)]
        for m in members:
            mine[self.stores.index(self.store_of(m))].append(m)
        decayed = board.partition(":")[0] == DECAYED
        for _ in range(STANDING_RETRIES):
            first = await asyncio.gather(
                *(s.cohort_read(board, mine[k]) for k, s in enumerate(self.stores))
            )
            clocks = [clock_of(r[4], r[5]) for r in first]
            known = [w for w, _ in clocks if w is not None]
            common = max(known) if known else None
            # (member, its shard, its stored score, its rank in its own shard)
            own = [
                (m, k, s, int(r))
                for k, res in enumerate(first)
                for m, s, r in zip(mine[k], res[0], res[1], strict=True)
                if s != ""
            ]
            asked: list[list[int]] = []
            calls = []
            for j, store in enumerate(self.stores):
                lm = clocks[j][1]
                at: list[str] = []
                which: list[int] = []
                for i, (_, k, stored, _) in enumerate(own):
                    if k == j:
                        continue
                    own_lm = clocks[k][1]
                    if decayed and own_lm is not None and lm is not None:
                        at.append(repr(rebase(float(stored), own_lm, lm, self.rules.half_life_s)))
                    else:
                        at.append(stored)  # (milli-points: the same units on every shard)
                    which.append(i)
                asked.append(which)
                calls.append(store.cohort_read(board, [], at) if at else _nothing())
            second = await asyncio.gather(*calls)
            moved = any(
                r is not None and clock_of(r[4], r[5])[1] != clocks[j][1]
                for j, r in enumerate(second)
            )
            if decayed and moved:
                continue  # (a landmark moved since it was read: the counts asked for are off)
            above = [r - 1 for *_, r in own]
            for which, res in zip(asked, second, strict=True):
                if res is not None:
                    for i, c in zip(which, res[2], strict=True):
                        above[i] += int(c)
            found = [
                (m, self.stores[k]._to_points(board, float(s), (common, clocks[k][1])), a + 1)
                for (m, k, s, _), a in zip(own, above, strict=True)
            ]
            on = {m for m, *_ in own}
            size = sum(int(r[3]) for r in first)
            return rank_cohort(found), size, [m for m in members if m not in on]
        raise StoreConflict("shards' decay landmarks kept moving under a cohort read")

    def _standing(
        self, board: str, member: str, around: int, reads: Sequence[list[Any]]
    ) -> Standing | None:
        known = [w for r in reads if (w := clock_of(r[3], r[4])[0]) is not None]
        common = max(known) if known else None
        decayed = board.partition(":")[0] == DECAYED
        windows = []
        size = 0
        for store, res in zip(self.stores, reads, strict=True):
            flat = res[0]
            at = (common, clock_of(res[3], res[4])[1]) if decayed else (None, None)
            rows = [
                (m, store._to_points(board, float(v), at))
                for m, v in zip(flat[0::2], flat[1::2], strict=True)
            ]
            start = int(res[7])
            windows.append(Window(start, rows, int(res[1]) - 1 if rows else 0))
            size += int(res[2])
        found = merge_around(member, windows, around)
        if found is None:
            return None
        rank, _, shown = found
        score = next(e.score for e in shown if e.member == member)
        return Standing(board, member, rank, score, size, percentile(rank, size), shown)

    async def export(self, board: str, chunk: int = 10_000) -> AsyncIterator[tuple[int, str, str]]:
        """The whole merged board as (rank, member, score text), best first, as
        :meth:`Store.export` prints one namespace's: a streaming merge of the shards' slices,
        each read ``chunk`` rows at a time (decayed points at the namespace's W).

        Raises:
            UnknownBoard: ``board`` is not a valid board id.
            StoreConflict: a shard was rebuilt during the export: run it again.
        """
        clocks = await asyncio.gather(*(s.clock() for s in self.stores))
        known = [w for w, _ in clocks if w is not None]
        common = max(known) if known else None
        decayed = board.partition(":")[0] == DECAYED

        async def rows(store: Store, lm: int | None) -> AsyncIterator[tuple[str, float, float]]:
            at = (common, lm) if decayed else (None, None)
            async for m, s in store.export_rows(board, chunk):
                yield m, store._to_points(board, s, at), s

        merged = merge_stream([rows(s, lm) for s, (_, lm) in zip(self.stores, clocks, strict=True)])
        async for line in export_lines(board, merged):
            yield line
