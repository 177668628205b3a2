"""Fingerprints of everything the comment-bait detector decides: ``python -m bench.bait_fingerprint``.

For a change meant to make the detector cheaper without changing what it decides: run it in two
checkouts (or before and after the change) and diff the outputs (the seconds at the end of each
line aside). Each line replays one stream through one detector per partition as the planner feeds
them (:mod:`bench.bait_cost`), hands every evidence record to the other partitions every 500
events, takes the state changes every 997 events and restores every detector from its tables every
40,000 events (so the stored form must carry everything decisions depend on), and prints hashes of

- ``decisions``: every multiplier :meth:`Detector.observe` returned, every :class:`Decision` and
  every :class:`Evidence` record (their reprs and JSON forms), in order;
- ``changes``: every (table, key, value) :meth:`Detector.take_changes` returned, in order;
- ``final``: the stored tables at the end.

The streams: the Higgs log (no decisions, but all the state), the bait-eval tuning split of seeds
1 and 2, with the default parameters, with small caps (sweeps beyond the caps) and with a lower
threshold on three partitions.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from baiteval.synthesis import build_eval
from bench.bait_cost import DATA, Row, higgs, tuning
from broker.producer import partition_for
from leaderboard.bait import COMMENT_KINDS, ENGAGEMENT_KINDS, BaitParams, Detector, Evidence


def replay(
    name: str,
    rows: list[Row],
    params: BaitParams | None,
    partitions: int = 4,
    take_every: int = 997,
    restore_every: int = 40_000,
    evidence_every: int = 500,
) -> str:
    decided, changed = hashlib.sha256(), hashlib.sha256()
    dets = [Detector(params) for _ in range(partitions)]
    tables: list[dict[str, dict[str, str]]] = [{} for _ in range(partitions)]
    pending: list[tuple[int, Evidence]] = []
    counts = {"decisions": 0, "evidence": 0}
    t0 = time.perf_counter()

    def drain(i: int) -> None:
        for d in dets[i].take_decisions():
            counts["decisions"] += 1
            decided.update(repr(d).encode() + repr(d.to_json()).encode())
        for e in dets[i].take_evidence():
            counts["evidence"] += 1
            decided.update(repr(e).encode() + repr(e.to_json()).encode())
            pending.append((i, e))

    def take(i: int) -> None:
        for t, k, v in dets[i].take_changes():
            changed.update(f"{i}|{t}|{k}|".encode() + (b"None" if v is None else v))
            if v is None:
                tables[i].setdefault(t, {}).pop(k, None)
            else:
                tables[i].setdefault(t, {})[k] = v.decode()

    for n, (kind, ts, actor, target, post, text) in enumerate(rows, 1):
        i = partition_for(target.encode(), partitions)
        det = dets[i]
        if kind in COMMENT_KINDS or post is not None or kind == "post":
            decided.update(f"{n}:{det.observe(kind, ts, actor, target, post, text)};".encode())
        elif kind in ENGAGEMENT_KINDS and "t:" + target in det.groups:
            decided.update(f"{n}:{det.observe(kind, ts, actor, target, None, None)};".encode())
        else:
            det.touch(ts, actor, target)
        drain(i)
        if n % evidence_every == 0:
            sent, pending[:] = list(pending), []
            for source, e in sent:
                for j in range(partitions):
                    if j != source:
                        dets[j].flag(e)
                        drain(j)
        if n % take_every == 0:
            for j in range(partitions):
                take(j)
        if n % restore_every == 0:
            for j in range(partitions):
                take(j)
                dets[j] = Detector.restore(tables[j], params)
    for j in range(partitions):
        drain(j)
        take(j)
    final = hashlib.sha256()
    for j, tabs in enumerate(tables):
        for t in sorted(tabs):
            for k in sorted(tabs[t]):
                final.update(f"{j}|{t}|{k}|{tabs[t][k]}".encode())
    return (
        f"{name}: {len(rows):,} events, {counts['decisions']} decisions, "
        f"{counts['evidence']} evidence | decisions {decided.hexdigest()[:16]} "
        f"changes {changed.hexdigest()[:16]} final {final.hexdigest()[:16]} "
        f"({time.perf_counter() - t0:.1f} s)"
    )


def _rows(events: list[dict[str, Any]]) -> list[Row]:
    return [
        (e["kind"], float(e["ts"]), e["actor"], e["target"], e.get("post"), e.get("text"))
        for e in events
    ]


def main() -> None:
    small = BaitParams(max_groups=400, max_authors=800, max_commenters=1500, max_shadows=150)
    h = higgs(600_000)
    print(replay("higgs", h, None), flush=True)
    t1 = tuning()
    print(replay("tuning s1", t1, None), flush=True)
    print(replay("tuning s1 small caps", t1, small), flush=True)
    print(replay("higgs small caps", h[:150_000], small), flush=True)
    t2 = _rows(build_eval(DATA, seed=2, split="tuning").events)
    print(replay("tuning s2", t2, None), flush=True)
    strict = BaitParams(threshold=1.2, min_comments=8)
    print(replay("tuning s2 p=3 strict", t2, strict, partitions=3), flush=True)


if __name__ == "__main__":
    main()
