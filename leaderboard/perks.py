"""Perk rules, pure: parsing and validation, the deterministic unlock id, what a rule asks of
a member's standing, and the :class:`Unlock` record that every process reads from the outbox.

Rules live in the TOML file named by ``KUDOS_PERKS_PATH``::

    [[rule]]
    id = "top10-week"                 # letters, digits, - and _
    title = "Top 10 this week"
    board = "7d"                      # any board: all, 1h, 24h, 7d, decayed, <base>:<community>
    when = "rank <= 10"               # rank <= N | score >= X | entered_top N, joined with "and"
    payload = { coupon = "TOP10" }    # optional, passed through to the unlock
    at = "close"                      # optional, on day/week/month boards: winners of each period

An unlock happens once per (rule, member), ever: the worker's apply script checks the rules after
each batch, atomically with the scores, and records the unlock only if the member has none for
that rule (``leaderboard/store/lua/apply.lua``, section "perks"). Decay or a window moving on never
revokes it. ``entered_top N`` is ``rank <= N`` under that once-only rule.

**Ties.** Ranks are competition ranks ("1224"): every member tied with the Nth row has rank ≤ N,
so a tie at place N could unlock any number of members at once. One check of a rank rule unlocks
at most N + ``max_ties`` members (the rule's own ``max_ties = K``, 0–1000, else
``KUDOS_PERKS_MAX_TIES``, default 10): when the members tied at the Nth score would take it past
that, none of the tie unlocks at that check, only the members above it (fewer than N), and the
rule's entry in ``perkties`` (``kudos perks``) says how many were tied. All or none of a tie, never
some of it picked by member name or arrival: who unlocks depends only on the board at the check,
as before. A member left out can unlock at a later check, once the tie breaks or fits (boards are
checked at batch boundaries, so like any rank condition this depends on where they fall).
``max_ties = 0`` lets no tie cross place N. :meth:`PerkRule.rank_qualifiers` is the policy;
the apply script does the same in Lua.

**Winners' perks.** A rule with ``at = "close"`` on a calendar board (``day``, ``week``,
``month``, or one per community) is judged once per period, on that period's archive, when the
watermark passes the period's end plus ``KUDOS_PERIODS_GRACE_S`` (late events within the grace
count): one unlock per (rule, member, period), id :func:`unlock_id` of the three, recorded in
``perks:<member>`` under ``<rule>@<period>``, and delivered like any unlock with ``period`` set and ``board`` the
archive (``week@2012-W27``); its ``perk`` event also goes to the live board's channel
(``board:week``): the closing announcement. The same tie policy applies.
"""

from __future__ import annotations

import hashlib
import math
import re
import tomllib
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from leaderboard.calendar import UNITS as CALENDAR_UNITS
from leaderboard.errors import ConfigError, UnknownBoard
from leaderboard.scoring import ScoringRules

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CLAUSE = re.compile(
    r"^\s*(?:(rank)\s*<=\s*(\d+)|(score)\s*>=\s*(\d+(?:\.\d+)?)|(entered_top)\s+(\d+))\s*$"
)
#: Rank conditions look at this many rows at most (plus ties at the edge) after every batch.
MAX_RANK = 1000
#: Members a tie at place N may add to one check of a ``rank <= N`` rule, unless the rule or
#: ``KUDOS_PERKS_MAX_TIES`` says otherwise (see "Ties" above).
DEFAULT_MAX_TIES = 10


@dataclass(frozen=True, slots=True)
class PerkRule:
    id: str
    title: str
    board: str
    #: unlock when the competition rank is at most this (None: no rank condition)
    rank_max: int | None
    #: unlock when the score in points is at least this (None: no score condition)
    score_min: float | None
    payload: dict[str, Any] = field(default_factory=dict)
    #: members a tie at place ``rank_max`` may add beyond it at one check (see "Ties" above)
    max_ties: int = DEFAULT_MAX_TIES
    #: judged once per closed period of its calendar board ("Winners' perks" above)
    at_close: bool = False

    @property
    def cap(self) -> int | None:
        """The most members one check of the rank condition unlocks (None: no rank condition)."""
        return None if self.rank_max is None else self.rank_max + self.max_ties

    def rank_qualifiers(self, rows: Iterable[tuple[str, float]]) -> tuple[set[str], int]:
        """Who qualifies at one check of the rank condition, given the board's rows (member,
        points; all of them, in any order), under the tie policy; and the size of the tie left
        out (0: none). Members who already hold the rule are not told apart: they count."""
        if self.rank_max is None:
            raise ValueError(f"rule {self.id!r} has no rank condition")
        rows = list(rows)
        ordered = sorted((s for _, s in rows), reverse=True)
        # every row scoring at least the Nth row's points has competition rank <= N
        edge = ordered[self.rank_max - 1] if len(ordered) >= self.rank_max else None
        if self.score_min is not None and (edge is None or self.score_min > edge):
            edge = self.score_min  # the score condition is the stricter: no tie at place N
        qualify = {m for m, s in rows if edge is None or s >= edge}
        if edge is None or len(qualify) <= self.rank_max + self.max_ties:
            return qualify, 0  # (no edge: fewer rows than N, all of them qualify)
        # only a tie at the Nth score can get here (the rows above it are fewer than N)
        return {m for m, s in rows if s > edge}, sum(1 for _, s in rows if s == edge)

    def qualifies(self, rank: int | None, score: float | None) -> bool:
        """Does a member at ``rank`` with ``score`` points (None: not on the board) qualify?"""
        if rank is None or score is None:
            return False
        if self.rank_max is not None and rank > self.rank_max:
            return False
        return self.score_min is None or score >= self.score_min

    @property
    def score_min_mp(self) -> int | None:
        """The score threshold in the boards' integer milli-points (rounded up: ≥ stays ≥)."""
        if self.score_min is None:
            return None
        return math.ceil(round(self.score_min * 1000, 6))


