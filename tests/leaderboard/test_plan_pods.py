"""Engagement pods in the planner: a pod's shares and likes are demoted (counted, a share of their
points withheld) under the post's ``e:<post>`` group, its comments and clicks untouched."""

from __future__ import annotations

from leaderboard.bait import Detector
from leaderboard.events import Event
from leaderboard.plan import Message, PartitionState, StoreState, build_plan
from leaderboard.scoring import ScoringRules

RULES = ScoringRules.load()
T0 = 1_700_000_000.0
POD = tuple(f"pod{i}" for i in range(16))


def pod_events() -> list[Event]:
    """Six posts by six pod members; the other members share and like each within minutes, and
    one outsider clicks and comments on the last one."""
    out: list[Event] = []
    for k in range(6):
        author, post, t0 = POD[k], f"pp{k}", T0 + k * 7200
        out.append(Event(f"{post}-p", t0, "post", author, author, post=post))
        for i, actor in enumerate(a for a in POD if a != author):
            for j, kind in enumerate(("share", "like")):
                out.append(
                    Event(f"{post}-{i}-{j}", t0 + 30 + 20 * i + j, kind, actor, author, post)
                )
    last = out[-1]
    out.append(Event("click", last.ts + 1, "click", "outsider", last.target, last.post))
    out.append(Event("reply", last.ts + 2, "comment", "outsider", last.target, last.post, "nice"))
    return out


def test_a_pods_shares_and_likes_are_withheld_under_its_pod_group() -> None:
    det = Detector()
    state = StoreState({0: PartitionState(bait=det)})
    events = pod_events()
    messages = [Message(0, i, (e,), e.ts + 1) for i, e in enumerate(events)]
    plan = build_plan(
        messages,
        state,
        RULES,
        dedupe_horizon_s=7 * 86400,
        rebase_after_s=120 * 86400,
        max_future_s=300.0,
    )
    pods = [d for d in plan.alerts if d.state == "throttled" and d.group.startswith("e:")]
    assert pods and all("lockstep" in d.reasons or "flagged_commenters" in d.reasons for d in pods)
    last = events[-1].target
    # withheld only under pod groups, and on shares and likes only
    assert plan.withheld and all(g.startswith("e:") for _, g, _ in plan.withheld)
    assert sum(v for (m, g, _), v in plan.withheld.items() if (m, g) == (last, "e:pp5")) > 0
    withheld_kinds = {k for (_, k), v in plan.explain.items() if k.startswith("wh:") and v}
    assert withheld_kinds == {"wh:share", "wh:like"}
    # counted, never deleted: every share is in the explain counts
    assert plan.explain[(last, "n:share")] == len(POD) - 1
    # the outsider's click and comment on the pod's post count in full
    assert plan.explain[(last, "wh:click")] == 0 and plan.explain[(last, "wh:comment")] == 0
    assert plan.explain[(last, "mp:comment")] > 0
