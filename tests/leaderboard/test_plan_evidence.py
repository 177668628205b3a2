"""Bait evidence in the planner (leaderboard/plan.py): a record from another partition is taken in
log order like an event (de-duplicated by id, dead-lettered when bad, future or late), flags its
accounts in the partition's detector and scores nothing; the evidence of throttles a batch starts
travels in the plan, the same whatever the batch boundaries or redeliveries."""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from leaderboard.bait import Detector, Evidence
from leaderboard.events import BAD_EVIDENCE, FUTURE, Event, decode_message
from leaderboard.plan import SEP, Message, PartitionState, Plan, StoreState, build_plan
from leaderboard.scoring import ScoringRules
from tests.leaderboard._model import seen_set

RULES = ScoringRules.load()
KINDS = RULES.kinds
DAY = 86400
T0 = 1_700_000_000
BOTS = tuple(f"bot{i}" for i in range(30))
#: a throttle on another partition's post, naming the farm
RECORD = Evidence.of("p:tea", float(T0), "comments", BOTS)


def plan_of(messages: Sequence[Message], state: StoreState) -> Plan:
    return build_plan(
        list(messages),
        state,
        RULES,
        dedupe_horizon_s=7 * DAY,
        rebase_after_s=120 * DAY,
        max_future_s=300.0,
    )


def with_detector(p: int = 1, **fields: object) -> tuple[Detector, StoreState]:
    det = Detector()
    return det, StoreState({p: PartitionState(bait=det, **fields)})  # type: ignore[arg-type]


def evidence(p: int, offset: int, record: Evidence = RECORD, at: float | None = None) -> Message:
    """The record as the worker produced it: alone in its message, decoded from the wire."""
    items = decode_message(orjson.dumps(record.to_json()), KINDS)
    return Message(p, offset, items, float(T0 + 3600) if at is None else at)


def farm(p: int, first: int, target: str, post: str, t: float) -> list[Message]:
    """A post, then 30 comments without text from the farm's accounts in 150 s (from offset
    ``first``): only the accounts' history can make this bait."""
    events = [Event(f"{post}-post", t, "post", target, target, post=post)]
    events += [
        Event(f"{post}-c{i}", t + 10 + 5 * i, "comment", bot, target, post=post)
        for i, bot in enumerate(BOTS)
    ]
    return [Message(p, first + i, (e,), e.ts + 1) for i, e in enumerate(events)]


def flagged_throttles(plan: Plan) -> list[str]:
    return [
        d.group for d in plan.alerts if d.state == "throttled" and "flagged_commenters" in d.reasons
    ]


def test_evidence_flags_its_accounts_from_its_place_in_the_log() -> None:
    t = T0 + 600
    det, state = with_detector()
    plan = plan_of([evidence(1, 0), *farm(1, 1, "quiz", "q1", t)], state)
    assert plan.evidence_received == 1
    assert all(det.commenters[b].flagged > 0 for b in BOTS)
    assert flagged_throttles(plan) == ["p:q1"]
    (decision,) = [d for d in plan.alerts if d.group == "p:q1"]
    assert decision.signals["flagged_commenters"] > 0.5
    # the same record after the comments: they were not flagged when they came
    det, state = with_detector()
    late = plan_of([*farm(1, 0, "quiz", "q1", t), evidence(1, 31)], state)
    assert late.evidence_received == 1 and flagged_throttles(late) == []
    assert all(det.commenters[b].flagged > 0 for b in BOTS)  # (from then on)


def test_evidence_scores_nothing_and_moves_no_watermark() -> None:
    det, state = with_detector(1, fence=4, watermark=float(T0 - 60))
    plan = plan_of([evidence(1, 5, at=float(T0 + 10))], state)
    (update,) = plan.partitions
    assert (update.fence, update.watermark) == (5, float(T0 - 60))  # the fence moves, W not
    assert plan.max_ts is None and not plan.totals and not plan.decayed and not plan.stats
    assert plan.seen == [(1, float(T0), SEP + RECORD.id)]
    # the detector's own clock moves, and its state travels with the plan
    assert det.newest == T0
    assert {key for _, table, key, _ in plan.bait_state if table == "c"} == set(BOTS)