def unlock_id(rule_id: str, member: str, period: str | None = None) -> str:
    """The same (rule, member) always gets the same id: webhook receivers de-duplicate by it, and
    a replay of the whole log after losing Redis issues the same ids again. No dots (Standard
    Webhooks signs ``id.timestamp.body``)."""
    # SHA-1 because the apply script computes the same id with Redis's redis.sha1hex; it names
    # an unlock, it does not protect anything
    text = f"{rule_id}\x1f{member}" + ("" if period is None else f"\x1f{period}")
    digest = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
    return f"unl_{digest}"


def parse_when(text: str, where: str) -> tuple[int | None, float | None]:
    """``rank <= 10 and score >= 500`` → (10, 500.0)."""
    rank_max: int | None = None
    score_min: float | None = None
    for clause in re.split(r"\band\b", text):
        m = _CLAUSE.match(clause)
        if not m:
            raise ConfigError(
                f"{where}: when = {text!r}: each condition is 'rank <= N', 'score >= X' or "
                "'entered_top N', joined with 'and'"
            )
        if m.group(1) or m.group(5):
            n = int(m.group(2) or m.group(6))
            if not 1 <= n <= MAX_RANK:
                raise ConfigError(f"{where}: rank limit {n} must be between 1 and {MAX_RANK}")
            rank_max = n if rank_max is None else min(rank_max, n)
        else:
            x = float(m.group(4))
            score_min = x if score_min is None else max(score_min, x)
    return rank_max, score_min


