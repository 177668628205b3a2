"""Event streams the comment-bait tests feed the detector: hand-made bait campaigns and genuine
comments, and generated streams (campaign-like, organic-like and stray events)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from hypothesis import strategies as st

from leaderboard.bait.detector import BaitParams, Decision, Detector

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
_GENUINE = (
    "The {n} GeV bump shows up in both the diphoton and the four lepton channels, impressive",
    "I watched the seminar live and the combination at {n} sigma was the highlight for me",
    "My physics teacher explained the mechanism in class today, lesson {n} of the year",
    "Does anyone know whether the {n} inverse femtobarns include the data from this spring?",
    "Congratulations to the thousands of people who built the detectors over {n} years",
    "Spin and parity must be measured before we call it the Standard Model boson ({n})",
)


def genuine(i: int) -> str:
    """A distinct, substantive comment (long, no links, no self-promotion)."""
    return _GENUINE[i % len(_GENUINE)].format(n=i)


def feed(d: Detector, events: Iterable[Event]) -> list[int]:
    return [d.observe(*e) for e in events]


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
            st.sampled_from(("campaign", "organic", "silent", "gap", "gap", "stray", "stray"))
        )
        target = draw(st.sampled_from(TARGETS))
        post = draw(st.sampled_from(POSTS[target]))
        start = clock + draw(st.sampled_from((-1800.0, -300.0, 0.0, 60.0, 900.0)))
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
