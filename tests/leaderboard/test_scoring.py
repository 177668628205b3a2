"""Scoring rules (leaderboard/scoring.py): weights, windows, boards, fixed-point printing."""

from __future__ import annotations

from decimal import Decimal
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leaderboard.errors import ConfigError, UnknownBoard
from leaderboard.scoring import (
    ScoringRules,
    Window,
    contribution,
    decayed_value,
    format_mp,
)

RULES = ScoringRules.load()
DEFAULT_TOML = resources.files("leaderboard").joinpath("scoring.toml").read_text()


def test_default_weights_are_the_contract_in_milli_points() -> None:
    assert dict(RULES.weights_mp) == {
        "post": 0,
        "like": 1000,
        "click": 1000,
        "comment": 2000,
        "reply": 2000,
        "mention": 2000,
        "share": 4000,
        "follow": 3000,
        "conversion": 10000,
    }
    assert all(type(v) is int for v in RULES.weights_mp.values())


def test_default_windows_decay_and_period_are_the_contract() -> None:
    assert RULES.windows == (
        Window("1h", 60, 60),
        Window("24h", 900, 96),
        Window("7d", 3600, 168),
    )
    assert RULES.half_life_s == 86400.0
    assert RULES.dr_period_s == 86400
    assert RULES.base_boards == ("all", "1h", "24h", "7d", "decayed", "day", "week", "month")
    assert RULES.window("24h") == Window("24h", 900, 96)
    assert RULES.window("all") is None
    assert RULES.version


def test_load_of_a_file(tmp_path: Path) -> None:
    path = tmp_path / "scoring.toml"
    path.write_text(DEFAULT_TOML.replace("share = 4", "share = 5.5"))
    rules = ScoringRules.load(path)
    assert rules.weights_mp["share"] == 5500
    assert rules.weights_mp["like"] == 1000


def test_load_of_a_missing_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="KUDOS_SCORING_PATH"):
        ScoringRules.load(tmp_path / "nope.toml")


def test_empty_path_means_the_packaged_default() -> None:
    assert ScoringRules.load("") == RULES


@pytest.mark.parametrize(
    ("weight", "mp"), [("1.5", 1500), ("0.25", 250), ("0.333", 333), ("7", 7000), ("0", 0)]
)
def test_weight_mp_is_round_weight_times_1000(weight: str, mp: int) -> None:
    rules = ScoringRules.from_toml(DEFAULT_TOML.replace("like = 1", f"like = {weight}"))
    assert rules.weights_mp["like"] == mp


def _minimal(body: str) -> str:
    return 'version = "t"\n[weights]\nlike = 1\n' + body


FROM_TOML_ERRORS: list[tuple[str, str, str]] = [
    ("not toml", "version = ", "not valid TOML"),
    ("no version", "[weights]\nlike = 1\n", "'version'"),
    ("empty version", 'version = ""\n[weights]\nlike = 1\n', "'version'"),
    ("no weights", 'version = "t"\n', "[weights]"),
    ("negative weight", 'version = "t"\n[weights]\nlike = -1\n', "weights.like"),
    ("bool weight", 'version = "t"\n[weights]\nshare = true\n', "weights.share"),
    ("string weight", 'version = "t"\n[weights]\nclick = "1"\n', "weights.click"),
    ("nan weight", 'version = "t"\n[weights]\nfollow = nan\n', "weights.follow"),
    ("inf weight", 'version = "t"\n[weights]\nfollow = inf\n', "weights.follow"),
    ("windows not a table", 'version = "t"\nwindows = 5\n[weights]\nlike = 1\n', "[windows]"),
    ("window not a table", _minimal('[windows]\n"1h" = 5\n'), "windows.1h"),
    (
        "zero bucket size",
        _minimal('[windows]\n"1h" = { bucket_seconds = 0, buckets = 60 }\n'),
        "windows.1h",
    ),
    (
        "float buckets",
        _minimal('[windows]\n"1h" = { bucket_seconds = 60, buckets = 1.5 }\n'),
        "windows.1h",
    ),
    ("missing buckets", _minimal('[windows]\n"2h" = { bucket_seconds = 60 }\n'), "windows.2h"),
    (
        "window named all",
        _minimal("[windows]\nall = { bucket_seconds = 60, buckets = 60 }\n"),
        "'all'",
    ),
    (
        "window named decayed",
        _minimal("[windows]\ndecayed = { bucket_seconds = 60, buckets = 60 }\n"),
        "'decayed'",
    ),
    (
        "window name with a space",
        _minimal('[windows]\n"one h" = { bucket_seconds = 60, buckets = 60 }\n'),
        "'one h'",
    ),
    ("zero half-life", _minimal("[decay]\nhalf_life_seconds = 0\n"), "decay.half_life_seconds"),
    (
        "string half-life",
        _minimal('[decay]\nhalf_life_seconds = "1d"\n'),
        "decay.half_life_seconds",
    ),
    ("decay not a table", 'version = "t"\ndecay = 1\n[weights]\nlike = 1\n', "[decay]"),
    (
        "fractional dr period",
        _minimal("[diminishing_returns]\nperiod_seconds = 1.5\n"),
        "diminishing_returns.period_seconds",
    ),
    (
        "zero dr period",
        _minimal("[diminishing_returns]\nperiod_seconds = 0\n"),
        "diminishing_returns.period_seconds",
    ),
]


