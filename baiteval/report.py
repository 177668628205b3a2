"""The evaluation report as fixed-width text.

:func:`format_report` prints one :class:`~baiteval.metrics.EvalReport`: campaigns per shape
(recall, time to throttle, share of farmed interactions before it, points withheld), precision,
organic shapes, every false throttle with its reasons, and a PASS/MISS line per target with the
verdict. :func:`format_loso` prints the leave-one-shape-out table, :func:`format_real` a full
real log's run (:class:`RunResult`).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from baiteval.labels import HOUR, MINUTE
from baiteval.loso import LosoRow
from baiteval.metrics import (
    FALSE_THROTTLE_TARGET,
    MIN_COMMENTS,
    ORGANIC_WITHHELD_TARGET,
    RECALL_TARGET,
    EvalReport,
    Throttle,
)
from leaderboard.scoring import format_mp

__all__ = ["RunResult", "format_loso", "format_real", "format_report"]


@dataclass
class RunResult:
    """What one replay of a log did (through the pipeline, read back from Redis, or pure)."""

    name: str
    events: int
    seconds: float
    throttles: list[Throttle] = field(default_factory=list)
    #: every alert (throttles started and ended) as the API lists them, oldest first
    alerts: list[dict[str, Any]] = field(default_factory=list)
    points_mp: int = 0
    withheld_mp: int = 0


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if abs(seconds) < 120:
        return f"{seconds:.0f}s"
    if abs(seconds) < 2 * HOUR:
        return f"{seconds / MINUTE:.1f}m"
    return f"{seconds / HOUR:.1f}h"


def _pct(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}%}"


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def format_report(r: EvalReport) -> str:
    """A compact fixed-width text report: campaigns per shape, organic, false throttles, verdict."""
    lines = [
        f"comment-bait evaluation, {r.split} split: seed {r.seed}, texts half {r.half}",
        "(frac: share of a campaign's farmed interactions, its comments or a pod's shares and "
        "likes, counted in full in the end: before the throttle and not clawed back; live max: "
        "the worst share counted in full while it ran, before any claw-back; retro: caught only "
        "retroactively, in lockstep with a later throttle)",
        "",
        f"{'campaign shape':<30}{'n':>4}{'det':>5}{'recall':>8}{'retro':>6}{'t med':>8}"
        f"{'t max':>8}{'frac med':>10}{'frac max':>10}{'>20%':>6}{'live max':>10}"
        f"{'withheld':>10}",
    ]
    for s in r.shapes.values():
        lines.append(
            f"{s.shape:<30}{s.campaigns:>4}{s.detected:>5}{_pct(s.recall):>8}{s.retroactive:>6}"
            f"{_dur(s.median_seconds):>8}{_dur(s.max_seconds):>8}{_pct(s.median_fraction):>10}"
            f"{_pct(s.max_fraction):>10}{s.late:>6}{_pct(s.max_live_fraction):>10}"
            f"{_pct(s.withheld_share):>10}"
        )
    if r.campaigns:
        lines += [
            "each ring or pod as one campaign (before: its farmed interactions, over all its posts, "
            "counted in full before its first throttle; kept: counted in full in the end)",
            f"{'campaign shape':<30}{'n':>4}{'det':>5}{'recall':>8}{'before med':>12}"
            f"{'before max':>12}{'>20%':>6}{'kept med':>10}{'kept max':>10}",
        ]
        for c in r.campaigns.values():
            before = sorted(c.fractions)
            kept = sorted(c.kept)
            lines.append(
                f"{c.shape:<30}{c.campaigns:>4}{c.detected:>5}{_pct(c.recall):>8}"
                f"{_pct(_median(before)):>12}{_pct(before[-1] if before else None):>12}"
                f"{c.late:>6}{_pct(_median(kept)):>10}{_pct(kept[-1] if kept else None):>10}"
            )
    lines += [
        f"precision {_pct(r.precision)}: {r.true_groups} of {r.throttled_groups} throttled groups are campaigns",
        "",
        f"{'organic shape':<30}{'posts':>6}{f'>={MIN_COMMENTS}c':>7}{'throttled':>10}"
        f"{'full pts':>14}{'withheld':>10}",
    ]
    for o in r.organic.values():
        share = o.withheld_mp / o.full_mp if o.full_mp else 0.0
        lines.append(
            f"{o.shape:<30}{o.posts:>6}{o.eligible:>7}{o.throttled:>10}"
            f"{format_mp(o.full_mp):>14}{_pct(share, 3):>10}"
        )
    lines.append(f"false throttles: {len(r.false_throttles)}")
    for f in r.false_throttles:
        lines.append(
            f"  {f.group} [{f.shape}, {f.comments} comments] at ts {f.detected_at:.0f} "
            f"x{f.multiplier:g} withheld {format_mp(f.withheld_mp)} pts: {', '.join(f.reasons) or '-'}"
        )
    worst_recall = min(r.recall.values(), default=1.0)
    checks = (
        (
            worst_recall >= RECALL_TARGET,
            f"recall per shape >= {RECALL_TARGET:.0%} (worst {worst_recall:.1%})",
        ),
        (
            not any(s.late or s.detected < s.campaigns for s in r.shapes.values()),
            f"every campaign throttled before 20 % of its interactions (max {r.max_fraction_before:.1%})",
        ),
        (
            r.false_throttle_rate <= FALSE_THROTTLE_TARGET,
            f"false throttles <= {FALSE_THROTTLE_TARGET:.0%} of organic posts with >= {MIN_COMMENTS} "
            f"comments ({r.false_throttle_rate:.2%})",
        ),
        (
            r.organic_withheld_share <= ORGANIC_WITHHELD_TARGET,
            f"organic points withheld <= {ORGANIC_WITHHELD_TARGET:.1%} ({r.organic_withheld_share:.3%})",
        ),
    )
    lines.append("")
    lines += [f"{'PASS' if ok else 'MISS'} {text}" for ok, text in checks]
    lines.append("PASSED" if r.passed else f"FAILED: {'; '.join(r.failures)}")
    return "\n".join(lines)


def format_loso(rows: Sequence[LosoRow], grid: Sequence[float]) -> str:
    """The leave-one-shape-out table: per shape, the threshold set without it and its figures."""
    lines = [
        "leave one shape out: the threshold is set on the tuning split without the shape (grid "
        f"{min(grid):g}..{max(grid):g}; best mean recall of the other shapes with false throttles "
        "<= 1 % and organic withheld <= 0.5 %; ties to the higher), then the shape is measured at it",
        "",
        f"{'left out':<30}{'split':>8}{'thresh':>8}{'others':>8}{'recall':>8}{'t med':>8}"
        f"{'frac med':>10}{'frac max':>10}",
    ]
    for row in rows:
        thresh = "-" if row.threshold is None else f"{row.threshold:.1f}"
        lines.append(
            f"{row.shape:<30}{row.split:>8}{thresh:>8}{_pct(row.others_recall):>8}"
            f"{_pct(row.recall):>8}{_dur(row.median_seconds):>8}{_pct(row.median_fraction):>10}"
            f"{_pct(row.max_fraction):>10}"
        )
    if any(row.threshold is None for row in rows):
        lines.append("- : no threshold on the grid keeps the organic targets")
    return "\n".join(lines)


def format_real(r: RunResult) -> str:
    share = r.withheld_mp / max(r.points_mp + r.withheld_mp, 1)
    lines = [
        f"{r.name}: {r.events:,} events replayed in {r.seconds:.0f} s; "
        f"{len(r.throttles)} throttles; {r.withheld_mp / 1000:,.3f} points withheld of "
        f"{(r.points_mp + r.withheld_mp) / 1000:,.3f} ({100 * share:.4f} %)"
    ]
    for t in r.throttles:
        lines.append(
            f"  {t.group} (author {t.target}): x{t.multiplier:g} at {t.detected_at:.0f}, "
            f"withheld {t.withheld_mp / 1000:.3f}; reasons: {', '.join(t.reasons)}"
        )
    return "\n".join(lines)
