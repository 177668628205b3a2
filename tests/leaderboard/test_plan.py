"""Batch planning (leaderboard/plan.py): scoring decisions for a batch against a small state."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Sequence

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leaderboard.bait import Detector
from leaderboard.calendar import UNITS, periods_of
from leaderboard.events import Event, Rejected, decode_message
from leaderboard.explain import POSTS_PERIOD_S
from leaderboard.plan import (
    SEP,
    DeadLetter,
    Message,
    PartitionState,
    PartitionUpdate,
    Plan,
    StoreState,
    build_plan,
    choose_landmark,
)
from leaderboard.scoring import ScoringRules
from tests.leaderboard._model import Model, dr_counters, run, seen_set

RULES = ScoringRules.load()
#: the boards a plan names itself (the live calendar boards are the apply's: leaderboard.calendar)
SCORED_BOARDS = [b for b in RULES.base_boards if b not in UNITS]
DAY = 86400
WEEK = 7 * DAY
T0 = 1_341_100_800  # 2012-07-01T00:00:00Z, a UTC day boundary
D0 = T0 // DAY
NO_STATE = StoreState({})
MAX_FUTURE = 300.0


def ev(
    id: str,
    kind: str,
    actor: str,
    target: str,
    ts: float,
    communities: tuple[str, ...] = (),
    post: str | None = None,
) -> Event:
    return Event(id, float(ts), kind, actor, target, post=post, communities=communities)


def msg(partition: int, offset: int, *items: Event | Rejected, at: float | None = None) -> Message:
    """A message; ``at`` is its Kafka record's timestamp (None: the broker recorded none)."""
    return Message(partition, offset, tuple(items), at)


def plan_of(
    messages: Sequence[Message],
    state: StoreState = NO_STATE,
    rules: ScoringRules = RULES,
    *,
    horizon: int = WEEK,
    rebase: int = 120 * DAY,
    max_future: float = MAX_FUTURE,
) -> Plan:
    return build_plan(
        list(messages),
        state,
        rules,
        dedupe_horizon_s=horizon,
        rebase_after_s=rebase,
        max_future_s=max_future,
    )


def all_scores(plan: Plan) -> dict[str, int]:
    return {m: v for (b, m), v in plan.totals.items() if b == "all"}


# ---------------------------------------------------------------------------------------------
# diminishing returns


def test_kth_event_of_a_pair_counts_weight_floor_k_across_kinds() -> None:
    # k counts every scored event of (actor, target, UTC day), whatever its kind
    first = msg(
        0,
        0,
        ev("1", "share", "ann", "tom", T0 + 10),  # k=1: 4000
        ev("2", "like", "ann", "tom", T0 + 20),  # k=2: 1000 // 2 = 500
        ev("3", "comment", "ann", "tom", T0 + 30),  # k=3: 2000 // 3 = 666
    )
    second = msg(
        0,
        1,
        ev("4", "share", "bob", "tom", T0 + 40),  # another actor: k=1 again
        ev("5", "share", "ann", "tom", T0 + 50),  # k=4: 4000 // 4 = 1000
    )
    plan = plan_of([first, second])
    assert all_scores(plan) == {"tom": 4000 + 500 + 666 + 4000 + 1000}
    assert plan.stats == Counter(applied=5)
    assert plan.dr == {(0, D0, "ann" + SEP + "tom"): 4, (0, D0, "bob" + SEP + "tom"): 1}
    assert plan.explain[("tom", "mp:share")] == 9000
    assert plan.explain[("tom", "full:share")] == 12000
    assert plan.explain[("tom", "mp:like")] == 500
    assert plan.explain[("tom", "full:like")] == 1000
    assert plan.explain[("tom", "mp:comment")] == 666
    assert plan.explain[("tom", "n:share")] == 3


def test_diminishing_returns_reset_on_the_next_utc_day() -> None:
    plan = plan_of(
        [
            msg(
                0,
                0,
                ev("1", "share", "ann", "tom", T0 + DAY - 2),
                ev("2", "share", "ann", "tom", T0 + DAY - 1),  # same UTC day: 2000
                ev("3", "share", "ann", "tom", T0 + DAY),  # next UTC day: full 4000 again
                ev("4", "share", "ann", "tom", T0 + DAY + 1),  # 2000
            )
        ]
    )
    assert all_scores(plan) == {"tom": 4000 + 2000 + 4000 + 2000}
    assert plan.dr == {(0, D0, "ann" + SEP + "tom"): 2, (0, D0 + 1, "ann" + SEP + "tom"): 2}


