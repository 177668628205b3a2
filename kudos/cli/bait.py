"""The ``bait-eval`` command: the comment-bait detector measured, held-out figures first.

:func:`add_arguments` declares its options, :func:`cmd_bait_eval` runs it
(:func:`baiteval.suite.run_suite`). ``python -m baiteval [options]`` runs the same command on its
own (:func:`main`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from kudos.cli.common import positive
from leaderboard.errors import KudosError
from leaderboard.settings import Settings

__all__ = ["DEFAULT_DATA", "add_arguments", "cmd_bait_eval", "main"]

#: The real public data (Higgs, MathOverflow, YouTube comments) beside the project.
DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def add_arguments(s: argparse.ArgumentParser) -> None:
    """The options of ``kudos bait-eval``."""
    s.add_argument(
        "--seed",
        type=int,
        action="append",
        help="labelled stream seed (repeat; default 1); each split draws its own stream from it",
    )
    s.add_argument(
        "--split",
        choices=("tuning", "heldout", "both"),
        default="both",
        help="which labelled split to report (default both, held-out first)",
    )
    s.add_argument(
        "--pure",
        action="store_true",
        help="the pure detector replay only: no servers, seconds instead of minutes (for tuning)",
    )
    s.add_argument(
        "--loso",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the leave-one-shape-out table (pure replays of the tuning split; default on)",
    )
    s.add_argument(
        "--evidence-lag",
        type=int,
        default=0,
        metavar="EVENTS",
        help="pure replay: events between a throttle's evidence and the other partitions taking it",
    )
    s.add_argument("--scale", type=positive(float), default=1.0, help="size of the streams")
    s.add_argument("--no-real", action="store_true", help="skip the full Higgs/MathOverflow runs")
    s.add_argument("--data", default=str(DEFAULT_DATA), help="the shared data directory")
    s.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")


def cmd_bait_eval(settings: Settings, args: argparse.Namespace) -> int:
    from baiteval.suite import SuiteOptions, run_suite

    data = Path(args.data)
    if not (data / "youtube_spam").is_dir():
        raise KudosError(
            f"no data at {data} (expected higgs/, mathoverflow/ and youtube_spam/); pass --data DIR"
        )
    split = getattr(args, "split", "both")
    lag = getattr(args, "evidence_lag", 0)
    if lag < 0:
        raise KudosError(f"--evidence-lag must be >= 0, got {lag}")
    opts = SuiteOptions(
        seeds=tuple(args.seed or [1]),
        splits=("heldout", "tuning") if split == "both" else (split,),
        pure=getattr(args, "pure", False),
        loso=getattr(args, "loso", True),
        real=not args.no_real,
        scale=args.scale,
        evidence_lag=lag,
        # the pure replay runs the detector with the settings a worker would use
        params=settings.bait.params(),
    )
    sections, passed = asyncio.run(run_suite(data, settings.home / "bait-eval", opts))
    print("\n\n".join(sections))
    return 0 if passed or not args.strict else 1


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m baiteval``: the command without the rest of the ``kudos`` parser."""
    from leaderboard.settings import load_settings

    p = argparse.ArgumentParser(prog="kudos bait-eval", description=__doc__)
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return cmd_bait_eval(load_settings(), args)
    except KudosError as exc:
        print(f"kudos: error: {exc}", file=sys.stderr)
        return 2
