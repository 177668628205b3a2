"""The whole evaluation ``kudos bait-eval`` prints, in its order.

1. the **held-out** split (held-out wordings, every shape family including the held-out one,
   YouTube half B) — the figures that count;
2. the **tuning** split (what a detector may be tuned on, YouTube half A);
3. the **leave-one-shape-out** table (:mod:`baiteval.loso`, always the pure replay);
4. the full **Higgs and MathOverflow** logs.

Streams go through the real pipeline (:mod:`baiteval.pipeline`: Valkey, Tansu, a real worker) or,
with ``pure``, through :func:`baiteval.replay.replay` only, which needs no server and takes
seconds: the loop to tune in.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from baiteval.heldout import HELDOUT_FAMILY
from baiteval.labels import EvalStream
from baiteval.loso import GRID, GridPoint, loso, replay_measure
from baiteval.metrics import report
from baiteval.replay import replay
from baiteval.report import RunResult, format_loso, format_real, format_report
from baiteval.synthesis import build_eval
from broker.formats import open_input, read_items
from leaderboard.bait import BaitParams

__all__ = ["REAL_LOGS", "SuiteOptions", "run_suite"]

#: The real logs replayed in full, with their `kudos replay` format.
REAL_LOGS = (
    ("higgs", "higgs/higgs-activity_time.txt.gz", "higgs"),
    ("mathoverflow", "mathoverflow/sx-mathoverflow-typed.DERIVED.txt.gz", "sx"),
)


@dataclass(frozen=True, kw_only=True)
class SuiteOptions:
    """What to run. ``splits`` are printed held-out first whatever the order given."""

    seeds: tuple[int, ...] = (1,)
    splits: tuple[str, ...] = ("heldout", "tuning")
    pure: bool = False
    loso: bool = True
    real: bool = True
    scale: float = 1.0
    evidence_lag: int = 0  # events (pure replay only; the worker's lag is a produce round trip)
    params: BaitParams | None = None  # the pure replay's detector settings (default: defaults)
    grid: tuple[float, ...] = GRID  # the thresholds the leave-one-shape-out table tries


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _stream(data: Path, split: str, seed: int, scale: float) -> EvalStream:
    say(f"building the {split} stream, seed {seed}")
    return build_eval(
        data,
        seed=seed,
        split=split,
        campaigns_per_shape=max(2, round(12 * scale)),
        organic_posts=max(20, round(240 * scale)),
        background=max(2000, round(150_000 * scale)),
    )


# the stream a forked grid process replays: inherited with the process, never pickled
_SHARED: EvalStream | None = None


def _grid_point(params: BaitParams | None, lag: int, threshold: float) -> GridPoint:
    assert _SHARED is not None
    return replay_measure(_SHARED, params, evidence_lag=lag)(threshold)


def _grid(
    stream: EvalStream, params: BaitParams | None, lag: int, thresholds: Sequence[float]
) -> dict[float, GridPoint]:
    """``thresholds`` replayed on ``stream``, on every core where processes can fork: the
    replays are independent and the grid is most of a pure run's time. A forked process only
    replays and scores (no I/O, no event loop) and sends back a small :class:`GridPoint`."""
    global _SHARED
    workers = min(len(thresholds), os.cpu_count() or 1, 4)
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        measure = replay_measure(stream, params, evidence_lag=lag)
        return {t: measure(t) for t in thresholds}
    _SHARED = stream
    try:
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            points = pool.map(functools.partial(_grid_point, params, lag), thresholds)
            return dict(zip(thresholds, points, strict=True))
    finally:
        _SHARED = None


def _log_events(path: Path, fmt: str) -> Iterator[dict[str, Any]]:
    with open_input(str(path)) as f:
        for item in read_items(f, fmt):
            if isinstance(item, dict):  # (an unreadable line would be dead-lettered)
                yield item


async def run_suite(data: Path, home: Path, opts: SuiteOptions) -> tuple[list[str], bool]:
    """Run everything asked for; the report sections and whether every split met its targets."""
    order = [s for s in ("heldout", "tuning") if s in opts.splits]
    streams: dict[tuple[str, int], EvalStream] = {
        (split, seed): _stream(data, split, seed, opts.scale)
        for split in order
        for seed in opts.seeds
    }
    sections: list[str] = []
    passed = True
    pipe = None
    if not opts.pure:
        from baiteval.pipeline import Pipeline  # (servers only when asked for)

        pipe = Pipeline(home)
        pipe.start()
    try:
        for (split, seed), stream in streams.items():
            if pipe is None:
                run = replay(stream.events, params=opts.params, evidence_lag=opts.evidence_lag)
                throttles, how = (
                    run.throttles,
                    f"pure replay of {run.events:,} events in {run.seconds:.1f} s",
                )
            else:
                result = await pipe.run(f"eval-{split}{seed}", stream.events, len(stream.events))
                throttles = result.throttles
                how = f"replayed {result.events:,} events through the worker in {result.seconds:.0f} s"
            r = report(stream, throttles)
            passed = passed and r.passed
            sections.append(format_report(r) + f"\n({how})")
        if opts.loso:
            sections.append(_loso(data, opts, streams))
        if opts.real:
            for name, rel, fmt in REAL_LOGS:
                path = data / rel
                if pipe is None:
                    say(f"{name}: pure replay of the full log")
                    run = replay(
                        _log_events(path, fmt), params=opts.params, evidence_lag=opts.evidence_lag
                    )
                    res = RunResult(
                        name,
                        run.events,
                        run.seconds,
                        run.throttles,
                        [],
                        run.points_mp,
                        run.withheld_mp,
                    )
                else:
                    with open_input(str(path)) as f:
                        total = sum(1 for _ in f)
                    with open_input(str(path)) as f:
                        # (paced more loosely: no texts, few throttles, and 1M events)
                        res = await pipe.run(name, read_items(f, fmt), total, pace=10_000)
                sections.append(format_real(res) + ("  (pure replay)" if pipe is None else ""))
    finally:
        if pipe is not None:
            pipe.stop()
    return sections, passed


def _loso(data: Path, opts: SuiteOptions, streams: dict[tuple[str, int], EvalStream]) -> str:
    seed = opts.seeds[0]
    tuning = streams.get(("tuning", seed)) or _stream(data, "tuning", seed, opts.scale)
    say(f"leave one shape out: {len(opts.grid)} pure replays of the tuning stream")
    points = _grid(tuning, opts.params, opts.evidence_lag, opts.grid)
    heldout = streams.get(("heldout", seed))  # (only when the held-out split is asked for)
    rows = loso(
        points.__getitem__,
        tuning.shapes,
        grid=opts.grid,
        heldout=replay_measure(heldout, opts.params, evidence_lag=opts.evidence_lag)
        if heldout
        else None,
        heldout_shape=HELDOUT_FAMILY if heldout else None,
    )
    return format_loso(rows, opts.grid) + f"\n(tuning stream seed {seed})"
