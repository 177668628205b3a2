"""Calendar periods (pure, no I/O): the UTC day, ISO 8601 week (Monday first) and month an event
time falls in, their board ids, and the parsing of those ids.

An archived period is a board of its own, ``day@2012-07-04``, ``week@2012-W27``, ``month@2012-07``
(each also per community: ``week@2012-W27:physics``), holding the points of every event whose
``ts`` falls inside it, as on ``all``. The live ``day``, ``week`` and ``month`` boards are the
archives of the period that holds the watermark W; the store keeps them as boards of their own
(a copy made when W enters a new period, written with the archive after that), so every read,
the live feed and the perk rules treat them as any board.

Each period has an index that orders it: the day number since 1970-01-01; the week number since
Monday 1969-12-29; the month number since January 1970. Retention (``KUDOS_PERIODS_KEEP_*``)
keeps a unit's ``keep`` newest periods by index, counted from the period of W.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import lru_cache

DAY, WEEK, MONTH = "day", "week", "month"
#: The calendar units, in the order the apply script numbers them.
UNITS: tuple[str, ...] = (DAY, WEEK, MONTH)
DAY_S = 86400
#: Archived periods kept by default (``KUDOS_PERIODS_KEEP_DAYS``, ``_WEEKS``, ``_MONTHS``): a
#: month of days, a year of weeks, two years of months (README "Calendar boards": the memory).
DEFAULT_KEEP = (31, 53, 24)
#: Late events counted after a period's end before its winners' perks are judged
#: (``KUDOS_PERIODS_GRACE_S``).
DEFAULT_GRACE_S = 3600
#: How much longer than the grace a partition with no new events may hold a close back
#: (``KUDOS_PERIODS_IDLE_S``).
DEFAULT_IDLE_S = 86400
_EPOCH = dt.date(1970, 1, 1)
#: (the week index counts Mondays: 1970-01-01 was a Thursday, three days after one)
_WEEK_SHIFT = 3

_LABEL = {
    DAY: re.compile(r"(\d{4})-(\d{2})-(\d{2})"),
    WEEK: re.compile(r"(\d{4})-W(\d{2})"),
    MONTH: re.compile(r"(\d{4})-(\d{2})"),
}


@dataclass(frozen=True, slots=True)
class Period:
    """One period of one unit: its index, its label (``2012-W27``), and its start and end in
    unix seconds (the end is the next period's start)."""

    unit: str
    index: int
    label: str

    @property
    def board(self) -> str:
        return f"{self.unit}@{self.label}"

    @property
    def start(self) -> int:
        return period_start(self.unit, self.index)

    @property
    def end(self) -> int:
        return period_start(self.unit, self.index + 1)


@lru_cache(maxsize=8192)
def day_periods(day: int) -> tuple[Period, Period, Period]:
    """The day, week and month of day number ``day`` (``floor(ts / 86400)``)."""
    d = _EPOCH + dt.timedelta(days=day)
    iso_year, iso_week, _ = d.isocalendar()
    return (
        Period(DAY, day, d.isoformat()),
        Period(WEEK, (day + _WEEK_SHIFT) // 7, f"{iso_year:04d}-W{iso_week:02d}"),
        Period(MONTH, (d.year - 1970) * 12 + d.month - 1, f"{d.year:04d}-{d.month:02d}"),
    )


def periods_of(ts: float) -> tuple[Period, Period, Period]:
    """The day, week and month event time ``ts`` falls in (UTC)."""
    return day_periods(int(ts // DAY_S))


def period_of(unit: str, ts: float) -> Period:
    return periods_of(ts)[UNITS.index(unit)]


def period_start(unit: str, index: int) -> int:
    """Unix seconds at which period ``index`` of ``unit`` starts."""
    if unit == DAY:
        return index * DAY_S
    if unit == WEEK:
        return (index * 7 - _WEEK_SHIFT) * DAY_S
    year, month0 = divmod(index, 12)
    return (dt.date(1970 + year, month0 + 1, 1) - _EPOCH).days * DAY_S


def period(unit: str, index: int) -> Period:
    """Period ``index`` of ``unit``."""
    return period_of(unit, period_start(unit, index))


def parse_label(unit: str, label: str) -> Period | None:
    """The period a label names (``2012-W27`` of ``week``), or None if it names none: the
    label must be the one :func:`periods_of` prints (zero-padded, a real date, an ISO week
    that the year has)."""
    pattern = _LABEL.get(unit)
    if pattern is None or len(label) > 10:
        return None
    m = pattern.fullmatch(label)
    if m is None:
        return None
    nums = [int(g) for g in m.groups()]
    try:
        if unit == DAY:
            day = (dt.date(nums[0], nums[1], nums[2]) - _EPOCH).days
        elif unit == WEEK:
            day = (dt.date.fromisocalendar(nums[0], nums[1], 1) - _EPOCH).days
        else:
            day = (dt.date(nums[0], nums[1], 1) - _EPOCH).days
    except ValueError:
        return None
    found = day_periods(day)[UNITS.index(unit)]
    return found if found.label == label else None


@dataclass(frozen=True, slots=True)
class CalendarBoard:
    """A calendar board id taken apart: ``week@2012-W27:physics`` → unit week, that period,
    community physics; ``day`` → unit day, no period (the live one), no community."""

    unit: str
    period: Period | None
    community: str | None


def parse_board(board: str) -> CalendarBoard | None:
    """The calendar board ``board`` names, or None if it is not one (or not a valid one: an
    archive whose label names no period)."""
    base, sep, community = board.partition(":")
    unit, at, label = base.partition("@")
    if unit not in UNITS:
        return None
    found = None
    if at:
        found = parse_label(unit, label)
        if found is None:
            return None
    return CalendarBoard(unit, found, community if sep else None)


def live_board(archive: str) -> str:
    """The live board an archive feeds while its period holds W: ``week@2012-W27:physics`` →
    ``week:physics``."""
    base, sep, community = archive.partition(":")
    return base.partition("@")[0] + sep + community


def resolve(board: str, watermark: float | None) -> str:
    """The archive a live calendar board is at ``watermark`` (``day`` → ``day@2012-07-04``);
    any other board as it is. With no watermark yet, the live board itself."""
    cb = parse_board(board)
    if cb is None or cb.period is not None or watermark is None:
        return board
    p = period_of(cb.unit, watermark)
    return p.board + ("" if cb.community is None else ":" + cb.community)
