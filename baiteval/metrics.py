"""The metrics that score a detector run on a labelled stream, against fixed targets.

:func:`report` takes what the detector did (one :class:`Throttle` per throttled group, read back
from the store by the replay harness, :mod:`baiteval.pipeline`) and measures, per campaign shape,
recall and time to throttle (event seconds and share of its farmed interactions already counted:
its comments, or a pod's shares and likes), then false throttles among organic posts and the
share of organic points withheld, against the four targets below. :func:`baiteval.report.format_report` prints the result.

Pure: talks to neither Redis nor Kafka, prints nothing.
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from baiteval.labels import BACKGROUND, BASELINE, ORGANIC_SHAPES, EvalStream, PostLabel

__all__ = [
    "FALSE_THROTTLE_TARGET",
    "FRACTION_TARGET",
    "MIN_COMMENTS",
    "ORGANIC_WITHHELD_TARGET",
    "RECALL_TARGET",
    "CampaignResult",
    "EvalReport",
    "FalseThrottle",
    "OrganicResult",
    "ShapeResult",
    "Throttle",
    "report",
]

# The four targets of the evaluation.
RECALL_TARGET = 0.95
FRACTION_TARGET = 0.20
FALSE_THROTTLE_TARGET = 0.01
ORGANIC_WITHHELD_TARGET = 0.005
#: Organic posts with fewer comments are too small to judge a throttle on (not in the rate).
MIN_COMMENTS = 20


@dataclass(frozen=True)
class Throttle:
    """What the detector did to one group, as read back from the store.

    ``group`` is the detector's: ``p:<post>`` for a post's comments, ``t:<target>`` for comments
    without a post, and any other group the detector keeps on a post (``post`` set). A group can
    appear several times (throttled, calmed, throttled again). ``withheld_mp``: what was
    withheld where the worker records it, the post's (or target's) entry, counted once.
    """

    group: str
    post: str | None
    target: str
    detected_at: float  # event time of the comment at which the throttle started
    multiplier: float
    reasons: tuple[str, ...]
    withheld_mp: int
    #: a retroactive throttle (``detected_at``: when it took effect), and the event times of
    #: the interactions whose points a throttle on lockstep clawed back
    retroactive: bool = False
    clawed: tuple[float, ...] = ()


@dataclass(frozen=True)
class ShapeResult:
    """One campaign shape. Times and fractions are over detected campaigns only (else None)."""

    shape: str
    campaigns: int
    detected: int
    median_seconds: float | None  # detected_at − first farmed interaction's ts
    max_seconds: float | None
    #: farmed interactions counted in full in the end (before the first throttle, and not
    #: clawed back by a retroactive one) / all of them
    median_fraction: float | None
    max_fraction: float | None
    late: int  # detected campaigns throttled after more than FRACTION_TARGET of them
    full_mp: int
    withheld_mp: int
    #: the worst share counted in full while the campaign ran (before the first throttle, claw-
    #: backs not subtracted): what the live boards showed until a retroactive throttle
    max_live_fraction: float | None = None
    #: detected campaigns only caught retroactively (found in lockstep after the fact)
    retroactive: int = 0

    @property
    def recall(self) -> float:
        return self.detected / self.campaigns if self.campaigns else 1.0

    @property
    def withheld_share(self) -> float:
        return self.withheld_mp / self.full_mp if self.full_mp else 0.0


@dataclass(frozen=True)
class CampaignResult:
    """A multi-post campaign shape (rings, pods) with each campaign as one: ``detected`` when
    any of its posts was throttled; ``fractions``: per campaign, its farmed interactions (over
    all its posts, in time order) counted in full before its first throttle; ``kept``: per
    campaign, the share of them counted in full in the end (before each post's throttle, and
    every one of a post never throttled)."""

    shape: str
    campaigns: int
    detected: int
    fractions: tuple[float, ...]
    kept: tuple[float, ...]

    @property
    def recall(self) -> float:
        return self.detected / self.campaigns if self.campaigns else 1.0

    @property
    def late(self) -> int:
        return sum(f > FRACTION_TARGET for f in self.fractions)


@dataclass(frozen=True)
class OrganicResult:
    """One organic shape (``background`` = real traffic, throttled as ``t:`` groups)."""

    shape: str
    posts: int
    eligible: int  # posts with ≥ MIN_COMMENTS comments: those the false-throttle rate counts
    throttled: int  # eligible posts throttled
    full_mp: int
    withheld_mp: int


@dataclass(frozen=True)
class FalseThrottle:
    """A throttle on anything but a campaign, for the report's list."""

    group: str
    post: str | None
    target: str
    shape: str  # organic shape, "baseline", or "background"
    comments: int  # the post's comments (0 for a background group)
    detected_at: float
    multiplier: float
    reasons: tuple[str, ...]  # of every detection of the group, first seen first
    withheld_mp: int


