"""Leave one shape out: how well the one global threshold carries to a shape it was not set on.

The detector has one threshold (``BaitParams.threshold``). For each campaign shape S of the
tuning split, :func:`loso` sets it on the tuning split *without* S — over a grid, the threshold
with the best mean recall over the other shapes among those that keep organic false throttles
≤ 1 % and organic points withheld ≤ 0.5 % (ties: the higher threshold) — and reports S's recall
and time to throttle at that threshold. The held-out family gets a row too: the threshold set on
every tuning shape, measured on the held-out split.

The seam is :data:`Measure`, "threshold → :class:`GridPoint`"; the real one runs the pure replay
(:func:`replay_measure`), a test passes a table.

Pure: no I/O.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from baiteval.labels import EvalStream
from baiteval.metrics import FALSE_THROTTLE_TARGET, ORGANIC_WITHHELD_TARGET, EvalReport, report
from baiteval.replay import replay
from leaderboard.bait import BaitParams

__all__ = ["GRID", "GridPoint", "LosoRow", "Measure", "calibrate", "loso", "replay_measure"]

#: The thresholds tried: 1.2, 1.4, …, 2.4.
GRID: tuple[float, ...] = tuple(round(1.2 + 0.2 * j, 1) for j in range(7))


@dataclass(frozen=True)
class GridPoint:
    """What one threshold did on one stream: per-shape figures and the organic costs."""

    threshold: float
    recall: Mapping[str, float]
    median_seconds: Mapping[str, float | None]
    median_fraction: Mapping[str, float | None]
    max_fraction: Mapping[str, float | None]
    false_rate: float
    withheld_share: float

    @classmethod
    def of(cls, threshold: float, r: EvalReport) -> GridPoint:
        return cls(
            threshold,
            {s: x.recall for s, x in r.shapes.items()},
            {s: x.median_seconds for s, x in r.shapes.items()},
            {s: x.median_fraction for s, x in r.shapes.items()},
            {s: x.max_fraction for s, x in r.shapes.items()},
            r.false_throttle_rate,
            r.organic_withheld_share,
        )

    @property
    def feasible(self) -> bool:
        return (
            self.false_rate <= FALSE_THROTTLE_TARGET
            and self.withheld_share <= ORGANIC_WITHHELD_TARGET
        )

    def mean_recall(self, without: str | None = None) -> float:
        """Mean recall over the shapes but ``without``; 0.0 if there are none."""
        values = [r for s, r in self.recall.items() if s != without]
        return statistics.fmean(values) if values else 0.0


#: threshold → what it did (the seam between the calibration and the replay).
Measure = Callable[[float], GridPoint]


def calibrate(points: Sequence[GridPoint], without: str | None = None) -> GridPoint | None:
    """The point whose threshold the calibration picks when ``without`` is left out: the best
    mean recall over the other shapes among the feasible points, ties to the higher threshold;
    None if no threshold is feasible."""
    feasible = [p for p in points if p.feasible]
    # rounded: means of the same recalls in another order must tie
    return max(
        feasible, key=lambda p: (round(p.mean_recall(without), 9), p.threshold), default=None
    )


@dataclass(frozen=True)
class LosoRow:
    """One shape's row: the threshold set without it, and what that threshold did to it."""

    shape: str
    split: str  # where the shape's figures were measured
    threshold: float | None  # None: no threshold on the grid was feasible
    others_recall: float | None  # mean recall of the shapes it was set on
    recall: float | None
    median_seconds: float | None
    median_fraction: float | None
    max_fraction: float | None


def _row(
    shape: str, split: str, chosen: GridPoint | None, at: GridPoint | None, others: float | None
) -> LosoRow:
    if chosen is None or at is None:
        return LosoRow(shape, split, None, None, None, None, None, None)
    return LosoRow(
        shape,
        split,
        chosen.threshold,
        others,
        at.recall.get(shape),
        at.median_seconds.get(shape),
        at.median_fraction.get(shape),
        at.max_fraction.get(shape),
    )


def loso(
    tuning: Measure,
    shapes: Sequence[str],
    *,
    grid: Sequence[float] = GRID,
    heldout: Measure | None = None,
    heldout_shape: str | None = None,
) -> list[LosoRow]:
    """One row per tuning shape, then (given ``heldout`` and ``heldout_shape``) one for the
    held-out family. ``tuning`` is measured once per grid threshold, ``heldout`` once."""
    points = [tuning(t) for t in grid]
    rows = []
    for shape in shapes:
        chosen = calibrate(points, without=shape)
        others = chosen.mean_recall(without=shape) if chosen else None
        rows.append(_row(shape, "tuning", chosen, chosen, others))
    if heldout is not None and heldout_shape is not None:
        chosen = calibrate(points)
        at = heldout(chosen.threshold) if chosen is not None else None
        rows.append(
            _row(heldout_shape, "heldout", chosen, at, chosen.mean_recall() if chosen else None)
        )
    return rows


def replay_measure(
    stream: EvalStream, params: BaitParams | None = None, *, evidence_lag: int = 0
) -> Measure:
    """The real seam: the pure replay of ``stream`` at a threshold, scored (memoised)."""
    base = params or BaitParams()
    seen: dict[float, GridPoint] = {}

    def measure(threshold: float) -> GridPoint:
        if threshold not in seen:
            run = replay(
                stream.events, params=replace(base, threshold=threshold), evidence_lag=evidence_lag
            )
            seen[threshold] = GridPoint.of(threshold, report(stream, run.throttles))
        return seen[threshold]

    return measure
