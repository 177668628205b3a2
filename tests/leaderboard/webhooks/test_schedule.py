"""Response outcomes, the retry schedule and Retry-After (leaderboard/webhooks/schedule.py)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leaderboard.errors import ConfigError
from leaderboard.webhooks import schedule as wh


class Fixed:
    """A RandomSource that always returns one value."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "delivered"),
        (201, "delivered"),
        (204, "delivered"),
        (299, "delivered"),
        (None, "retry"),
        (100, "retry"),
        (301, "retry"),
        (302, "retry"),
        (304, "retry"),
        (307, "retry"),
        (308, "retry"),
        (400, "retry"),
        (401, "retry"),
        (404, "retry"),
        (409, "retry"),
        (410, "disable"),
        (413, "retry"),
        (429, "retry"),
        (500, "retry"),
        (502, "retry"),
        (503, "retry"),
        (504, "retry"),
    ],
)
def test_classify(status: int | None, outcome: wh.Outcome) -> None:
    assert wh.classify(status) == outcome


def test_schedule_is_monotone_and_spans_days() -> None:
    assert list(wh.SCHEDULE_S) == sorted(wh.SCHEDULE_S)
    assert wh.MAX_ATTEMPTS == 10
    for rng in (Fixed(0.0), Fixed(0.999999)):  # both jitter extremes
        delays = [wh.next_attempt_delay(n, None, rng) for n in range(1, wh.MAX_ATTEMPTS)]
        assert all(d is not None for d in delays)
        span = sum(d for d in delays if d is not None)
        assert 2 * 86400 < span < 4 * 86400
        assert delays == sorted(delays)
    assert sum(wh.SCHEDULE_S) == 75 * 3600 + 35 * 60 + 5  # the spec's 75:35:05


def test_after_the_last_attempt_the_message_is_dead_lettered() -> None:
    assert wh.next_attempt_delay(wh.MAX_ATTEMPTS - 1, None, Fixed(0.5)) == wh.SCHEDULE_S[-1]
    assert wh.next_attempt_delay(wh.MAX_ATTEMPTS, None, Fixed(0.5)) is None
    assert wh.next_attempt_delay(wh.MAX_ATTEMPTS, 60.0, Fixed(0.5)) is None
    with pytest.raises(ValueError):
        wh.next_attempt_delay(0, None, Fixed(0.5))


@given(attempt=st.integers(1, wh.MAX_ATTEMPTS - 1), r=st.floats(0.0, 1.0, exclude_max=True))
def test_jitter_stays_within_twenty_percent(attempt: int, r: float) -> None:
    base = wh.SCHEDULE_S[attempt - 1]
    delay = wh.next_attempt_delay(attempt, None, Fixed(r))
    assert delay is not None
    assert 0.8 * base <= delay < 1.2 * base + 1e-9


def test_jitter_comes_from_the_injected_source() -> None:
    delays = {wh.next_attempt_delay(3, None, random.Random(seed)) for seed in range(20)}
    assert len(delays) == 20
    again = {wh.next_attempt_delay(3, None, random.Random(seed)) for seed in range(20)}
    assert delays == again


def test_retry_after_lengthens_but_never_shortens_nor_exceeds_a_day() -> None:
    mid = Fixed(0.5)  # no jitter
    assert wh.next_attempt_delay(1, 120.0, mid) == 120.0  # 5 s scheduled, receiver asks 2 min
    assert wh.next_attempt_delay(4, 0.0, mid) == 2 * 3600  # cannot speed the schedule up
    assert wh.next_attempt_delay(1, 10 * 86400.0, mid) == 86400.0
    assert wh.next_attempt_delay(1, float("inf"), mid) == 86400.0
    assert wh.next_attempt_delay(1, float("nan"), mid) == 5.0


NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        (format_datetime(datetime.fromtimestamp(NOW + 90, UTC), usegmt=True), 90.0),
        (format_datetime(datetime.fromtimestamp(NOW - 90, UTC), usegmt=True), 0.0),  # past
        ("Tuesday, 14-Nov-23 22:15:20 GMT", 1_700_000_120.0 - NOW),  # RFC 850 form
        ("Tue Nov 14 22:15:20 2023", 1_700_000_120.0 - NOW),  # asctime form, no zone = UTC
        ("1.5", None),
        ("-5", None),
        ("soon", None),
        ("", None),
    ],
)
def test_parse_retry_after(value: str, seconds: float | None) -> None:
    assert wh.parse_retry_after(value, NOW) == seconds


def test_retry_after_is_honoured_on_429_and_503_only() -> None:
    assert wh.retry_after_for(429, "30", NOW) == 30.0
    assert wh.retry_after_for(503, "30", NOW) == 30.0
    assert wh.retry_after_for(500, "30", NOW) is None
    assert wh.retry_after_for(302, "30", NOW) is None
    assert wh.retry_after_for(429, None, NOW) is None


def test_parse_schedule() -> None:
    assert wh.parse_schedule("") == wh.SCHEDULE_S
    assert wh.parse_schedule("  ") == wh.SCHEDULE_S
    assert wh.parse_schedule("0.5, 2 ,10") == (0.5, 2.0, 10.0)
    assert wh.parse_schedule("0") == (0.0,)


@pytest.mark.parametrize("text", ["5,x", "-1", "nan", "inf", "1e400", ",".join(["1"] * 101)])
def test_bad_schedules_name_the_setting(text: str) -> None:
    with pytest.raises(ConfigError, match=wh.SCHEDULE_SETTING):
        wh.parse_schedule(text)


def test_an_injected_schedule_bounds_the_attempts() -> None:
    mid = Fixed(0.5)
    schedule = (0.2, 0.4)
    assert wh.next_attempt_delay(1, None, mid, schedule=schedule) == 0.2
    assert wh.next_attempt_delay(2, None, mid, schedule=schedule) == 0.4
    assert wh.next_attempt_delay(3, None, mid, schedule=schedule) is None
    assert wh.next_attempt_delay(1, 3.0, mid, schedule=schedule) == 3.0  # Retry-After still wins


@pytest.mark.parametrize(
    ("outcome", "attempt", "retry_after", "expected"),
    [
        ("delivered", 1, None, ("done", None)),
        ("delivered", 3, 9.0, ("done", None)),
        ("disable", 1, None, ("disable", None)),
        ("retry", 1, None, ("retry", 1.0)),
        ("retry", 1, 7.0, ("retry", 7.0)),
        ("retry", 2, None, ("retry", 2.0)),
        ("retry", 3, None, ("dead", None)),
        ("retry", 3, 60.0, ("dead", None)),
    ],
)
def test_after_attempt(
    outcome: wh.Outcome,
    attempt: int,
    retry_after: float | None,
    expected: tuple[str, float | None],
) -> None:
    assert wh.after_attempt(outcome, attempt, retry_after, Fixed(0.5), schedule=(1, 2)) == expected
