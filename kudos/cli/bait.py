"""The ``bait-eval`` command: the comment-bait detector measured through the real pipeline."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from leaderboard.errors import KudosError
from leaderboard.settings import Settings

#: The real public data (Higgs, MathOverflow, YouTube comments) beside the project.
DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def cmd_bait_eval(settings: Settings, args: argparse.Namespace) -> int:
    from baiteval.pipeline import evaluate

    data = Path(args.data)
    if not (data / "youtube_spam").is_dir():
        raise KudosError(
            f"no data at {data} (expected higgs/, mathoverflow/ and youtube_spam/); pass --data DIR"
        )
    seeds = args.seed or [1, 2]
    sections, passed = asyncio.run(
        evaluate(data, settings.home / "bait-eval", seeds, not args.no_real, args.scale)
    )
    print("\n\n".join(sections))
    return 0 if passed or not args.strict else 1
