"""Competition ranking ("1224") and percentiles, pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Entry:
    rank: int
    member: str
    score: float


def competition_ranks(scores: Sequence[float], first_rank: int, first_position: int) -> list[int]:
    """Ranks of a page of scores sorted high to low.

    ``first_rank`` is the competition rank of the page's first score (1 + number of strictly higher
    scores on the whole board) and ``first_position`` its 0-based position; later scores that differ
    from their predecessor take ``position + 1``.
    """
    ranks: list[int] = []
    for j, s in enumerate(scores):
        if j == 0:
            ranks.append(first_rank)
        elif s == scores[j - 1]:
            ranks.append(ranks[-1])
        else:
            ranks.append(first_position + j + 1)
    return ranks


def percentile(rank: int, members: int) -> float:
    """Share of the board (in %) at or below this member: the top member of any board gets 100."""
    if members <= 0:
        return 0.0
    return round(100.0 * (members - rank + 1) / members, 4)
