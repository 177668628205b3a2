"""The pure replay of the evaluation (baiteval/replay.py): the worker's arithmetic, partitions and
evidence, with a scripted detector at the replay's seam, and the real detector end to end."""

from __future__ import annotations

from typing import Any

import pytest

from baiteval.labels import EvalStream
from baiteval.metrics import report
from baiteval.replay import replay
from broker.producer import partition_for
from leaderboard.bait import BaitParams, Decision, Detector, Evidence
from leaderboard.scoring import ScoringRules, contribution

DAY0 = 1341273600.0  # a UTC midnight
ALICE, BOB = "alice", "bob"  # on partitions 1 and 2 of 4
assert partition_for(ALICE.encode(), 4) != partition_for(BOB.encode(), 4)


class Scripted:
    """A detector that answers the multiplier written in a comment's text ("x250"), and on the
    first demotion of a post decides a throttle and names its commenter as evidence."""

    def __init__(self, params: BaitParams) -> None:
        self.observed: list[tuple[str, str]] = []  # (kind, actor) in order
        self.flags: list[tuple[int, Evidence]] = []  # (events observed before it, record)
        self._decisions: list[Decision] = []
        self._evidence: list[Evidence] = []
        self._mult: dict[str, int] = {}

    def observe(
        self, kind: str, ts: float, actor: str, target: str, post: str | None, text: str | None
    ) -> int:
        self.observed.append((kind, actor))
        if text and text.startswith("x"):
            mult = int(text[1:])
            if post is not None and post not in self._mult:
                self._decisions.append(
                    Decision(f"p:{post}", post, target, "throttled", ts, mult / 1000, ("test",), 1)
                )
                self._evidence.append(Evidence(f"ev-{post}", ts, "1", "comment", (actor,)))
            if post is not None:
                self._mult[post] = mult
        return self._mult.get(post or "", 1000) if kind != "post" else 1000

    def take_decisions(self) -> list[Decision]:
        out, self._decisions = self._decisions, []
        return out

    def take_evidence(self) -> list[Evidence]:
        out, self._evidence = self._evidence, []
        return out

    def take_changes(self) -> list[tuple[str, str, bytes | None]]:
        return []

    def flag(self, e: Evidence) -> None:
        self.flags.append((len(self.observed), e))


def ev(n: int, ts: float, kind: str, actor: str, target: str, **more: Any) -> dict[str, Any]:
    return {"id": f"e{n}", "ts": ts, "kind": kind, "actor": actor, "target": target, **more}


