"""The comment-bait detector (leaderboard/bait.py): the throttles a user would notice, bait
phrasing, and properties of its persisted state (batch boundaries and restarts change nothing;
the state stays bounded)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leaderboard.bait import (
    COMMENT_KINDS,
    ENGAGEMENT_KINDS,
    FULL,
    SWEEP_EVERY_S,
    BaitParams,
    Decision,
    Detector,
    comment_features,
    group_key,
    phrasing,
)

T0 = 1_341_100_800.0  # 2012-07-01T00:00:00Z
HOUR = 3600.0
DAY = 86400.0
DEFAULT = BaitParams()
LN2_PER_HOUR = math.log(2.0) * HOUR

#: (kind, ts, actor, target, post, text): the arguments of :meth:`Detector.observe`
Event = tuple[str, float, str, str, str | None, str | None]
Tables = dict[str, dict[str, str]]

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


def apply(tables: Tables, changes: Iterable[tuple[str, str, bytes | None]]) -> None:
    """What the store does with :meth:`Detector.take_changes` (HSET, or HDEL for None)."""
    for table, key, value in changes:
        if value is None:
            tables.setdefault(table, {}).pop(key, None)
        else:
            tables.setdefault(table, {})[key] = value.decode()


# ---------------------------------------------------------------------------------------------
# a bait campaign


def test_a_bait_burst_is_throttled_early_with_reasons_in_event_time() -> None:
    d = Detector()
    events = bait_campaign("p1", "alice", T0, n=200, step=5.0)
    mults = feed(d, events)[1:]
    [decision] = d.take_decisions()

    tipped = next(i for i, m in enumerate(mults) if m < FULL)
    assert tipped < 0.2 * 200
    assert mults[:tipped] == [FULL] * tipped
    assert all(m < FULL for m in mults[tipped:])
    # while a throttle lasts its multiplier can only fall
    assert all(a >= b for a, b in itertools.pairwise(mults[tipped:]))

    tip_ts = events[1 + tipped][1]
    assert decision.state == "throttled"
    assert (decision.group, decision.post, decision.target) == ("p:p1", "p1", "alice")
    assert decision.at == tip_ts
    assert decision.multiplier == mults[tipped] / FULL
    assert decision.comments == tipped  # the comments before the one that tipped it
    assert "low_value" in decision.reasons
    assert "bait_phrasing:comment+vote" in decision.reasons
    alert = decision.to_json()
    assert alert["detected_at"] == tip_ts
    assert alert["state"] == "throttled"
    assert alert["multiplier"] < 1
    assert "low_value" in alert["reasons"]
    assert any(r.startswith("bait_phrasing:") for r in alert["reasons"])


# ---------------------------------------------------------------------------------------------
# phrasing: Facebook's 2017 engagement-bait categories


@pytest.mark.parametrize(
    ("category", "text"),
    [
        # Facebook's own examples (newsroom, December 2017) first, then everyday variants
        ("vote", "Vote with reactions! 😍 for the panda, 😮 for the koala"),
        ("vote", "Tea or coffee? Comment below!"),
        ("vote", "Pizza or burgers? Vote in the comments 👇"),
        ("react", "LIKE if you're an Aries!"),
        ("react", "React with ❤️ if you love Mondays, 😡 if you hate them"),
        ("react", "Hit like if you love dogs 🐶"),
        ("share", "SHARE with 10 friends to win a ride on our plane!"),
        ("share", "Share this if you agree!"),
        ("share", "Share with all your friends before it's too late"),
        ("tag", "TAG a friend you want to go to Cabo with!"),
        ("tag", "Tag someone who needs to hear this today"),
        ("tag", "Tag 3 friends who would eat all of this"),
        ("comment", "COMMENT 'YES' if you love rock music!"),
        ("comment", "Type AMEN if you believe!"),
        ("comment", "Who else remembers these? 🙋"),
    ],
)
def test_phrasing_recognises_each_bait_category(category: str, text: str) -> None:
    assert category in phrasing(text)


@pytest.mark.parametrize(
    "text",
    [
        "What do you think about the new policy?",
        "Thanks everyone for coming",
        "CERN announces the observation of a new particle consistent with the Higgs boson",
        "Breaking: earthquake of magnitude 6.1 hits the coast, no tsunami warning issued.",
        "Parliament will vote on the bill next Tuesday.",
        "Apple or Samsung? Analysts compare the new flagships in our review.",
        "Reply to the survey by Friday, please.",
        "Who else is going to the conference next week?",
        # the following realistic sentences match a bait pattern (reported, left failing):
        "One or two people were injured in the accident, police say.",  # vote: "one or two"
        "The board will vote for a new chair next week.",  # vote: "vote for"
        "Slides from today's lecture are up. Comments and questions are welcome.",  # comment
        "Please write your name on the attendance sheet.",  # comment: "write your"
        "Reminder: tag your releases before publishing to PyPI.",  # tag: "tag your"
    ],
)
def test_phrasing_leaves_neutral_sentences_alone(text: str) -> None:
    assert phrasing(text) == []


@pytest.mark.parametrize(
    ("text", "promo", "answer"),
    [
        ("yes", False, True),
        ("Tea!", False, True),
        ("AMEN", False, True),
        ("check out my channel", True, False),
        ("subscribe to me for daily videos about everything", True, False),
        ("see www.example.com for more", True, False),
        ("I have a question about the second lemma in your proof", False, False),
        ("This is the best song ever, I listen to it every single day", False, False),
    ],
)
def test_comment_features_spot_promotion_and_answers(text: str, promo: bool, answer: bool) -> None:
    features = comment_features(text)
    assert (features[0], features[1]) == (promo, answer)


def test_near_duplicates_share_a_hash() -> None:
    def h(text: str) -> int:
        return comment_features(text)[-1]

    assert h("Check out my channel!!") == h("check out my CHANNEL")
    assert h("check out my channel") != h("check out my page")


# ---------------------------------------------------------------------------------------------
# what is not bait


def organic_surge(post: str | None, *, texts: bool, engagement: bool) -> list[Event]:
    """300 comments in 30 minutes by 300 distinct people on a news post, with as many shares and
    clicks as comments when ``engagement``."""
    out: list[Event] = []
    if post is not None:
        text = "CERN announces the observation of a new particle consistent with the Higgs boson"
        out.append(("post", T0, "cern", "cern", post, text))
    for i in range(300):
        ts = T0 + 30 + i * 6.0
        out.append(("comment", ts, f"reader{i}", "cern", post, genuine(i) if texts else None))
        if engagement:
            out.append(("share" if i % 2 else "click", ts + 1, f"sharer{i}", "cern", post, None))
    return out


@pytest.mark.parametrize("engagement", [True, False], ids=["with_shares", "comments_only"])
@pytest.mark.parametrize("post", ["h1", None], ids=["post", "no_post"])
@pytest.mark.parametrize("texts", [True, False], ids=["texts", "no_texts"])
def test_an_organic_surge_is_never_throttled(
    texts: bool, post: str | None, engagement: bool
) -> None:
    # no texts: like Twitter replies, where volume is all there is; volume alone never throttles
    d = Detector()
    assert set(feed(d, organic_surge(post, texts=texts, engagement=engagement))) == {FULL}
    assert d.take_decisions() == []


def test_bait_wording_alone_does_not_throttle_a_genuine_discussion() -> None:
    # a lecturer's post whose wording matches a bait pattern, then 20 thoughtful comments by 20
    # students over three hours: one signal (phrasing) plus comment-only engagement is not bait
    d = Detector()
    text = "Slides from today's lecture are up. Comments and questions are welcome."
    events: list[Event] = [("post", T0, "prof", "prof", "l1", text)]
    events += [
        ("comment", T0 + 600 * (i + 1), f"student{i}", "prof", "l1", genuine(i)) for i in range(20)
    ]
    assert set(feed(d, events)) == {FULL}, d.take_decisions()


def test_a_long_standing_authors_steady_stream_is_no_spike() -> None:
    # ten comments an hour on the author's daily thread, for two weeks: the rate is the author's
    # normal, not a spike; the same rate from a brand-new author is one
    d = Detector()
    n = 0
    for hour in range(24 * 14):
        start = T0 + hour * HOUR
        post = f"day{hour // 24}"
        if hour % 24 == 0:
            d.observe("post", start, "steady", "steady", post, "Daily thread: what are you up to?")
        for k in range(10):
            d.observe("comment", start + k * 360 + 7, f"c{n}", "steady", post, genuine(n))
            d.observe("click", start + k * 360 + 8, f"v{n}", "steady", post, None)
            n += 1
    assert d.take_decisions() == []
    now = T0 + 24 * 14 * HOUR - 1
    assert d._signals(d.groups["p:" + post], d.authors["steady"], now)["spike"] < 0.05

    fresh = Detector()
    fresh.observe("post", T0, "new", "new", "n1", "Daily thread: what are you up to?")
    for k in range(20):
        fresh.observe("comment", T0 + k * 360 + 7, f"c{k}", "new", "n1", genuine(k))
    sig = fresh._signals(fresh.groups["p:n1"], fresh.authors["new"], T0 + 19 * 360 + 7)
    assert sig["spike"] > 0.3


# ---------------------------------------------------------------------------------------------
# history: flagged commenters, repeat offenders


FARM = tuple(f"farm{i}" for i in range(20))


def test_flagged_commenters_get_a_textless_flood_throttled() -> None:
    d = Detector()
    feed(d, bait_campaign("p1", "alice", T0, actors=FARM))
    assert len(throttles(d.take_decisions())) == 1
    # a day later the same accounts flood another author's post, without any text
    flood = bait_campaign("q1", "bob", T0 + DAY, actors=FARM, texts=False, post_text=None)
    mults = feed(d, flood)[1:]
    [decision] = d.take_decisions()
    assert decision.post == "q1"
    assert decision.signals["flagged_commenters"] == 1.0
    assert "flagged_commenters" in decision.reasons
    assert mults[-1] < FULL

    # the same flood by accounts with no history is volume alone: not throttled
    clean = Detector()
    assert set(feed(clean, flood)) == {FULL}
    assert clean.take_decisions() == []


def test_a_repeat_offenders_second_campaign_starts_lower() -> None:
    d = Detector()
    first = feed(d, bait_campaign("p1", "alice", T0))[1:]
    second = feed(d, bait_campaign("p2", "alice", T0 + 3 * DAY))[1:]
    t1, t2 = throttles(d.take_decisions())
    assert t2.multiplier < t1.multiplier
    assert "repeat_offender" in t2.reasons and "repeat_offender" not in t1.reasons
    assert min(m for m in second if m < FULL) < min(m for m in first if m < FULL)

    # outside the offender window the author starts afresh
    later = Detector()
    feed(later, bait_campaign("p1", "alice", T0))
    feed(later, bait_campaign("p2", "alice", T0 + DEFAULT.offender_window_s + DAY))
    u1, u2 = throttles(later.take_decisions())
    assert u2.multiplier == u1.multiplier


# ---------------------------------------------------------------------------------------------
# the end of a throttle


def calm_at(comment_ts: Sequence[float], p: BaitParams = DEFAULT) -> float:
    """The instant the post's exponentially weighted comment rate (per hour) falls to
    ``calm_per_hour`` after the last comment: sum_i 2^(-(t - ts_i)/h) * ln2 * 3600 / h = calm."""
    h = p.rate_half_life_s
    ref = comment_ts[-1]
    weight = sum(2.0 ** ((t - ref) / h) for t in comment_ts)
    return ref + h * math.log2(weight * LN2_PER_HOUR / h / p.calm_per_hour)


def test_a_throttle_ends_when_the_stream_calms_down() -> None:
    d = Detector()
    campaign = bait_campaign("p1", "alice", T0, n=40)
    mults = feed(d, campaign)
    assert mults[-1] < FULL
    [start] = d.take_decisions()

    last = campaign[-1][1]
    after = last + DAY
    assert d.observe("comment", after, "latecomer", "alice", "p1", "yes") == FULL
    [end] = d.take_decisions()
    assert end.state == "ended"
    assert (end.group, end.post, end.target) == ("p:p1", "p1", "alice")
    assert last < end.at < after
    assert end.at == pytest.approx(calm_at([e[1] for e in campaign[1:]]), abs=1e-6)
    assert end.to_json()["detected_at"] == start.at
    assert end.to_json()["ended_at"] == end.at

    # a renewed campaign starts a new episode: detected again, as a repeat offence
    renewed = bait_campaign("p1", "alice", after + 60)[1:]
    again = feed(d, renewed)
    [start2] = d.take_decisions()
    assert start2.state == "throttled" and "repeat_offender" in start2.reasons
    assert min(again) < min(mults)


# ---------------------------------------------------------------------------------------------
# self-comments and idle groups


def test_self_comments_count_in_full_and_are_ignored() -> None:
    # the author answers every comment of a bait campaign with "yes" in their own thread
    campaign = bait_campaign("p1", "alice", T0, n=40)
    own: list[Event] = [("reply", e[1], "alice", "alice", "p1", "yes") for e in campaign[1:]]
    mixed: list[Event] = [campaign[0]]
    for theirs, mine in zip(campaign[1:], own, strict=True):
        mixed += [theirs, mine]
    plain, with_self = Detector(), Detector()
    expected = feed(plain, campaign)
    got = feed(with_self, mixed)
    assert got[2::2] == [FULL] * 40  # the author's own replies, even on a throttled post
    assert [got[0], *got[1::2]] == expected
    assert min(expected) < FULL
    assert [x.to_json() for x in with_self.take_decisions()] == [
        x.to_json() for x in plain.take_decisions()
    ]

    alone = Detector()
    assert set(feed(alone, [campaign[0], *own])) == {FULL}
    assert alone.take_decisions() == []
    assert alone.groups["p:p1"].comments == 0


@pytest.mark.parametrize("gap", [HOUR, DEFAULT.group_idle_s + 1.0])
def test_an_idle_group_is_forgotten(gap: float) -> None:
    # eleven cheap comments (one short of min_comments), a pause of ``gap``, eleven more
    first = bait_campaign("p1", "alice", T0, n=11)
    resume = first[-1][1] + gap
    second: list[Event] = [
        ("comment", resume + i * 5.0, f"late{i}", "alice", "p1", LOW_VALUE[i % 10])
        for i in range(11)
    ]
    d = Detector()
    mults = feed(d, first + second)
    if gap <= DEFAULT.group_idle_s:
        assert mults[-11] < FULL  # the twelfth comment on the post tips it
    else:
        assert set(mults) == {FULL}  # evidence started afresh: eleven comments only
        assert d.groups["p:p1"].comments == 11


# ---------------------------------------------------------------------------------------------
# persistence and restarts


def run_in_chunks(
    events: Sequence[Event], cuts: Iterable[int], params: BaitParams = DEFAULT
) -> tuple[list[int], list[dict[str, object]]]:
    """Feed ``events`` in chunks; at every cut the state goes to tables and a fresh detector
    restored from them continues (a worker restart or a rebalance)."""
    tables: Tables = {}
    d = Detector(params)
    mults: list[int] = []
    decisions: list[Decision] = []
    prev = 0
    for cut in [*sorted(set(cuts)), len(events)]:
        mults += feed(d, events[prev:cut])
        decisions += d.take_decisions()
        apply(tables, d.take_changes())
        d = Detector.restore(tables, params)
        prev = cut
    return mults, [x.to_json() for x in decisions]


def _late_comment_after_a_clock_only_batch() -> tuple[list[Event], BaitParams]:
    # the clock-only event moves the clock past p1's idle horizon; a comment 101 s late follows
    last = T0 + 20
    events = bait_campaign("p1", "alice", T0 - 50, n=11, step=1.0)
    events += [
        ("comment", last + 2 * DAY + 1 - 3599, "v", "bob", "q1", "hello there, nice to see you"),
        ("reply", last + 2 * DAY + 1, "zed", "zed", None, "thanks!"),  # the clock-only batch
        ("comment", last + 2 * DAY - 100, "u", "alice", "p1", "yes"),
    ]
    return events, DEFAULT


def _in_order_after_a_clock_only_sweep() -> tuple[list[Event], BaitParams]:
    # the clock-only event runs a sweep (nothing to drop); the restored detector sweeps again on
    # the next event and so misses the sweep an hour later that drops p1 (max_groups=1)
    events = bait_campaign("p1", "alice", T0 - 50, n=11, step=1.0)
    events += [
        ("reply", T0 + 3620, "zed", "zed", None, "thanks!"),  # the clock-only batch (sweeps)
        ("comment", T0 + 3630, "v", "bob", "q1", "hello there, nice to see you"),
        ("comment", T0 + 7220, "v", "bob", "q1", "and hello again, still here"),
        ("comment", T0 + 7225, "u", "alice", "p1", "yes"),
    ]
    return events, BaitParams(max_groups=1)


@pytest.mark.parametrize(
    "case", [_late_comment_after_a_clock_only_batch, _in_order_after_a_clock_only_sweep]
)
def test_a_restart_after_a_clock_only_batch_changes_nothing(
    case: Callable[[], tuple[list[Event], BaitParams]],
) -> None:
    # A batch whose events change no entry (an author's replies in their own thread, common in
    # sx-mathoverflow) still moves the detector's clock (newest, swept). A restart right after it
    # must not change what follows.
    events, params = case()
    clock_only = next(i for i, e in enumerate(events) if e[0] == "reply" and e[2] == e[3])
    straight = run_in_chunks(events, [], params)
    restarted = run_in_chunks(events, [clock_only, clock_only + 1], params)
    assert restarted == straight


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


@st.composite
def chunked(draw: st.DrawFn) -> tuple[list[Event], list[int]]:
    events = draw(streams())
    if draw(st.integers(0, 3)) == 0:
        return events, list(range(len(events)))  # a restart after every event
    return events, draw(st.lists(st.integers(0, len(events)), max_size=10))


@settings(max_examples=200, deadline=None)
@given(chunked(), st.sampled_from((DEFAULT, SMALL)))
def test_batch_boundaries_and_restarts_do_not_matter(
    stream: tuple[list[Event], list[int]], params: BaitParams
) -> None:
    events, cuts = stream
    assert run_in_chunks(events, cuts, params) == run_in_chunks(events, [], params)


@settings(max_examples=100, deadline=None)
@given(streams(), st.sampled_from((DEFAULT, SMALL)))
def test_take_changes_round_trips(events: list[Event], params: BaitParams) -> None:
    # after every event (the smallest batch), the tables restore exactly the live detector: its
    # entries and its clock (newest event time, last sweep), which expiry and sweeps depend on
    d = Detector(params)
    tables: Tables = {}
    for e in events:
        d.observe(*e)
        apply(tables, d.take_changes())
        restored = Detector.restore(tables, params)
        assert entries(restored) == entries(d), e
        assert (restored.newest, restored.swept) == (d.newest, d.swept), e


def entries(d: Detector) -> tuple[dict[str, bytes], ...]:
    return (
        {k: g.dump() for k, g in d.groups.items()},
        {k: a.dump() for k, a in d.authors.items()},
        {k: c.dump() for k, c in d.commenters.items()},
    )


@settings(max_examples=150, deadline=None)
@given(streams(), st.sampled_from((DEFAULT, SMALL)))
def test_multipliers_stay_in_range_and_need_comments(
    events: list[Event], params: BaitParams
) -> None:
    d = Detector(params)
    assert all(1 <= m <= FULL for m in feed(d, events))
    for x in d.take_decisions():
        assert 0 < x.multiplier <= 1
    # the same stream with every comment turned into a share never throttles
    quiet = Detector(params)
    no_comments: list[Event] = [
        ("share" if k in COMMENT_KINDS else k, ts, a, t, p, x) for k, ts, a, t, p, x in events
    ]
    assert set(feed(quiet, no_comments)) <= {FULL}
    assert quiet.take_decisions() == []


@st.composite
def wide_streams(draw: st.DrawFn) -> list[Event]:
    """Many posts, targets and actors over many hours of event time (steps up to an hour)."""
    rows = draw(
        st.lists(
            st.tuples(
                st.sampled_from(KINDS),
                st.sampled_from((0, 5, 60, 600, 1800, 3600)),
                st.integers(0, 59),
                st.integers(0, 11),
                st.integers(0, 40),
                st.integers(0, 3),
            ),
            min_size=100,
            max_size=400,
        )
    )
    events: list[Event] = []
    ts = T0
    for kind, dt, actor, target, post, text in rows:
        ts += dt
        texts = (None, "yes", "check out my channel", genuine(actor))
        events.append(
            (
                kind,
                ts,
                f"u{actor}",
                f"t{target}",
                None if post >= 30 else f"t{target}-p{post % 3}",
                texts[text],
            )
        )
    return events


@settings(max_examples=100, deadline=None)
@given(wide_streams())
def test_state_stays_bounded(events: list[Event]) -> None:
    """Sweeps run on the first event at least ``SWEEP_EVERY_S`` of event time after the last one,
    before that event is applied, and leave at most the caps. Between sweeps each event creates at
    most one group (its own key) and one author (its target); commenters are created for the actor
    of a comment on a throttled post and, at a throttle, for the post's sampled commenters. So at
    any time, counting the events since (and including) the last sweeping one:

    - groups <= max_groups + distinct group keys of those events,
    - authors <= max_authors + distinct comment targets,
    - commenters <= max_commenters + distinct comment actors + sample * throttles,

    and those events all lie within ``SWEEP_EVERY_S`` of event time after the sweep (late ones
    before it). Every group keeps at most ``sample`` commenters and comment hashes, and the
    tables written from :meth:`Detector.take_changes` restore the same entries.
    """
    p = BaitParams(max_groups=4, max_authors=3, max_commenters=5, sample=4, min_comments=4)
    d = Detector(p)
    keys: set[str] = set()
    targets: set[str] = set()
    actors: set[str] = set()
    thrown = 0
    sweeps = 0
    tables: Tables = {}
    for i, e in enumerate(events):
        kind, ts, actor, target, post, _ = e
        swept = d.swept
        d.observe(*e)
        apply(tables, d.take_changes())
        if i % 25 == 0:
            # entries only: the clock's round trip is test_take_changes_round_trips
            assert entries(Detector.restore(tables, p)) == entries(d)
        if d.swept != swept:
            sweeps += 1
            keys, targets, actors, thrown = set(), set(), set(), 0
        assert ts < d.swept + SWEEP_EVERY_S
        if kind in COMMENT_KINDS and actor != target:
            keys.add(group_key(post, target))
            targets.add(target)
            actors.add(actor)
        elif post is not None and (kind == "post" or kind in ENGAGEMENT_KINDS):
            keys.add(group_key(post, target))
        thrown += len(throttles(d.take_decisions()))
        assert len(d.groups) <= p.max_groups + len(keys)
        assert len(d.authors) <= p.max_authors + len(targets)
        assert len(d.commenters) <= p.max_commenters + len(actors) + p.sample * thrown
        for g in d.groups.values():
            assert len(g.commenters) <= p.sample
            assert len(g.hashes) <= p.sample
    assert sweeps >= (events[-1][1] - events[0][1]) // (2 * SWEEP_EVERY_S)


@pytest.mark.parametrize("how", ["idle", "cap"])
def test_a_forgotten_throttled_post_announces_its_end(how: str) -> None:
    """A throttled post dropped from memory (idle, or beyond the cap) does not stay 'throttled'
    in the explain view and the alerts: its end is announced, at the instant it calmed down."""
    params = BaitParams(max_groups=1) if how == "cap" else DEFAULT
    d = Detector(params)
    campaign = bait_campaign("p1", "alice", T0, n=40)
    feed(d, campaign)
    (start,) = d.take_decisions()
    assert start.state == "throttled"
    if how == "idle":
        later = campaign[-1][1] + DEFAULT.group_idle_s + 3600
        feed(d, [("share", later, "x", "bob", "other", None)])
    else:  # two more posts with comments push it out (the cap sweep runs at twice the cap)
        feed(
            d, bait_campaign("p2", "bob", T0 + 600, n=1) + bait_campaign("p3", "cy", T0 + 700, n=1)
        )
    assert "p:p1" not in d.groups
    (end,) = d.take_decisions()
    assert (end.group, end.state, end.since) == ("p:p1", "ended", start.at)
    assert end.at == pytest.approx(calm_at([e[1] for e in campaign[1:]]))