def test_utc_day_comes_from_the_event_time_not_the_local_date() -> None:
    kinds = RULES.kinds
    raw = orjson.dumps(
        [
            {
                "id": "1",
                "ts": "2012-07-01T23:00:00+00:00",
                "kind": "share",
                "actor": "a",
                "target": "t",
            },
            # same local calendar date, but 00:30 UTC on 2 July: a new UTC day, full weight
            {
                "id": "2",
                "ts": "2012-07-01T23:30:00-01:00",
                "kind": "share",
                "actor": "a",
                "target": "t",
            },
            # 2 July local, 1 July 23:45 UTC: the first day's second event, half weight
            {
                "id": "3",
                "ts": "2012-07-02T01:45:00+02:00",
                "kind": "share",
                "actor": "a",
                "target": "t",
            },
        ]
    )
    items = decode_message(raw, kinds)
    plan = plan_of([Message(0, 0, items)])
    assert all_scores(plan) == {"t": 4000 + 4000 + 2000}


def test_counters_from_state_continue_the_day() -> None:
    state = StoreState({0: PartitionState(dr=dr_counters({(D0, "ann" + SEP + "tom"): 2}))})
    plan = plan_of([msg(0, 0, ev("9", "share", "ann", "tom", T0 + 100))], state)
    assert all_scores(plan) == {"tom": 4000 // 3}
    assert plan.dr == {(0, D0, "ann" + SEP + "tom"): 3}


def test_an_event_worth_zero_after_division_is_still_applied() -> None:
    state = StoreState({0: PartitionState(dr=dr_counters({(D0, "ann" + SEP + "tom"): 1000}))})
    plan = plan_of([msg(0, 0, ev("9", "like", "ann", "tom", T0))], state)
    assert plan.totals == {}
    assert plan.stats == Counter(applied=1)
    assert plan.explain[("tom", "full:like")] == 1000
    assert ("tom", "mp:like") not in plan.explain
    assert plan.dr == {(0, D0, "ann" + SEP + "tom"): 1001}


# ---------------------------------------------------------------------------------------------
# self-interactions and zero-weight kinds


def test_self_interactions_score_nothing_but_are_counted() -> None:
    plan = plan_of(
        [
            msg(
                0,
                0,
                ev("1", "share", "tom", "tom", T0),
                ev("2", "post", "tom", "tom", T0 + 1),
                ev("3", "share", "ann", "tom", T0 + 2),
            )
        ]
    )
    assert all_scores(plan) == {"tom": 4000}  # the self-share did not consume k=1 either
    assert plan.stats == Counter(applied=1, ignored=2)
    assert plan.explain[("tom", "n:share")] == 2
    assert plan.explain[("tom", "n:post")] == 1
    assert plan.explain[("tom", "self")] == 2
    assert plan.explain[("tom", "full:share")] == 4000
    assert ("tom", "full:post") not in plan.explain
    assert [i for _, _, i in plan.seen] == ["1", "2", "3"]  # ignored ids are still de-duplicated
    assert plan.dr == {(0, D0, "ann" + SEP + "tom"): 1}


def test_zero_weight_kinds_score_nothing_but_are_counted() -> None:
    rules = ScoringRules.from_toml('version = "z"\n[weights]\nlike = 0\nshare = 4\n')
    plan = plan_of(
        [
            msg(
                0,
                0,
                ev("1", "like", "ann", "tom", T0),
                ev("2", "share", "ann", "tom", T0 + 1),  # zero-weight like did not take k=1
            )
        ],
        rules=rules,
    )
    assert all_scores(plan) == {"tom": 4000}
    assert plan.stats == Counter(applied=1, ignored=1)
    assert plan.explain[("tom", "n:like")] == 1
    assert ("tom", "self") not in plan.explain
    assert ("tom", "full:like") not in plan.explain
    assert plan.dr == {(0, D0, "ann" + SEP + "tom"): 1}  # the zero-weight like took no slot


# ---------------------------------------------------------------------------------------------
# duplicates, fences, late events


def test_duplicates_within_a_batch() -> None:
    share = ev("x", "share", "ann", "tom", T0)
    plan = plan_of([msg(0, 0, share, share), msg(0, 1, share)])
    assert all_scores(plan) == {"tom": 4000}
    assert plan.stats == Counter(applied=1, duplicate=2)
    assert plan.seen == [(0, float(T0), "x")]
    assert plan.explain[("tom", "n:share")] == 1


def test_duplicates_against_seen_ids() -> None:
    state = StoreState({0: PartitionState(fence=3, watermark=T0, seen=seen_set({"x": T0}))})
    plan = plan_of(
        [
            msg(
                0,
                4,
                ev("x", "share", "ann", "tom", T0),
                ev("y", "like", "ann", "tom", T0),
            )
        ],
        state,
    )
    assert all_scores(plan) == {"tom": 1000}
    assert plan.stats == Counter(applied=1, duplicate=1)
    assert [i for _, _, i in plan.seen] == ["y"]


def test_a_duplicate_id_in_another_partition_is_a_different_event() -> None:
    state = StoreState({0: PartitionState(seen=seen_set({"x": T0}))})
    plan = plan_of([msg(1, 0, ev("x", "share", "ann", "bob", T0))], state)
    assert all_scores(plan) == {"bob": 4000}


def test_messages_at_or_below_the_fence_are_skipped() -> None:
    state = StoreState({0: PartitionState(fence=5, watermark=T0)})
    plan = plan_of(
        [
            msg(0, 4, ev("a", "share", "ann", "tom", T0)),
            msg(0, 5, ev("b", "share", "bob", "tom", T0), Rejected(1, b"{}", "missing_field", "x")),
            msg(0, 6, ev("c", "like", "cy", "tom", T0)),
        ],
        state,
    )
    assert all_scores(plan) == {"tom": 1000}
    assert plan.stats == Counter(applied=1)
    assert plan.dead == []
    assert plan.partitions == [
        PartitionUpdate(
            partition=0,
            expected_fence=5,
            fence=6,
            watermark=float(T0),
            seen_cutoff=float(T0 - WEEK),
            dr_cutoff_day=math.floor((T0 - WEEK) / DAY),
        )
    ]


def test_a_batch_entirely_below_the_fence_is_an_empty_plan() -> None:
    state = StoreState({0: PartitionState(fence=9)})
    plan = plan_of([msg(0, 8, ev("a", "share", "ann", "tom", T0)), msg(0, 9)], state)
    assert plan.empty
    assert plan.totals == {}
    assert plan.stats == Counter()
    assert plan.seen == []


def test_redelivered_offsets_inside_a_batch_count_once() -> None:
    m = msg(0, 0, ev("a", "share", "ann", "tom", T0))
    plan = plan_of([m, msg(0, 1, ev("b", "like", "bob", "tom", T0)), m])
    assert all_scores(plan) == {"tom": 5000}
    assert plan.stats == Counter(applied=2)
    assert plan.partitions[0].fence == 1


def test_late_events_are_dead_lettered() -> None:
    pwm = T0 + 10 * DAY
    state = StoreState({0: PartitionState(fence=0, watermark=pwm)})
    late = ev("old", "share", "ann", "tom", pwm - WEEK - 1)
    edge = ev("edge", "share", "bob", "tom", pwm - WEEK)  # exactly the horizon: still scored
    plan = plan_of([msg(0, 1, edge, late)], state)
    assert all_scores(plan) == {"tom": 4000}
    assert plan.stats == Counter(applied=1, late=1)
    [dead] = plan.dead
    assert (dead.partition, dead.offset, dead.index, dead.reason) == (0, 1, 1, "late")
    assert orjson.loads(dead.raw) == late.to_json()
    assert "604800" in dead.detail
    assert [i for _, _, i in plan.seen] == ["edge"]


def test_lateness_follows_the_partition_watermark_inside_the_batch() -> None:
    plan = plan_of(
        [
            msg(0, 0, ev("new", "share", "ann", "tom", T0 + 3 * DAY)),
            msg(0, 1, ev("old", "share", "bob", "tom", T0 + 3 * DAY - DAY - 1)),
            msg(1, 0, ev("other", "share", "bob", "sue", T0)),  # partition 1 has its own watermark
        ],
        horizon=DAY,
    )
    assert all_scores(plan) == {"tom": 4000, "sue": 4000}
    assert plan.stats == Counter(applied=2, late=1)
    assert [(d.partition, d.offset, d.reason) for d in plan.dead] == [(0, 1, "late")]
    assert {u.partition: u.watermark for u in plan.partitions} == {
        0: float(T0 + 3 * DAY),
        1: float(T0),
    }


# ---------------------------------------------------------------------------------------------
# event time is bounded by the record's timestamp; ignored events move no clock

YEAR = 365 * DAY


@pytest.mark.parametrize(
    ("recorded", "ts", "outcome"),
    [
        (T0, T0 + 300, "applied"),  # exactly the bound
        (T0, T0 + 301, "future"),
        (T0, T0 + 300.5, "future"),
        (T0, T0 + 10 * YEAR, "future"),
        (T0 + 0.75, T0 + 300.75, "applied"),  # record times have milliseconds
        (T0, T0 - 30 * DAY, "applied"),  # no bound into the past here (lateness is per partition)
        # no record timestamp (message format v0, old brokers): only the schema's MAX_TS bounds it
        (None, T0 + 10 * YEAR, "applied"),
        (-1.0, T0 + 10 * YEAR, "applied"),
    ],
)
def test_an_event_too_far_ahead_of_its_record_is_dead_lettered_as_future(
    recorded: float | None, ts: float, outcome: str
) -> None:
    plan = plan_of([msg(0, 0, ev("x", "share", "ann", "tom", ts), at=recorded)])
    assert plan.stats == Counter({outcome: 1})
    assert plan.partitions[0].fence == 0  # either way the message is done with
    if outcome == "applied":
        assert all_scores(plan) == {"tom": 4000} and not plan.dead
        return
    assert not plan.totals and not plan.buckets and not plan.decayed and not plan.seen
    assert plan.max_ts is None and plan.landmark is None
    assert plan.partitions[0].watermark is None
    [dead] = plan.dead
    assert (dead.partition, dead.offset, dead.index, dead.reason) == (0, 0, 0, "future")
    assert orjson.loads(dead.raw) == ev("x", "share", "ann", "tom", ts).to_json()
    assert "300" in dead.detail and "record" in dead.detail


def test_a_future_event_moves_no_clock_and_what_follows_scores_normally() -> None:
    landmark = T0 - 10 * DAY
    state = StoreState(
        {0: PartitionState(fence=0, watermark=T0)}, watermark=float(T0), landmark=landmark
    )
    plan = plan_of(
        [
            msg(0, 1, ev("f", "conversion", "eve", "tom", T0 + 10 * YEAR), at=T0 + 30),
            msg(0, 2, ev("n", "share", "ann", "tom", T0 + 60), at=T0 + 60),
        ],
        state,
    )
    assert plan.stats == Counter(applied=1, future=1)
    assert [d.reason for d in plan.dead] == ["future"]
    assert all_scores(plan) == {"tom": 4000}
    assert plan.max_ts == float(T0 + 60)
    assert (plan.landmark, plan.rebase_factor) == (landmark, 1.0)
    assert plan.partitions[0].watermark == float(T0 + 60)
    assert {(k[0], k[2]) for k in plan.buckets} == {(0, "1h"), (1, "24h"), (2, "7d")}
    assert [i for _, _, i in plan.seen] == ["n"]  # the id may still arrive with a sane ts


ZERO_LIKE = ScoringRules.from_toml('version = "z"\n[weights]\nlike = 0\nshare = 4\n')


@pytest.mark.parametrize(
    ("ignored", "rules"),
    [
        (ev("s", "share", "tom", "tom", T0 + 30 * DAY), RULES),  # a self-interaction
        (ev("p", "post", "tom", "tom", T0 + 30 * DAY, post="p1"), RULES),  # zero weight, self
        (ev("z", "like", "ann", "tom", T0 + 30 * DAY), ZERO_LIKE),  # a zero-weight kind
    ],
)
def test_an_ignored_event_far_ahead_does_not_make_later_events_late(
    ignored: Event, rules: ScoringRules
) -> None:
    # its own record says it is not from the future: it is valid, and ignored
    first = msg(0, 0, ignored, at=ignored.ts)
    later = msg(0, 1, ev("n", "share", "ann", "tom", T0), at=ignored.ts)
    for batches in ([[first, later]], [[first], [later]]):
        model = run(batches, rules, dedupe_horizon_s=WEEK, rebase_after_s=120 * DAY)
        assert model.stats == Counter(applied=1, ignored=1)
        assert not model.dead
        assert model.pwm == {0: float(T0)} and model.wm == float(T0)
        assert model.totals[("all", "tom")] == 4000


def test_a_future_post_never_reaches_the_bait_detector() -> None:
    det = Detector()
    state = StoreState({0: PartitionState(bait=det)})
    far = ev("p", "post", "tom", "tom", T0 + 10 * YEAR, post="p1")
    plan = plan_of([msg(0, 0, far, at=T0)], state)
    assert plan.stats == Counter(future=1)
    assert det.newest == -math.inf and not det.groups  # its clock (idle expiry) did not jump
    assert not plan.bait_state


# ---------------------------------------------------------------------------------------------
# boards


def test_communities_add_community_boards() -> None:
    plan = plan_of([msg(0, 0, ev("1", "share", "ann", "tom", T0, ("physics", "cern")))])
    assert plan.totals == {
        ("all", "tom"): 4000,
        ("all:physics", "tom"): 4000,
        ("all:cern", "tom"): 4000,
    }
    expected_buckets = {}
    for wi, w in enumerate(RULES.windows):
        for s in ("", ":physics", ":cern"):
            expected_buckets[(wi, T0 // w.bucket_s, w.name + s, "tom")] = 4000
    assert plan.buckets == expected_buckets
    assert set(plan.decayed) == {
        ("decayed", "tom"),
        ("decayed:physics", "tom"),
        ("decayed:cern", "tom"),
    }
    assert plan.boards == {b + s for b in SCORED_BOARDS for s in ("", ":physics", ":cern")}
    # the archived periods of its day, ISO week and month (the live boards are the apply's)
    assert plan.archives == {
        (u, p.index, p.label, p.board + s, "tom"): 4000
        for u, p in enumerate(periods_of(T0))
        for s in ("", ":physics", ":cern")
    }


def test_events_in_expired_buckets_skip_that_window_only() -> None:
    wm = T0 + 2 * 3600
    state = StoreState({}, watermark=wm)
    plan = plan_of([msg(0, 0, ev("1", "share", "ann", "tom", wm - 3600 - 60))], state)
    assert plan.totals == {("all", "tom"): 4000}
    assert {(RULES.windows[wi].name, b) for wi, _, b, _ in plan.buckets} == {
        ("24h", "24h"),
        ("7d", "7d"),
    }
    assert "1h" not in plan.boards


def test_window_edge_at_planning_uses_the_stored_watermark() -> None:
    wm = T0 + 2 * 3600 + 30  # 1h cutoff bucket: floor(wm / 60) - 60 = T0 / 60 + 60
    state = StoreState({}, watermark=wm)
    plan = plan_of(
        [
            msg(0, 0, ev("in-cut", "share", "ann", "tom", T0 + 3600 + 59)),
            msg(0, 1, ev("after-cut", "share", "bob", "sue", T0 + 3600 + 60)),
        ],
        state,
    )
    one_h = {(m, idx) for wi, idx, _, m in plan.buckets if wi == 0}
    assert one_h == {("sue", T0 // 60 + 61)}


def test_a_shards_windows_are_cut_at_the_floor_of_all_shards_ws() -> None:
    # a shard's own W is an hour behind the namespace's (another shard's): its plan cuts the
    # one-hour window where one namespace would, and moves its W to the floor
    floor = T0 + 2 * 3600 + 30
    state = StoreState({}, watermark=T0 + 3600)
    batch = [
        msg(0, 0, ev("in-cut", "share", "ann", "tom", T0 + 3600 + 59)),
        msg(0, 1, ev("after-cut", "share", "bob", "sue", T0 + 3600 + 60)),
    ]
    plan = build_plan(
        batch, state, RULES, dedupe_horizon_s=WEEK, rebase_after_s=120 * DAY,
        max_future_s=MAX_FUTURE, watermark_floor=floor,
    )  # fmt: skip
    assert {(m, idx) for wi, idx, _, m in plan.buckets if wi == 0} == {("sue", T0 // 60 + 61)}
    assert plan.max_ts == floor
    assert plan_of(batch, state).max_ts == T0 + 3600 + 60  # (no floor: its own events)


def test_messages_are_planned_in_offset_order_whatever_the_arrival_order() -> None:
    m0 = msg(0, 0, ev("a", "share", "ann", "tom", T0))
    m1 = msg(0, 1, ev("b", "like", "ann", "tom", T0 + 1))
    in_order, reversed_ = plan_of([m0, m1]), plan_of([m1, m0])
    assert all_scores(reversed_) == all_scores(in_order) == {"tom": 4000 + 500}
    assert reversed_.partitions == in_order.partitions
    assert reversed_.seen == in_order.seen == [(0, float(T0), "a"), (0, float(T0 + 1), "b")]


def test_decayed_values_are_stored_against_the_landmark() -> None:
    plan = plan_of([msg(0, 0, ev("1", "share", "ann", "tom", T0 + DAY // 2))])
    assert plan.landmark == T0
    assert plan.expected_landmark is None
    assert plan.decayed[("decayed", "tom")] == pytest.approx(4000 * 2**0.5)
    assert plan.max_ts == float(T0 + DAY // 2)


def test_landmark_moves_forward_with_a_rebase_factor() -> None:
    old = T0 - 130 * DAY
    state = StoreState({}, landmark=old)
    plan = plan_of([msg(0, 0, ev("1", "share", "ann", "tom", T0 + 5))], state)
    assert plan.expected_landmark == old
    assert plan.landmark == T0
    assert plan.rebase_factor == pytest.approx(2.0**-130)
    assert plan.decayed[("decayed", "tom")] == pytest.approx(4000 * 2 ** (5 / DAY))


@pytest.mark.parametrize(
    ("current", "newest", "expected"),
    [
        (None, None, None),
        (None, T0 + 5000.5, T0),
        (T0, T0 + 120 * DAY, T0),
        (T0, T0 + 120 * DAY + 1, T0 + 120 * DAY),
        (T0, T0 - 50 * DAY, T0),  # never moves backwards
        (T0, None, T0),
    ],
)
def test_choose_landmark(current: int | None, newest: float | None, expected: int | None) -> None:
    assert choose_landmark(current, newest, 120 * DAY) == expected


# ---------------------------------------------------------------------------------------------
# points per post (top posts)


def test_points_per_post_are_what_counted_after_diminishing_returns() -> None:
    plan = plan_of(
        [
            msg(
                0,
                0,
                ev("0", "post", "tom", "tom", T0, post="p1"),  # announces p1: zero weight
                ev("1", "share", "ann", "tom", T0 + 1, post="p1"),  # 4000
                ev("2", "share", "ann", "tom", T0 + 2, post="p2"),  # k=2: 2000
                ev("3", "comment", "bob", "tom", T0 + 3, post="p1"),  # 2000
                ev("4", "like", "tom", "tom", T0 + 4, post="p1"),  # self: nothing
                ev("5", "like", "cy", "tom", T0 + 5),  # no post: on the boards only
            ),
            msg(
                1,
                0,
                ev("6", "share", "ann", "sue", T0 + 6, post="p1"),  # same post id, other member
                ev("7", "like", "ann", "sue", T0 + 7, post="p1"),  # k=2: 500
            ),
        ]
    )
    k = T0 // POSTS_PERIOD_S  # (the 30-day period of event time the points are kept under)
    assert plan.posts == {("tom", "p1", k): 6000, ("tom", "p2", k): 2000, ("sue", "p1", k): 4500}
    assert all_scores(plan) == {"tom": 9000, "sue": 4500}


def test_events_without_a_post_plan_no_post_points() -> None:
    plan = plan_of(
        [msg(0, 0, ev("1", "share", "ann", "tom", T0), ev("2", "like", "bob", "tom", T0))]
    )
    assert plan.posts == {}


def test_a_duplicate_or_redelivered_event_adds_no_post_points() -> None:
    state = StoreState(
        {0: PartitionState(fence=0, watermark=T0, seen=seen_set({"1": T0}))}, watermark=T0
    )
    plan = plan_of(
        [
            msg(0, 0, ev("9", "share", "bob", "tom", T0, post="p1")),  # behind the fence
            msg(0, 1, ev("1", "share", "ann", "tom", T0, post="p1")),  # duplicate id
        ],
        state,
    )
    assert plan.posts == {}


# ---------------------------------------------------------------------------------------------
# dead letters and what to read


def test_rejected_items_become_dead_letters_with_their_reason() -> None:
    kinds = RULES.kinds
    envelope = orjson.dumps(
        [
            {"id": "1", "ts": T0, "kind": "share", "actor": "ann", "target": "tom"},
            {"id": "2", "ts": T0, "kind": "retweet", "actor": "ann", "target": "tom"},
            {"id": "3", "ts": T0, "kind": "like", "actor": "bob", "target": "tom"},
        ]
    )
    messages = [
        Message(2, 9, decode_message(envelope, kinds)),
        Message(2, 10, decode_message(b"{oops", kinds)),
    ]
    plan = plan_of(messages)
    assert all_scores(plan) == {"tom": 5000}
    assert plan.stats == Counter(applied=2, invalid=2)
    first, second = plan.dead
    assert first.partition == 2
    assert first.offset == 9
    assert first.index == 1
    assert first.reason == "unknown_kind"
    assert orjson.loads(first.raw)["kind"] == "retweet"
    assert second == DeadLetter(2, 10, None, b"{oops", "bad_json", second.detail)
    # a batch of nothing but bad input still moves the fence, and counts it
    only_bad = plan_of([Message(3, 0, decode_message(b"[]", kinds))])
    assert only_bad.partitions == [PartitionUpdate(3, -1, 0, None, None, None)]
    assert only_bad.stats == Counter(invalid=1)


# ---------------------------------------------------------------------------------------------
# properties against the in-memory model of the Lua apply

ACTORS = ("ann", "bob", "cy", "dee")
PARTITION_TARGETS = {0: ("ann", "cy"), 1: ("bob",)}
KINDS = tuple(sorted(RULES.kinds))
SPAN = 3 * DAY
#: event times on a 3-hour grid (± 1 s), so day edges, bucket edges and the dedupe horizon are hit
GRID = 3 * 3600
HORIZON = DAY  # short, so late events and pruning happen inside a 3-day log
REBASE = DAY  # short, so the landmark moves between batches
ANY_REJECT = Rejected(0, b'{"id": 5}', "bad_type", "'id' must be a string")


def grid_ts() -> st.SearchStrategy[int]:
    return st.builds(
        lambda step, jitter: T0 + step * GRID + jitter,
        st.integers(0, SPAN // GRID),
        st.sampled_from((0, 0, 1, GRID - 1)),
    )


@st.composite
def logs(draw: st.DrawFn, max_messages: int = 14) -> list[Message]:
    """A partitioned log with envelopes, re-sent events, bad elements and redelivered messages."""
    messages: list[Message] = []
    events: dict[int, list[Event]] = {0: [], 1: []}
    next_offset = {0: 0, 1: 0}
    for _ in range(draw(st.integers(1, max_messages))):
        if messages and draw(st.integers(0, 6)) == 0:
            messages.append(draw(st.sampled_from(messages)))  # redelivery of an earlier message
            continue
        p = draw(st.sampled_from((0, 1)))
        items: list[Event | Rejected] = []
        for pos in range(draw(st.integers(1, 3))):
            what = draw(st.integers(0, 7))
            if what == 0:
                items.append(Rejected(pos, ANY_REJECT.raw, ANY_REJECT.reason, ANY_REJECT.detail))
            elif what in (1, 2) and events[p]:
                items.append(draw(st.sampled_from(events[p])))  # the same event sent again
            else:
                target = draw(st.sampled_from(PARTITION_TARGETS[p]))
                kind = draw(st.sampled_from(KINDS))
                actor = target if kind == "post" else draw(st.sampled_from(ACTORS))
                communities = draw(st.sampled_from(((), ("x",), ("x", "y"))))
                e = ev(
                    f"e{sum(map(len, events.values()))}",
                    kind,
                    actor,
                    target,
                    draw(grid_ts()),
                    communities,
                    draw(st.sampled_from((None, None, "p1", "p2"))),
                )
                events[p].append(e)
                items.append(e)
        # the record's timestamp: none (old brokers), after the whole log, or in its middle so
        # that the later events of the message are from the future
        at = draw(st.sampled_from((None, T0 + SPAN + GRID, T0 + SPAN + GRID, T0 + SPAN // 2)))
        messages.append(Message(p, next_offset[p], tuple(items), at))
        next_offset[p] += 1
    return messages


def split(messages: list[Message], cuts: list[int]) -> list[list[Message]]:
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(messages)}), len(messages)]
    return [messages[a:b] for a, b in itertools.pairwise(bounds)]


def assert_same_boards(a: Model, b: Model) -> None:
    assert a.totals == b.totals
    assert a.live_buckets() == b.live_buckets()
    assert a.board_totals() == b.board_totals()
    assert a.stats == b.stats
    assert a.explain == b.explain
    assert a.posts == b.posts
    assert sorted(a.dead, key=repr) == sorted(b.dead, key=repr)
    assert a.fences == b.fences
    assert a.pwm == b.pwm
    assert a.wm == b.wm
    assert a.seen_ids() == b.seen_ids()
    assert a.dr_counters() == b.dr_counters()
    da, db = a.decayed_points(), b.decayed_points()
    assert da.keys() == db.keys()
    for k in da:
        assert da[k] == pytest.approx(db[k], rel=1e-9)


@settings(max_examples=300, deadline=None)
@given(logs(), st.lists(st.integers(0, 14), max_size=6))
def test_batch_boundaries_do_not_change_the_boards(
    messages: list[Message], cuts: list[int]
) -> None:
    whole = run([messages], RULES, dedupe_horizon_s=HORIZON, rebase_after_s=REBASE)
    batches = split(messages, cuts)
    pieces = run(batches, RULES, dedupe_horizon_s=HORIZON, rebase_after_s=REBASE)
    assert_same_boards(whole, pieces)
    # and one message at a time, the way a naive worker would do it
    single = run([[m] for m in messages], RULES, dedupe_horizon_s=HORIZON, rebase_after_s=REBASE)
    assert_same_boards(whole, single)
    # every item of every applied message is accounted for exactly once
    first_copies = {(m.partition, m.offset): m for m in reversed(messages)}
    assert sum(whole.stats.values()) == sum(len(m.items) for m in first_copies.values())


@settings(max_examples=200, deadline=None)
@given(logs(), st.randoms(use_true_random=False))
def test_arrival_order_of_messages_in_a_batch_does_not_matter(
    messages: list[Message], rnd: random.Random
) -> None:
    shuffled = list(messages)
    rnd.shuffle(shuffled)
    a = run([messages], RULES, dedupe_horizon_s=HORIZON, rebase_after_s=REBASE)
    b = run([shuffled], RULES, dedupe_horizon_s=HORIZON, rebase_after_s=REBASE)
    assert_same_boards(a, b)
    assert a.dead == b.dead


@settings(max_examples=200, deadline=None)
@given(logs(), st.integers(0, 14))
def test_replanning_after_apply_is_an_empty_plan(messages: list[Message], start: int) -> None:
    model = run([messages], RULES, dedupe_horizon_s=HORIZON, rebase_after_s=REBASE)
    before = (Counter(model.totals), model.board_totals(), Counter(model.stats))
    for again in (messages, messages[start:]):
        plan = build_plan(
            list(again),
            model.state(again),
            RULES,
            dedupe_horizon_s=HORIZON,
            rebase_after_s=REBASE,
            max_future_s=MAX_FUTURE,
        )
        assert plan.empty
        assert not plan.totals
        assert not plan.buckets
        assert not plan.decayed
        assert not plan.stats
        assert not plan.dead
        assert not plan.seen
        assert not plan.dr
        assert not plan.posts
        model.apply(plan)
    assert (Counter(model.totals), model.board_totals(), Counter(model.stats)) == before


def test_id_reused_after_the_horizon_scores_the_same_whatever_the_batching() -> None:
    log = [
        msg(0, 0, ev("x", "share", "ann", "tom", T0)),
        msg(0, 1, ev("y", "share", "bob", "tom", T0 + 8 * DAY)),
        msg(0, 2, ev("x", "share", "cy", "tom", T0 + 8 * DAY)),
    ]
    whole = run([log], RULES, dedupe_horizon_s=WEEK, rebase_after_s=120 * DAY)
    split_ = run([log[:2], log[2:]], RULES, dedupe_horizon_s=WEEK, rebase_after_s=120 * DAY)
    assert whole.totals == split_.totals


@st.composite
def per_target_sequences(draw: st.DrawFn) -> dict[str, list[Event]]:
    """Events of each target in their own order; all ts within the dedupe horizon of each other."""
    out: dict[str, list[Event]] = {}
    n = 0
    for target in ("ann", "bob", "cy"):
        seq = []
        for _ in range(draw(st.integers(0, 6))):
            kind = draw(st.sampled_from(KINDS))
            actor = target if kind == "post" else draw(st.sampled_from(ACTORS))
            ts = T0 + draw(st.integers(0, 2 * DAY))
            post = draw(st.sampled_from((None, "p1", "p2")))
            seq.append(ev(f"i{n}", kind, actor, target, ts, post=post))
            n += 1
        out[target] = seq
    return out


def interleave(seqs: dict[str, list[Event]], order: list[str]) -> list[Event]:
    """Merge per-target sequences following ``order`` (a permutation of target slots)."""
    it = {t: iter(s) for t, s in seqs.items()}
    return [next(it[t]) for t in order]


def weight_bound(events: list[Event]) -> Counter[str]:
    bound: Counter[str] = Counter()
    for e in events:
        if e.actor != e.target:
            bound[e.target] += RULES.weights_mp[e.kind]
    return bound


@settings(max_examples=200, deadline=None)
@given(per_target_sequences(), st.data())
def test_interleaving_targets_within_a_partition_does_not_change_totals(
    seqs: dict[str, list[Event]], data: st.DataObject
) -> None:
    slots = [t for t, s in seqs.items() for _ in s]
    a_order = data.draw(st.permutations(slots))
    b_order = data.draw(st.permutations(slots))
    a_events, b_events = interleave(seqs, a_order), interleave(seqs, b_order)
    a = plan_of([msg(0, i, e) for i, e in enumerate(a_events)])
    b = plan_of([msg(0, 0, *b_events)] if b_events else [])
    assert dict(a.totals) == dict(b.totals)
    assert dict(a.buckets) == dict(b.buckets)
    assert a.stats == b.stats
    assert dict(a.explain) == dict(b.explain)
    assert a.posts == b.posts
    assert a.dr == b.dr
    bound = weight_bound(a_events)
    for (board, member), v in a.totals.items():
        assert 0 < v <= bound[member], (board, member)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(ACTORS),
            st.sampled_from(("ann", "bob", "cy")),
            st.sampled_from(KINDS),
            st.integers(0, DAY - 1),
        ),
        max_size=12,
        unique_by=lambda x: (x[0], x[1]),
    ),
    st.randoms(use_true_random=False),
)
def test_distinct_pairs_score_full_weight_in_any_order(
    rows: list[tuple[str, str, str, int]], rnd: random.Random
) -> None:
    events = [
        ev(f"u{i}", kind, target if kind == "post" else actor, target, T0 + t)
        for i, (actor, target, kind, t) in enumerate(rows)
    ]
    shuffled = list(events)
    rnd.shuffle(shuffled)
    a = plan_of([msg(0, 0, *events)] if events else [])
    b = plan_of([msg(0, 0, *shuffled)] if shuffled else [])
    assert dict(a.totals) == dict(b.totals)
    # one event per (actor, target, day): no diminishing returns, exactly weight x count
    expected = {("all", m): v for m, v in weight_bound(events).items() if v}
    assert dict(a.totals) == expected


# ---------------------------------------------------------------------------------------------
# the watermark and the decay landmark move only with applied events


def test_self_interactions_and_zero_weight_events_do_not_move_the_watermark() -> None:
    plan = plan_of(
        [
            msg(
                0,
                0,
                ev("a", "share", "ann", "tom", T0),
                ev("b", "like", "tom", "tom", T0 + 5 * DAY),  # self
                ev("c", "post", "tom", "tom", T0 + 6 * DAY),  # zero weight
            )
        ]
    )
    assert plan.max_ts == float(T0)
    # nor the partition's newest time: a later event of T0 - 6 days is not late
    assert plan.partitions[0].watermark == float(T0)


def test_a_duplicate_with_a_future_time_cannot_move_the_landmark() -> None:
    state = StoreState(
        {0: PartitionState(fence=0, watermark=T0, seen=seen_set({"x": T0}))},
        watermark=T0,
        landmark=T0,
    )
    plan = plan_of([msg(0, 1, ev("x", "share", "ann", "tom", T0 + 400 * DAY))], state)
    assert plan.stats == Counter(duplicate=1)
    assert plan.landmark == T0 and plan.rebase_factor == 1.0


def test_the_landmark_moves_mid_batch_and_earlier_values_are_rescaled() -> None:
    messages = [
        msg(0, 0, ev("a", "share", "ann", "tom", T0)),
        msg(0, 1, ev("b", "share", "bob", "tom", T0 + 10 * DAY)),
    ]
    plan = plan_of(messages, rebase=5 * DAY)
    assert plan.landmark == T0 + 10 * DAY
    expected = 4000 * 2.0**-10 + 4000  # both relative to the new landmark, in milli-points
    assert plan.decayed[("decayed", "tom")] == pytest.approx(expected, rel=1e-12)


def test_a_short_half_life_never_overflows() -> None:
    rules = ScoringRules.from_toml(
        """version = "t"\n[weights]\nshare = 4\n[decay]\nhalf_life_seconds = 60\n"""
    )
    messages = [msg(0, i, ev(str(i), "share", f"u{i}", "tom", T0 + i * 30 * DAY)) for i in range(5)]
    plan = plan_of(messages, rules=rules)
    assert plan.decayed[("decayed", "tom")] == pytest.approx(4000.0)  # older ones decayed to ~0
