"""The pure replay: the detector run over a stream as the worker runs it, without any server.

:func:`replay` keeps one :class:`~leaderboard.bait.Detector` per partition (events go to
``partition_for(target)``, as the producer keys them), feeds each event to its partition's
detector in stream order under the planner's rule (:func:`leaderboard.plan.build_plan`: comments,
replies and anything on a post are judged; other engagement is judged on a target the detector
holds a group for, else only shown to it with ``touch`` where the detector has one), and scores
the points exactly as the worker does: integer milli-points, diminishing returns per (actor,
target, UTC day) counted over scored events only, ``kept = points * multiplier // 1000``,
``points - kept`` withheld. The result holds the same :class:`~baiteval.metrics.Throttle` records
:func:`baiteval.metrics.report` takes from the real pipeline, each with the points withheld on
its post (or, without a post, its target) counted once.

Evidence across partitions: after each event, the evidence records the detector produced
(``take_evidence()``) are handed to every *other* partition's detector (``flag()``)
``evidence_lag`` events later in stream order (default 0: before the next event). The live worker
produces the record into the events topic and waits for the acknowledgements before applying the
batch, so its lag is a produce round trip: the record lands in each other partition's log behind
whatever that partition had already received, typically a few hundred events later at replay
speed, and in live traffic within a second of event time. ``evidence_lag`` measures how much that
matters.

Pure: talks to neither Redis nor Kafka; reads nothing; prints nothing.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from baiteval.metrics import Throttle
from broker.producer import partition_for
from leaderboard.bait import (
    COMMENT_KINDS,
    ENGAGEMENT_KINDS,
    FULL,
    BaitParams,
    Decision,
    Detector,
    Evidence,
    group_key,
)
from leaderboard.scoring import ScoringRules, contribution

__all__ = ["PARTITIONS", "DetectorLike", "Replay", "replay"]

#: The default partition count of a namespace (``KUDOS_BROKER_PARTITIONS``).
PARTITIONS = 4
# drain decisions and state changes this often: the worker drains them once per batch
_DRAIN_EVERY = 4096


class DetectorLike(Protocol):
    """What the replay uses of :class:`~leaderboard.bait.Detector` (the seam tests fake)."""

    def observe(
        self, kind: str, ts: float, actor: str, target: str, post: str | None, text: str | None
    ) -> int: ...

    def take_decisions(self) -> list[Decision]: ...

    def take_evidence(self) -> list[Evidence]: ...

    def take_changes(self) -> list[tuple[str, str, bytes | None]]: ...

    def flag(self, e: Evidence) -> None: ...


@dataclass
class Replay:
    """What the detector did over one stream."""

    events: int
    seconds: float  # wall time of the replay
    throttles: list[Throttle] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)  # started and ended, in order
    points_mp: int = 0  # kept, over every scored event
    withheld_mp: int = 0  # over every scored event, throttled or not
    evidence: int = 0  # evidence records produced


def _groups(det: DetectorLike) -> Mapping[str, object]:
    # the worker's rule for engagement without a post reads the detector's groups
    groups = getattr(det, "groups", None)
    return groups if isinstance(groups, Mapping) else {}


def replay(
    events: Iterable[Mapping[str, Any]],
    *,
    params: BaitParams | None = None,
    partitions: int = PARTITIONS,
    evidence_lag: int = 0,
    rules: ScoringRules | None = None,
    detector: Callable[[BaitParams], DetectorLike] = Detector,
) -> Replay:
    """Run one detector per partition over ``events`` (in the order given) and score them.

    Events are dicts in the event schema (``id``, ``ts``, ``kind``, ``actor``, ``target`` and
    optionally ``post`` and ``text``), assumed valid and free of duplicates, as a labelled stream
    is. ``params`` defaults to ``BaitParams()``; ``detector`` makes one partition's detector.

    Raises:
        ValueError: ``partitions`` < 1 or ``evidence_lag`` < 0.
    """
    if partitions < 1 or evidence_lag < 0:
        raise ValueError("partitions must be >= 1 and evidence_lag >= 0")
    rules = rules or ScoringRules.load()
    weights = rules.weights_mp
    period = rules.dr_period_s
    params = params or BaitParams()
    dets = [detector(params) for _ in range(partitions)]
    memo: dict[str, int] = {}
    pending: deque[tuple[int, int, Evidence]] = deque()  # (due index, source partition, record)
    k_of: dict[tuple[int, str, str], int] = {}
    # withheld per (target, post), or (target, "t:<target>") without a post: the worker splits a
    # post's entry by group (its comments, its engagement), the report counts a post once
    withheld: dict[tuple[str, str], int] = {}
    touches = [getattr(d, "touch", None) for d in dets]
    out = Replay(0, 0.0)
    started = time.perf_counter()
    i = -1
    for i, ev in enumerate(events):
        while pending and pending[0][0] <= i:
            _, source, record = pending.popleft()
            for q, other in enumerate(dets):
                if q != source:
                    other.flag(record)
                    _claw_back(other, withheld, out)
        kind, ts, actor, target = ev["kind"], ev["ts"], ev["actor"], ev["target"]
        post = ev.get("post")
        p = memo.get(target)
        if p is None:
            p = memo[target] = partition_for(target.encode(), partitions)
        det = dets[p]
        mult = FULL
        judged = False
        if kind in COMMENT_KINDS or post is not None or kind == "post":
            mult = det.observe(kind, ts, actor, target, post, ev.get("text"))
            judged = True
            _claw_back(det, withheld, out)
        elif kind in ENGAGEMENT_KINDS and "t:" + target in _groups(det):
            det.observe(kind, ts, actor, target, None, None)
        elif (touch := touches[p]) is not None:
            touch(ts, actor, target)  # (not judged: gives the actor a history, as the planner)
        for record in det.take_evidence():
            pending.append((i + 1 + evidence_lag, p, record))
            out.evidence += 1
        if i % _DRAIN_EVERY == _DRAIN_EVERY - 1:
            _drain(dets, out)
        weight = weights.get(kind, 0)
        if weight == 0 or actor == target:
            continue  # not scored, so not counted in k either
        key = (math.floor(ts / period), actor, target)
        k = k_of.get(key, 0) + 1
        k_of[key] = k
        points = contribution(weight, k)
        if mult != FULL:
            kept = points * mult // FULL
            gkey = (target, post if post is not None else group_key(None, target))
            withheld[gkey] = withheld.get(gkey, 0) + points - kept
            out.withheld_mp += points - kept
            points = kept
        elif judged and (tell := getattr(det, "counted", None)) is not None:
            tell(kind, points, ())  # (for a retroactive throttle, as the planner tells it)
        out.points_mp += points
    _drain(dets, out)
    out.events = i + 1
    out.seconds = time.perf_counter() - started
    out.decisions.sort(key=lambda d: d.at)  # (stable: a partition's own order among equal times)
    counted: set[tuple[str, str]] = set()
    for d in out.decisions:
        if d.state != "throttled":
            continue
        # one total per post (or target) over all its throttles and groups: count it once
        gkey = (d.target, d.post if d.post is not None else d.group)
        w = 0 if gkey in counted else withheld.get(gkey, 0)
        counted.add(gkey)
        out.throttles.append(
            Throttle(
                d.group,
                d.post,
                d.target,
                d.since if d.retroactive else d.at,
                d.multiplier,
                tuple(d.reasons),
                w,
                d.retroactive,
                tuple(ts for _, ts in d.clawed),
            )
        )
    return out


def _claw_back(det: DetectorLike, withheld: dict[tuple[str, str], int], out: Replay) -> None:
    """What a retroactive throttle took back, as the planner takes it (the fakes have none)."""
    take = getattr(det, "take_clawbacks", None)
    if take is None:
        return
    for c in take():
        gkey = (c.target, c.post)
        withheld[gkey] = withheld.get(gkey, 0) + c.withheld_mp
        out.withheld_mp += c.withheld_mp
        out.points_mp -= c.withheld_mp


def _drain(dets: list[DetectorLike], out: Replay) -> None:
    for det in dets:
        out.decisions.extend(det.take_decisions())
        det.take_changes()  # the worker persists these; a replay has nowhere to keep them
