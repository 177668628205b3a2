"""An independent, straightforward computation of the scoring contract, for checking the pipeline.

The contract is the one README.md states ("Scoring (the contract, in short)"), with the numbers of
leaderboard/scoring.toml (weights, windows, half-life) copied in below as constants; it imports
nothing from the production code. It walks the events in log order with plain dictionaries.
"""

from __future__ import annotations

import datetime as dt
import gzip
import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

WEIGHTS = {
    "post": 0,
    "like": 1,
    "click": 1,
    "comment": 2,
    "reply": 2,
    "mention": 2,
    "share": 4,
    "follow": 3,
    "conversion": 10,
}
WINDOWS = {"1h": (60, 60), "24h": (900, 96), "7d": (3600, 168)}
HALF_LIFE = 86400.0
#: archived calendar periods kept by default (KUDOS_PERIODS_KEEP_DAYS, _WEEKS, _MONTHS)
KEEP = {"day": 31, "week": 53, "month": 24}
HIGGS = {"RT": "share", "MT": "mention", "RE": "reply"}
SX = {"a2q": "reply", "c2q": "comment", "c2a": "comment"}


def read_edges(path: Path, fmt: str, limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` lines of a SNAP file as event dicts (ids as the replay CLI makes them)."""
    kinds = HIGGS if fmt == "higgs" else SX
    out = []
    with gzip.open(path, "rt") as f:
        for n, line in enumerate(itertools.islice(f, limit), start=1):
            a, b, ts, code = line.split()
            out.append(
                {"id": f"{fmt}-{n}", "ts": int(ts), "kind": kinds[code], "actor": a, "target": b}
            )
    return out


def compute(
    events: Iterable[dict[str, Any]],
    weights: dict[str, int] | None = None,
    *,
    allowed_communities: Iterable[str] | None = None,
    max_communities: int = 0,
    keep: dict[str, int] | None = None,
) -> dict[str, dict[str, float]]:
    """Board → member → score. Milli-point boards hold ints (milli-points); decayed holds points.
    ``weights`` (points per kind) replace the contract's defaults, as a new scoring.toml would.
    Communities get boards only if in ``allowed_communities`` (None: any) and among the first
    ``max_communities`` (0: any) to score points, in log order.

    Calendar boards: an archive per UTC day, ISO week and month (``day@2012-07-04``,
    ``week@2012-W27``, ``month@2012-07``, each per community too) with the points of the events
    whose ts falls in it; ``keep`` periods of each unit (0: all; default :data:`KEEP`) counted
    back from W's period, and the live ``day``/``week``/``month`` = the archive of W's period.
    (It assumes no event arrives for a period already dropped: the logs here are in time order.)"""
    keep = KEEP if keep is None else keep
    scored, _ = _bounded(_scored(events, weights), allowed_communities, max_communities)
    boards: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(int))
    if not scored:
        return {}
    wm = max(ts for ts, *_ in scored)
    now = calendar_periods(wm)
    for ts, target, mp, communities in scored:
        if mp == 0:
            continue
        periods = calendar_periods(ts)
        for suffix in ("", *(":" + c for c in communities)):
            boards["all" + suffix][target] += mp
            for name, (b, n) in WINDOWS.items():
                if math.floor(ts / b) > math.floor(wm / b) - n:
                    boards[name + suffix][target] += mp
            boards["decayed" + suffix][target] += mp / 1000 * 2 ** (-(wm - ts) / HALF_LIFE)
            for unit, (index, label) in periods.items():
                if keep[unit] and index <= now[unit][0] - keep[unit]:
                    continue
                boards[f"{unit}@{label}{suffix}"][target] += mp
                if index == now[unit][0]:
                    boards[unit + suffix][target] += mp
    return {b: {m: s for m, s in members.items() if s > 0} for b, members in boards.items()}


def calendar_periods(ts: float) -> dict[str, tuple[int, str]]:
    """Unit → (an index that orders its periods, its label) of the UTC day, ISO week and month
    of ``ts``, straight from the datetime module."""
    d = dt.datetime.fromtimestamp(ts, dt.UTC).date()
    iso = d.isocalendar()
    monday = d - dt.timedelta(days=d.weekday())
    return {
        "day": (d.toordinal(), d.isoformat()),
        "week": (monday.toordinal() // 7, f"{iso.year}-W{iso.week:02d}"),
        "month": (d.year * 12 + d.month, f"{d.year}-{d.month:02d}"),
    }


def calendar_boards(expected: dict[str, dict[str, float]]) -> list[str]:
    """The calendar boards (live and archived) of an oracle result."""
    return sorted(b for b in expected if b.partition(":")[0].partition("@")[0] in KEEP)


def community_counts(
    events: Iterable[dict[str, Any]],
    *,
    allowed_communities: Iterable[str] | None = None,
    max_communities: int = 0,
) -> dict[str, int]:
    """Scoring events that lost some of their communities' boards: ``refused`` (not allowed),
    ``capped`` (beyond the first ``max_communities``), and ``admitted``: how many got boards."""
    _, counts = _bounded(_scored(events, None), allowed_communities, max_communities)
    return counts


Scored = list[tuple[float, str, int, tuple[str, ...]]]  # (ts, target, mp, communities)


def _scored(events: Iterable[dict[str, Any]], weights: dict[str, int] | None) -> Scored:
    weights = weights or WEIGHTS
    seen: set[str] = set()
    counts: dict[tuple[str, str, int], int] = defaultdict(int)
    scored: list[tuple[float, str, int, tuple[str, ...]]] = []  # (ts, target, mp, communities)
    for e in events:
        if e["id"] in seen:
            continue
        seen.add(e["id"])
        w = weights[e["kind"]] * 1000
        if e["actor"] == e["target"] or w == 0:
            continue
        key = (e["actor"], e["target"], math.floor(e["ts"] / 86400))
        counts[key] += 1
        # (a community named twice in one event counts once)
        communities = tuple(dict.fromkeys(e.get("communities", ())))
        scored.append((float(e["ts"]), e["target"], w // counts[key], communities))
    return scored


def _bounded(
    scored: Scored, allowed: Iterable[str] | None, cap: int
) -> tuple[Scored, dict[str, int]]:
    allow = None if allowed is None else set(allowed)
    admitted: set[str] = set()
    counts = {"refused": 0, "capped": 0}
    out: Scored = []
    for ts, target, mp, communities in scored:
        kept = []
        refused = capped = False
        for c in communities:
            if mp == 0:
                break  # (writes no board: admits nothing, loses nothing)
            if allow is not None and c not in allow:
                refused = True
            elif c in admitted or not cap or len(admitted) < cap:
                admitted.add(c)
                kept.append(c)
            else:
                capped = True
        counts["refused"] += refused
        counts["capped"] += capped
        out.append((ts, target, mp, tuple(kept)))
    counts["admitted"] = len(admitted)
    return out, counts


def parse_export(
    rows: Iterator[tuple[int, str, str]] | list[tuple[int, str, str]], decayed: bool
) -> dict[str, float]:
    out: dict[str, float] = {}
    for _, member, score in rows:
        out[member] = float(score) if decayed else int(Decimal(score) * 1000)
    return out


def assert_board_equal(
    board: str, exported: list[tuple[int, str, str]], expected: dict[str, float]
) -> None:
    """Exact for milli-point boards; relative error ≤ 1e-6 for decayed (members ≥ 1e-6 points)."""
    decayed = board.startswith("decayed")
    got = parse_export(exported, decayed)
    # competition ranks: 1 + number of strictly higher scores
    scores = [float(s) for _, _, s in exported]
    for (rank, member, _), s in zip(exported, scores, strict=True):
        higher = sum(1 for x in scores if x > s)
        assert rank == higher + 1, f"{board}: {member} has rank {rank}, expected {higher + 1}"
    if not decayed:
        missing = set(expected) - set(got)
        extra = set(got) - set(expected)
        wrong = {
            m: (got[m], expected[m]) for m in set(got) & set(expected) if got[m] != expected[m]
        }
        assert not (missing or extra or wrong), (
            f"{board}: {len(missing)} missing e.g. {sorted(missing)[:3]}, {len(extra)} extra "
            f"e.g. {sorted(extra)[:3]}, {len(wrong)} wrong e.g. {list(wrong.items())[:3]}"
        )
        return
    significant = {m: v for m, v in expected.items() if v >= 1e-6}
    for m, v in significant.items():
        assert m in got, f"{board}: {m} ({v}) missing"
        assert abs(got[m] - v) <= 1e-6 * v, f"{board}: {m} = {got[m]}, expected {v}"
    for m, v in got.items():
        if m not in significant:
            assert v < 1e-6 * 1.000001, (
                f"{board}: {m} = {v} not expected (oracle {expected.get(m)})"
            )
