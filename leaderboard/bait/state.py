"""What a partition's comment-bait detector keeps, and the form it is stored in.

- :class:`Group`: one post's comment stream in its current episode (or a target's comments that
  name no post), keyed by :func:`group_key` (``p:<post>`` or ``t:<target>``);
- :class:`Author`: a target's long-run comment rate and recent throttles;
- :class:`Commenter`: an account that commented on throttled posts;
- the partition's event clock (newest event time, last sweep).

Each record is kept as a compact JSON array of its fields (:class:`_Stored`) in the
``bait:<table>:<partition>`` hashes named by :data:`TABLES`; :meth:`Detector.take_changes
<leaderboard.bait.detector.Detector.take_changes>` writes them with the batch that changed them and
:meth:`Detector.restore <leaderboard.bait.detector.Detector.restore>` loads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Self

import orjson

#: Full weight: 1000 per mille.
FULL = 1000


def group_key(post: str | None, target: str) -> str:
    return "p:" + post if post is not None else "t:" + target


class _Stored:
    """Detector state kept in Redis as a JSON array of its fields in order (compact; new fields go
    last with a default, so older records still load)."""

    __slots__ = ()

    def dump(self) -> bytes:
        names: tuple[str, ...] = self.__slots__  # a slots dataclass: its fields, in order
        return orjson.dumps([getattr(self, f) for f in names])

    @classmethod
    def load(cls, raw: bytes | str) -> Self:
        return cls(*orjson.loads(raw))


@dataclass(slots=True)
class Group(_Stored):
    """One post's comment stream (or a target's comments without a post), this episode."""

    target: str
    post: str | None
    first: float
    last: float
    comments: int = 0
    engagement: int = 0
    #: comment rate, exponentially weighted: value at ``rate_at`` (comments × decay)
    rate: float = 0.0
    rate_at: float = 0.0
    texts: int = 0
    low: int = 0
    answers: int = 0
    flagged: int = 0
    #: comments seen while ``commenters`` still had room (for the distinct ratio)
    sampled: int = 0
    commenters: list[str] = field(default_factory=list)
    hashes: list[int] = field(default_factory=list)
    #: bait categories found in the post's text
    phrasing: list[str] = field(default_factory=list)
    mult: int = FULL
    since: float = 0.0
    reasons: list[str] = field(default_factory=list)
    #: the weighted comment rate below which this throttle ends (set when it starts)
    calm: float = 0.0


@dataclass(slots=True)
class Author(_Stored):
    last: float
    #: long-run comment rate on the author's posts (comments × decay at ``at``)
    baseline: float = 0.0
    at: float = 0.0
    #: event times of the author's recent throttles (newest last, at most 5)
    offences: list[float] = field(default_factory=list)


@dataclass(slots=True)
class Commenter(_Stored):
    last: float
    #: comments this account made on throttled posts
    flagged: int = 0


#: The tables a partition's detector state is kept in (``bait:<table>:<partition>`` hashes):
#: groups, authors, commenters, and ``m`` with the one ``clock`` entry.
TABLES = ("g", "a", "c", "m")
_CLOCK = "clock"