@pytest.mark.parametrize(
    ("text", "names"),
    [(t, n) for _, t, n in FROM_TOML_ERRORS],
    ids=[i for i, _, _ in FROM_TOML_ERRORS],
)
def test_from_toml_errors_name_the_bad_key(text: str, names: str) -> None:
    with pytest.raises(ConfigError) as info:
        ScoringRules.from_toml(text, "my-scoring.toml")
    message = str(info.value)
    assert names in message
    assert message.startswith("my-scoring.toml: ")


@pytest.mark.parametrize(
    "body",
    [
        '[windows]\n"1h" = { bucket_seconds = true, buckets = 60 }\n',
        "[diminishing_returns]\nperiod_seconds = true\n",
    ],
    ids=["bool bucket_seconds", "bool period_seconds"],
)
def test_from_toml_rejects_bools_for_integer_keys(body: str) -> None:
    with pytest.raises(ConfigError):
        ScoringRules.from_toml(_minimal(body))


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_from_toml_rejects_non_finite_half_life(value: str) -> None:
    with pytest.raises(ConfigError, match=r"decay\.half_life_seconds"):
        ScoringRules.from_toml(_minimal(f"[decay]\nhalf_life_seconds = {value}\n"))


# ---------------------------------------------------------------------------------------------
# windows: an event is in the window while floor(ts / b) > floor(W / b) - n

ONE_H = RULES.window("1h")
DAY = RULES.window("24h")
WEEK = RULES.window("7d")
W = 1_341_385_230.0  # 2012-07-04T07:00:30Z: 30 s into a 1h bucket (b = 60)


@pytest.mark.parametrize(
    ("window", "watermark", "ts", "inside"),
    [
        # 1h: floor(W/60) = 22356420, cutoff 22356360: first live bucket starts at 22356361*60
        (ONE_H, W, 22356361 * 60, True),
        (ONE_H, W, 22356361 * 60 - 0.001, False),
        (ONE_H, W, 22356360 * 60, False),
        (ONE_H, W, W, True),
        (ONE_H, W, W + 3600, True),  # a future event is never "expired"
        # W exactly on a bucket edge: the live window is exactly the last n buckets
        (ONE_H, 22356420 * 60, 22356420 * 60 - 3540, True),
        (ONE_H, 22356420 * 60, 22356420 * 60 - 3540 - 1, False),
        # 24h: b = 900, n = 96
        (DAY, 96 * 900 * 1000, 96 * 900 * 999 + 900, True),
        (DAY, 96 * 900 * 1000, 96 * 900 * 999 + 899, False),
        # 7d: b = 3600, n = 168
        (WEEK, 168 * 3600 * 50 + 3599, 168 * 3600 * 49 + 3600, True),
        (WEEK, 168 * 3600 * 50 + 3599, 168 * 3600 * 49 + 3599, False),
    ],
)
def test_window_contains_at_bucket_edges(
    window: Window | None, watermark: float, ts: float, inside: bool
) -> None:
    assert window is not None
    assert window.contains(ts, watermark) is inside