@dataclass(frozen=True)
class EvalReport:
    """The evaluation of one detector run on one :class:`EvalStream`."""

    seed: int
    half: str
    shapes: dict[str, ShapeResult]
    organic: dict[str, OrganicResult]
    throttled_groups: int  # throttled posts, and groups without a post
    true_groups: int  # of those, campaign posts
    false_throttles: tuple[FalseThrottle, ...]
    max_fraction_before: float  # max over all campaigns; an undetected one counts as 1.0
    false_throttle_rate: float  # eligible organic posts throttled / eligible organic posts
    organic_withheld_share: float  # withheld on non-campaign groups / organic + background full
    passed: bool
    failures: list[str]
    split: str = "tuning"
    #: shapes whose campaigns span several posts (rings, pods), each campaign as one
    campaigns: dict[str, CampaignResult] = field(default_factory=dict)

    @property
    def recall(self) -> dict[str, float]:
        return {s: r.recall for s, r in self.shapes.items()}

    @property
    def precision(self) -> float:
        return self.true_groups / self.throttled_groups if self.throttled_groups else 1.0


class _Group(NamedTuple):
    first: Throttle
    withheld_mp: int
    reasons: tuple[str, ...]
    #: the times of the interactions retroactive throttles clawed back (a synthetic post's
    #: interactions have distinct times)
    clawed: frozenset[float] = frozenset()


def _post_of(t: Throttle) -> str | None:
    if t.post is not None:
        return t.post
    return t.group[2:] if t.group.startswith("p:") else None


def _merge(throttles: Sequence[Throttle]) -> dict[str, _Group]:
    """One entry per post (or per group without a post): its first detection, withheld summed,
    reasons united. A post can be throttled in several groups (its comments, its engagement):
    the first one counts for time to throttle, and the post once for the rates."""
    out: dict[str, _Group] = {}
    for t in sorted(throttles, key=lambda t: t.detected_at):
        post = _post_of(t)
        key = "post:" + post if post is not None else t.group
        g = out.get(key)
        clawed = frozenset(float(ts) for ts in t.clawed)
        if g is None:
            out[key] = _Group(t, t.withheld_mp, t.reasons, clawed)
        else:
            reasons = tuple(dict.fromkeys(g.reasons + t.reasons))
            out[key] = _Group(g.first, g.withheld_mp + t.withheld_mp, reasons, g.clawed | clawed)
    return out


def report(stream: EvalStream, throttles: Sequence[Throttle]) -> EvalReport:
    """Score what the detector did against the stream's labels and the four targets."""
    groups = _merge(throttles)
    by_post = {p: g for g in groups.values() if (p := _post_of(g.first)) in stream.posts}
    shapes = {s: _shape_result(stream, s, by_post) for s in stream.shapes}
    organic, false_list = _organic(stream, groups)
    eligible = sum(o.eligible for o in organic.values())
    throttled = sum(o.throttled for o in organic.values())
    rate = throttled / eligible if eligible else 0.0
    organic_full = sum(o.full_mp for o in organic.values())
    share = sum(o.withheld_mp for o in organic.values()) / organic_full if organic_full else 0.0
    fractions = [
        _fraction(label, by_post.get(p)) for p, label in stream.posts.items() if label.bait
    ]
    failures = _failures(shapes, rate, share)
    return EvalReport(
        seed=stream.seed,
        half=stream.half,
        shapes=shapes,
        organic=organic,
        throttled_groups=len(groups),
        true_groups=len(groups) - len(false_list),
        false_throttles=tuple(false_list),
        max_fraction_before=max(fractions, default=0.0),
        false_throttle_rate=rate,
        organic_withheld_share=share,
        passed=not failures,
        failures=failures,
        split=stream.split,
        campaigns=_campaign_results(stream, by_post),
    )


def _campaign_results(
    stream: EvalStream, by_post: Mapping[str, _Group]
) -> dict[str, CampaignResult]:
    members: dict[tuple[str, str], list[PostLabel]] = {}
    for lb in stream.posts.values():
        if lb.bait and lb.campaign is not None:
            members.setdefault((lb.shape, lb.campaign), []).append(lb)
    out: dict[str, list[tuple[bool, float, float]]] = {}
    for (shape, _), labels in sorted(members.items()):
        farmed = sorted(ts for lb in labels for _, ts in _farmed(lb))
        firsts = [g.first.detected_at for lb in labels if (g := by_post.get(lb.post))]
        if not farmed:
            continue
        first = min(firsts, default=None)
        before = 1.0 if first is None else bisect.bisect_left(farmed, first) / len(farmed)
        full = sum(_fraction(lb, by_post.get(lb.post)) * len(_farmed(lb)) for lb in labels)
        out.setdefault(shape, []).append((first is not None, before, full / len(farmed)))
    return {
        shape: CampaignResult(
            shape,
            len(rows),
            sum(d for d, _, _ in rows),
            tuple(b for d, b, _ in rows if d),
            tuple(k for _, _, k in rows),
        )
        for shape, rows in out.items()
    }


def _farmed(label: PostLabel) -> tuple[tuple[str, float], ...]:
    return label.farmed or label.comments