def tables(
    data: Mapping[str, Any], kind: str, fields: Collection[str], source: str
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(id, where, table) of each ``[[kind]]`` table of a perks file, checked for what every
    kind shares: an array of tables, a valid unique id, no unknown fields. ``where`` names the
    file and the table for the caller's own error messages."""
    raw = data.get(kind, [])
    if not isinstance(raw, list):
        raise ConfigError(f"{source}: '{kind}' must be an array of tables ([[{kind}]])")
    seen: set[str] = set()
    for i, table in enumerate(raw):
        where = f"{source}: {kind} #{i + 1}"
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: not a table")
        unknown = set(table) - set(fields)
        if unknown:
            raise ConfigError(
                f"{where}: unknown field(s) {', '.join(sorted(unknown))};"
                f" known: {', '.join(sorted(fields))}"
            )
        tid = table.get("id")
        if not isinstance(tid, str) or not _ID.fullmatch(tid):
            raise ConfigError(f"{where}: id must be 1–64 letters, digits, '-' or '_'")
        where = f"{source}: {kind} {tid!r}"
        if tid in seen:
            raise ConfigError(f"{where}: duplicate id")
        seen.add(tid)
        yield tid, where, table


def parse_rules(
    data: dict[str, Any],
    scoring: ScoringRules,
    source: str,
    *,
    max_ties: int = DEFAULT_MAX_TIES,
) -> list[PerkRule]:
    """Validate the ``[[rule]]`` tables of a perks file; errors name the rule and the field.
    ``max_ties``: the rules' tie allowance unless they set their own (``KUDOS_PERKS_MAX_TIES``)."""
    if not 0 <= max_ties <= MAX_RANK:
        raise ConfigError(f"KUDOS_PERKS_MAX_TIES={max_ties}: must be between 0 and {MAX_RANK}")
    rules: list[PerkRule] = []
    fields = ("id", "title", "board", "when", "payload", "max_ties", "at")
    for rid, where, r in tables(data, "rule", fields, source):
        title = r.get("title", rid)
        board, when = r.get("board"), r.get("when")
        if not isinstance(title, str) or not isinstance(board, str) or not isinstance(when, str):
            raise ConfigError(f"{where}: title, board and when must be strings")
        try:
            scoring.check_board(board)
        except UnknownBoard as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if "@" in board:
            raise ConfigError(
                f"{where}: board {board!r} is an archived period, which changes only with late "
                "events; a rule watches a live board (day, week, month, ...)"
            )
        payload = r.get("payload", {})
        if not isinstance(payload, dict):
            raise ConfigError(f"{where}: payload must be a table")
        rank_max, score_min = parse_when(when, where)
        ties = r.get("max_ties", max_ties)
        if isinstance(ties, bool) or not isinstance(ties, int) or not 0 <= ties <= MAX_RANK:
            raise ConfigError(
                f"{where}: max_ties must be an integer between 0 and {MAX_RANK} (members a tie "
                "at place N may add to one check)"
            )
        if "max_ties" in r and rank_max is None:
            raise ConfigError(
                f"{where}: max_ties needs a rank condition (rank <= N, entered_top N)"
            )
        at = r.get("at", "live")
        if at not in ("live", "close"):
            raise ConfigError(f'{where}: at must be "live" (the default) or "close"')
        if at == "close" and board.partition(":")[0] not in CALENDAR_UNITS:
            raise ConfigError(
                f'{where}: at = "close" judges the winners of each closed period: the board '
                f"must be day, week or month (or one of their community boards), not {board!r}"
            )
        if at == "close" and rank_max is None:
            raise ConfigError(
                f'{where}: at = "close" needs a rank condition (rank <= N): it names the '
                "winners of each period"
            )
        rules.append(PerkRule(rid, title, board, rank_max, score_min, payload, ties, at == "close"))
    return rules


def check_winners_retention(rules: Iterable[PerkRule], scoring: ScoringRules) -> None:
    """A winners' rule needs its period's archive until the period closes: at the latest once W
    is the grace and the idle allowance past its end. Retention drops it once W is ``keep - 1``
    periods past its end (the shortest: a 28-day month).

    Raises:
        ConfigError: naming the rule and the setting to raise.
    """
    shortest = {"day": 86400, "week": 7 * 86400, "month": 28 * 86400}
    wait = scoring.periods_grace_s + scoring.periods_idle_s
    for r in rules:
        if not r.at_close:
            continue
        unit = r.board.partition(":")[0]
        keep = scoring.periods_keep[CALENDAR_UNITS.index(unit)]
        if keep and (keep - 1) * shortest[unit] <= wait:
            raise ConfigError(
                f"perk rule {r.id!r} judges each {unit} once it closes, up to "
                f"{wait:,} s after its end (KUDOS_PERIODS_GRACE_S + KUDOS_PERIODS_IDLE_S), but "
                f"KUDOS_PERIODS_KEEP_{unit.upper()}S={keep} drops the archive before that: keep "
                f"at least {2 + wait // shortest[unit]} {unit}s"
            )


def load_perks_file(
    path: str, scoring: ScoringRules, *, max_ties: int = DEFAULT_MAX_TIES
) -> tuple[list[PerkRule], dict[str, Any]]:
    """The rules of a perks file and its raw data (the ``[[endpoint]]`` tables are parsed by
    ``leaderboard.webhooks``); no path means no rules. ``max_ties``: see :func:`parse_rules`."""
    if not path:
        return [], {}
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"KUDOS_PERKS_PATH={path!r}: no such file")
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse_rules(data, scoring, path, max_ties=max_ties), data


@dataclass(frozen=True, slots=True)
class Unlock:
    """One perk unlock, as the outbox carries it."""

    id: str
    rule: str
    title: str
    member: str
    board: str
    #: competition rank and points on ``board`` when it unlocked
    rank: int
    score: float
    #: event time of the unlock (the watermark of the batch that earned it), unix seconds
    at: float
    payload: dict[str, Any] = field(default_factory=dict)
    #: a winners' perk: the period it was won in (``2012-W27``; ``board`` is its archive)
    period: str | None = None

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> Unlock:
        """The unlock of an outbox entry. Raises ValueError naming a missing or bad field."""
        try:
            text = {k: fields[k] for k in ("id", "rule", "title", "member", "board")}
            rank, score, at = int(fields["rank"]), float(fields["score"]), float(fields["at"])
            payload = orjson.loads(fields.get("payload") or "{}")
        except KeyError as exc:
            raise ValueError(f"missing field {exc.args[0]!r}") from None
        except (ValueError, orjson.JSONDecodeError) as exc:
            raise ValueError(f"bad rank, score, at or payload ({exc})") from None
        if not isinstance(payload, dict):
            raise ValueError("payload is not a JSON object")
        period = fields.get("period") or None
        return cls(rank=rank, score=score, at=at, payload=payload, period=period, **text)

    def data(self) -> dict[str, Any]:
        """What the ``perk-unlocks`` topic and the webhook's ``data`` carry."""
        return {
            "id": self.id,
            "rule": self.rule,
            "title": self.title,
            "member": self.member,
            "board": self.board,
            "rank": self.rank,
            # the apply script computes points in floating point; milli-points are exact
            "score": round(self.score, 3),
            "at": self.at,
            "payload": self.payload,
            **({} if self.period is None else {"period": self.period}),
        }

    def event(self) -> dict[str, Any]:
        """The ``perk`` event on the member's and the board's websocket channels
        (docs/protocol.md). Without the payload: anyone may follow those channels, and a payload
        may be a coupon code; it goes to webhooks, the ``perk-unlocks`` topic and authenticated
        readers of ``GET /api/members/{id}/perks`` only."""
        out = {"event": "perk", **self.data()}
        del out["payload"]
        return out
