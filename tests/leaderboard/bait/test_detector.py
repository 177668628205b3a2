"""The comment-bait detector (leaderboard/bait/detector.py): the throttles a user would notice,
what is not bait, repeat offences, the end of a throttle, and the multipliers of any stream."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deliver.outbox import alert_event
from leaderboard.bait.detector import COMMENT_KINDS, POD_KINDS, BaitParams, Decision, Detector
from leaderboard.bait.state import FULL
from leaderboard.store.apply import alert_id
from tests.leaderboard.bait._streams import (
    DAY,
    DEFAULT,
    FARM,
    HOUR,
    LOW_VALUE,
    SMALL,
    T0,
    Event,
    bait_campaign,
    feed,
    genuine,
    streams,
    throttles,
)

LN2_PER_HOUR = math.log(2.0) * HOUR


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
    assert "low_info" in decision.reasons
    assert "bait_phrasing:comment+vote" in decision.reasons
    alert = decision.to_json()
    assert alert["detected_at"] == tip_ts
    assert alert["state"] == "throttled"
    assert alert["multiplier"] < 1
    assert "low_info" in alert["reasons"]
    assert any(r.startswith("bait_phrasing:") for r in alert["reasons"])


# ---------------------------------------------------------------------------------------------
# what is not bait


def organic_surge(post: str | None, *, texts: bool, engagement: bool) -> list[Event]:
    """300 comments in 30 minutes by 300 distinct people on a news post, with as many shares and
    clicks as comments when ``engagement``. The readers are people with a history: each acted
    somewhere in the day before (real surges come from existing accounts)."""
    out: list[Event] = [
        ("like", T0 - DAY + 60 * i, f"reader{i}", f"friend{i % 7}", None, None) for i in range(300)
    ]
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
    assert d._signals("p:" + post, d.groups["p:" + post], d.authors["steady"], now)["spike"] < 0.05

    fresh = Detector()
    fresh.observe("post", T0, "new", "new", "n1", "Daily thread: what are you up to?")
    for k in range(20):
        fresh.observe("comment", T0 + k * 360 + 7, f"c{k}", "new", "n1", genuine(k))
    sig = fresh._signals("p:n1", fresh.groups["p:n1"], fresh.authors["new"], T0 + 19 * 360 + 7)
    assert sig["spike"] > 0.3


# ---------------------------------------------------------------------------------------------
# history: flagged commenters, repeat offenders


def test_flagged_commenters_get_a_textless_flood_throttled() -> None:
    d = Detector()
    feed(d, bait_campaign("p1", "alice", T0, actors=FARM))
    assert len(throttles(d.take_decisions())) == 1
    # a day later the same accounts flood another author's post, without any text
    flood = bait_campaign("q1", "bob", T0 + DAY, actors=FARM, texts=False, post_text=None)
    mults = feed(d, flood)[1:]
    decision, retro = d.take_decisions()
    assert decision.post == "q1"
    # the same accounts on two authors' posts a day apart are in lockstep: p1 counts as if it
    # had been throttled at its 5th comment, and its first four were the ring's accounts too,
    # so what all of its first 11 counted in full (before its own throttle at the 12th) is
    # clawed back
    assert (retro.post, retro.retroactive, retro.since) == ("p1", True, T0 + 60 + 11 * 5.0)
    assert [a for a, _ in retro.clawed] == list(FARM[:11])
    # (and q1's own first four, counted before its throttle: the ring's accounts)
    assert {c.post for c in d.take_clawbacks()} == {"p1", "q1"}
    assert decision.signals["flagged_commenters"] >= 0.5
    assert "flagged_commenters" in decision.reasons
    assert mults[-1] < FULL

    # the same flood by accounts with a clean history is volume alone: not throttled
    clean = Detector()
    feed(clean, [("like", T0 + 3600 * i, a, "carol", None, None) for i, a in enumerate(FARM)])
    assert set(feed(clean, flood)) == {FULL}
    assert clean.take_decisions() == []


def test_a_textless_flood_of_brand_new_accounts_is_throttled() -> None:
    # hundreds of comments in minutes from accounts never seen before, no text, nothing else
    # following (no likes, shares or clicks): the response itself is the evidence
    d = Detector()
    # (the partition has been watching for a while: at its very start every account is new)
    feed(d, [("like", T0 - 7 * HOUR, "someone", "else", None, None)])
    flood = bait_campaign("q1", "bob", T0, n=300, step=2.0, texts=False, post_text=None)
    mults = feed(d, flood)[1:]
    [decision] = throttles(d.take_decisions())
    assert decision.signals["fresh"] == 1.0
    assert {"fresh", "comments_dominate"} <= set(decision.reasons)
    assert decision.comments < 0.2 * 300
    assert mults[-1] < FULL

    # with shares and clicks following (a real surge), the same accounts are not throttled
    surge = Detector()
    events = [("like", T0 - 7 * HOUR, "someone", "else", None, None), *flood]
    events += [("share", e[1] + 1, f"sh{i}", "bob", "q1", None) for i, e in enumerate(flood[1:])]
    events.sort(key=lambda e: e[1])
    assert set(feed(surge, events)) == {FULL}

    # and at a partition's very start (nothing watched yet) nobody is judged new
    cold = Detector()
    assert set(feed(cold, flood)) == {FULL}


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
# any stream


@settings(max_examples=150, deadline=None)
@given(streams(), st.sampled_from((DEFAULT, SMALL)))
def test_multipliers_stay_in_range_and_need_comments(
    events: list[Event], params: BaitParams
) -> None:
    d = Detector(params)
    assert all(1 <= m <= FULL for m in feed(d, events))
    for x in d.take_decisions():
        assert 0 < x.multiplier <= 1
    # the same stream with every comment, share and like turned into a click never throttles
    # (clicks are neither comments nor the shares and likes an engagement pod trades)
    quiet = Detector(params)
    no_comments: list[Event] = [
        ("click" if k in COMMENT_KINDS | POD_KINDS else k, ts, a, t, p, x)
        for k, ts, a, t, p, x in events
    ]
    assert set(feed(quiet, no_comments)) <= {FULL}
    assert quiet.take_decisions() == []


def test_a_retroactive_alert_says_when_and_what_it_took_back() -> None:
    d = Decision(
        "p:p1",
        "p1",
        "alice",
        "throttled",
        T0 + 500,
        0.25,
        ("lockstep", "retroactive"),
        23,
        {"lockstep": 1.0},
        since=T0 + 100,
        retroactive=True,
        clawed=(("u1", T0 + 10.0),),
    )
    record = d.to_json()
    # detected_at keeps when the throttle took effect; retroactive_at is when the ring was found
    assert (record["detected_at"], record["retroactive_at"]) == (T0 + 100, T0 + 500)
    # the times of the interactions taken back, never the accounts (alerts are public)
    assert record["clawed_back"] == [T0 + 10.0] and "u1" not in str(record)
    assert "1 earlier interactions' points taken back" in alert_event(record)["reason"]
    plain = Decision("p:p2", "p2", "bob", "throttled", T0, 0.25, ("spike",), 12, since=T0)
    assert "retroactive_at" not in plain.to_json() and "clawed_back" not in plain.to_json()
    assert "taken back" not in alert_event(plain.to_json())["reason"]


def test_a_retroactive_alert_has_its_own_id() -> None:
    # a ring found at the very time of the post's own throttle: two alerts, two ids (consumers
    # de-duplicate by id, so one id would drop the one that says what was taken back)
    own = Decision("p:p1", "p1", "alice", "throttled", T0, 0.25, ("spike",), 12, since=T0)
    retro = Decision(
        "p:p1", "p1", "alice", "throttled", T0, 0.25, ("lockstep",), 12, since=T0, retroactive=True
    )
    assert alert_id(own) != alert_id(retro)
    assert alert_id(own) == alert_id(Decision("p:p1", "p1", "alice", "throttled", T0, 0.1, (), 3))
    # claw-backs in steps (a ring's post's sample grows) at the same time: one id each
    steps = [
        Decision(
            "p:p1", "p1", "alice", "throttled", T0, 0.25, ("lockstep",), 12, since=T0,
            retroactive=True, clawed=clawed,
        )
        for clawed in ((("a", T0 - 60),), (("", T0 - 30), ("", T0 - 20)))
    ]  # fmt: skip
    assert len({alert_id(d) for d in [retro, *steps]}) == 3
