"""Reads of a board kept as disjoint slices, one per shard, merged; pure (no Redis here).

On a sharded namespace (docs/scaling.md, "Boards sharded by member") a board is the union of its
slices: every member's points live in exactly one slice, the one of the shard its events are keyed
to. The store reads each slice (one small call per shard, pipelined) and merges here, so that a
merged read gives the answers one sorted set holding the union would:

- **a page** (offset, limit) is the rows at those positions of the k-way merge of each slice's
  first ``offset + limit`` rows, in Redis's own order (score high to low, equal scores by member
  from high to low, bytewise), so pages of a merged board tile it as ``ZREVRANGE`` pages do;
- **the first row's competition rank** comes from the fetched rows alone: a row scoring strictly
  more than the page's first row is ahead of it in the merge, so it is among the first ``offset``
  merged rows, and each slice's share of those is within the ``offset + limit`` rows it sent;
- **a member's rank** is 1 + the sum over slices of ``ZCOUNT (score +inf``; **the size** the sum of
  ``ZCARD``;
- **a member's neighbours** (:func:`merge_around`) come from each slice's rows around the place
  where the member is or would be in it (``read.lua``'s ``near``), their ranks from each
  slice's count above its first row.

Decayed boards store each slice's values against that slice's landmark L; :func:`rebase` puts them
on one landmark before they are compared (the order within a slice does not change).
"""

from __future__ import annotations

import heapq
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import NamedTuple

from leaderboard.ranking import Entry, competition_ranks

#: One slice's rows, best first: (member, score), scores in one unit across the slices.
Rows = Sequence[tuple[str, float]]


class SliceOrderError(ValueError):
    """A slice's rows are not in ``ZREVRANGE`` order (so a merge of them would be wrong)."""


def _order(row: tuple[str, float]) -> tuple[float, str]:
    # ZREVRANGE order is (score, member) descending; Python compares str by code point, which
    # is the order of their UTF-8 bytes, Redis's memcmp order of members
    return row[1], row[0]


def _check(rows: Rows, shard: int) -> None:
    for j in range(1, len(rows)):
        if _order(rows[j]) >= _order(rows[j - 1]):
            raise SliceOrderError(
                f"slice {shard}: row {j} ({rows[j]!r}) is not below row {j - 1} ({rows[j - 1]!r})"
            )


def merge_page(slices: Sequence[Rows], offset: int, limit: int) -> list[Entry]:
    """Rows ``offset`` to ``offset + limit - 1`` of the merged board, with competition ranks.

    ``slices`` holds, for each slice, its first ``offset + limit`` rows (all of them if it has
    fewer), best first.

    Raises:
        ValueError: a negative offset or limit.
        SliceOrderError: a slice's rows are out of order.
    """
    if offset < 0 or limit < 0:
        raise ValueError(f"offset and limit must be >= 0, got {offset} and {limit}")
    for shard, rows in enumerate(slices):
        _check(rows, shard)
    merged = list(heapq.merge(*slices, key=_order, reverse=True))
    page = merged[offset : offset + limit]
    if not page:
        return []
    top = page[0][1]
    # every row scoring more than the page's first row is ahead of it, so among ``merged``
    first_rank = 1 + sum(1 for _, s in merged[:offset] if s > top)
    scores = [s for _, s in page]
    ranks = competition_ranks(scores, first_rank, offset)
    return [Entry(r, m, s) for r, (m, s) in zip(ranks, page, strict=True)]


class Window(NamedTuple):
    """One slice's rows around a member's place: ``rows`` (best first) are its rows from
    position ``start`` on, covering ``max(around, 1)`` rows before the place (or all of them)
    and ``around`` from it; ``above_first`` of its rows score strictly more than ``rows[0]``."""

    start: int
    rows: Rows
    above_first: int


def _above(w: Window, score: float) -> int:
    """How many of the slice's rows score strictly more than ``score``, for a score within
    ``around`` merged rows of the member (see :func:`merge_around`)."""
    if not w.rows:
        return 0
    if w.rows[0][1] > score:
        # every row before the window scores at least as much as its first
        return w.start + sum(1 for _, s in w.rows if s > score)
    # (the window's first row scores at most ``score``: no row between the two, and then none
    # before the window either unless they tie, since a slice with ``around`` rows before the
    # place puts one of them ahead of every merged neighbour)
    return w.above_first


