"""Who moves, and why, when the boards are rebuilt (pure, no I/O): the diff report of
``kudos rebuild`` between the live boards and the rebuilt ones.

Nobody's score may change silently: the report lists how many members move and, for the biggest
moves, the kinds of interaction whose points changed (from the members' explain counters), e.g.
``#7 → #3, 41.000 → 53.000 (share +12.000)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from leaderboard.ranking import competition_ranks

#: Movers listed per direction.
TOP_MOVERS = 10


@dataclass(frozen=True, slots=True)
class Move:
    member: str
    rank_before: int | None
    rank_after: int | None
    before_mp: int
    after_mp: int
    #: kind → change in counted milli-points (the kinds that explain the move), biggest first
    kinds: tuple[tuple[str, int], ...]

    @property
    def delta_mp(self) -> int:
        return self.after_mp - self.before_mp

    def to_json(self) -> dict[str, Any]:
        return {
            "member": self.member,
            "rank_before": self.rank_before,
            "rank_after": self.rank_after,
            "score_before": self.before_mp / 1000,
            "score_after": self.after_mp / 1000,
            "why": {k: mp / 1000 for k, mp in self.kinds},
        }


@dataclass(frozen=True, slots=True)
class Diff:
    board: str
    version_before: str
    version_after: str
    members_before: int
    members_after: int
    changed: int
    moved: int
    risers: list[Move]
    fallers: list[Move]

    def to_json(self) -> dict[str, Any]:
        return {
            "board": self.board,
            "version_before": self.version_before,
            "version_after": self.version_after,
            "members_before": self.members_before,
            "members_after": self.members_after,
            "scores_changed": self.changed,
            "ranks_changed": self.moved,
            "risers": [m.to_json() for m in self.risers],
            "fallers": [m.to_json() for m in self.fallers],
        }


def ranks(scores: Mapping[str, int]) -> dict[str, int]:
    """Competition ranks of a board given as member → milli-points (members with score > 0)."""
    order = sorted(scores.items(), key=lambda kv: -kv[1])
    return {
        m: r
        for (m, _), r in zip(order, competition_ranks([s for _, s in order], 1, 0), strict=True)
    }


def kind_deltas(before: Mapping[str, int], after: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
    """Per-kind change of counted milli-points (``mp:<kind>`` explain fields), biggest first."""
    kinds = {f[3:] for f in (*before, *after) if f.startswith("mp:")}
    deltas = [(k, after.get("mp:" + k, 0) - before.get("mp:" + k, 0)) for k in kinds]
    return tuple(sorted(((k, d) for k, d in deltas if d), key=lambda kd: (-abs(kd[1]), kd[0])))


def diff(
    board: str,
    before: Mapping[str, int],
    after: Mapping[str, int],
    versions: tuple[str, str],
    explain_before: Mapping[str, Mapping[str, int]],
    explain_after: Mapping[str, Mapping[str, int]],
    top: int = TOP_MOVERS,
) -> Diff:
    """The report for one board: scores as member → milli-points, explain counters of the members
    that may be listed (the caller reads them for :func:`candidates`)."""
    rb, ra = ranks(before), ranks(after)
    members = set(before) | set(after)
    changed = sorted(m for m in members if before.get(m, 0) != after.get(m, 0))
    moved = sum(1 for m in members if rb.get(m) != ra.get(m))

    def move(m: str) -> Move:
        return Move(
            m,
            rb.get(m),
            ra.get(m),
            before.get(m, 0),
            after.get(m, 0),
            kind_deltas(explain_before.get(m, {}), explain_after.get(m, {})),
        )

    by_delta = sorted(changed, key=lambda m: (after.get(m, 0) - before.get(m, 0), m))
    fallers = [move(m) for m in by_delta[:top] if after.get(m, 0) < before.get(m, 0)]
    risers = [move(m) for m in reversed(by_delta[-top:]) if after.get(m, 0) > before.get(m, 0)]
    return Diff(
        board,
        versions[0],
        versions[1],
        len(before),
        len(after),
        len(changed),
        moved,
        risers,
        fallers,
    )


def candidates(
    before: Mapping[str, int], after: Mapping[str, int], top: int = TOP_MOVERS
) -> list[str]:
    """The members :func:`diff` may list (whose explain counters it needs)."""
    members = set(before) | set(after)
    by_delta = sorted(members, key=lambda m: (after.get(m, 0) - before.get(m, 0), m))
    return sorted(set(by_delta[:top]) | set(by_delta[-top:]))


def format_diff(d: Diff) -> str:
    def rank(r: int | None) -> str:
        return f"#{r:,}" if r is not None else "-"

    def line(m: Move) -> str:
        why = ", ".join(f"{k} {mp / 1000:+,.3f}" for k, mp in m.kinds) or "-"
        return (
            f"  {m.member:<24} {rank(m.rank_before):>8} → {rank(m.rank_after):<8} "
            f"{m.before_mp / 1000:>12,.3f} → {m.after_mp / 1000:<12,.3f} ({why})"
        )

    out = [
        f"board {d.board}: scoring {d.version_before or '-'} → {d.version_after}; "
        f"{d.members_before:,} → {d.members_after:,} members; {d.changed:,} scores change, "
        f"{d.moved:,} ranks change"
    ]
    if d.risers:
        out.append(" biggest rises:")
        out += [line(m) for m in d.risers]
    if d.fallers:
        out.append(" biggest falls:")
        out += [line(m) for m in d.fallers]
    if not d.changed:
        out.append(" nobody's score changes")
    return "\n".join(out)
