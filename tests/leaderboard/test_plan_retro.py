"""Retroactive throttles in the planner: when a ring's second post is throttled in lockstep with its
first, what the first post's comments counted in full is taken back from every board they counted
on (all-time, each window's bucket, the decayed board, their community's boards), from the post's
points and the kind's counted points, and recorded as withheld; nothing else moves.

The expected figures are computed here from the contract (weights, the multiplier, the window
buckets), not by the planner's code."""

from __future__ import annotations

import math
from collections import defaultdict

from leaderboard.bait import Detector
from leaderboard.events import Event
from leaderboard.explain import POSTS_PERIOD_S
from leaderboard.plan import Message, PartitionState, Plan, StoreState, build_plan
from leaderboard.scoring import ScoringRules
from tests.leaderboard.bait._streams import genuine

RULES = ScoringRules.load()
T0 = 1_700_000_000.0
RING = tuple(f"ring{i}" for i in range(24))
HOUR = 3600.0
COMMENT_MP = 2000  # the contract's comment weight, 2 points, the first of a pair's day


def ring_events(posts: int = 2) -> list[Event]:
    """Ring members post in turn, three hours apart; the others comment on each post within the
    hour with varied text. The first post's comments carry a community."""
    # (accounts with a past: each did something elsewhere a day before)
    out = [Event(f"h{i}", T0 - 86400 + i, "like", a, "elsewhere") for i, a in enumerate(RING)]
    for k in range(posts):
        author, post, t0 = RING[k], f"rp{k}", T0 + k * 3 * HOUR
        out.append(Event(f"{post}-p", t0, "post", author, author, post, f"Thoughts on topic {k}"))
        for i, actor in enumerate(a for a in RING if a != author):
            text = genuine(k * 31 + i)
            communities = ("physics",) if k == 0 else ()
            out.append(
                Event(
                    f"{post}-{i}",
                    t0 + 120 + 90 * i + (i * i * 37) % 80,  # (people do not keep time)
                    "comment",
                    actor,
                    author,
                    post,
                    text,
                    communities,
                )
            )
    return out


def plan_of(events: list[Event]) -> Plan:
    state = StoreState({0: PartitionState(bait=Detector())})
    messages = [Message(0, i, (e,), e.ts + 1) for i, e in enumerate(events)]
    return build_plan(
        messages,
        state,
        RULES,
        dedupe_horizon_s=7 * 86400,
        rebase_after_s=120 * 86400,
        max_future_s=300.0,
    )


def test_a_rings_first_post_pays_back_what_it_counted_on_every_board() -> None:
    events = ring_events()
    plan = plan_of(events)
    retro = [d for d in plan.alerts if d.retroactive and d.post == "rp0"]
    assert len(retro) == 1 and retro[0].reasons == ("lockstep", "retroactive")
    mult = round(retro[0].multiplier * 1000)
    first = [e for e in events if e.post == "rp0" and e.kind == "comment"]
    clawed = {ts for _, ts in retro[0].clawed}
    # every comment goes back but the first: a throttle on coordination starts at the fifth at
    # best, but the first four were the ring's accounts, which also commented on rp1; the first
    # is by rp1's author, who did not comment on rp1, so is not shown to be in lockstep: it stands
    assert first[0].actor == RING[1]
    assert clawed == {e.ts for e in first[1:]}
    kept = {e.ts: COMMENT_MP if e.ts not in clawed else COMMENT_MP * mult // 1000 for e in first}
    author = RING[0]
    total = sum(kept.values())
    withheld = COMMENT_MP * len(first) - total
    assert plan.totals[("all", author)] == total
    assert plan.totals[("all:physics", author)] == total
    # each window's bucket holds what its comments kept (all inside every window's buckets)
    for w in RULES.windows:
        expect: dict[int, int] = {}
        for e in first:
            idx = math.floor(e.ts / w.bucket_s)
            expect[idx] = expect.get(idx, 0) + kept[e.ts]
        for suffix in ("", ":physics"):
            got = {
                idx: v
                for (wi, idx, board, member), v in plan.buckets.items()
                if board == w.name + suffix and member == author and v
            }
            assert got == expect, (w.name, suffix)
    # the decayed board: each comment's kept points at its own time, against the landmark
    landmark = plan.landmark
    assert landmark is not None
    value = sum(p * 2.0 ** ((ts - landmark) / RULES.half_life_s) for ts, p in kept.items())
    assert math.isclose(plan.decayed[("decayed", author)], value, rel_tol=1e-12)
    assert math.isclose(plan.decayed[("decayed:physics", author)], value, rel_tol=1e-12)
    # the post's points, and the explain counters: counted, withheld, nothing lost
    assert plan.posts[(author, "rp0", math.floor(T0 / POSTS_PERIOD_S))] == total
    assert plan.explain[(author, "mp:comment")] == total
    assert plan.explain[(author, "wh:comment")] == withheld
    assert plan.explain[(author, "n:comment")] == len(first)
    assert plan.withheld[(author, "p:rp0", math.floor(T0 / POSTS_PERIOD_S))] == withheld
    # the second post's throttle is the ordinary one, from its sixth comment
    second = [d for d in plan.alerts if d.post == "rp1" and not d.retroactive]
    assert second and "lockstep" in second[0].reasons


def test_without_the_ring_nothing_is_taken_back() -> None:
    # the first post alone: nothing to be in lockstep with, everything counts in full
    events = ring_events(posts=1)
    plan = plan_of(events)
    n = sum(e.kind == "comment" for e in events)
    assert plan.alerts == []
    assert plan.totals[("all", RING[0])] == COMMENT_MP * n
    assert plan.explain.get((RING[0], "wh:comment"), 0) == 0


def test_a_claw_back_writes_no_period_before_the_previous_one_of_the_watermark() -> None:
    # a post kept alive for months keeps its first entries: a claw-back of one counted 61 days
    # before the partition's watermark must not write into a period already dropped (top posts
    # and withheld points are kept per 30-day period, two at a time)

    from leaderboard.bait import Clawback
    from leaderboard.plan import _claw_back

    k = math.floor(T0 / POSTS_PERIOD_S)
    pwm = (k + 2) * POSTS_PERIOD_S + 100.0
    old = Clawback("ann", "p:x", "x", "comment", T0, "bob", 1500, ())
    recent = Clawback("ann", "p:y", "y", "comment", pwm - 50, "bob", 500, ())
    totals: dict[tuple[str, str], int] = defaultdict(int)
    buckets: dict[tuple[int, int, str, str], int] = defaultdict(int)
    decayed: dict[tuple[str, str], float] = defaultdict(float)
    posts: dict[tuple[str, str, int], int] = {}
    withheld: dict[tuple[str, str, int], int] = {}
    ex: dict[tuple[str, str], list[int]] = {}
    _claw_back(
        [old, recent],
        pwm,
        T0,
        RULES.half_life_s,
        [],
        ex,
        totals,
        defaultdict(int),
        buckets,
        decayed,
        posts,
        withheld,
    )
    # the old one's post points were in a period no read shows: nothing written there; its
    # withheld points go to the previous period of the watermark, where its throttle line shows
    assert posts == {("ann", "y", k + 2): -500}
    assert withheld == {("ann", "p:x", k + 1): 1500, ("ann", "p:y", k + 2): 500}
    assert totals[("all", "ann")] == -2000  # (the boards take back both, as counted)
