"""The comment-bait detector's cost per event, pure (no I/O): ``python -m bench.bait_cost FILE``.

Feeds a JSON-lines event log to one detector per partition exactly as the planner does
(:func:`leaderboard.plan.build_plan`: comments, posts and engagement on a post are judged, other
engagement on a followed target is counted, everything else only gives its actor a history) and
prints the seconds per event, the best of ``--repeat`` runs, and what the detector holds at the end.
Run it from two checkouts on the same file for a before/after figure; the planner without the
detector costs what ``make bench`` reports.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import orjson

from broker.producer import partition_for
from leaderboard.bait import COMMENT_KINDS, ENGAGEMENT_KINDS, Detector

Row = tuple[str, float, str, str, str | None, str | None]


def load(path: Path) -> list[Row]:
    rows: list[Row] = []
    with open(path, "rb") as f:
        for line in f:
            e = orjson.loads(line)
            rows.append(
                (e["kind"], float(e["ts"]), e["actor"], e["target"], e.get("post"), e.get("text"))
            )
    return rows


def run(rows: list[Row], partitions: int) -> tuple[float, int]:
    dets = [Detector() for _ in range(partitions)]
    part: dict[str, Detector] = {}
    t0 = time.perf_counter()
    for kind, ts, actor, target, post, text in rows:
        det = part.get(target)
        if det is None:
            det = part[target] = dets[partition_for(target.encode(), partitions)]
        if kind in COMMENT_KINDS or post is not None or kind == "post":
            det.observe(kind, ts, actor, target, post, text)
        elif kind in ENGAGEMENT_KINDS and "t:" + target in det.groups:
            det.observe(kind, ts, actor, target, None, None)
        elif hasattr(det, "touch"):
            det.touch(ts, actor, target)
        det.take_changes() if len(det._dirty) > 4096 else None
    elapsed = time.perf_counter() - t0
    return elapsed, sum(d.size() for d in dets)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("file", type=Path)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rows = load(args.file)
    best, size = min(run(rows, args.partitions) for _ in range(args.repeat))
    print(
        f"{args.file.name}: {len(rows)} events, {best / len(rows) * 1e6:.2f} µs an event "
        f"(best of {args.repeat}), {size} entries held"
    )


if __name__ == "__main__":
    main()
