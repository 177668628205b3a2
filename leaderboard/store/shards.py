"""Board reads of a namespace kept as shards: one :class:`Store` per shard, read and merged.

A shard *k* of S is a whole namespace, ``<prefix>|s<k>`` (on a Redis Cluster its hash tag, so a
shard is one slot), holding the partitions p with ``p mod S == k`` and so every member keyed to
them: a board is the union of its shards' slices, disjoint by member (docs/scaling.md, "The
route we are taking"). Each shard is applied to as a namespace of its own, with the largest W of
all shards as a floor (``build_plan(watermark_floor=…)``, :meth:`Store.raise_watermark`), so that
its windows are cut where one namespace's would be. Here the reads: each shard's slice is read
with its own atomic script, and :mod:`leaderboard.merge` merges them.

The worker's side is :mod:`stream.sharded`. Not built yet (``kudos worker`` on shards, the feed,
perks, rebuild): see docs/scaling.md. A merged read is not atomic across shards: an apply
between two slices' reads shows in one of them only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from leaderboard.merge import merge_page, merge_stream, merged_size
from leaderboard.ranking import Entry
from leaderboard.scoring import DECAYED
from leaderboard.store import Store
from leaderboard.store.base import clock_of
from leaderboard.store.boards import export_lines


def shard_prefix(prefix: str, shard: int) -> str:
    """The namespace prefix of shard ``shard`` of namespace ``prefix``."""
    return f"{prefix}|s{shard}"


def shard_of(partition: int, shards: int) -> int:
    """The shard holding partition ``partition`` (partitions are dealt round the shards)."""
    return partition % shards


class Shards:
    """The reads of one namespace over its shards' stores (in shard order)."""

    def __init__(self, stores: Sequence[Store]) -> None:
        if not stores:
            raise ValueError("a sharded namespace needs at least one shard")
        self.stores = tuple(stores)

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
        """
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
