"""The comment-bait detector's cost per event, pure (no I/O): ``python -m bench.bait_cost [FILE]``.

Feeds a JSON-lines event log to one detector per partition exactly as the planner does
(:func:`leaderboard.plan.build_plan`: comments, posts and engagement on a post are judged and told
what they scored, other engagement on a followed target is counted, everything else only gives its
actor a history) and
prints the seconds per event, the best of ``--repeat`` runs, and what the detector holds at the end.
Without FILE (``make bench``) it measures two inputs it builds itself: the first 200,000 Higgs
events (no posts, no texts) and the tuning split of ``kudos bait-eval`` (comment-heavy). Run it
from two checkouts on the same FILE for a before/after figure; the planner without the detector
costs what ``make bench`` reports.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import orjson

from broker.producer import partition_for
from leaderboard.bait import COMMENT_KINDS, ENGAGEMENT_KINDS, FULL, Detector

Row = tuple[str, float, str, str, str | None, str | None]


DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def higgs(n: int) -> list[Row]:
    """The first ``n`` events of the Higgs log, as ``kudos replay --format higgs`` reads them."""
    from broker.formats import open_input, read_items

    rows: list[Row] = []
    with open_input(str(DATA / "higgs" / "higgs-activity_time.txt.gz")) as f:
        for item in read_items(f, "higgs"):
            if isinstance(item, dict):
                rows.append(
                    (item["kind"], float(item["ts"]), item["actor"], item["target"], None, None)
                )
            if len(rows) >= n:
                break
    return rows


def tuning() -> list[Row]:
    """The tuning split of the bait evaluation (seed 1)."""
    from baiteval.synthesis import build_eval

    stream = build_eval(DATA, seed=1, split="tuning")
    return [
        (e["kind"], float(e["ts"]), e["actor"], e["target"], e.get("post"), e.get("text"))
        for e in stream.events
    ]


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
            if det.observe(kind, ts, actor, target, post, text) == FULL and actor != target:
                det.counted(kind, 1000, ())  # (what it scored: kept for a retroactive throttle)
            det.take_clawbacks()
        elif kind in ENGAGEMENT_KINDS and "t:" + target in det.groups:
            det.observe(kind, ts, actor, target, None, None)
        elif hasattr(det, "touch"):
            det.touch(ts, actor, target)
        if len(det._dirty) > 4096:
            det.take_changes()  # (the worker writes what changed with every apply: its cost too)
    elapsed = time.perf_counter() - t0
    return elapsed, sum(d.size() for d in dets)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("file", type=Path, nargs="?")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    inputs = (
        [(args.file.name, load(args.file))]
        if args.file
        else [("higgs, first 200,000 events", higgs(200_000)), ("bait-eval tuning", tuning())]
    )
    for name, rows in inputs:
        best, size = min(run(rows, args.partitions) for _ in range(args.repeat))
        print(
            f"bait detector cost, {name}: {len(rows):,} events, "
            f"{best / len(rows) * 1e6:.2f} µs an event (best of {args.repeat}), {size:,} entries held"
        )


if __name__ == "__main__":
    main()
