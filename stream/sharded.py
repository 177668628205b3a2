"""The worker's side of a namespace kept as shards: one :class:`Processor` per shard.

A shard *k* of S holds the partitions p with ``p mod S == k`` (:mod:`leaderboard.store.shards`),
so a batch splits by shard without splitting any partition's messages, and each shard's
messages are applied by that shard's processor, with its own fences, owned state and apply, as
one namespace's would be. What ties the shards together is W, the largest event time applied:
each shard plans with the namespace's W as a floor (read from every shard once per batch, then
raised by what the batch's earlier shards applied), so that its windows are cut where one
namespace's would be; and a shard left behind W (the batch did not touch it, or a later shard
of the batch moved W past it) is raised to W whenever W crossed a window bucket's edge since
the shard's own W, so that its window buckets expire while its partitions are quiet and every
window board is exact after every batch.

The community cap (``KUDOS_WORKER_MAX_COMMUNITIES``) is the namespace's: each shard's plan has
its admissions agreed by the namespace's own store first (``gate``, :meth:`Store.admit_communities`),
so no community has a board on one shard and is capped on another.

Perk rules with a rank condition are judged on the merged boards after each batch
(:mod:`stream.rank_judge`); the score-only rules inside each shard's apply, as on one namespace.

``kudos worker`` runs one with ``KUDOS_REDIS_SHARDS`` > 1. Every processor checks the target
of single events as well as envelopes' (``wrong_partition``): a target's points must all be in
its partition's shard, or the merged boards would list it twice. After each batch the
``kudos_worker_watermark`` gauge (of the processors' metrics) shows the namespace's W.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence

from leaderboard.errors import StoreConflict
from leaderboard.perks import PerkRule
from leaderboard.store import Store
from leaderboard.store.shards import Shards, shard_of
from stream.processor import CommunityGate, Processor, Raw
from stream.rank_judge import RankJudge

#: Tries of a raise that met a conflict (another worker moved the shard's landmark between the
#: raise's read and its call) before it is left to the next batch.
RAISE_TRIES = 3


class ShardedProcessor:
    """Applies batches (any partitions) to a namespace kept as the shards of ``stores`` (in
    shard order), through one processor per shard made by ``make``."""

    def __init__(
        self,
        stores: Sequence[Store],
        make: Callable[[Store], Processor],
        rank_rules: Sequence[PerkRule] = (),
        gate: CommunityGate | None = None,
    ) -> None:
        self.shards = Shards(stores)
        self.processors = [make(store) for store in self.shards.stores]
        for proc in self.processors:
            # (the namespace's own store: each shard's apply sees its own admissions only)
            proc.community_gate = gate
        #: the perk rules with a rank condition, judged on the merged boards after each batch
        #: (the shards' stores hold the score-only rules, judged inside their applies)
        self.judge = RankJudge(self.shards, rank_rules) if rank_rules else None
        #: window bucket sizes: a shard behind W is raised when W crossed a bucket edge since
        #: its own W (the only moves of W that change a window board)
        self._buckets = sorted({w.bucket_s for w in self.processors[0].rules.windows})
        for proc in self.processors:
            proc.check_singles = True
        #: shards this processor no longer writes (the rebuild's, once a shard has switched)
        self.retired: set[int] = set()

    def retire(self, shard: int) -> None:
        """Write nothing more to ``shard``: its messages are dropped and it is not raised (a
        rebuild's shard that has switched belongs to the live workers from then on)."""
        self.retired.add(shard)

    def _crossed(self, known: float, floor: float) -> bool:
        """Whether a window bucket's edge lies in (known, floor]."""
        return any(math.floor(floor / b) != math.floor(known / b) for b in self._buckets)

    @property
    def partitions(self) -> int | None:
        """The topic's partition count (envelope and single events are checked against it)."""
        return self.processors[0].partitions

    @partitions.setter
    def partitions(self, n: int | None) -> None:
        self.shards.partitions = n
        for proc in self.processors:
            proc.partitions = n

    @property
    def consumed(self) -> dict[int, int]:
        """Partition → one past the newest offset handed to :meth:`process` (each shard's
        processor keeps its own partitions')."""
        return {q: o for proc in self.processors for q, o in proc.consumed.items()}

    async def check_rank_rules(self, at: float | None = None) -> list[str]:
        """Judge the rank perk rules on the merged boards as of W = ``at`` (default: the
        namespace's W as Redis has it); the unlocks recorded. After every batch, and once when
        a worker starts: a worker that died between a batch and its check leaves the check to
        the next one."""
        if self.judge is None:
            return []
        if at is None:
            at, _ = await self.shards.clock()
            if at is None:
                return []
        return await self.judge.check(at)

    async def process(self, raws: Sequence[Raw]) -> None:
        """Apply ``raws`` (offsets ascending per partition), shard by shard in shard order."""
        n = len(self.processors)
        mine: dict[int, list[Raw]] = {}
        for r in raws:
            k = shard_of(r.partition, n)
            if k not in self.retired:
                mine.setdefault(k, []).append(r)
        # each shard's own W, read from Redis every batch (not remembered: a fail-over or
        # another worker may have moved it either way since)
        known = [w for w, _ in await asyncio.gather(*(s.clock() for s in self.shards.stores))]
        ws = [w for w in known if w is not None]
        floor = max(ws) if ws else None
        for k in sorted(mine):
            proc = self.processors[k]
            proc.watermark_floor = floor
            await proc.process(mine[k])
            w = known[k] = proc.owned.watermark
            if w is not None and (floor is None or w > floor):
                floor = w
        if floor is None:
            return
        for metrics in {id(p.metrics): p.metrics for p in self.processors}.values():
            metrics.watermark.set(floor)
        # every shard behind W, quiet or applied to before a later shard moved W, is raised to
        # it when W crossed a window bucket's edge since the shard's own W (so every window
        # board is exact after every batch, and a quiet shard costs one short call per bucket
        # of event time, a minute by default, not one per batch)
        for k, store in enumerate(self.shards.stores):
            if k in self.retired:
                continue
            if known[k] is not None and not self._crossed(known[k] or 0.0, floor):
                continue
            # (its processor's copy may now hold an old landmark: its next apply conflicts and
            # reloads, as after any other writer)
            for _ in range(RAISE_TRIES):
                try:
                    await store.raise_watermark(floor)
                    break
                except StoreConflict:
                    continue  # (its landmark moved between the read and the call: read again)
        await self.check_rank_rules(floor)
