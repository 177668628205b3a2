"""What a partition's comment-bait detector keeps, and the form it is stored in.

- :class:`Group`: one post's comment stream in its current episode (or a target's comments that
  name no post), keyed by :func:`group_key` (``p:<post>`` or ``t:<target>``); a post's early
  shares and likes are a group of their own (``e:<post>``, the engagement-pod check);
- :class:`Author`: a target's long-run comment rate, recent throttles, and its network (who
  interacted with it before);
- :class:`Commenter`: an account the partition has seen act: when first, and whether it took
  part in throttled posts (here or, through evidence, on another partition);
- :class:`Shadow`: the accounts behind another partition's post (evidence), for the lockstep
  check across partitions;
- the partition's event clock (newest event time, last sweep).

Each record is kept as a compact JSON array of its fields (:class:`_Stored`) in the
``bait:<table>:<partition>`` hashes named by :data:`TABLES`; :meth:`Detector.take_changes
<leaderboard.bait.detector.Detector.take_changes>` writes them with the batch that changed them and
:meth:`Detector.restore <leaderboard.bait.detector.Detector.restore>` loads them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, ClassVar, Self

import orjson

#: Full weight: 1000 per mille.
FULL = 1000


def group_key(post: str | None, target: str) -> str:
    return "p:" + post if post is not None else "t:" + target


def pod_key(post: str) -> str:
    """The group of a post's early shares and likes (the engagement-pod check)."""
    return "e:" + post


class _Stored:
    """Detector state kept in Redis as a JSON array of its fields in order (compact; new fields go
    last with a default, so older records still load)."""

    __slots__ = ()
    #: the record's fields in order, as a tuple (set for each record class below)
    _fields_of: ClassVar[attrgetter[tuple[Any, ...]]]

    def dump(self) -> bytes:
        return orjson.dumps(self._fields_of(self))

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
    # -- the response (issue 13); comments counted as they arrive, commenters at their first
    #: texted comments that carry no information of their own (Features.empty)
    empty: int = 0
    #: texted comments that repeat an earlier answer on the post (near-duplicates)
    dups: int = 0
    #: texted comments that only echo the post's own words
    echoes: int = 0
    #: sampled commenters unknown to the author before (strangers), and new to the partition
    strangers: int = 0
    fresh: int = 0
    #: the post's own word hashes, and the answers' word sets seen so far (≤ ``sample``/2)
    words: list[int] = field(default_factory=list)
    shapes: list[list[int]] = field(default_factory=list)
    #: inter-arrival times: count, mean and sum of squares (Welford) for their regularity
    gap_n: int = 0
    gap_mean: float = 0.0
    gap_m2: float = 0.0
    #: evidence milestones already sent for this group (sizes of the actor sets broadcast)
    sent: int = 0
    #: the throttle rests on the response's own evidence (not only on flagged accounts): only
    #: then are its later commenters flagged (guilt by association does not spread)
    own: bool = False
    #: what the post's interactions counted in full while the group was not throttled, for a
    #: retroactive throttle (its first ``claw_entries``, post groups only): ``[index in commenters
    #: (-1: an account outside the sample), ts, kind code, milli-points, index in comms]``, with
    #: a trailing 1 on the first ``min_coordinated - 1`` (they keep their mark when others go); an
    #: entry is dropped when it is clawed back, so nothing is withheld twice
    counted: list[list[Any]] = field(default_factory=list)
    #: the distinct community lists of those entries (each kept once)
    comms: list[list[str]] = field(default_factory=list)
    #: texted comments that are any of the three above (empty, an echo or a near-duplicate), in
    #: halves: 2 each, 1 for emoji alone: a farm mixes them, and each share alone stays low
    hollow: int = 0
    #: this episode's throttle record, which later decisions replace whole: when a retroactive
    #: throttle last found it in lockstep (0: never), and the interactions clawed back in all
    retro_at: float = 0.0
    clawed_n: int = 0
    #: the accounts and kinds that engaged with the post, as bitmaps of ENGAGERS_BITS bits
    #: (eight 32-bit words per level, empty until the first): ``engagement`` counts each
    #: (account, kind) about once with them (:func:`engagers`), so that a post's author, or one
    #: account, cannot make its comments look like a part of fans' engagement by clicking it
    eng: list[int] = field(default_factory=list)


@dataclass(slots=True)
class Author(_Stored):
    last: float
    #: long-run comment rate on the author's posts (comments × decay at ``at``)
    baseline: float = 0.0
    at: float = 0.0
    #: event times of the author's recent throttles (newest last, at most 5)
    offences: list[float] = field(default_factory=list)
    #: the author's network: 24-bit hashes of accounts that interacted with it (newest last,
    #: at most NETWORK); an account not in it is a stranger to the author
    network: list[int] = field(default_factory=list)