def test_evidence_is_de_duplicated_by_id_within_the_horizon() -> None:
    det, state = with_detector()
    plan = plan_of([evidence(1, 0), evidence(1, 1)], state)
    assert (plan.evidence_received, plan.stats["duplicate"]) == (1, 1)
    # applied by an earlier batch (a worker that died after producing, before applying, and
    # produced it again): a duplicate too
    det, state = with_detector(1, fence=0, seen=seen_set({SEP + RECORD.id: float(T0)}))
    again = plan_of([evidence(1, 1)], state)
    assert (again.evidence_received, again.stats["duplicate"]) == (0, 1)
    assert not det.commenters


def test_an_event_and_evidence_with_the_same_id_never_shadow_each_other() -> None:
    _, state = with_detector()
    twin = Event(RECORD.id, float(T0), "like", "fan", "quiz")
    plan = plan_of([Message(1, 0, (twin,), float(T0)), evidence(1, 1)], state)
    assert plan.stats == {"applied": 1} and plan.evidence_received == 1
    _, state = with_detector(1, fence=0, seen=seen_set({RECORD.id: float(T0)}))
    assert plan_of([evidence(1, 1)], state).evidence_received == 1


def test_bad_future_and_late_evidence_is_dead_lettered_and_flags_nobody() -> None:
    det, state = with_detector(1, watermark=float(T0 + 8 * DAY))
    bad = RECORD.to_json() | {"actors": []}
    plan = plan_of(
        [
            Message(1, 0, decode_message(orjson.dumps(bad), KINDS), float(T0)),
            evidence(1, 1, at=float(T0 - 301)),  # its record time is 301 s before its ts
            evidence(1, 2),  # 8 days behind the partition's newest event
            Message(1, 3, decode_message(orjson.dumps([RECORD.to_json()]), KINDS), float(T0)),
        ],
        state,
    )
    assert [(d.offset, d.index, d.reason) for d in plan.dead] == [
        (0, None, BAD_EVIDENCE),
        (1, None, FUTURE),
        (2, None, "late"),
        (3, 0, BAD_EVIDENCE),
    ]
    assert orjson.loads(plan.dead[1].raw) == RECORD.to_json()
    assert plan.stats == {"invalid": 2, FUTURE: 1, "late": 1}
    assert plan.evidence_received == 0 and not det.commenters and not plan.seen


def test_with_the_throttle_off_evidence_is_counted_as_ignored() -> None:
    state = StoreState({1: PartitionState(bait=None)})
    plan = plan_of([evidence(1, 0)], state)
    assert plan.stats == {"ignored": 1} and plan.evidence_received == 0
    assert plan.partitions[0].fence == 0 and not plan.evidence


def throttle_evidence(plan: Plan) -> list[tuple[int, Evidence]]:
    return [(p, e) for p, e in plan.evidence if e.kind == "comments"]


def test_a_throttle_puts_its_evidence_in_the_plan_the_same_on_every_replan() -> None:
    # partition 2 learns of the farm from partition 0, then the farm floods one of its posts:
    # that throttle's evidence names the farm again, for the partitions after it
    log = [evidence(2, 0), *farm(2, 1, "quiz", "q2", T0 + 600)]
    det, state = with_detector(2)
    plan = plan_of(log, state)
    (sent,) = throttle_evidence(plan)
    p, record = sent
    assert p == 2 and record.source == "p:q2"
    assert record.actors and set(record.actors) <= set(BOTS)
    # what the receivers decode is this very record
    assert decode_message(orjson.dumps(record.to_json()), KINDS) == [record]
    # a redelivery re-plans from the same state: the same record, the same id (de-duplicated)
    _, fresh = with_detector(2)
    assert throttle_evidence(plan_of(log, fresh)) == [sent]
    # batch boundaries do not matter: one message a batch, the detector carried along
    det, state = with_detector(2)
    pieces: list[tuple[int, Evidence]] = []
    for m in log:
        pieces += throttle_evidence(plan_of([m], state))
    assert pieces == [sent]
    # and the detector's decisions are taken with the evidence: nothing is left behind
    assert det.take_evidence() == []
