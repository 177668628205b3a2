"""Scoring rules as pure functions: weights, diminishing returns, window buckets, forward decay.

Nothing here does I/O. ``leaderboard.plan`` applies these rules to a batch; ``leaderboard.store``
only writes what the plan says.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from leaderboard.calendar import DEFAULT_GRACE_S, DEFAULT_IDLE_S, DEFAULT_KEEP, UNITS, parse_label
from leaderboard.errors import ConfigError, UnknownBoard

ALL = "all"
DECAYED = "decayed"
LN2 = math.log(2.0)


@dataclass(frozen=True, slots=True)
class Window:
    """A bucketed sliding window: ``buckets`` buckets of ``bucket_s`` seconds."""

    name: str
    bucket_s: int
    buckets: int

    def bucket(self, ts: float) -> int:
        return math.floor(ts / self.bucket_s)

    def cutoff(self, watermark: float) -> int:
        """Buckets with index ≤ this are outside the window at ``watermark``."""
        return math.floor(watermark / self.bucket_s) - self.buckets

    def contains(self, ts: float, watermark: float) -> bool:
        return self.bucket(ts) > self.cutoff(watermark)


@dataclass(frozen=True)
class ScoringRules:
    """A versioned set of scoring numbers (from ``scoring.toml``)."""

    version: str
    weights_mp: Mapping[str, int]
    windows: tuple[Window, ...]
    half_life_s: float = 86400.0
    dr_period_s: int = 86400
    #: archived calendar periods kept per unit (day, week, month; 0: every one), from the
    #: ``[periods]`` settings (``KUDOS_PERIODS_KEEP_*``), not scoring.toml: see :meth:`keeping`
    periods_keep: tuple[int, int, int] = DEFAULT_KEEP
    #: how long after a period's end late events still count before its winners' perks are
    #: judged (``KUDOS_PERIODS_GRACE_S``)
    periods_grace_s: int = DEFAULT_GRACE_S
    #: how much longer a partition with no new events may hold a close back
    #: (``KUDOS_PERIODS_IDLE_S``)
    periods_idle_s: int = DEFAULT_IDLE_S

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(self.weights_mp)

    @property
    def base_boards(self) -> tuple[str, ...]:
        """The boards every namespace has (the live calendar boards last: leaderboard.calendar)."""
        return (ALL, *(w.name for w in self.windows), DECAYED, *UNITS)

    def keeping(
        self,
        days: int,
        weeks: int,
        months: int,
        grace_s: int = DEFAULT_GRACE_S,
        idle_s: int = DEFAULT_IDLE_S,
    ) -> ScoringRules:
        """These rules with the calendar retention (``KUDOS_PERIODS_KEEP_*``) and the closing
        of winners' perks (``KUDOS_PERIODS_GRACE_S``, ``_IDLE_S``) of the settings."""
        return dataclasses.replace(
            self,
            periods_keep=(days, weeks, months),
            periods_grace_s=grace_s,
            periods_idle_s=idle_s,
        )

    def window(self, name: str) -> Window | None:
        for w in self.windows:
            if w.name == name:
                return w
        return None

    def check_board(self, board: str) -> str:
        """Return the base board of ``board`` (``7d:physics`` → ``7d``; an archived calendar
        period is its own base: ``week@2012-W27:physics`` → ``week@2012-W27``).

        Raises:
            UnknownBoard: the base is not a configured board or an archived period (a real
                ``day@YYYY-MM-DD``, ``week@YYYY-Www``, ``month@YYYY-MM``), or the community
                tag is malformed.
        """
        base, sep, community = board.partition(":")
        unit, at, label = base.partition("@")
        known = (
            (unit in UNITS and parse_label(unit, label) is not None)
            if at
            else (base in self.base_boards)
        )
        if not known or (sep and not _valid_community(community)):
            raise UnknownBoard(
                f"unknown board {board!r}; boards are {', '.join(self.base_boards)} and the "
                "archived periods day@YYYY-MM-DD, week@YYYY-Www, month@YYYY-MM, each optionally "
                "':<community>'"
            )
        return base

    @classmethod
    def from_toml(cls, text: str, source: str = "scoring.toml") -> ScoringRules:
        """Parse and validate a scoring.toml.

        Raises:
            ConfigError: naming the bad key.
        """
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
        version = data.get("version")
        if not isinstance(version, str) or not version:
            raise ConfigError(f"{source}: 'version' (a non-empty string) is required")
        weights = data.get("weights")
        if not isinstance(weights, dict) or not weights:
            raise ConfigError(f"{source}: [weights] must map each kind to its points")
        weights_mp: dict[str, int] = {}
        for kind, w in weights.items():
            if (
                isinstance(w, bool)
                or not isinstance(w, int | float)
                or w < 0
                or not math.isfinite(w)
            ):
                raise ConfigError(f"{source}: weights.{kind} = {w!r} must be a non-negative number")
            weights_mp[kind] = round(w * 1000)
        windows: list[Window] = []
        for name, spec in _table(data, "windows", source).items():
            if not isinstance(spec, dict):
                raise ConfigError(f"{source}: windows.{name} must be a table")
            b, n = spec.get("bucket_seconds"), spec.get("buckets")
            if (
                not (isinstance(b, int) and isinstance(n, int) and _is_int(b) and _is_int(n))
                or min(b, n) <= 0
            ):
                raise ConfigError(
                    f"{source}: windows.{name} needs positive integer bucket_seconds and buckets"
                )
            if not _valid_community(name) or name in (ALL, DECAYED, *UNITS):
                raise ConfigError(f"{source}: window name {name!r} is reserved or malformed")
            windows.append(Window(name, b, n))
        half_life = _table(data, "decay", source).get("half_life_seconds", 86400)
        period = _table(data, "diminishing_returns", source).get("period_seconds", 86400)
        if (
            isinstance(half_life, bool)
            or not isinstance(half_life, int | float)
            or not math.isfinite(half_life)
            or half_life <= 0
        ):
            raise ConfigError(f"{source}: decay.half_life_seconds must be positive")
        if not _is_int(period) or period <= 0:
            raise ConfigError(
                f"{source}: diminishing_returns.period_seconds must be a positive integer"
            )
        return cls(version, weights_mp, tuple(windows), float(half_life), period)

    @classmethod
    def load(cls, path: str | Path | None = None) -> ScoringRules:
        """Load ``path``, or the packaged default when it is empty or None."""
        if path:
            p = Path(path)
            if not p.is_file():
                raise ConfigError(f"KUDOS_SCORING_PATH={str(path)!r}: no such file")
            return cls.from_toml(p.read_text(), str(p))
        text = resources.files("leaderboard").joinpath("scoring.toml").read_text()
        return cls.from_toml(text, "leaderboard/scoring.toml")


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _table(data: dict[str, Any], name: str, source: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: [{name}] must be a table")
    return value


def _valid_community(tag: str) -> bool:
    return 1 <= len(tag) <= 64 and all(c.isascii() and (c.isalnum() or c in "_.-") for c in tag)


def contribution(weight_mp: int, k: int) -> int:
    """Milli-points of the k-th scored event of one (actor, target, period): ``weight // k``."""
    return weight_mp // k


def decayed_value(stored: float, watermark: float, landmark: float, half_life_s: float) -> float:
    """The decayed score at ``watermark`` of a value stored against ``landmark``."""
    return float(stored * 2.0 ** (-(watermark - landmark) / half_life_s))


def format_mp(mp: int) -> str:
    """Exact decimal points from integer milli-points: 12500 → '12.5', 3000 → '3'."""
    sign = "-" if mp < 0 else ""
    whole, frac = divmod(abs(mp), 1000)
    return f"{sign}{whole}" if frac == 0 else f"{sign}{whole}.{frac:03d}".rstrip("0")
