"""What ``kudos bait-eval --pure`` prints and in which order (baiteval/suite.py, kudos/cli/bait.py),
on tiny streams: no servers."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from baiteval.heldout import HELDOUT_FAMILY
from baiteval.suite import SuiteOptions, run_suite
from kudos.cli.bait import add_arguments
from tests.conftest import DATA

TINY = 0.02  # 2 campaigns per shape, 20 organic posts, 3,000 background events


def run(opts: SuiteOptions, tmp: Path) -> tuple[list[str], bool]:
    return asyncio.run(run_suite(DATA, tmp, opts))


def test_the_tuning_loop_never_builds_or_prints_the_held_out_split(tmp_path: Path) -> None:
    opts = SuiteOptions(splits=("tuning",), pure=True, loso=False, real=False, scale=TINY)
    sections, passed = run(opts, tmp_path)
    [only] = sections
    assert only.startswith("comment-bait evaluation, tuning split")
    assert "pure replay of" in only and HELDOUT_FAMILY not in only
    assert passed == ("PASSED" in only)
    assert not (tmp_path / "redis").exists()  # no server was started


def test_held_out_first_then_tuning_then_the_loso_table(tmp_path: Path) -> None:
    opts = SuiteOptions(pure=True, real=False, scale=TINY, grid=(1.6, 2.0))
    sections, _ = run(opts, tmp_path)
    heldout, tuning, table = sections
    assert heldout.startswith("comment-bait evaluation, heldout split")
    assert tuning.startswith("comment-bait evaluation, tuning split")
    assert HELDOUT_FAMILY in heldout and HELDOUT_FAMILY not in tuning
    assert table.startswith("leave one shape out")
    rows = [line.split() for line in table.splitlines() if line.split()[:1] == ["ring"]]
    assert rows and rows[0][1] == "tuning"
    assert any(line.split()[:2] == [HELDOUT_FAMILY, "heldout"] for line in table.splitlines())


def test_the_options_and_their_defaults() -> None:
    p = argparse.ArgumentParser()
    add_arguments(p)
    d = p.parse_args([])
    assert (d.split, d.pure, d.loso, d.no_real, d.seed, d.evidence_lag) == (
        "both", False, True, False, None, 0,
    )  # fmt: skip
    a = p.parse_args(["--pure", "--split", "tuning", "--no-loso", "--seed", "3", "--seed", "4"])
    assert (a.split, a.pure, a.loso, a.seed) == ("tuning", True, False, [3, 4])