def test_cutoff_is_the_last_expired_bucket() -> None:
    assert ONE_H is not None
    assert ONE_H.cutoff(W) == 22356420 - 60
    assert ONE_H.bucket(W) == 22356420
    assert ONE_H.contains(ONE_H.cutoff(W) * 60 + 59.999, W) is False
    assert ONE_H.contains((ONE_H.cutoff(W) + 1) * 60, W) is True


@given(
    st.sampled_from(RULES.windows),
    st.integers(0, 7_000_000_000),
    st.integers(-10_000_000, 10_000_000),
)
def test_window_holds_the_last_n_minus_1_buckets_and_nothing_older_than_n(
    window: Window, watermark: int, delta: int
) -> None:
    ts = watermark + delta
    span = window.bucket_s * window.buckets
    if ts >= watermark - span + window.bucket_s:
        assert window.contains(ts, watermark)
    if ts < watermark - span:
        assert not window.contains(ts, watermark)


# ---------------------------------------------------------------------------------------------
# board ids


@pytest.mark.parametrize(
    ("board", "base"),
    [
        ("all", "all"),
        ("1h", "1h"),
        ("24h", "24h"),
        ("7d", "7d"),
        ("decayed", "decayed"),
        ("7d:physics", "7d"),
        ("all:a.b-c_1", "all"),
        ("decayed:" + "x" * 64, "decayed"),
    ],
)
def test_check_board_accepts(board: str, base: str) -> None:
    assert RULES.check_board(board) == base


@pytest.mark.parametrize(
    "board",
    [
        "foo",
        "7d:bad tag",
        "",
        "ALL",
        "30d",
        "all:",
        "7d:" + "x" * 65,
        "all:é",
        "all:a:b",
        "all:physics\n",
        ":physics",
    ],
)
def test_check_board_rejects(board: str) -> None:
    with pytest.raises(UnknownBoard) as info:
        RULES.check_board(board)
    assert repr(board) in str(info.value)
    assert isinstance(info.value, LookupError)


# ---------------------------------------------------------------------------------------------
# fixed point


@pytest.mark.parametrize(
    ("mp", "text"),
    [
        (12500, "12.5"),
        (3000, "3"),
        (1333, "1.333"),
        (1, "0.001"),
        (0, "0"),
        (10, "0.01"),
        (100, "0.1"),
        (999, "0.999"),
        (1_000_000, "1000"),
        (2_000_010, "2000.01"),
        (-1500, "-1.5"),
        (-1, "-0.001"),
    ],
)
def test_format_mp_is_exact(mp: int, text: str) -> None:
    assert format_mp(mp) == text


@given(st.integers(-(10**15), 10**15))
def test_format_mp_round_trips_through_decimal(mp: int) -> None:
    text = format_mp(mp)
    assert Decimal(text) * 1000 == mp
    assert not text.endswith(".")
    assert "." not in text or not text.endswith("0")


@pytest.mark.parametrize(
    ("weight", "k", "mp"),
    [(4000, 1, 4000), (4000, 2, 2000), (2000, 3, 666), (1000, 7, 142), (1000, 1001, 0)],
)
def test_contribution_is_weight_floor_divided_by_k(weight: int, k: int, mp: int) -> None:
    assert contribution(weight, k) == mp


def test_forward_decay_halves_per_half_life() -> None:
    landmark = 1_341_100_800
    ts = landmark + 3600
    stored = 4000 * 2.0 ** ((ts - landmark) / 86400.0)  # forward decay, as plan.py stores it
    assert decayed_value(stored, ts, landmark, 86400.0) == pytest.approx(4000.0)
    assert decayed_value(stored, ts + 86400, landmark, 86400.0) == pytest.approx(2000.0)
    assert decayed_value(stored, ts + 3 * 86400, landmark, 86400.0) == pytest.approx(500.0)