@dataclass(slots=True)
class Commenter(_Stored):
    """An account the partition has seen act (``last`` to the hour: fewer writes)."""

    last: float
    #: comments this account made on throttled posts (and evidence from other partitions)
    flagged: int = 0
    #: event time of its first action seen here (None: a record from before issue 13)
    first: float | None = None
    #: actions seen, saturating at 3 (only "new" versus "has a history" matters)
    acts: int = 0
    #: event time of its latest flag (a flag lasts ``BaitParams.flag_ttl_s`` from it)
    flagged_at: float = 0.0
    #: event time of its latest *farm* flag (lockstep, a pod's throttle, their records): it
    #: counts on every post; a flag from a throttle on a bait post's answers alone counts only
    #: where the account answers with nothing again (real people answer bait)
    farm_at: float = 0.0


@dataclass(slots=True)
class Shadow(_Stored):
    """Another partition's post: when it started and the accounts behind it (evidence)."""

    last: float
    kind: str
    actors: list[str] = field(default_factory=list)
    #: its partition's throttle records of it so far: 0 none, 1 a throttle (its accounts named
    #: are the flagged ones), 2 a ring or pod throttle (a proven ring's post); for the network
    #: rule of a retroactive throttle
    throttled: int = 0


# Every record a batch changed is dumped (most events change one): one attrgetter call dumps a
# record in 45 % (a commenter) to 60 % (a group) of the time of a getattr per field. A slots
# dataclass's ``__slots__`` are its fields in order, and every record has several (so attrgetter
# returns a tuple, which orjson writes as the same JSON array as a list).
for _record in (Group, Author, Commenter, Shadow):
    _record._fields_of = attrgetter(*_record.__slots__)


#: Accounts remembered per author as its network.
NETWORK = 128

#: A group's engagers are counted in ENGAGERS_LEVELS bitmaps of ENGAGERS_BITS bits (linear
#: counting): level 0 holds every (account, kind), level k the 1 in 16**k whose hash says so.
#: The first level with at least ENGAGERS_FULL bits still clear gives the estimate, scaled by
#: 16**k: about exact for tens of engagers, within a few per cent up to ~500, within ~15 % from
#: there to ~220,000 distinct pairs, and never more than that however the pairs are chosen (a
#: full bitmap once counted every engagement, so one account's clicks could count as fans').
ENGAGERS_BITS = 256
ENGAGERS_FULL = 8
ENGAGERS_LEVELS = 3
_WORDS = ENGAGERS_BITS // 32
_LEVEL_SHIFT = 4  # (16 times sparser per level)
_MAX_ENGAGERS = (
    (1 << (_LEVEL_SHIFT * (ENGAGERS_LEVELS - 1)))
    * -ENGAGERS_BITS
    * math.log(ENGAGERS_FULL / ENGAGERS_BITS)
)


def engaged(g: Group, h: int) -> None:
    """Count an engagement on group ``g`` of the (account, kind) whose keyed 64-bit hash is
    ``h`` (:meth:`leaderboard.bait.keyed.Keyed.pair`; never the post's author's)."""
    g.engagement += 1
    bit = h % ENGAGERS_BITS
    sample = h >> 8
    level = 0
    while level + 1 < ENGAGERS_LEVELS and sample & 0xF == 0:
        level += 1
        sample >>= _LEVEL_SHIFT
    need = _WORDS * (level + 1)
    if len(g.eng) < need:
        g.eng.extend([0] * (need - len(g.eng)))
    for k in range(level + 1):
        g.eng[k * _WORDS + (bit >> 5)] |= 1 << (bit & 31)


def engagers(g: Group) -> float:
    """The group's engagement with each (account, kind) counted once: the bitmaps' estimate
    of the distinct pairs, at most ``engagement`` (and at most ~220,000)."""
    if not g.eng:
        return float(g.engagement)
    for level in range(ENGAGERS_LEVELS):
        words = g.eng[level * _WORDS : (level + 1) * _WORDS]
        zeros = ENGAGERS_BITS - sum(w.bit_count() for w in words)
        if zeros >= ENGAGERS_FULL:
            scale = 1 << (_LEVEL_SHIFT * level)
            return min(
                float(g.engagement), -scale * ENGAGERS_BITS * math.log(zeros / ENGAGERS_BITS)
            )
    return min(float(g.engagement), _MAX_ENGAGERS)


#: The tables a partition's detector state is kept in (``bait:<table>:<partition>`` hashes):
#: groups, authors, commenters, ``m`` with the one ``clock`` entry, and ``s``: shadows.
TABLES = ("g", "a", "c", "m", "s")
_CLOCK = "clock"
