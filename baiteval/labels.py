"""The labelled stream's records and the vocabulary of its labels.

An :class:`EvalStream` is what :func:`baiteval.synthesis.build_eval` returns and
:func:`baiteval.metrics.report` scores against: the events sorted by time and one
:class:`PostLabel` (the truth) per synthetic post. Also here: the shape names the labels use, the
two splits and the time units (event timestamps are seconds) every module of the package counts in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "BACKGROUND",
    "BASELINE",
    "COMMENT_KINDS",
    "DAY",
    "FARMED_KINDS",
    "HOUR",
    "LEGACY_SHAPES",
    "MINUTE",
    "NEW_SHAPES",
    "ORGANIC_SHAPES",
    "SHAPES",
    "SPLITS",
    "TUNING_SHAPES",
    "EvalStream",
    "PostLabel",
]

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0

#: The eight shapes of the first harness: speed × wording × author.
LEGACY_SHAPES: tuple[str, ...] = tuple(
    f"{speed}-{wording}-{author}"
    for speed in ("sudden", "slowburn")
    for wording in ("phrased", "plain")
    for author in ("new", "established")
)
#: The shapes issue 13 says the first detector missed, and engagement pods (shares and likes).
NEW_SHAPES: tuple[str, ...] = (
    "either-or",
    "tag-friend",
    "greeting-farm",
    "ring",
    "textless-flood",
    "pod",
)
#: Every campaign shape the tuning split generates. The held-out split adds one more family
#: (:data:`baiteval.heldout.HELDOUT_FAMILY`), defined only in :mod:`baiteval.heldout`.
TUNING_SHAPES: tuple[str, ...] = LEGACY_SHAPES + NEW_SHAPES
#: Kept for callers of the first harness: the eight legacy shapes.
SHAPES = LEGACY_SHAPES
ORGANIC_SHAPES: tuple[str, ...] = (
    "viral",
    "discussion",
    "steady",
    "congrats",
    "small",
    "network-congrats",
    "viral-news",
    "ama",
    "advice",
    "pod-like",
)
#: Shape label of an established author's earlier, normal posts (not bait, counted as organic).
BASELINE = "baseline"
#: Shape label of a throttled group that is not a synthetic post (real background traffic).
BACKGROUND = "background"
#: ``tuning``: what a detector may be tuned on; ``heldout``: what it is reported on.
SPLITS: tuple[str, ...] = ("tuning", "heldout")

COMMENT_KINDS = frozenset({"comment", "reply"})
#: The interactions a campaign farms, where not comments: a pod farms shares and likes, and its
#: "throttled before 20 %" is measured over those.
FARMED_KINDS: dict[str, frozenset[str]] = {"pod": frozenset({"share", "like"})}


@dataclass(frozen=True)
class PostLabel:
    """The truth about one synthetic post.

    ``full_mp``: milli-points its interactions earn with no throttle (weights with diminishing
    returns per (actor, target, UTC day) over the whole stream, in stream order).
    ``farmed``: the interactions the 20 % target is measured over, (event id, ts) in stream order:
    the comments, or for a pod its shares and likes (:data:`FARMED_KINDS`).
    ``template``: the name of the wording template of the post, if it has one.
    ``campaign``: the ring or pod a post belongs to (several posts of one campaign), else None.
    """

    post: str
    author: str
    shape: str
    bait: bool
    start: float  # ts of the post event
    end: float  # ts of its last interaction
    comments: tuple[tuple[str, float], ...]  # (event id, ts) of its comments/replies, stream order
    full_mp: int
    farmed: tuple[tuple[str, float], ...] = ()
    template: str | None = None
    campaign: str | None = None


@dataclass(frozen=True)
class EvalStream:
    """A labelled stream: events sorted by ts, labels of the synthetic posts.

    ``shapes``: the campaign shapes this stream generates, in report order.
    """

    events: list[dict[str, Any]]
    posts: dict[str, PostLabel]
    background_full_mp: int  # full milli-points of the background events (those without a post)
    seed: int
    half: str
    split: str = "tuning"
    shapes: tuple[str, ...] = LEGACY_SHAPES