def merge_around(
    member: str, windows: Sequence[Window], around: int
) -> tuple[int, int, list[Entry]] | None:
    """(rank, position, rows) of ``member`` on the merged board: its competition rank, its
    0-based position, and the ``around`` merged rows above and below it (itself included)
    with their competition ranks; None when no window holds the member.

    Each window holds the rows around the place of (the member's score, ``member``) in its
    slice, at least one before it (or the slice has none): else a slice's rows tied with the
    member before the place could not be told from those scoring more. The merged ``around`` rows on each side are among those windows' rows (a slice's
    nearest rows to the place are the only ones of it that can be), the member's position is
    the sum of each slice's rows before the place, and the first row's rank comes from each
    slice's count above it.

    Raises:
        SliceOrderError: a window's rows are out of order.
    """
    for shard, w in enumerate(windows):
        _check(w.rows, shard)
    found = [(m, s) for w in windows for m, s in w.rows if m == member]
    if not found:
        return None
    key = _order(found[0])
    merged = list(heapq.merge(*(w.rows for w in windows), key=_order, reverse=True))
    i = merged.index(found[0])
    # the slices' rows before the place: those before each window, and those in it
    position = sum(w.start + sum(1 for r in w.rows if _order(r) > key) for w in windows)
    lo = max(0, i - around)
    shown = merged[lo : i + around + 1]
    first = shown[0][1]
    first_rank = 1 + sum(_above(w, first) for w in windows)
    rank = 1 + sum(_above(w, key[0]) for w in windows)
    first_position = position - (i - lo)
    ranks = competition_ranks([s for _, s in shown], first_rank, first_position)
    return rank, position, [Entry(r, m, s) for r, (m, s) in zip(ranks, shown, strict=True)]


def merged_rank(counts_above: Iterable[int]) -> int:
    """A member's competition rank from each slice's count of strictly higher scores."""
    return 1 + sum(counts_above)


def merged_size(sizes: Iterable[int]) -> int:
    return sum(sizes)


def rebase(stored: float, landmark: float, common: float, half_life_s: float) -> float:
    """A decayed value stored against ``landmark``, restated against ``common``.

    The decayed points at W are ``stored × 2^(-(W − L)/h)`` (``scoring.decayed_value``), so the
    same points against L' are ``stored × 2^((L − L')/h)``, whatever W is.
    """
    return float(stored * 2.0 ** ((landmark - common) / half_life_s))


class _Head:
    """A slice's current row in the merge heap (heapq is a min-heap: the best row is least)."""

    __slots__ = ("key", "row", "shard")

    def __init__(self, key: tuple[float, str], row: tuple[str, float, float], shard: int) -> None:
        self.key, self.row, self.shard = key, row, shard

    def __lt__(self, other: _Head) -> bool:
        return self.key > other.key


async def merge_stream(
    slices: Sequence[AsyncIterator[tuple[str, float, float]]],
) -> AsyncIterator[tuple[str, float, float]]:
    """The rows of every slice, (member, points, stored) each best first, as one stream best
    first: a k-way merge holding one row per slice (an export of any size in bounded memory).

    Raises:
        SliceOrderError: a slice's rows are out of order.
    """
    heap: list[_Head] = []
    for shard, it in enumerate(slices):
        row = await anext(it, None)
        if row is not None:
            heap.append(_Head((row[1], row[0]), row, shard))
    heapq.heapify(heap)
    while heap:
        head = heap[0]
        yield head.row
        row = await anext(slices[head.shard], None)
        if row is None:
            heapq.heappop(heap)
            continue
        if row[1] > head.row[1]:
            # (points only: far down a decayed slice two stored values can become the same
            # points, and then their members are in stored order, not in member order)
            raise SliceOrderError(
                f"slice {head.shard}: row {row!r} scores more than the row before it {head.row!r}"
            )
        heapq.heapreplace(heap, _Head((row[1], row[0]), row, head.shard))
