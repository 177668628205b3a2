"""The evaluation report: one :class:`~baiteval.metrics.EvalReport` as fixed-width text.

:func:`format_report` lists campaigns per shape (recall, time to throttle, share of comments
before it, points withheld), precision, organic shapes, every false throttle with its reasons, and
a PASS/MISS line per target with the verdict.
"""

from __future__ import annotations

from baiteval.labels import HOUR, MINUTE
from baiteval.metrics import (
    FALSE_THROTTLE_TARGET,
    MIN_COMMENTS,
    ORGANIC_WITHHELD_TARGET,
    RECALL_TARGET,
    EvalReport,
)
from leaderboard.scoring import format_mp

__all__ = ["format_report"]


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


def format_report(r: EvalReport) -> str:
    """A compact fixed-width text report: campaigns per shape, organic, false throttles, verdict."""
    lines = [
        f"comment-bait evaluation: seed {r.seed}, texts half {r.half}",
        "",
        f"{'campaign shape':<30}{'n':>4}{'det':>5}{'recall':>8}{'t med':>8}{'t max':>8}"
        f"{'frac med':>10}{'frac max':>10}{'>20%':>6}{'withheld':>10}",
    ]
    for s in r.shapes.values():
        lines.append(
            f"{s.shape:<30}{s.campaigns:>4}{s.detected:>5}{_pct(s.recall):>8}"
            f"{_dur(s.median_seconds):>8}{_dur(s.max_seconds):>8}{_pct(s.median_fraction):>10}"
            f"{_pct(s.max_fraction):>10}{s.late:>6}{_pct(s.withheld_share):>10}"
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
            f"every campaign throttled before 20 % of its comments (max {r.max_fraction_before:.1%})",
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