def test_withheld_points_are_the_workers_integer_arithmetic() -> None:
    made: list[Scripted] = []

    def detector(params: BaitParams) -> Scripted:
        made.append(Scripted(params))
        return made[-1]

    events = [
        ev(0, DAY0 + 10, "post", ALICE, ALICE, post="p1", text="hello"),
        ev(1, DAY0 + 20, "comment", "u1", ALICE, post="p1", text="first"),  # k=1, full
        ev(2, DAY0 + 30, "comment", "u1", ALICE, post="p1", text="x250"),  # k=2, throttled
        ev(3, DAY0 + 40, "like", "u2", ALICE, post="p1"),  # a like on the throttled post
        ev(4, DAY0 + 50, "reply", ALICE, ALICE, post="p1", text="thanks"),  # self: not scored
        ev(5, DAY0 + 86400 + 5, "comment", "u1", ALICE, post="p1", text="x100"),  # new day: k=1
        ev(6, DAY0 + 86400 + 6, "share", "u3", BOB),  # another target, no post: not observed
    ]
    run = replay(events, detector=detector)
    full = [2000, contribution(2000, 2), 1000, 2000, 4000]
    kept = [2000, contribution(2000, 2) * 250 // 1000, 1000 * 250 // 1000, 2000 * 100 // 1000, 4000]
    assert run.events == 7
    assert run.points_mp == sum(kept)
    assert run.withheld_mp == sum(full) - sum(kept)
    [t] = run.throttles  # one decision, holding every point withheld on its post
    assert (t.group, t.post, t.target, t.detected_at) == ("p:p1", "p1", ALICE, DAY0 + 30)
    assert t.withheld_mp == run.withheld_mp and t.multiplier == 0.25
    # the worker's rule: anything on a post goes to the detector, other engagement only on a
    # target it keeps a group for (the scripted one keeps none)
    observed = [x for d in made for x in d.observed]
    assert ("share", "u3") not in observed and ("like", "u2") in observed


@pytest.mark.parametrize("lag", [0, 2])
def test_evidence_reaches_the_other_partitions_lag_events_later(lag: int) -> None:
    made: list[Scripted] = []

    def detector(params: BaitParams) -> Scripted:
        made.append(Scripted(params))
        return made[-1]

    events = [ev(0, DAY0 + 1, "post", ALICE, ALICE, post="p1", text="hi")]
    events.append(ev(1, DAY0 + 2, "comment", "farm1", ALICE, post="p1", text="x250"))
    events += [
        ev(2 + j, DAY0 + 3 + j, "comment", f"v{j}", BOB, post="q", text="ok") for j in range(4)
    ]
    run = replay(events, evidence_lag=lag, detector=detector)
    assert run.evidence == 1
    source = made[partition_for(ALICE.encode(), 4)]
    bob = made[partition_for(BOB.encode(), 4)]
    assert source.flags == []  # never back to its own partition
    for d in made:
        if d is not source:
            [(_, record)] = d.flags
            assert record.actors == ("farm1",)
    # bob's detector takes it before the (lag+1)-th event after the one that produced it
    [(seen, _)] = bob.flags
    assert seen == lag


def test_the_real_detector_keeps_every_point_accounted_for(s1: EvalStream) -> None:
    run = replay(s1.events)
    total = sum(lb.full_mp for lb in s1.posts.values()) + s1.background_full_mp
    assert run.points_mp + run.withheld_mp == total
    assert sum(t.withheld_mp for t in run.throttles) <= run.withheld_mp
    assert [d.at for d in run.decisions] == sorted(d.at for d in run.decisions)
    # the report reads the same records the pipeline reads back from Redis
    assert report(s1, run.throttles).shapes.keys() == set(s1.shapes)


def test_one_partition_replay_is_the_detector_fed_event_by_event(s1: EvalStream) -> None:
    # every synthetic event has a post, so the worker's rule feeds the detector all of them
    # (enough of them for claw-backs: the farms' posts after their first throttles)
    events = [e for e in s1.events if "post" in e][:8000]
    run = replay(events, partitions=1)
    det = Detector(BaitParams())
    withheld = 0
    k: dict[tuple[int, str, str], int] = {}
    weights = ScoringRules.load().weights_mp
    clawed = 0
    for e in events:
        mult = det.observe(e["kind"], e["ts"], e["actor"], e["target"], e["post"], e.get("text"))
        # (what a throttle takes back of interactions it did not see throttled: as the planner)
        clawed += sum(c.withheld_mp for c in det.take_clawbacks())
        if e["actor"] == e["target"] or weights[e["kind"]] == 0:
            continue
        key = (int(e["ts"] // 86400), e["actor"], e["target"])
        k[key] = k.get(key, 0) + 1
        points = contribution(weights[e["kind"]], k[key])
        withheld += points - points * mult // 1000
        if mult == 1000:
            det.counted(e["kind"], points, ())
    assert clawed > 0  # (the farms' flagged accounts came early on later posts)
    assert run.withheld_mp == withheld + clawed
    # (the replay lists decisions by time, stably: a retroactive one found later can be dated
    # before a decision taken in between)
    in_time = sorted(det.take_decisions(), key=lambda d: d.at)
    assert [d.group for d in run.decisions] == [d.group for d in in_time]
