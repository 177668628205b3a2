"""Why a member has their score, and where it is heading (pure, no I/O).

``leaderboard.store`` reads the raw numbers in one atomic script; this module turns them into an
:class:`Explanation`, whose :meth:`~Explanation.to_json` is the body of
``GET /api/members/{id}/explain`` and of ``kudos member ID --json``.

All amounts are kept as integer milli-points here and printed as points only in the JSON.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from leaderboard.scoring import ALL, ScoringRules, Window

#: Seconds per bucket of the window whose buckets give the hourly trend.
HOUR = 3600
#: How many of the member's best posts an explanation lists.
TOP_POSTS = 10
#: Top posts rank the points a member earned on each post in the current and the previous period
#: of this many seconds of event time (UTC, from the epoch); older periods are dropped, so what a
#: member's posts cost stays bounded by two periods' posts, whatever the member's age. A period is
#: much longer than the dedupe horizon (7 days), so no event can land in a dropped period.
POSTS_PERIOD_S = 30 * 86400
#: Prefixes of the per-kind fields of the ``explain:<member>`` hash (see ``leaderboard.store``):
#: events received, full weight of the scored ones, points counted, points withheld by the
#: comment-bait throttle.
KIND_FIELDS = ("n", "full", "mp", "wh")
SELF_FIELD = "self"


@dataclass(frozen=True, slots=True)
class KindLine:
    """One kind of interaction in a member's explanation.

    ``count`` is every event of this kind received for the member, scored or not (a
    self-interaction is counted here and again in :attr:`Explanation.self_ignored`).
    """

    count: int = 0
    points_mp: int = 0
    full_mp: int = 0
    withheld_mp: int = 0

    @property
    def discounted_mp(self) -> int:
        """Milli-points lost to diminishing returns: full weight minus what counted and what
        the comment-bait throttle withheld."""
        return self.full_mp - self.points_mp - self.withheld_mp


@dataclass(frozen=True, slots=True)
class ThrottleLine:
    """A comment-bait throttle on one of the member's posts (``t:<member>``: on comments that
    name no post), as its latest decision left it, and the points it withheld there."""

    group: str
    post: str | None
    #: "throttled" (still on) or "ended"
    state: str
    detected_at: float | None
    ended_at: float | None
    multiplier: float
    reasons: tuple[str, ...]
    withheld_mp: int
    #: when the post was found in lockstep with a ring's (a retroactive throttle), and how many
    #: of its interactions had their points clawed back then (the alert names them)
    retroactive_at: float | None = None
    clawed_back: int = 0

    def to_json(self) -> dict[str, Any]:
        out = {
            "group": self.group,
            "post": self.post,
            "state": self.state,
            "detected_at": self.detected_at,
            "ended_at": self.ended_at,
            "multiplier": self.multiplier,
            "reasons": list(self.reasons),
            "withheld": self.withheld_mp / 1000,
        }
        if self.retroactive_at is not None or self.clawed_back:
            out["retroactive_at"] = self.retroactive_at
            out["clawed_back"] = self.clawed_back
        return out


@dataclass(frozen=True, slots=True)
class Place:
    """A member's place on one board (score in points)."""

    rank: int
    score: float
    members: int
    percentile: float


@dataclass(frozen=True, slots=True)
class Explanation:
    member: str
    scoring_version: str
    #: the watermark W (event time) the numbers are as of
    as_of: float | None
    kinds: Mapping[str, KindLine]
    self_ignored: int
    #: (post, milli-points), best first
    top_posts: list[tuple[str, int]]
    #: base board → place, only the boards the member is on, in board order
    boards: Mapping[str, Place]
    #: (unix seconds of the hour's start, milli-points earned in it), oldest first
    hourly: list[tuple[int, int]]
    #: comment-bait throttles on the member's posts, most recent first
    throttles: list[ThrottleLine] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        totals = KindLine(
            sum(k.count for k in self.kinds.values()),
            sum(k.points_mp for k in self.kinds.values()),
            sum(k.full_mp for k in self.kinds.values()),
            sum(k.withheld_mp for k in self.kinds.values()),
        )
        on_all = self.boards.get(ALL)
        return {
            "member": self.member,
            "scoring_version": self.scoring_version,
            "as_of": self.as_of,
            "kinds": {
                kind: {
                    "count": k.count,
                    "points": k.points_mp / 1000,
                    "full_points": k.full_mp / 1000,
                    "discounted": k.discounted_mp / 1000,
                    "withheld": k.withheld_mp / 1000,
                }
                for kind, k in self.kinds.items()
            },
            "self_ignored": self.self_ignored,
            "totals": {
                "count": totals.count,
                "points": totals.points_mp / 1000,
                "discounted": totals.discounted_mp / 1000,
                "withheld": totals.withheld_mp / 1000,
            },
            "top_posts": [{"post": p, "points": mp / 1000} for p, mp in self.top_posts],
            "throttles": [t.to_json() for t in self.throttles],
            "boards": {
                b: {
                    "rank": pl.rank,
                    "score": pl.score,
                    "members": pl.members,
                    "percentile": pl.percentile,
                }
                for b, pl in self.boards.items()
            },
            "trend": {
                "24h": self.boards["24h"].score if "24h" in self.boards else 0,
                "7d": self.boards["7d"].score if "7d" in self.boards else 0,
                "rank": on_all.rank if on_all is not None else None,
                "hourly": [{"hour": h, "points": mp / 1000} for h, mp in self.hourly],
            },
        }


