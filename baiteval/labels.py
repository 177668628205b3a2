"""The labelled stream's records and the vocabulary of its labels.

An :class:`EvalStream` is what :func:`baiteval.synthesis.build_eval` returns and
:func:`baiteval.metrics.report` scores against: the events sorted by time and one
:class:`PostLabel` (the truth) per synthetic post. Also here: the shape names the labels use and
the time units (event timestamps are seconds) every module of the package counts in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "BACKGROUND",
    "BASELINE",
    "DAY",
    "HOUR",
    "MINUTE",
    "ORGANIC_SHAPES",
    "SHAPES",
    "EvalStream",
    "PostLabel",
]

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0

SHAPES: tuple[str, ...] = tuple(
    f"{speed}-{wording}-{author}"
    for speed in ("sudden", "slowburn")
    for wording in ("phrased", "plain")
    for author in ("new", "established")
)
ORGANIC_SHAPES: tuple[str, ...] = ("viral", "discussion", "steady", "congrats", "small")
#: Shape label of an established author's earlier, normal posts (not bait, counted as organic).
BASELINE = "baseline"
#: Shape label of a throttled group that is not a synthetic post (real background traffic).
BACKGROUND = "background"


@dataclass(frozen=True)
class PostLabel:
    """The truth about one synthetic post.

    ``full_mp``: milli-points its interactions earn with no throttle (weights with diminishing
    returns per (actor, target, UTC day) over the whole stream, in stream order).
    """

    post: str
    author: str
    shape: str
    bait: bool
    start: float  # ts of the post event
    end: float  # ts of its last interaction
    comments: tuple[tuple[str, float], ...]  # (event id, ts) of its comments/replies, stream order
    full_mp: int


@dataclass(frozen=True)
class EvalStream:
    """A labelled stream: events sorted by ts, labels of the synthetic posts."""

    events: list[dict[str, Any]]
    posts: dict[str, PostLabel]
    background_full_mp: int  # full milli-points of the background events (those without a post)
    seed: int
    half: str
