"""What a response status means and when to try again: the retry schedule, its jitter and
``Retry-After``, and what happens to a message after each attempt.

Retry schedule (the spec's example, about 3.1 days from first to last attempt)::

    attempt   1    2     3      4       5     6     7      8      9      10
    delay     0    5 s   5 min  30 min  2 h   5 h   10 h   14 h   20 h   24 h
    elapsed   0    5 s   5 min  35 min  2.6 h 7.6 h 17.6 h 31.6 h 51.6 h 75.6 h

Each delay is jittered by ±20 % so endpoints that failed together do not come back together. After
attempt 10 fails the message goes to the dead-letter store. ``Retry-After`` (on 429 and 503) can only
lengthen a delay, up to a day: a receiver can ask for time, not for a faster retry loop.
``KUDOS_WEBHOOKS_SCHEDULE_S`` replaces the schedule (:func:`parse_schedule`; tests compress it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Literal, Protocol

from leaderboard.errors import ConfigError

#: Seconds to wait before attempt 2, 3, ... (attempt 1 goes at once); see the module docstring.
SCHEDULE_S: tuple[float, ...] = (
    5,
    5 * 60,
    30 * 60,
    2 * 3600,
    5 * 3600,
    10 * 3600,
    14 * 3600,
    20 * 3600,
    24 * 3600,
)
#: Attempts per message, the first included; after the last failure it is dead-lettered.
MAX_ATTEMPTS = len(SCHEDULE_S) + 1
#: Every scheduled delay is multiplied by a factor drawn uniformly from [1 - JITTER, 1 + JITTER).
JITTER = 0.2
#: A Retry-After longer than this is cut to it, so one header cannot park a message for weeks.
MAX_RETRY_AFTER_S = 24 * 3600
#: Statuses whose Retry-After is honoured (RFC 6585 for 429, RFC 9110 for 503).
RETRY_AFTER_STATUSES = frozenset({429, 503})
#: The setting that replaces :data:`SCHEDULE_S`; errors from :func:`parse_schedule` name it.
SCHEDULE_SETTING = "KUDOS_WEBHOOKS_SCHEDULE_S"
#: More retries than this is a typo, not a policy.
MAX_SCHEDULE_ENTRIES = 100

#: What one attempt means for its message: done, try again later, or stop using the endpoint.
Outcome = Literal["delivered", "retry", "disable"]
#: What happens to a message after an attempt: delivered (done), tried again later, moved to the
#: dead-letter store (schedule exhausted), or dead-lettered with its endpoint disabled (410).
Action = Literal["done", "retry", "dead", "disable"]

_DIGITS = re.compile(r"[0-9]+")


class RandomSource(Protocol):
    """Where jitter comes from; ``random.Random`` fits, tests pass a seeded or fixed one."""

    def random(self) -> float: ...


def classify(status: int | None) -> Outcome:
    """What a response status means. None (no response: refused, unreachable, timed out) retries.

    2xx is delivered; 410 Gone disables the endpoint (the receiver asked for no more); everything
    else retries, 3xx included, since redirects are never followed (the endpoint URL should be
    updated instead).
    """
    if status is None:
        return "retry"
    if 200 <= status <= 299:
        return "delivered"
    if status == 410:
        return "disable"
    return "retry"


def parse_retry_after(value: str, now: float) -> float | None:
    """Seconds from ``now`` (unix seconds) that a ``Retry-After`` value asks to wait, at least 0.

    Accepts delay-seconds (``120``) and an HTTP-date in any of the three forms of RFC 9110 (a date
    without a zone is taken as UTC). Anything else is None: the schedule applies as if it were absent.
    """
    value = value.strip()
    if _DIGITS.fullmatch(value):
        return float(value)  # inf for absurd lengths; the policy caps it
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def retry_after_for(status: int, value: str | None, now: float) -> float | None:
    """The Retry-After to honour for a response: parsed for 429 and 503, None otherwise."""
    if status not in RETRY_AFTER_STATUSES or value is None:
        return None
    return parse_retry_after(value, now)


def next_attempt_delay(
    attempt: int,
    retry_after_s: float | None,
    rng: RandomSource,
    *,
    schedule: Sequence[float] = SCHEDULE_S,
) -> float | None:
    """Seconds to wait before the next attempt after attempt number ``attempt`` failed.

    ``attempt`` counts from 1 (the first, immediate attempt). Returns None when that was the last
    attempt (:data:`MAX_ATTEMPTS`, or ``len(schedule) + 1``): the message goes to the dead-letter
    store. Otherwise the scheduled delay times a jitter factor in [0.8, 1.2), or ``retry_after_s``
    (capped at :data:`MAX_RETRY_AFTER_S`) when that is longer. A Retry-After still uses up an
    attempt, so the number of attempts stays bounded. ``schedule`` replaces :data:`SCHEDULE_S`
    (from :func:`parse_schedule`). Raises ValueError when ``attempt`` < 1.
    """
    if attempt < 1:
        raise ValueError(f"attempts count from 1, not {attempt}")
    if attempt > len(schedule):
        return None
    delay = schedule[attempt - 1] * (1.0 + JITTER * (2.0 * rng.random() - 1.0))
    if retry_after_s is not None and not math.isnan(retry_after_s):
        delay = max(delay, min(retry_after_s, MAX_RETRY_AFTER_S))
    return delay


def parse_schedule(text: str, *, name: str = SCHEDULE_SETTING) -> tuple[float, ...]:
    """Delays before attempts 2, 3, ... from ``"5, 300, 1800"`` (seconds, comma and/or space
    separated); ``""`` is the default :data:`SCHEDULE_S`. Raises ConfigError naming ``name`` for
    an entry that is not a finite number ≥ 0, or for more than :data:`MAX_SCHEDULE_ENTRIES`."""
    entries = text.replace(",", " ").split()
    if not entries:
        return SCHEDULE_S
    if len(entries) > MAX_SCHEDULE_ENTRIES:
        raise ConfigError(f"{name}: {len(entries)} delays; at most {MAX_SCHEDULE_ENTRIES}")
    delays: list[float] = []
    for entry in entries:
        try:
            delay = float(entry)
        except ValueError:
            delay = math.nan
        if not math.isfinite(delay) or delay < 0:
            raise ConfigError(
                f"{name}: {entry!r} is not a delay in seconds; expected e.g. '5, 300, 1800'"
            )
        delays.append(delay)
    return tuple(delays)


def after_attempt(
    outcome: Outcome,
    attempt: int,
    retry_after_s: float | None,
    rng: RandomSource,
    *,
    schedule: Sequence[float] = SCHEDULE_S,
) -> tuple[Action, float | None]:
    """What happens to a message after attempt number ``attempt`` (from 1) had ``outcome``, and
    in how many seconds it is tried again (only for ``"retry"``). See :func:`next_attempt_delay`."""
    if outcome == "delivered":
        return "done", None
    if outcome == "disable":
        return "disable", None
    delay = next_attempt_delay(attempt, retry_after_s, rng, schedule=schedule)
    return ("dead", None) if delay is None else ("retry", delay)
