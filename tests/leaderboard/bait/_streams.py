"""Event streams the comment-bait tests feed the detector: hand-made bait campaigns and genuine
comments, and generated streams (campaign-like, organic-like and stray events)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from hypothesis import strategies as st

from leaderboard.bait.detector import BaitParams, Decision, Detector
from leaderboard.bait.evidence import Evidence
from leaderboard.bait.state import FULL

T0 = 1_341_100_800.0  # 2012-07-01T00:00:00Z
HOUR = 3600.0
DAY = 86400.0
DEFAULT = BaitParams()

#: (kind, ts, actor, target, post, text): the arguments of :meth:`Detector.observe`
Event = tuple[str, float, str, str, str | None, str | None]

BAIT_POST = "Tea or coffee? Comment below!"
#: what a bait post's comment section looks like: one-word answers, self-promotion, duplicates
LOW_VALUE = (
    "check out my channel",
    "yes",
    "Yes!",
    "tea",
    "coffee",
    "YES",
    "amen",
    "check out my channel",
    "☕",
    "Coffee!!",
)
_OPENERS = (
    "The diphoton bump looks real",
    "Watched the seminar live",
    "My teacher explained the mechanism",
    "Were the spring data included",
    "Congratulations to the detector builders",
    "Spin and parity come next",
    "The statistics section deserves attention",
    "We argued about trigger rates",
)
_CLAUSES = (
    "which surprised our reading group",
    "although systematics still worry my supervisor",
    "and the appendix plots make it clearer",
    "so I reread the original proposal",
    "but press coverage missed the point",
    "even if the cross section looks high",
    "because the background model was blind",
    "while my cousin asked what bosons are",
    "and frankly the photos are stunning",
)
_TAILS = (
    "thanks for posting",
    "curious what others think",
    "see you at the colloquium",
    "great times for physics",
    "more soon I hope",
    "my students loved it",
    "what a summer",
)


def genuine(i: int) -> str:
    """A distinct, substantive comment (long, no links, no self-promotion): different people
    write different sentences, so no two are near-duplicates by their words."""
    a, b = i % len(_OPENERS), (i // len(_OPENERS)) % len(_CLAUSES)
    c = (i // (len(_OPENERS) * len(_CLAUSES)) + i) % len(_TAILS)
    return f"{_OPENERS[a]}, {_CLAUSES[b]}; {_TAILS[c]} ({i})"


def points_of(e: Event) -> int:
    """The milli-points the planner would tell :meth:`Detector.counted` an event scored in full
    (a function of the event, so batch boundaries cannot change it)."""
    return 1000 + int(e[1]) % 997


def feed(d: Detector, events: Iterable[Event]) -> list[int]:
    """Each event's multiplier; an ``evidence`` row (kind, ts, actors joined by ",", "-",
    source group, evidence kind) is handed to :meth:`Detector.flag` instead (multiplier 1000).
    Like the planner, it tells the detector what each event counted in full (its clawbacks stay
    in the detector for :meth:`Detector.take_clawbacks`)."""
    out = []
    for e in events:
        if e[0] == "evidence":
            _, ts, actors, _, source, kind = e
            assert source is not None and kind is not None
            d.flag(Evidence.of(source, ts, kind, tuple(actors.split(","))))
            out.append(FULL)
        else:
            mult = d.observe(*e)
            if mult == FULL and e[2] != e[3]:
                d.counted(e[0], points_of(e), ())
            out.append(mult)
    return out


def bait_campaign(
    post: str,
    author: str,
    start: float,
    n: int = 40,
    *,
    step: float = 5.0,
    actors: Sequence[str] = (),
    texts: bool = True,
    post_text: str | None = BAIT_POST,
) -> list[Event]:
    """A post, then ``n`` cheap comments ``step`` seconds apart (by ``actors`` in turn, or by
    distinct accounts)."""
    out: list[Event] = [("post", start, author, author, post, post_text)]
    for i in range(n):
        actor = actors[i % len(actors)] if actors else f"{post}-fan{i}"
        text = LOW_VALUE[i % len(LOW_VALUE)] if texts else None
        out.append(("comment", start + 60 + i * step, actor, author, post, text))
    return out


def throttles(decisions: Iterable[Decision]) -> list[Decision]:
    return [x for x in decisions if x.state == "throttled"]


FARM = tuple(f"farm{i}" for i in range(20))


TARGETS = ("alice", "bob", "carol")
POSTS: dict[str, tuple[str | None, ...]] = {
    "alice": ("a1", "a2", None),
    "bob": ("b1", None),
    "carol": ("c1", "c2"),
}
CROWD = tuple(f"fan{i}" for i in range(30))
KINDS = ("post", "comment", "reply", "share", "click", "like", "mention", "follow", "conversion")
SMALL = BaitParams(min_comments=8, max_groups=3, max_authors=2, max_commenters=6, sample=8)


@st.composite
def streams(draw: st.DrawFn) -> list[Event]:
    """Campaign-like, organic-like and stray events on a few posts and targets, segments
    overlapping in time, some events a little late."""
    events: list[Event] = []
    clock = T0
    for _ in range(draw(st.integers(1, 8))):
        what = draw(
            st.sampled_from(
                ("campaign", "organic", "silent", "gap", "gap", "stray", "stray", "evidence", "pod")
            )
        )
        target = draw(st.sampled_from(TARGETS))
        post = draw(st.sampled_from(POSTS[target]))
        start = clock + draw(st.sampled_from((-1800.0, -300.0, 0.0, 60.0, 900.0)))
        if what == "evidence":
            # another partition's throttle or post sample naming some of the farm or the crowd
            who = draw(st.sampled_from((FARM, CROWD)))[: draw(st.integers(1, 12))]
            kind = draw(
                st.sampled_from(("comments", "engagement", "ring", "pod", "commenters", "engagers"))
            )
            source = f"p:remote{draw(st.integers(0, 3))}"
            events.append(("evidence", start, ",".join(who), "-", source, kind))
            continue
        if what == "pod":
            # the farm shares and likes a post within minutes (an engagement pod)
            for i, actor in enumerate(FARM[: draw(st.integers(3, 12))]):
                kind = draw(st.sampled_from(("share", "like")))
                events.append((kind, start + 30 * i, actor, target, post, None))
            clock = max(clock, max(e[1] for e in events))
            continue
        if what == "gap":
            clock += draw(st.sampled_from((HOUR, 6 * HOUR, 2 * DAY + 1, 3 * DAY, 8 * DAY)))
            continue
        if what == "stray":
            kind = draw(st.sampled_from(KINDS))
            actor = target if draw(st.booleans()) else draw(st.sampled_from(CROWD + FARM[:6]))
            text = draw(st.sampled_from((None, BAIT_POST, "yes", genuine(len(events)))))
            events.append((kind, start, actor, target, post, text))
        else:
            n = draw(st.integers(4, 30))
            step = draw(st.sampled_from((1.0, 5.0, 30.0, 120.0, 1800.0)))
            if what == "campaign" and post is not None and draw(st.booleans()):
                events.append(("post", start, target, target, post, BAIT_POST))
            farm = FARM[: draw(st.integers(2, 6))]
            silent = draw(st.sampled_from((farm, CROWD)))  # a textless flood or textless fans
            for i in range(n):
                ts = start + 60 + i * step
                if what == "organic":
                    actor, text = CROWD[(len(events) + i) % len(CROWD)], genuine(len(events))
                    if i % 2:
                        events.append(("share", ts, f"sharer{i}", target, post, None))
                elif what == "campaign":
                    actor, text = farm[i % len(farm)], LOW_VALUE[i % len(LOW_VALUE)]
                else:
                    actor, text = silent[i % len(silent)], None
                events.append(
                    (draw(st.sampled_from(("comment", "reply"))), ts, actor, target, post, text)
                )
        clock = max(clock, max(e[1] for e in events))
    events.sort(key=lambda e: e[1])
    # a few events arrive a little late (the list order is the arrival order)
    for i in draw(st.sets(st.integers(0, max(len(events) - 1, 0)), max_size=5)):
        if i < len(events):
            kind, ts, actor, target, post, text = events[i]
            events[i] = (
                kind,
                ts - draw(st.sampled_from((1.0, 60.0, 600.0))),
                actor,
                target,
                post,
                text,
            )
    return events
