"""The community bound in the planner (leaderboard/plan.py): an allow-list and a cap on distinct
communities, without Redis."""

from __future__ import annotations

from collections.abc import Sequence, Set

from leaderboard.calendar import UNITS
from leaderboard.events import Event
from leaderboard.plan import Message, Plan, StoreState, build_plan
from leaderboard.scoring import ScoringRules

RULES = ScoringRules.load()
T0 = 1_341_100_800


def ev(i: int, target: str, *communities: str, actor: str = "ann") -> Event:
    return Event(f"e{i}", float(T0 + i), "share", actor, target, communities=communities)


def plan_of(
    events: Sequence[Event],
    admitted: Set[str] = frozenset(),
    *,
    allowed: Set[str] | None = None,
    cap: int = 0,
) -> Plan:
    return build_plan(
        [Message(0, 0, tuple(events), float(T0 + 10**6))],
        StoreState({}, communities=admitted),
        RULES,
        dedupe_horizon_s=7 * 86400,
        rebase_after_s=120 * 86400,
        max_future_s=300.0,
        allowed_communities=allowed,
        max_communities=cap,
    )


def community_boards(plan: Plan) -> set[str]:
    return {b for b in plan.boards if ":" in b}


def test_only_allowed_communities_get_boards_and_the_event_still_scores() -> None:
    plan = plan_of([ev(1, "tom", "physics", "spam"), ev(2, "tom", "spam")], allowed={"physics"})
    assert community_boards(plan) == {b + ":physics" for b in RULES.base_boards if b not in UNITS}
    assert plan.totals[("all", "tom")] == 4000 + 2000  # both events, on the base boards
    assert plan.totals[("all:physics", "tom")] == 4000
    assert plan.community_stats == {"community_refused": 2}
    assert plan.stats["applied"] == 2  # (a part of applied, not an outcome of its own)
    assert plan.member_communities == {("tom", "physics")}
    assert plan.capped_communities == []


def test_the_cap_admits_the_first_communities_in_processing_order() -> None:
    events = [ev(1, "tom", "a", "b"), ev(2, "ann2", "c", "a"), ev(3, "tom", "b"), ev(4, "x", "d")]
    plan = plan_of(events, cap=2)
    assert plan.new_communities == ["a", "b"]
    assert {b.partition(":")[2] for b in community_boards(plan)} == {"a", "b"}
    assert plan.community_stats == {"community_capped": 2}  # events 2 and 4
    assert plan.capped_communities == ["c", "d"]  # (the apply checks neither is admitted)
    assert plan.member_communities == {("tom", "a"), ("tom", "b"), ("ann2", "a")}


def test_admitted_communities_stay_and_a_full_cap_admits_none() -> None:
    plan = plan_of([ev(1, "tom", "old"), ev(2, "tom", "new")], {"old", "other"}, cap=2)
    assert plan.new_communities == []
    assert {b.partition(":")[2] for b in community_boards(plan)} == {"old"}
    assert plan.community_stats == {"community_capped": 1}
    assert plan.capped_communities == ["new"]


def test_one_plan_decides_as_event_by_event_plans_do() -> None:
    """Batch boundaries change nothing: the set carried from plan to plan as the store keeps it."""
    events = [ev(i, f"t{i % 3}", f"c{i % 7}", f"c{(i * 3) % 11}") for i in range(40)]
    whole = plan_of(events, cap=5)
    admitted: set[str] = set()
    capped = 0
    totals: dict[tuple[str, str], int] = {}
    for e in events:
        p = plan_of([e], frozenset(admitted), cap=5)
        admitted |= set(p.new_communities)
        capped += p.community_stats["community_capped"]
        for k, v in p.totals.items():
            totals[k] = totals.get(k, 0) + v
    assert set(whole.new_communities) == admitted and len(admitted) == 5
    assert whole.community_stats["community_capped"] == capped
    # (diminishing returns differ between separate one-event plans without a carried state, so
    # compare which boards got points, not how many)
    assert {k for k, v in whole.totals.items() if v} == {k for k, v in totals.items() if v}
