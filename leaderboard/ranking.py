"""Competition ranking ("1224"), percentiles and cohorts (peer boards), pure."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from leaderboard.ids import id_problem


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


#: Most members one cohort read (a peer board) asks about.
MAX_COHORT = 1000


@dataclass(frozen=True, slots=True)
class CohortEntry:
    """A member of a cohort: their competition rank among the cohort, and on the whole board."""

    rank: int
    member: str
    score: float
    global_rank: int

    def to_json(self) -> dict[str, int | str | float]:
        """As the read API and ``kudos board --members --json`` give it."""
        return {
            "rank": self.rank,
            "member": self.member,
            "score": self.score,
            "global_rank": self.global_rank,
        }


def rank_cohort(found: Sequence[tuple[str, float, int]]) -> list[CohortEntry]:
    """The cohort's members on the board ((member, points, global rank), any order), ranked
    among themselves: best first, ties in the board's own order (ZREVRANGE: member bytes
    descending), competition ranks ("1224")."""
    ordered = sorted(found, key=lambda f: (f[1], f[0].encode()), reverse=True)
    ranks = competition_ranks([s for _, s, _ in ordered], 1, 0)
    return [CohortEntry(r, m, s, g) for r, (m, s, g) in zip(ranks, ordered, strict=True)]


def parse_cohort(
    text: str, limit: int = MAX_COHORT, decode: Callable[[str], str] | None = None
) -> list[str]:
    """The member ids of a cohort given as ``a,b,c``: each as events name members (1-128
    characters, no control characters; ``leaderboard.ids``), duplicates dropped, first order
    kept. ``decode`` (a query string's percent-decoding) runs on each piece after the split, so
    an id may hold an encoded comma.

    Raises:
        ValueError: none, more than ``limit`` distinct, an id that cannot be a member's, or a
            piece ``decode`` refuses.
    """
    pieces = [p for p in text.split(",") if p]
    if decode is not None:
        try:
            pieces = [decode(p) for p in pieces]
        except UnicodeDecodeError:
            raise ValueError("members=: an id is not UTF-8 once percent-decoded") from None
    members = list(dict.fromkeys(m for m in pieces if m))
    if not members:
        raise ValueError("members= names no member: give ids separated by commas")
    if len(members) > limit:
        raise ValueError(f"members= names {len(members):,} members; at most {limit:,}")
    for m in members:
        problem = id_problem(m)
        if problem is not None:
            raise ValueError(f"members=: {m[:40]!r} {problem}")
    return members