def kind_lines(fields: Mapping[str, int], order: Iterable[str] = ()) -> dict[str, KindLine]:
    """The per-kind lines of an ``explain:<member>`` hash, kinds in ``order`` first (the scoring
    rules' order), then any other kind found (e.g. one a later scoring version dropped)."""
    values: dict[str, dict[str, int]] = {}
    for name, v in fields.items():
        prefix, sep, kind = name.partition(":")
        if sep and prefix in KIND_FIELDS:
            values.setdefault(kind, {})[prefix] = v
    ordered = [k for k in order if k in values]
    ordered += sorted(k for k in values if k not in ordered)
    return {
        k: KindLine(
            values[k].get("n", 0),
            values[k].get("mp", 0),
            values[k].get("full", 0),
            values[k].get("wh", 0),
        )
        for k in ordered
    }


#: The field of a ``throttle:<member>`` hash that is no throttle record: the period of W its
#: old records were last dropped in (apply.lua drops them once per member and period).
TRIMMED_FIELD = "~k"


def shown_since(watermark: float | None) -> float | None:
    """The oldest decision time a member's throttle lines show at ``watermark``: the start of the
    previous ``POSTS_PERIOD_S`` period (older records are dropped as the member's change)."""
    if watermark is None:
        return None
    return (math.floor(watermark / POSTS_PERIOD_S) - 1) * POSTS_PERIOD_S


def decision_time(r: Mapping[str, Any]) -> float:
    """The time of a throttle record's latest decision (as apply.lua's trim reads it)."""
    return max(
        float(r.get("detected_at") or 0.0),
        float(r.get("ended_at") or 0.0),
        float(r.get("retroactive_at") or 0.0),
    )


def throttle_lines(
    records: Mapping[str, str], withheld: Mapping[str, int], since: float | None = None
) -> list[ThrottleLine]:
    """The throttle lines of a member's ``throttle:`` records (JSON per group) and ``withheld:``
    milli-points per group (of the periods shown), the most recent decision first; only records
    decided at or after ``since``."""
    lines = []
    for group, raw in records.items():
        if group == TRIMMED_FIELD:
            continue
        r = orjson.loads(raw)
        if since is not None and decision_time(r) < since:
            continue
        lines.append(
            ThrottleLine(
                group=group,
                post=r.get("post"),
                state=r["state"],
                detected_at=r.get("detected_at"),
                ended_at=r.get("ended_at"),
                multiplier=r["multiplier"],
                reasons=tuple(r.get("reasons", ())),
                withheld_mp=withheld.get(group, 0),
                retroactive_at=r.get("retroactive_at"),
                # (the episode's total; records from before it was kept: the last step's)
                clawed_back=int(r.get("clawed_total") or len(r.get("clawed_back", ()))),
            )
        )
    lines.sort(key=lambda t: -(t.ended_at or t.detected_at or 0.0))
    return lines


def hourly_window(rules: ScoringRules) -> Window | None:
    """The window whose buckets are hours (the longest if several), or None: no hourly trend."""
    hourly = [w for w in rules.windows if w.bucket_s == HOUR]
    return max(hourly, key=lambda w: w.buckets) if hourly else None


def hourly_series(
    window: Window | None, watermark: float | None, points_mp: list[int]
) -> list[tuple[int, int]]:
    """Pair the window's live buckets (oldest first, ending at the one holding ``watermark``)
    with their hour start times.

    Raises:
        ValueError: ``points_mp`` does not hold one value per bucket of ``window``.
    """
    if window is None or watermark is None:
        return []
    last = window.bucket(watermark)
    first = last - window.buckets + 1
    if len(points_mp) != window.buckets:
        raise ValueError(f"{len(points_mp)} hourly values for a window of {window.buckets}")
    return [((first + j) * window.bucket_s, mp) for j, mp in enumerate(points_mp)]


def not_seen(member: str) -> str:
    """The error for a member with no explain data on no board."""
    return f"member {member!r} has never been seen: no interactions and on no board"