def _fraction(label: PostLabel, group: _Group | None, *, live: bool = False) -> float:
    """Share of the farmed interactions scored in full in the end: before the throttle, and not
    clawed back by a retroactive one (``live``: before the throttle, what the boards showed
    while it ran); 1.0 if never throttled.

    The interaction AT ``detected_at`` is already throttled; their times within a synthetic post
    are distinct, so counting the ones strictly before is exact.
    """
    farmed = _farmed(label)
    if group is None or not farmed:
        return 1.0
    times = [ts for _, ts in farmed]
    before = bisect.bisect_left(times, group.first.detected_at)
    if live or not group.clawed:
        return before / len(times)
    kept = sum(float(ts) not in group.clawed for _, ts in farmed[:before])
    return kept / len(times)


def _shape_result(stream: EvalStream, shape: str, by_post: Mapping[str, _Group]) -> ShapeResult:
    labels = [lb for lb in stream.posts.values() if lb.bait and lb.shape == shape]
    seconds: list[float] = []
    fractions: list[float] = []
    live: list[float] = []
    retro = 0
    withheld = 0
    for label in labels:
        group = by_post.get(label.post)
        if group is None:
            continue
        withheld += group.withheld_mp
        retro += group.first.retroactive
        if _farmed(label):
            seconds.append(group.first.detected_at - _farmed(label)[0][1])
        fractions.append(_fraction(label, group))
        live.append(_fraction(label, group, live=True))
    return ShapeResult(
        shape=shape,
        campaigns=len(labels),
        detected=len(fractions),
        median_seconds=statistics.median(seconds) if seconds else None,
        max_seconds=max(seconds, default=None),
        median_fraction=statistics.median(fractions) if fractions else None,
        max_fraction=max(fractions, default=None),
        late=sum(f > FRACTION_TARGET for f in fractions),
        full_mp=sum(lb.full_mp for lb in labels),
        withheld_mp=withheld,
        max_live_fraction=max(live, default=None),
        retroactive=retro,
    )


def _organic(
    stream: EvalStream, groups: Mapping[str, _Group]
) -> tuple[dict[str, OrganicResult], list[FalseThrottle]]:
    rows: dict[str, list[int]] = {}  # shape → [posts, eligible, throttled, full, withheld]
    for shape in (*ORGANIC_SHAPES, BASELINE):
        rows[shape] = [0, 0, 0, 0, 0]
    rows[BACKGROUND] = [0, 0, 0, stream.background_full_mp, 0]
    for lb in stream.posts.values():
        if not lb.bait:
            row = rows.setdefault(lb.shape, [0, 0, 0, 0, 0])
            row[0] += 1
            row[1] += len(lb.comments) >= MIN_COMMENTS
            row[3] += lb.full_mp
    false_list: list[FalseThrottle] = []
    for g in groups.values():
        group = g.first.group
        post = _post_of(g.first)
        label = stream.posts.get(post) if post is not None else None
        if label is not None and label.bait:
            continue
        shape = label.shape if label is not None else BACKGROUND
        row = rows.setdefault(shape, [0, 0, 0, 0, 0])
        n_comments = len(label.comments) if label is not None else 0
        row[2] += label is not None and n_comments >= MIN_COMMENTS
        row[4] += g.withheld_mp
        t = g.first
        false_list.append(
            FalseThrottle(
                group,
                post,
                t.target,
                shape,
                n_comments,
                t.detected_at,
                t.multiplier,
                g.reasons,
                g.withheld_mp,
            )
        )
    false_list.sort(key=lambda f: (f.detected_at, f.group))
    return {s: OrganicResult(s, *r) for s, r in rows.items()}, false_list


def _failures(shapes: Mapping[str, ShapeResult], rate: float, share: float) -> list[str]:
    failures = [
        f"recall {s.shape}: {s.detected} of {s.campaigns} campaigns detected "
        f"({s.recall:.0%} < {RECALL_TARGET:.0%})"
        for s in shapes.values()
        if s.recall < RECALL_TARGET
    ]
    late = {s.shape: s.late + s.campaigns - s.detected for s in shapes.values()}
    if any(late.values()):
        detected = [s.max_fraction for s in shapes.values() if s.max_fraction is not None]
        worst = f"; worst detected {max(detected):.1%}" if detected else ""
        names = ", ".join(f"{shape} {n}" for shape, n in late.items() if n)
        failures.append(
            f"throttled before 20 %: {sum(late.values())} campaigns let more than "
            f"{FRACTION_TARGET:.0%} of their interactions through or were never throttled "
            f"({names}{worst})"
        )
    if rate > FALSE_THROTTLE_TARGET:
        failures.append(
            f"false throttles {rate:.2%} of organic posts > {FALSE_THROTTLE_TARGET:.0%}"
        )
    if share > ORGANIC_WITHHELD_TARGET:
        failures.append(f"organic points withheld {share:.3%} > {ORGANIC_WITHHELD_TARGET:.1%}")
    return failures
