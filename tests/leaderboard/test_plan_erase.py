"""Erased members in the planner (leaderboard/plan.py, leaderboard/moderation.py), without
Redis: their events are read as before and nothing is written for them; every other member's
plan is what it would have been."""

from __future__ import annotations

import random

import pytest

from leaderboard.bait import Detector
from leaderboard.errors import ModerationError
from leaderboard.events import Event, Profile
from leaderboard.moderation import Tombstones, check_actor, check_reason, tombstone
from leaderboard.plan import Message, PartitionState, Plan, StoreState, build_plan
from leaderboard.scoring import ScoringRules

RULES = ScoringRules.load()
T0 = 1_341_100_800  # 2012-07-01T00:00:00Z
MEMBERS = ("ann", "bob", "cy", "gone")
KINDS = ("share", "click", "reply", "comment", "conversion")


def events(n: int = 600, seed: int = 7) -> list[Event | Profile]:
    rng = random.Random(seed)
    out: list[Event | Profile] = []
    for i in range(n):
        actor, target = rng.choice(MEMBERS), rng.choice(MEMBERS)
        communities = rng.choice(((), ("physics",), ("physics", "math")))
        post = f"p{rng.randrange(6)}" if rng.random() < 0.7 else None
        ts = float(T0 + 400 * i + rng.randrange(300))
        out.append(Event(f"e{i}", ts, rng.choice(KINDS), actor, target, post=post,
                         communities=communities))  # fmt: skip
    out.append(Profile("pr1", float(T0 + 10), "gone", "Gone Person", None))
    out.append(Profile("pr2", float(T0 + 11), "ann", "Ann", None))
    return out


def plan_of(items: list[Event | Profile], erased: Tombstones, erasures: int = 0) -> Plan:
    state = StoreState({0: PartitionState(bait=Detector())}, erased=erased, erasures=erasures)
    messages = [Message(0, i, (e,), e.ts + 1) for i, e in enumerate(items)]
    return build_plan(
        messages,
        state,
        RULES,
        dedupe_horizon_s=7 * 86400,
        rebase_after_s=120 * 86400,
        max_future_s=300.0,
    )


def tables(plan: Plan) -> dict[str, dict[tuple[object, ...], object]]:
    return {
        "totals": dict(plan.totals),
        "archives": dict(plan.archives),
        "buckets": dict(plan.buckets),
        "decayed": dict(plan.decayed),
        "explain": dict(plan.explain),
        "posts": dict(plan.posts),
        "withheld": dict(plan.withheld),
    }


#: where each table's key holds the member
AT = {"totals": 1, "archives": 4, "buckets": 3, "decayed": 1, "explain": 0, "posts": 0,
      "withheld": 0}  # fmt: skip


def test_an_erased_member_gets_nothing_and_everyone_else_what_they_would_have() -> None:
    items = events()
    before = plan_of(items, Tombstones())
    after = plan_of(items, Tombstones([tombstone("gone")]), erasures=3)
    b, a = tables(before), tables(after)
    for name, at in AT.items():
        assert not [k for k in a[name] if k[at] == "gone"], name
        kept = {k: v for k, v in b[name].items() if k[at] != "gone"}
        assert a[name] == kept, name
        assert len(kept) < len(b[name]) or name == "withheld", name  # (gone had some)
    assert ("gone", "name") not in after.profiles and ("ann", "name") in after.profiles
    assert not any(m == "gone" for m, _ in after.member_communities)
    assert not any(d.target == "gone" for d in after.alerts)
    # counted, not lost: every event is applied, ignored or erased, as before
    about_gone = before.stats["applied"] - after.stats["applied"]
    assert about_gone > 0
    # (the ignored ones include the profile event, which counts as ignored when not erased)
    assert after.stats["erased"] == about_gone + before.stats["ignored"] - after.stats["ignored"]
    assert sum(after.stats.values()) == sum(before.stats.values())
    # the clocks moved as they did (an erased member's events still advance W)
    assert after.max_ts == before.max_ts
    assert after.erasures == 3


def test_with_nobody_erased_the_plan_is_unchanged() -> None:
    items = events(200, seed=3)
    assert tables(plan_of(items, Tombstones())) == tables(plan_of(items, Tombstones(["x" * 40])))


def test_tombstones_match_ids_only_through_their_hash() -> None:
    stones = Tombstones()
    assert not stones and "gone" not in stones
    stones.update([tombstone("gone")])
    assert stones and "gone" in stones and "Gone" not in stones and 5 not in stones
    assert tombstone("gone") != "gone" and len(tombstone("gone")) == 40


def test_reasons_and_actors_the_audit_log_cannot_record_are_refused() -> None:
    assert check_reason("  spam account  ") == "spam account"
    with pytest.raises(ModerationError, match="at most 300"):
        check_reason("x" * 301)
    with pytest.raises(ModerationError, match="U\\+202E"):
        check_reason("looks fine\u202e")
    with pytest.raises(ModerationError, match="required"):
        check_reason("", required=True)
    assert check_actor("ops@example.org") == "ops@example.org"
    for bad in ("", "a b", "x" * 65, "root\n"):
        with pytest.raises(ModerationError):
            check_actor(bad)


def test_an_erased_authors_throttles_and_claw_backs_write_nothing_for_them() -> None:
    from tests.leaderboard.test_plan_retro import ring_events

    items: list[Event | Profile] = list(ring_events())
    before = plan_of(items, Tombstones())
    retro = [d for d in before.alerts if d.retroactive]
    assert retro and before.withheld, "the ring should be throttled with claw-backs"
    author = retro[0].target
    after = plan_of(items, Tombstones([tombstone(author)]))
    assert not [d for d in after.alerts if d.target == author]
    assert [d for d in after.alerts] == [d for d in before.alerts if d.target != author]
    b, a = tables(before), tables(after)
    for name, at in AT.items():
        assert not [k for k in a[name] if k[at] == author], name
        assert a[name] == {k: v for k, v in b[name].items() if k[at] != author}, name
