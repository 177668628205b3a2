"""The detector judges the response to a post, not its wording (issue 13): each response signal
against bait it has never read, and the organic threads that look alike but are not bait."""

from __future__ import annotations

import random

import orjson
import pytest

from leaderboard.bait.detector import FARM_FLAG, BaitParams, Decision, Detector
from leaderboard.bait.evidence import THROTTLE_KINDS, Evidence
from leaderboard.bait.patterns import comment_features, phrasing, post_words, word_hash
from leaderboard.bait.state import FULL
from leaderboard.explain import throttle_lines
from tests.leaderboard.bait._streams import (
    DAY,
    HOUR,
    T0,
    Event,
    bait_campaign,
    feed,
    genuine,
    points_of,
    throttles,
)

NEUTRAL = "Sunrise hikes versus sunset hikes, honestly torn this weekend"


def answers(post: str, author: str, start: float, texts: list[str], who: list[str]) -> list[Event]:
    return [
        ("comment", start + 60 + 4 * i, who[i % len(who)], author, post, t)
        for i, t in enumerate(texts)
    ]


def history(actors: list[str], start: float, target: str = "elsewhere") -> list[Event]:
    """Each actor did something a day before (not with the author): accounts with a past."""
    return [("like", start - DAY + i, a, target, None, None) for i, a in enumerate(actors)]


# -- the text features ------------------------------------------------------------------------


def test_comment_features_tell_empty_answers_from_real_ones() -> None:
    assert comment_features("@maria_k @joe").mention_only
    assert comment_features("🔥🔥🔥").emoji_only
    assert comment_features("YES!!").stock
    assert comment_features("sunset 🌅").empty  # one word and an emoji
    long = comment_features("Sunset, because the light on the ridge at 8pm is unreal")
    assert not long.empty and long.n_words == 11
    # letter runs collapse, so emphasis is the same answer
    assert comment_features("Sooo good").words == comment_features("so good").words
    assert word_hash("goooood") == word_hash("god")
    # a post's content words, stop words left out
    assert word_hash("sunrise") in post_words(NEUTRAL)
    assert word_hash("versus") in post_words(NEUTRAL) and word_hash("or") not in post_words(NEUTRAL)


# -- bait it has never read ---------------------------------------------------------------------


def test_an_either_or_question_answered_by_strangers_in_a_word_is_throttled() -> None:
    assert phrasing(NEUTRAL) == []  # no bait wording the detector knows
    strangers = [f"s{i}" for i in range(200)]
    opts = ["sunrise", "Sunset!", "sunset 🌅", "SUNRISE", "sunsets", "sunrise obviously"]
    d = Detector()
    events: list[Event] = [*history(strangers, T0), ("post", T0, "ann", "ann", "q", NEUTRAL)]
    events += answers("q", "ann", T0, [opts[i % len(opts)] for i in range(200)], strangers)
    mults = feed(d, events)
    [t] = throttles(d.take_decisions())
    assert {"low_info", "strangers"} <= set(t.reasons)
    assert t.comments < 0.2 * 200
    assert mults[-1] < FULL


def test_the_same_short_answers_from_the_authors_network_are_a_congratulation_thread() -> None:
    friends = [f"f{i}" for i in range(120)]
    d = Detector()
    # the author's network: they liked and commented on the author's posts the week before
    events: list[Event] = [
        ("like", T0 - 5 * DAY + 60 * i, f, "ann", f"old{i % 5}", None)
        for i, f in enumerate(friends)
    ]
    events.append(("post", T0, "ann", "ann", "wedding", "We got married yesterday!"))
    congrats = ["Congrats!!", "congratulations 🎉", "So happy for you", "congrats ❤️", "yay!"]
    events += answers("wedding", "ann", T0, [congrats[i % 5] for i in range(120)], friends)
    assert set(feed(d, events)) == {FULL}
    assert throttles(d.take_decisions()) == []


def test_a_tag_a_friend_post_answered_with_mentions_is_throttled() -> None:
    d = Detector()
    who = [f"t{i}" for i in range(150)]
    events: list[Event] = [*history(who, T0)]
    events.append(("post", T0, "brand", "brand", "g", "Win a weekend away for two"))
    events += answers("g", "brand", T0, [f"@pal{i} @pal{i + 1}" for i in range(150)], who)
    feed(d, events)
    [t] = throttles(d.take_decisions())
    assert "low_info" in t.reasons and t.comments < 30


def test_a_greeting_farmed_with_near_identical_greetings_is_throttled() -> None:
    d = Detector()
    who = [f"g{i}" for i in range(150)]
    forms = ["Good morning!!", "gooood morning all", "good morning everyone ☀️", "Good Morning"]
    events: list[Event] = [*history(who, T0)]
    events.append(("post", T0, "page", "page", "gm", "Good morning from the lake house"))
    events += answers("gm", "page", T0, [forms[i % 4] for i in range(150)], who)
    feed(d, events)
    [t] = throttles(d.take_decisions())
    assert t.signals["duplicates"] == 1.0 and t.comments < 30


def test_self_promotion_mixed_with_the_asked_for_answer_is_hollow() -> None:
    # a farm's mix (tuning seeds 8, 9 and 11: campaigns at 22-91 %): of every twenty comments
    # from strangers, nine are self-promotion (empty, but distinct), eight the answer the post
    # asked for in four forms (repeats, not empty: three or four words), three are real. Empty
    # answers are 45 % and repeats 40 %, each under its ramp; together 85 % carry nothing
    who = [f"s{i}" for i in range(200)]
    love = ["I love you mom", "love u mom!!", "i love you mom 😍", "LOVE YOU MOM"]
    mix = "PLPLGPLPLPLPGPLPLPLG"
    texts = [
        f"{genuine(i)}, subscribe to my channel"
        if mix[i % 20] == "P"
        else love[i % 4]
        if mix[i % 20] == "L"
        else genuine(1000 + i)
        for i in range(200)
    ]
    d = Detector()
    events: list[Event] = [*history(who, T0), ("post", T0, "kat", "kat", "v", "My new video")]
    events += answers("v", "kat", T0, texts, who)
    feed(d, events)
    [t] = throttles(d.take_decisions())
    assert "hollow" in t.reasons
    assert t.signals["low_info"] < 0.5 and t.signals["duplicates"] < 0.5
    assert t.comments < 0.2 * 200


EMOJI = ["😍", "🔥🔥", "❤️❤️❤️", "👏", "🥰", "💯", "😭❤️", "🙌🙌"]


def _emoji_thread(texts: list[str]) -> tuple[Detector, list[Decision]]:
    who = [f"u{i}" for i in range(len(texts))]
    d = Detector()
    events: list[Event] = [*history(who, T0), ("post", T0, "star", "star", "v", "We got engaged!")]
    events += answers("v", "star", T0, texts, who)
    feed(d, events)
    return d, throttles(d.take_decisions())


def test_emoji_reactions_to_a_celebrity_are_not_hollow_answers() -> None:
    # 150 first-time fans react to a star's news: over half with emoji alone, a fifth with the
    # same three congratulations, the rest personal. Emoji alone are a reaction (they stay
    # low-information) and count half as hollow: with the repeats, under the ramp
    cheers = ["congratulations to you both", "so happy for you two", "wishing you both joy"]
    texts = [
        EMOJI[i % 8] if i % 20 < 11 else cheers[i % 3] if i % 20 < 15 else genuine(i)
        for i in range(150)
    ]
    d, decisions = _emoji_thread(texts)
    repeats = sum(1 for i in range(150) if 11 <= i % 20 < 15) - 3  # (each phrase's first is new)
    assert d.groups["p:v"].hollow == 2 * repeats + sum(1 for i in range(150) if i % 20 < 11)
    # (this thread of strangers at a steady beat with no likes is throttled anyway, on
    # low_info: what is pinned here is that hollow is not among the reasons)
    assert all(t.signals.get("hollow", 0.0) < 0.1 for t in decisions)


@pytest.mark.parametrize("engagements", [0, 1, 2])
def test_fans_who_like_and_share_as_they_congratulate_are_not_farmed(engagements: int) -> None:
    # 160 strangers congratulate a star in a few stock words or an emoji, within the hour. Fans
    # also like and share the news: two engagements a comment, comments a third of the
    # response, not bait (held-out seeds 30, 31, 33 and 34: such threads throttled on
    # hollow, strangers, duplicates). The same answers with nothing else, or with one like
    # each (comments half the response), are a farm's, throttled early
    cheers = ["Congrats!!", "congratulations 🎉", "So happy for you", "congrats ❤️", "yay!"]
    fans = [f"fan{i}" for i in range(160)]
    d = Detector()
    feed(d, history(fans, T0))
    ev: list[Event] = [("post", T0, "star", "star", "news", "We got engaged!")]
    for i, a in enumerate(fans):
        t = T0 + 20 * (i + 1)
        ev.append(("comment", t, a, "star", "news", cheers[i % 5] if i % 3 else EMOJI[i % 8]))
        ev += [
            (("like", "share")[k], t + 3 + k, a, "star", "news", None) for k in range(engagements)
        ]
    feed(d, ev)
    caught = throttles(d.take_decisions())
    if engagements == 2:
        assert caught == []
    else:
        [x] = caught
        assert {"hollow", "strangers"} <= set(x.reasons) and x.comments < 0.2 * 160


@pytest.mark.parametrize("who", ["author", "one account"])
def test_engagement_a_bait_post_gives_itself_does_not_make_its_answers_fans(who: str) -> None:
    # 300 strangers answer an either-or question in a word; the author (scored nothing), or a
    # single sock, clicks and likes the post twice a comment. Detector 10 read that as fans
    # who engage as they answer: the post was never throttled and all 300 answers counted
    # (an adversarial review). Engagement counts each account and kind once
    clicker = "ann" if who == "author" else "sock"
    fans = [f"s{i}" for i in range(300)]
    opts = ["sunrise", "Sunset!", "sunset 🌅", "SUNRISE", "sunsets", "sunrise obviously"]
    d = Detector()
    feed(d, history([*fans, "sock"], T0))
    ev: list[Event] = [("post", T0, "ann", "ann", "q", NEUTRAL)]
    for _, t, a, target, post, text in answers(
        "q", "ann", T0, [opts[i % 6] for i in range(300)], fans
    ):
        ev += [
            (k, t - 0.5 + 0.1 * j, clicker, "ann", "q", None)
            for j, k in enumerate(("click", "like"))
        ]
        ev.append(("comment", t, a, target, post, text))
    mults = feed(d, ev)
    [x] = throttles(d.take_decisions())
    comment_mults = [m for m, e in zip(mults, ev, strict=True) if e[0] == "comment"]
    assert sum(m == FULL for m in comment_mults) < 0.1 * 300
    assert "strangers" in x.reasons


@pytest.mark.parametrize("seed", range(1, 11))
def test_a_farm_padding_its_repeats_with_emoji_is_hollow(seed: int) -> None:
    # strangers answer with emoji (55 %) and four forms of one line (45 %), nothing else, at
    # random gaps, a few likes between: each share stays under its own ramp (emoji carry no
    # words to repeat), hollow over both throttles it (left out of hollow, emoji let 7 of
    # these 10 through: an adversarial review; by the 11th-55th comment of 150)
    line = ["I love you mom so much", "love you mom so much!!", "i love you so much mom"]
    line.append("LOVE YOU SO MUCH MOM")
    rnd = random.Random(seed)
    d = Detector()
    who = [f"u{i}" for i in range(150)]
    feed(d, history(who, T0))
    d.observe("post", T0, "kat", "kat", "v", "My new video")
    t = float(T0)
    for i, actor in enumerate(who):
        text = rnd.choice(EMOJI) if rnd.random() < 0.55 else rnd.choice(line)
        t += rnd.expovariate(1 / 20)
        d.observe("comment", t, actor, "kat", "v", text)
        if rnd.random() < 0.3:
            d.observe("like", t + 1, f"l{i}", "kat", "v", None)
    [x] = throttles(d.take_decisions())
    assert x.comments < 0.4 * 150


def test_long_varied_answers_from_strangers_are_an_ama() -> None:
    d = Detector()
    who = [f"a{i}" for i in range(150)]
    events: list[Event] = [*history(who, T0)]
    events.append(("post", T0, "prof", "prof", "ama", "I study glaciers, ask me anything"))
    events += answers("ama", "prof", T0, [genuine(i) + "?" for i in range(150)], who)
    assert set(feed(d, events)) == {FULL}


# -- coordination --------------------------------------------------------------------------------


def ring_posts(ring: list[str], posts: int, start: float) -> list[Event]:
    """Ring members post in turn; the others comment on each post within the hour, with varied
    praise that reads like people (long enough to carry information)."""
    out: list[Event] = []
    for k in range(posts):
        author = ring[k % len(ring)]
        post, t0 = f"ring{k}", start + k * 3 * HOUR
        out.append(("post", t0, author, author, post, f"My thoughts on topic {k}"))
        for i, actor in enumerate(a for a in ring if a != author):
            out.append(("comment", t0 + 120 + 90 * i, actor, author, post, genuine(k * 31 + i)))
    return out


def test_a_ring_commenting_on_each_others_posts_is_caught_by_lockstep() -> None:
    ring = [f"ring-{i}" for i in range(24)]
    d = Detector()
    events = history(ring, T0) + ring_posts(ring, 6, T0)
    feed(d, events)
    decisions = throttles(d.take_decisions())
    caught: dict[str | None, Decision] = {}
    for t in decisions:
        caught.setdefault(t.post, t)  # (each post's first throttle)
    # from the second post on, every post shares most commenters with an earlier one of another
    # author, and they are strangers to its author; once one is throttled its accounts are
    # flagged, which decides the next ones at once
    assert {"ring1", "ring2", "ring3", "ring4", "ring5"} <= caught.keys()
    assert "lockstep" in caught["ring1"].reasons
    assert all({"lockstep", "flagged_commenters"} & set(t.reasons) for t in caught.values())
    # ...early: the ring's comments on a post are mostly counted in full before it is
    assert all(t.comments <= 0.2 * 23 + 1 for k, t in caught.items() if k != "ring0")
    # the first post had nothing to be in lockstep with while it ran: once the second is
    # throttled in lockstep with it, it is throttled retroactively, and everything after its
    # first four comments (where a throttle on coordination evidence could have started) is
    # clawed back, and those first four too where they came from the accounts that moved in
    # lockstep: at the multiplier, recorded as withheld, named in the alert. Here that is
    # everyone but ring1's author (who did not comment on ring1, so is not shown to be in it)
    first = caught["ring0"]
    assert first.retroactive and first.reasons == ("lockstep", "retroactive")
    assert first.at == caught["ring1"].at and first.comments == 23
    assert {a for a, _ in first.clawed} == set(ring) - {"ring-0", "ring-1"}
    assert len(first.clawed) == 22
    back = [c for c in d.take_clawbacks() if c.post == "ring0"]
    assert [(c.actor, c.ts) for c in back[:22]] == list(first.clawed)
    # then ring2's throttle shows ring1's author in lockstep too: its comment on ring0 goes back
    assert [c.actor for c in back[22:]] == ["ring-1"]
    full = {c.actor: points_of(("comment", c.ts, c.actor, c.target, c.post, None)) for c in back}
    assert all(c.withheld_mp == full[c.actor] - full[c.actor] * 250 // FULL for c in back)


def test_a_ring_across_partitions_is_seen_through_the_evidence_of_others() -> None:
    ring = [f"ring-{i}" for i in range(24)]
    here = Detector()
    there = Detector()
    feed(there, history(ring, T0))
    feed(here, history(ring, T0))
    first = ring_posts(ring, 1, T0)
    feed(there, first)  # one ring post on another partition: nothing to compare it with
    assert throttles(there.take_decisions()) == []
    for e in there.take_evidence():
        here.flag(e)  # the worker carries its commenter sample through the log
    assert {e.kind for e in here.shadows.values()} == {"commenters"}
    second = [e for e in ring_posts(ring, 2, T0) if e[4] == "ring1"]
    feed(here, second)
    [t] = throttles(here.take_decisions())
    assert t.post == "ring1" and "lockstep" in t.reasons
    # its evidence says the throttle rested on lockstep ("ring"); the first partition finds its
    # own post in lockstep with the ring's accounts and throttles it retroactively
    [ring_evidence] = [e for e in here.take_evidence() if e.kind == "ring"]
    # here, what ring1's first five comments counted in full before its throttle at the 6th:
    # all but ring-0's, which is among the first four and not in ring0's sample (its author)
    assert t.comments == 5
    assert [(c.post, c.actor) for c in here.take_clawbacks()] == [
        ("ring1", a) for a in ("ring-2", "ring-3", "ring-4", "ring-5")
    ]
    there.flag(ring_evidence)
    [retro] = there.take_decisions()
    assert (retro.post, retro.retroactive, retro.at) == ("ring0", True, t.at)
    back = there.take_clawbacks()
    assert len(back) == len(retro.clawed) == 22  # (as above: all but ring1's author's)
    assert {c.target for c in back} == {"ring-0"} and {c.kind for c in back} == {"comment"}
    there.flag(ring_evidence)  # (a redelivered record is de-duplicated by the worker; even so)
    assert there.take_decisions() == [] and there.take_clawbacks() == []
    # without the evidence, the same post here is the ring's first: not caught
    alone = Detector()
    feed(alone, history(ring, T0) + second)
    assert throttles(alone.take_decisions()) == []


def _courses(ring: list[str], posts: int, t: float) -> tuple[list[Event], float]:
    """The ring comments on ``posts`` other authors' posts, one after another from ``t`` (where
    it is caught); the events and the time of the last."""
    events: list[Event] = []
    for k in range(posts):
        post, author = f"course{k}", f"boss{k}"
        events.append(("post", t, author, author, post, "Buy my course"))
        for i, actor in enumerate(ring):
            t += 200
            events.append(("comment", t, actor, author, post, genuine(100 + 10 * k + i)))
    return events, t


def _among_friends(ring_posts: int, *, friends_first: bool = False) -> Detector:
    """A member's post gets comments from five ring accounts and from five friends (the
    member's network, after the ring's or first); the ring then comments on ``ring_posts``
    other authors' posts."""
    d = Detector()
    ring = [f"r{i}" for i in range(5)]
    friends = [f"g{i}" for i in range(5)]
    feed(d, history(ring + friends, T0))
    events: list[Event] = [("post", T0 - 7200, "victim", "victim", "old", "an older post")]
    events += [("click", T0 - 3600 + i, f, "victim", "old", None) for i, f in enumerate(friends)]
    t = T0
    events.append(("post", t, "victim", "victim", "photos", "My holiday photos"))
    for i, actor in enumerate(friends + ring if friends_first else ring + friends):
        t += 200
        events.append(("comment", t, actor, "victim", "photos", genuine(i)))
    events += _courses(ring, ring_posts, t)[0]
    feed(d, events)
    return d


def test_a_post_of_friends_with_a_few_ring_accounts_is_not_a_rings() -> None:
    # in lockstep with one caught ring post, but half its commenters are the author's network:
    # friends who meet a few ring accounts are not a ring (two partners would be needed)
    d = _among_friends(ring_posts=1)
    assert any(x.post == "course0" for x in throttles(d.take_decisions()))
    assert [c for c in d.take_clawbacks() if c.post == "photos"] == []
    assert d.groups["p:photos"].mult == FULL


def test_a_post_in_lockstep_with_two_ring_posts_pays_back_but_its_author_is_no_offender() -> None:
    # with two caught ring posts it is in lockstep twice: treated as a ring's post, like a
    # forward throttle it takes back every interaction after the fourth, the friends' too (the
    # collateral docs/bait.md states), and the first four, the ring's; the author is not made
    # a repeat offender for it
    d = _among_friends(ring_posts=2)
    back = [c for c in d.take_clawbacks() if c.post == "photos"]
    assert [c.actor for c in back] == ["r0", "r1", "r2", "r3", "r4", "g0", "g1", "g2", "g3", "g4"]
    assert d.authors["victim"].offences == []


def test_a_few_ring_accounts_early_on_an_honest_post_cost_it_no_more_than_its_sample() -> None:
    # griefing: five ring accounts comment first on an honest post that a hundred strangers
    # then answer at length, and the ring is caught on two other authors' posts. The post is
    # in lockstep with both, so it pays back (the collateral docs/security.md states), but only
    # what its 64 sampled accounts counted: most of its sample is not the ring's, so the 41
    # accounts outside the sample keep their points
    d = Detector()
    ring = [f"r{i}" for i in range(5)]
    fans = [f"fan{i}" for i in range(100)]
    feed(d, history(ring + fans, T0))
    t = T0
    events: list[Event] = [("post", t, "victim", "victim", "talk", "Slides from my talk")]
    for i, actor in enumerate(ring + fans):
        t += 120
        events.append(("comment", t, actor, "victim", "talk", genuine(500 + i)))
    events += _courses(ring, 2, t)[0]
    feed(d, events)
    assert any(x.post == "course1" for x in throttles(d.take_decisions()))
    back = [c for c in d.take_clawbacks() if c.post == "talk"]
    assert [c.actor for c in back] == ring + fans[:59]
    assert len(d.groups["p:talk"].counted) == 41  # (the rest, kept for a claw that may follow)


def test_a_retroactive_throttle_does_not_spread_through_shared_honest_accounts() -> None:
    # a victim's post with ten ring accounts among five friends and five fans is throttled
    # retroactively once the ring is caught on two other authors' posts. Another author's
    # post, C, has no ring account at all, only five fans it shares with the victim's post.
    # As the victim's post gets more comments, C stays untouched: a retroactive throttle's
    # proof came from elsewhere, it is no proof against the posts it shares accounts with
    ring = [f"r{i}" for i in range(10)]
    fans = [f"f{i}" for i in range(10)]
    friends = [f"g{i}" for i in range(34)]
    ev: list[Event] = list(history(ring + fans + friends, T0))
    ev.append(("post", T0 - 7200, "victim", "victim", "old", "older"))
    ev += [("click", T0 - 3600 + i, g, "victim", "old", None) for i, g in enumerate(friends)]
    t = T0
    ev.append(("post", t, "other", "other", "C", "My garden"))
    for i, f in enumerate(fans):
        t += 1800 + (i * i * 137) % 1500
        ev.append(("comment", t, f, "other", "C", genuine(300 + i)))
        ev += [("like", t + 10 + j, f"lc{i}_{j}", "other", "C", None) for j in range(3)]
    ev.append(("post", t, "victim", "victim", "talk", "Slides from my talk"))
    order = friends[:5] + ring + fans[:5]  # (the ring half of the sample: a ring's post)
    for i, a in enumerate(order):
        t += 30 + (i * i * 137) % 270
        ev.append(("comment", t, a, "victim", "talk", genuine(500 + i)))
        ev += [("like", t + 10 + j, f"lt{i}_{j}", "victim", "talk", None) for j in range(3)]
    courses, t = _courses(ring, 2, t)
    ev += courses
    for i, a in enumerate(friends[30:32]):
        t += 60
        ev.append(("comment", t, a, "victim", "talk", genuine(900 + i)))
    d = Detector()
    feed(d, ev)
    posts = {x.post for x in throttles(d.take_decisions())}
    assert {"course1", "talk"} <= posts and "C" not in posts
    assert [c for c in d.take_clawbacks() if c.post == "C"] == []
    assert d.groups["p:C"].mult == FULL


def test_a_ring_posts_first_interactions_by_friends_stay_counted() -> None:
    # the same post, its friends first: a throttle could not have started before the fifth
    # interaction, and the first four are not the ring's accounts, so they keep their points;
    # every one from the fifth on is taken back, whoever made it
    d = _among_friends(ring_posts=2, friends_first=True)
    back = [c for c in d.take_clawbacks() if c.post == "photos"]
    assert [c.actor for c in back] == ["g4", "r0", "r1", "r2", "r3", "r4"]
    g = d.groups["p:photos"]
    assert [g.commenters[e[0]] if e[0] >= 0 else "" for e in g.counted] == ["g0", "g1", "g2", "g3"]


def test_an_engagement_pod_is_throttled_on_its_shares_and_likes() -> None:
    pod = [f"pod-{i}" for i in range(20)]
    d = Detector()
    feed(d, history(pod, T0))
    share_mults: dict[str, list[int]] = {}
    for k in range(6):
        author, post, t0 = pod[k], f"pp{k}", T0 + k * 2 * HOUR
        d.observe("post", t0, author, author, post, f"New photo set {k}")
        for i, actor in enumerate(a for a in pod if a != author):
            for j, kind in enumerate(("share", "like")):
                m = d.observe(kind, t0 + 30 + 20 * i + j, actor, author, post, None)
                share_mults.setdefault(post, []).append(m)
    caught = {t.group: t for t in throttles(d.take_decisions())}
    assert {"e:pp1", "e:pp2", "e:pp3", "e:pp4", "e:pp5"} <= caught.keys()
    assert "lockstep" in caught["e:pp1"].reasons
    assert all({"lockstep", "flagged_commenters"} & set(t.reasons) for t in caught.values())
    assert share_mults["pp5"][-1] < FULL and share_mults["pp0"] == [FULL] * 38
    # the pod's comments are not what was throttled: the comment group stays clean
    assert not any(k.startswith("p:") for k in caught)


def test_a_pods_first_post_pays_back_late_likes_from_outside_its_sample_too() -> None:
    # a pod's first post: the pod shares and likes it within minutes (its sample), then forty
    # other accounts like it after the pod window (outside the sample: no lockstep evidence of
    # their own; 78 interactions in all, more than the 64 accounts a sample holds). The pod's second post is throttled in lockstep with the first, which is then
    # throttled retroactively: what every interaction counted in full goes back, the late
    # likes' too (the planner tells the detector each one's points, as it would)
    pod = [f"pod-{i}" for i in range(20)]
    d = Detector()
    feed(d, history(pod, T0))
    points = {"share": 3000, "like": 1000}

    def act(kind: str, ts: float, actor: str, author: str, post: str) -> int:
        m = d.observe(kind, ts, actor, author, post, None)
        if m == FULL:
            d.counted(kind, points[kind], ())
        return m

    d.observe("post", T0, "pod-0", "pod-0", "pp0", "New photo set")
    for i, actor in enumerate(pod[1:]):
        for j, kind in enumerate(("share", "like")):
            act(kind, T0 + 30 + 20 * i + j, actor, "pod-0", "pp0")
    late = [T0 + 4000 + 60 * i for i in range(40)]
    for i, ts in enumerate(late):
        assert act("like", ts, f"late-{i}", "pod-0", "pp0") == FULL
    assert throttles(d.take_decisions()) == []
    d.observe("post", T0 + HOUR * 2, "pod-1", "pod-1", "pp1", "New photo set")
    for i, actor in enumerate(a for a in pod if a != "pod-1"):
        for j, kind in enumerate(("share", "like")):
            act(kind, T0 + HOUR * 2 + 30 + 20 * i + j, actor, "pod-1", "pp1")
    # (in steps: the late likes go once pp1's sample shows most of pp0's in lockstep)
    retros = [t for t in throttles(d.take_decisions()) if t.post == "pp0"]
    assert retros and all(t.retroactive for t in retros)
    clawed = [c for t in retros for c in t.clawed]
    assert [(a, ts) for a, ts in clawed if ts in late] == [("", ts) for ts in late]
    # every one but pod-1's share and like, among the first four and by pp1's author, who is not
    # in pp1's sample (so not shown to be in lockstep)
    assert {a for a, _ in clawed} == set(pod[2:]) | {""}
    assert len(clawed) == 36 + 40
    back = [c for c in d.take_clawbacks() if c.post == "pp0"]
    assert sum(c.withheld_mp for c in back if c.ts in late) == 40 * (1000 - 1000 * 250 // FULL)


def test_a_throttle_record_says_what_every_step_took_back_and_keeps_it_when_it_ends() -> None:
    # the explain view keeps one record per post, replaced whole by the latest decision: after
    # claw-backs in steps and the throttle's end it still says when the ring was found and how
    # many interactions were taken back in all (not only the last step's, nor none at the end)
    pod = [f"pod-{i}" for i in range(20)]
    d = Detector()
    feed(d, history(pod, T0))
    d.observe("post", T0, "pod-0", "pod-0", "pp0", "New photo set")
    for start, author, post in ((T0, "pod-0", "pp0"), (T0 + HOUR * 2, "pod-1", "pp1")):
        if post != "pp0":
            d.observe("post", start, author, author, post, "New photo set")
        for i, actor in enumerate(a for a in pod if a != author):
            for j, kind in enumerate(("share", "like")):
                if d.observe(kind, start + 30 + 20 * i + j, actor, author, post, None) == FULL:
                    d.counted(kind, 3000 if kind == "share" else 1000, ())
        if post == "pp0":  # (likes from outside the sample, after the pod window)
            for i in range(40):
                d.observe("like", T0 + 4000 + 60 * i, f"late-{i}", "pod-0", "pp0", None)
                d.counted("like", 1000, ())
    retros = [t for t in throttles(d.take_decisions()) if t.post == "pp0"]
    assert len(retros) >= 2  # (in steps, as the sample of pp1 grows)
    total = sum(len(t.clawed) for t in retros)
    last = retros[-1].to_json()
    assert last["clawed_total"] == total > len(last["clawed_back"])
    feed(d, [("share", T0 + 3 * DAY, "x", "bob", "other", None)])  # (pp0 is forgotten: it ends)
    (end,) = [x for x in d.take_decisions() if x.post == "pp0"]
    record = end.to_json()
    assert record["state"] == "ended" and record["retroactive_at"] == retros[-1].at
    assert record["clawed_total"] == total and "clawed_back" not in record  # (an alert's own)
    line = throttle_lines({"e:pp0": orjson.dumps(record).decode()}, {})[0]
    assert (line.retroactive_at, line.clawed_back) == (retros[-1].at, total)


def _network_pod(*, author_offended: bool) -> Detector:
    """A pod of twelve that is also ann's network (they clicked her older post) shares and
    likes her post pp0 within minutes; two hours later it does the same to bob's post pp1, to
    whom the pod are strangers. ``author_offended``: ann's own comment-bait post was throttled
    just before (an offence of hers)."""
    pod = [f"pod-{i}" for i in range(12)]
    d = Detector()
    feed(d, history(pod, T0 - 3 * DAY))
    ev: list[Event] = [("post", T0 - 7200, "ann", "ann", "old", "an older post")]
    ev += [("click", T0 - 3600 + i, a, "ann", "old", None) for i, a in enumerate(pod)]
    if author_offended:
        ev += bait_campaign("bait", "ann", T0 - 1800)
    for author, post, t in (("ann", "pp0", T0), ("bob", "pp1", T0 + 2 * HOUR)):
        ev.append(("post", t, author, author, post, "New photo set"))
        for i, a in enumerate(pod):
            ev.append(("share", t + 30 + 20 * i, a, author, post, None))
            ev.append(("like", t + 31 + 20 * i, a, author, post, None))
    feed(d, sorted(ev, key=lambda e: e[1]))
    return d


def test_a_pod_that_is_its_authors_network_pays_back_once_the_author_offends() -> None:
    # pp1 is throttled in lockstep with pp0. The pod are ann's network, so pp0 alone does not
    # look like a pod's post (friends who follow each other around); but ann was throttled of
    # late, and a throttled author's post in lockstep with a pod's is a pod's: retroactive,
    # every share and like clawed back (seed 5 of the tuning split: a pod's post never caught)
    d = _network_pod(author_offended=True)
    caught = {t.group: t for t in throttles(d.take_decisions())}
    assert "lockstep" in caught["e:pp1"].reasons
    retro = caught["e:pp0"]
    assert retro.retroactive and len(retro.clawed) == 24
    assert sum(c.post == "pp0" for c in d.take_clawbacks()) == 24
    # the same without her offence: a network, left alone
    d = _network_pod(author_offended=False)
    assert "e:pp0" not in {t.group for t in throttles(d.take_decisions())}
    assert [c for c in d.take_clawbacks() if c.post == "pp0"] == []


def _pod_after_a_pod_throttled_elsewhere(
    *, throttled: bool, order: list[int] | None = None
) -> tuple[Detector, list[int], list[Decision]]:
    """A pod of thirty that is also ann's network (they clicked her older post). Another
    partition's post of the pod, ``e:rp``, was throttled as a pod's at its 7th account, so that
    record (naming those seven) comes here before the post's first sample of 8, then its sample
    of 24 (the order a partition sends them in). Then the pod shares and likes ann's post within
    minutes, the seven accounts the record named last. ``throttled``: without the record,
    ``e:rp`` is only a post whose accounts ann's post shares (friends who meet on another
    post). ``order``: the pod's accounts that engage, in order (default: all thirty). Answers
    the detector, the multipliers of ann's post's shares and likes and its decisions."""
    pod = [f"pod-{i}" for i in range(30)]
    d = Detector()
    feed(d, history(pod, T0 - 3 * DAY))
    feed(d, [("post", T0 - 7200, "ann", "ann", "old", "an older post")])
    feed(d, [("click", T0 - 6000 + i, a, "ann", "old", None) for i, a in enumerate(pod)])
    first = T0 - 3 * HOUR
    if throttled:
        d.flag(Evidence.of("e:rp", first + 120, "pod", tuple(pod[:7])))
    d.flag(Evidence.of("e:rp", first, "engagers", tuple(pod[:8])))
    d.flag(Evidence.of("e:rp", first, "engagers", tuple(pod[:24])))
    d.take_decisions()
    d.take_evidence()
    who = [pod[k] for k in order] if order is not None else pod[7:] + pod[:7]
    mults = [d.observe("post", T0, "ann", "ann", "pp", "New photo set")]
    for i, a in enumerate(who):
        for j, kind in enumerate(("share", "like")):
            mults.append(d.observe(kind, T0 + 30 + 20 * i + j, a, "ann", "pp", None))
    return d, mults[1:], [x for x in throttles(d.take_decisions()) if x.post == "pp"]


def test_a_pod_that_is_its_authors_network_is_caught_by_its_throttle_on_another_partition() -> None:
    # held-out seed 29 (now looked at): a pod's third post, its author's network by then, had
    # one lockstep partner, another partition's post throttled as the pod's at its 7th account.
    # That record named those seven, the sample that followed flagged nobody, and the post was
    # throttled on flagged accounts at its 41st of 49 interactions (65 % counted in full). A
    # proven pod's sample now flags its accounts where it arrives, as its own partition flags
    # every account that engages the throttled post: the post is caught early, on flagged
    # accounts (a throttle that spreads to no one: it names only those)
    d, mults, caught = _pod_after_a_pod_throttled_elsewhere(throttled=True)
    [t] = caught
    assert "flagged_commenters" in t.reasons and t.comments <= 0.2 * len(mults)
    assert mults[-1] < FULL
    sent = [e.kind for e in d.take_evidence() if e.source == "e:pp"]
    assert [k for k in sent if k in THROTTLE_KINDS] == ["engagement"]
    # the same accounts, when the other post was never throttled: friends meeting, left alone
    _, mults, caught = _pod_after_a_pod_throttled_elsewhere(throttled=False)
    assert set(mults) == {FULL} and caught == []


def test_a_proven_pods_accounts_do_not_make_an_honest_post_spread_a_throttle() -> None:
    # an adversarial review of detector 8: six accounts of a throttled sock pod's sample (not in
    # its record) like a friends' post between twelve friends. Detector 8 judged the post in
    # lockstep on its one partner: a pod's own throttle, which flagged every friend and named
    # them all in a pod record to every partition. Now the six are flagged accounts, which may
    # throttle the post (as the seven the record named could before), but the throttle names no
    # friend and takes back only the six's interactions
    pod = [f"pod-{i}" for i in range(24)]
    friends = [f"fr{i}" for i in range(12)]
    d = Detector()
    feed(d, history(pod + friends, T0 - 3 * DAY))
    feed(d, [("post", T0 - 7200, "ann", "ann", "old", "an older post")])
    feed(d, [("click", T0 - 6000 + i, a, "ann", "old", None) for i, a in enumerate(friends)])
    first = T0 - 3 * HOUR
    d.flag(Evidence.of("e:rp", first + 120, "pod", tuple(pod[:5])))
    d.flag(Evidence.of("e:rp", first, "engagers", tuple(pod[:8])))
    d.flag(Evidence.of("e:rp", first, "engagers", tuple(pod)))
    d.take_evidence()
    d.observe("post", T0, "ann", "ann", "pp", "New photo set")
    for i, a in enumerate(friends[:6] + pod[5:11] + friends[6:]):
        if d.observe("like", T0 + 30 + 20 * i, a, "ann", "pp", None) == FULL:
            d.counted("like", 1000, ())
    caught = [x for x in throttles(d.take_decisions()) if x.post == "pp"]
    assert all("lockstep" not in x.reasons for x in caught)
    assert not any(d._flagged(f) for f in friends)
    records = [e for e in d.take_evidence() if e.kind in THROTTLE_KINDS]
    assert all(not set(e.actors) & set(friends) for e in records)
    assert {c.actor for c in d.take_clawbacks() if c.post == "pp"} <= set(pod[5:11])


def test_a_rings_first_post_pays_back_when_the_rings_grown_sample_arrives() -> None:
    # held-out seed 57 (now looked at): a ring's first post here shares half its accounts with
    # the ring's post on another partition, throttled there at its fifth comment. Its record
    # named those five, too few of this post's accounts; the sample of 24 that came after named
    # the rest, but a sample record throttled nothing, and the post kept every point
    ring = [f"r{i}" for i in range(30)]
    d = Detector()
    feed(d, history(ring, T0 - DAY))
    ev: list[Event] = [("post", T0, "quinn", "quinn", "q", "Thoughts on the new bridge design")]
    ev += [
        ("comment", T0 + 60 * (i + 1), a, "quinn", "q", genuine(400 + i))
        for i, a in enumerate(ring[10:28])
    ]
    feed(d, ev)
    assert throttles(d.take_decisions()) == []
    at = T0 + 3 * HOUR
    far = ring[:3] + ring[10:12] + ring[12:24] + ring[3:10]
    d.flag(Evidence.of("p:far", at + 300, "ring", tuple(far[:5])))
    d.flag(Evidence.of("p:far", at, "commenters", tuple(far[:8])))
    assert throttles(d.take_decisions()) == []  # (two of its accounts, then four: no lockstep)
    d.flag(Evidence.of("p:far", at, "commenters", tuple(far)))
    [t] = throttles(d.take_decisions())
    assert (t.post, t.retroactive) == ("q", True)
    # fourteen of its eighteen accounts are the ring's (r10-r23), over half: every comment pays
    # back, the first four because the ring's accounts made them, the other four accounts' too
    assert sorted(a for a, _ in t.clawed) == sorted(ring[10:28])


def _ann_and_her_friends(d: Detector, socks: list[str], friends: list[str]) -> list[Event]:
    """Six socks and sixty friends with a past; the friends are ann's network (they clicked
    her older post). Answers ann's post V, commented on by her friends (for the caller to feed
    with whatever follows)."""
    feed(d, history(socks + friends, T0 - DAY))
    feed(d, [("post", T0 - DAY, "ann", "ann", "old", "older post")])
    feed(d, [("click", T0 - DAY + 60 + i, f, "ann", "old", None) for i, f in enumerate(friends)])
    ev: list[Event] = [("post", T0, "ann", "ann", "V", "Pictures from our trip to the coast")]
    return ev + [
        ("comment", T0 + 60 * (i + 1), f, "ann", "V", genuine(100 + i))
        for i, f in enumerate(friends)
    ]


@pytest.mark.parametrize(("victims", "overlap"), [(12, 12), (20, 10), (36, 18)])
def test_friends_who_reply_on_a_rings_post_do_not_make_their_friends_post_a_rings(
    victims: int, overlap: int
) -> None:
    # an adversarial review of detector 11: six socks comment on two sock posts on another
    # partition, the second is throttled on lockstep (its ring record names the six); then
    # ann's friends reply there with real sentences, and its sample of 24 goes out. Here
    # ann's post, which only her friends commented on (no sock), was throttled retroactively
    # and paid back every comment: the grown sample's honest accounts were its "proof"
    socks, friends = [f"sock{i}" for i in range(6)], [f"fr{i}" for i in range(60)]
    here, there = Detector(), Detector()
    feed(there, history(socks + friends, T0 - DAY))
    feed(here, _ann_and_her_friends(here, socks, friends)[: 1 + victims])
    t = T0 + 2 * HOUR
    ev = []
    for k, author in enumerate(("mal1", "mal2")):
        ev.append(("post", t, author, author, f"M{k}", "Hot take on the coast trip"))
        for i, s in enumerate(socks):
            t += 30
            ev.append(("comment", t, s, author, f"M{k}", genuine(900 + 10 * k + i)))
    for i, f in enumerate(friends[:overlap] + [f"passer{i}" for i in range(18 - overlap)]):
        t += 60
        ev.append(("comment", t, f, "mal2", "M1", genuine(300 + i)))
    feed(there, ev)
    assert any("lockstep" in x.reasons for x in throttles(there.take_decisions()))
    records = there.take_evidence()
    assert ("commenters", 24) in {(e.kind, len(e.actors)) for e in records}
    for e in records:
        here.flag(e)
    assert [x for x in throttles(here.take_decisions()) if x.post == "V"] == []
    assert [c for c in here.take_clawbacks() if c.post == "V"] == []
    assert not any(here._flagged(f) for f in friends)


def test_answering_a_post_throttled_retroactively_earns_no_flag() -> None:
    # a review: a farm's flag for answering, in a word, a post whose throttle was proven by
    # another post (retroactively) spread that proof to the next thread the account joined; a
    # later review: a bait answerer's flag did too (it counts on the next empty answer)
    ring = [f"r{i}" for i in range(30)]
    late = [f"late{i}" for i in range(3)]
    d = Detector()
    feed(d, history(ring + late, T0 - DAY))
    ev: list[Event] = [("post", T0, "quinn", "quinn", "q", "Thoughts on the new bridge design")]
    ev += [
        ("comment", T0 + 60 * (i + 1), a, "quinn", "q", genuine(400 + i))
        for i, a in enumerate(ring[10:28])
    ]
    feed(d, ev)
    at = T0 + 60 * 19
    far = ring[:3] + ring[10:12] + ring[12:24] + ring[3:10]
    d.flag(Evidence.of("p:far", at + 300, "ring", tuple(far[:5])))
    d.flag(Evidence.of("p:far", at, "commenters", tuple(far)))
    [t] = throttles(d.take_decisions())
    assert (t.post, t.retroactive) == ("q", True)
    mults = feed(
        d, [("comment", at + 1 + i, a, "quinn", "q", "Congrats!!") for i, a in enumerate(late)]
    )
    assert d.groups["p:q"].reasons == ["lockstep", "retroactive"] and max(mults) < FULL
    assert [d._flag_level(a) for a in late] == [0] * 3


def test_friends_who_reply_on_a_rings_post_here_do_not_make_their_friends_post_pay_back() -> None:
    # the same on one partition (a review; detector 10 too): the six socks, flagged by their
    # ring's throttle, give ann an offence by commenting on a small post of hers; then ten of
    # her friends reply on the ring's post M1. ann's post V, which no sock touched, paid back
    # all twenty comments: M1's own throttle "proved" every account V shares with it
    socks, friends = [f"sock{i}" for i in range(6)], [f"fr{i}" for i in range(60)]
    d = Detector()
    ev = _ann_and_her_friends(d, socks, friends)[:21]
    t = T0 + 2 * HOUR
    for k, author in enumerate(("mal1", "mal2")):
        ev.append(("post", t, author, author, f"M{k}", "Hot take"))
        for i, s in enumerate(socks):
            t += 30
            ev.append(("comment", t, s, author, f"M{k}", genuine(900 + 10 * k + i)))
    ev.append(("post", t + 60, "ann", "ann", "X", "Morning run done"))
    ev += [
        ("comment", t + 120 + 60 * i, s, "ann", "X", genuine(950 + i)) for i, s in enumerate(socks)
    ]
    t += 600
    for i, f in enumerate(friends[:10] + [f"passer{j}" for j in range(8)]):
        ev.append(("comment", t + 60 * i, f, "mal2", "M1", genuine(300 + i)))
    feed(d, ev)
    caught = {x.post for x in throttles(d.take_decisions())}
    assert {"M1", "X"} <= caught  # (the ring's post, and ann's offence)
    assert "V" not in caught
    assert [c for c in d.take_clawbacks() if c.post == "V"] == []


def _five_socks_and_their_post(d: Detector) -> tuple[list[str], list[str], list[Event]]:
    """Five socks and forty people with a past, and the socks' own post M commented on by the
    five (events for the caller to feed, with what follows from ``T0 + HOUR``)."""
    socks, people = [f"sock{i}" for i in range(5)], [f"h{i}" for i in range(40)]
    feed(d, history(socks + people, T0 - DAY))
    ev: list[Event] = [("post", T0, "mal", "mal", "M", "a sock post")]
    ev += [
        ("comment", T0 + 30 * (i + 1), s, "mal", "M", genuine(900 + i)) for i, s in enumerate(socks)
    ]
    return socks, people, ev


def test_a_throttle_on_lockstep_alone_names_the_accounts_that_move_not_the_people() -> None:
    # an adversarial review: five socks with one post of their own comment among a new
    # author's first fifteen commenters (real sentences, strangers to the author). The post is
    # throttled on lockstep; its record named all fifteen and flagged the ten people as a
    # farm's, here and on every partition, where eight of them then got a friend's advice
    # thread throttled. Now only the five that move together are a ring's
    d = Detector()
    socks, people, ev = _five_socks_and_their_post(d)
    t = T0 + HOUR
    ev.append(("post", t, "newbie", "newbie", "V", "Slides from my first talk"))
    for i, a in enumerate(people[:10] + socks + people[10:]):
        t += 90
        ev.append(("comment", t, a, "newbie", "V", genuine(100 + i)))
        ev.append(("like", t + 5, f"lk{i}", "newbie", "V", None))
    feed(d, ev)
    assert any("lockstep" in x.reasons for x in throttles(d.take_decisions()) if x.post == "V")
    records = [e for e in d.take_evidence() if e.kind in THROTTLE_KINDS]
    assert {a for e in records if e.kind == "ring" for a in e.actors} == set(socks)
    # the people it sampled: no flag, here or where the records go
    there = Detector()
    for e in records:
        there.flag(e)
    for det in (d, there):
        assert not any(det._flagged(a) for a in people)
        assert all(det._flag_level(s) == FARM_FLAG for s in socks)


def test_people_who_congratulate_beside_a_ring_do_not_carry_a_flag_to_the_next_post() -> None:
    # an adversarial review of detector 12: five socks in lockstep comment first on a new
    # author's news, eight people say "Congrats!!". The throttle (lockstep alone) flagged the
    # eight as bait answerers, and such a flag counts on empty answers: their "Congrats!!" on
    # the author's next post got it throttled with 7 of 20 comments counted. Only the accounts
    # that move together are flagged now
    d = Detector()
    socks, people, ev = _five_socks_and_their_post(d)
    t = T0 + HOUR
    ev.append(("post", t, "bob", "bob", "V", "I got the job!"))
    for i, a in enumerate(socks + people[:8] + people[20:27]):
        t += 90
        text = "Congrats!!" if a in people[:8] else genuine(100 + i)
        ev.append(("comment", t, a, "bob", "V", text))
    feed(d, ev)
    assert any(x.post == "V" and "lockstep" in x.reasons for x in throttles(d.take_decisions()))
    there = Detector()
    for e in d.take_evidence():
        there.flag(e)
    assert not any(det._flagged(a) for det in (d, there) for a in people[:8])
    t += 6 * HOUR
    ev = [("post", t, "bob", "bob", "W", "Starting Monday: any advice for the first week?")]
    for i, a in enumerate(people[:8] + people[8:20]):
        t += 120
        text = "Congrats!!" if a in people[:8] else genuine(300 + i)
        ev.append(("comment", t, a, "bob", "W", text))
    mults = feed(d, ev)
    assert [x for x in throttles(d.take_decisions()) if x.post == "W"] == []
    assert all(m == FULL for m in mults)


def test_one_flagged_account_commenting_often_is_one_flagged_commenter() -> None:
    # an adversarial review: one sock with a farm's flag, commenting six times among twenty
    # friends' real answers on a thread of the author's network, counted as six flagged
    # commenters and got the thread throttled (11 of 26 counted). An account counts once
    socks, people = [f"sock{i}" for i in range(5)], [f"h{i}" for i in range(30)]
    d = Detector()
    feed(d, history(socks + people, T0 - DAY))
    ev: list[Event] = []
    t = T0
    for author, post in (("mal", "M"), ("carl", "C")):
        ev.append(("post", t, author, author, post, "a sock post"))
        ev += [
            ("comment", t + 30 * (i + 1), s, author, post, genuine(900 + i))
            for i, s in enumerate(socks)
        ]
        t += HOUR
    feed(d, ev)
    assert d._flag_level("sock0") == FARM_FLAG
    feed(d, [("post", t, "bob", "bob", "old", "older post")])
    feed(d, [("like", t + 1 + i, a, "bob", "old", None) for i, a in enumerate(people)])
    d.take_decisions()
    t += 3 * HOUR
    seq = people[:20]
    for j in range(6):
        seq.insert(2 + 3 * j, "sock0")
    ev = [("post", t, "bob", "bob", "W", "Any advice for the first week?")]
    ev += [
        ("comment", t + 120 * (i + 1), a, "bob", "W", None if a == "sock0" else genuine(300 + i))
        for i, a in enumerate(seq)
    ]
    mults = feed(d, ev)
    assert [x for x in throttles(d.take_decisions()) if x.post == "W"] == []
    assert all(m == FULL for m in mults)


def _network_post_grief(offence: str, *, mutual: str = "") -> tuple[Detector, list[str]]:
    """ann has 80 friends (they clicked her older post) and an offence of late; then her post P
    draws 60 of them, with six other accounts among them, and those six comment on one other
    post, R, which is throttled in lockstep with P. ``offence``: how ann got hers: the six,
    flagged by a ring's throttle elsewhere, commented on a small post of hers (a throttle that rests on
    flagged accounts alone: an attacker can make one), or a false throttle of a thread of
    thirty first-time fans' congratulations (no attacker). ``mutual``: thirty of P's friends are
    bob's friends too and comment on his post Q as well, so P is in lockstep with an honest post
    (``"six too"``: and so do the six, flagged: Q is throttled on them)."""
    six = [f"six{i}" for i in range(6)]
    friends = [f"fr{i}" for i in range(80)]
    fans = [f"fan{i}" for i in range(30)]  # (with the friends and the six: ≤ NETWORK accounts)
    d = Detector()
    feed(d, history(six + friends + fans, T0))
    feed(d, [("post", T0 - 5 * HOUR, "ann", "ann", "old", "an older post")])
    feed(d, [("click", T0 - 4 * HOUR + i, f, "ann", "old", None) for i, f in enumerate(friends)])
    if mutual:
        feed(d, [("post", T0 - 5 * HOUR, "bob", "bob", "oldb", "an older post")])
        feed(
            d, [("click", T0 - 4 * HOUR + i, f, "bob", "oldb", None) for i, f in enumerate(friends)]
        )
    t = T0
    if offence == "flagged":
        d.flag(Evidence.of("p:elsewhere", T0 - HOUR, "ring", tuple(six)))
        ev: list[Event] = [("post", t, "ann", "ann", "X", "Morning run done")]
        ev += [
            ("comment", t + 120 * (i + 1), a, "ann", "X", genuine(i))
            for i, a in enumerate(friends[:6] + six)
        ]
    else:
        cheers = ["Congrats!!", "congratulations 🎉", "So happy for you", "congrats ❤️", "yay!"]
        ev = [("post", t, "ann", "ann", "X", "We got engaged!")]
        for i, a in enumerate(fans):
            ev.append(("comment", t + 20 * (i + 1), a, "ann", "X", cheers[i % len(cheers)]))
            ev.append(("like", t + 20 * (i + 1) + 3, a, "ann", "X", None))
    feed(d, ev)
    assert {x.post for x in throttles(d.take_decisions())} == {"X"}  # (the offence)
    d.take_clawbacks()
    t += 3 * HOUR
    order = list(friends[6:66])
    for k, a in enumerate(six):
        order.insert(8 + 10 * k, a)
    ev = [("post", t, "ann", "ann", "P", "Pictures from our trip to the coast")]
    ev += [
        ("comment", t + 120 * (i + 1), a, "ann", "P", genuine(100 + i)) for i, a in enumerate(order)
    ]
    t += 120 * len(order) + 600
    if mutual:
        ev.append(("post", t, "bob", "bob", "Q", "Dinner with the crew, part two"))
        ev += [
            ("comment", t + 60 * (i + 1), a, "bob", "Q", genuine(400 + i))
            for i, a in enumerate(friends[6:36])
        ]
        if mutual == "six too":
            ev += [
                ("comment", t + 65 + 60 * k, a, "bob", "Q", genuine(950 + k))
                for k, a in enumerate(six)
            ]
            ev.sort(key=lambda e: e[1])
        t += 60 * 31
    ev.append(("post", t, "mallory", "mallory", "R", "Buy my course"))
    ev += [
        ("comment", t + 60 * (i + 1), a, "mallory", "R", genuine(900 + i))
        for i, a in enumerate(six)
    ]
    feed(d, ev)
    return d, six


@pytest.mark.parametrize("mutual", ["", "friends", "six too"])
@pytest.mark.parametrize("offence", ["flagged", "false throttle"])
def test_an_offence_does_not_make_a_network_post_with_a_few_ring_accounts_a_rings(
    offence: str, mutual: str
) -> None:
    # the offender exception to the network rule (a pod's author collects throttles of its
    # own) needs most of the post's sample in lockstep with proven ring posts: six accounts
    # among sixty friends cost P nothing beyond their own interactions; nor does an honest
    # post of mutual friends count as a second partner (it proves nothing), even once the six
    # got it throttled (on flagged accounts alone: no proof either)
    d, six = _network_post_grief(offence, mutual=mutual)
    decisions = throttles(d.take_decisions())
    assert "P" not in [x.post for x in decisions if x.retroactive]
    assert d.groups["p:P"].mult == FULL
    assert all(c.actor in six for c in d.take_clawbacks() if c.post == "P")


def _strangers_on_a_network_post(friends: int, *, mutual: bool, trigger: str) -> Detector:
    """ann's post V draws ``friends`` of her network (they clicked her older post) and five
    other accounts among them; the five then comment, eight times each, on two posts of their
    own (mallory's R0 and R1: small samples that are all the five), and one more comment comes
    to V (``trigger``: from one of the five, or from a friend). ``mutual``: R1 is instead an
    honest post of bob's (whose network they are too) that the friends comment on as well."""
    five = [f"A{i}" for i in range(5)]
    fr = [f"fr{i}" for i in range(friends + 1)]
    d = Detector()
    feed(d, history(five + fr, T0 - 2 * DAY))
    ev: list[Event] = [("post", T0 - 2 * DAY, "ann", "ann", "old", "an older post")]
    ev += [("click", T0 - 2 * DAY + 100 + i, f, "ann", "old", None) for i, f in enumerate(fr)]
    if mutual:
        ev.append(("post", T0 - 2 * DAY, "bob", "bob", "oldb", "an older post"))
        ev += [("click", T0 - DAY + i, f, "bob", "oldb", None) for i, f in enumerate(fr)]
    feed(d, ev)
    t = T0
    order = fr[:friends]
    for k, a in enumerate(five):
        order.insert(2 + 3 * k, a)
    ev = [("post", t, "ann", "ann", "V", "Pictures from our trip to the coast")]
    for i, a in enumerate(order):
        t += 120 + (i * i * 137) % 360
        ev.append(("comment", t, a, "ann", "V", genuine(100 + i)))
    feed(d, ev)
    assert throttles(d.take_decisions()) == []
    t += 600
    cheap = ["nice", "1", "🔥🔥", "yes", "wow", "amen", "👍", "ok"]
    for r in range(2):
        if mutual and r == 1:  # (bob's friends are ann's: half of V's sample)
            ev = [("post", t, "bob", "bob", "R1", "Dinner with the crew")]
            for i, a in enumerate(fr[: len(order) // 2]):
                t += 90
                ev.append(("comment", t, a, "bob", "R1", genuine(400 + i)))
        else:
            ev = [("post", t, "mallory", "mallory", f"R{r}", "Buy my course")]
            for i in range(8):
                t += 20
                ev.append(("comment", t, five[i % 5], "mallory", f"R{r}", cheap[i]))
        feed(d, ev)
    t += 60
    feed(d, [("comment", t, five[0] if trigger == "five" else fr[friends], "ann", "V", "and")])
    return d


@pytest.mark.parametrize("friends", [20, 60])
@pytest.mark.parametrize("mutual", [False, True])
@pytest.mark.parametrize("trigger", ["five", "friend"])
def test_a_few_strangers_whose_own_posts_move_together_do_not_make_a_network_post_a_rings(
    friends: int, mutual: bool, trigger: str
) -> None:
    # five accounts among ann's friends, with two posts of their own (or one, and an honest
    # post of mutual friends): her post is in lockstep with both, since each shares most of
    # *their* samples; but a post of the author's network is a ring's only when most of its
    # own sample moves with its partners. Before: throttled live, paying back every honest
    # interaction after the fourth (17-57 of them, 20-76k mp)
    d = _strangers_on_a_network_post(friends, mutual=mutual, trigger=trigger)
    assert [x for x in throttles(d.take_decisions()) if x.post == "V"] == []
    assert [c for c in d.take_clawbacks() if c.post == "V"] == []
    assert d.groups["p:V"].mult == FULL


def test_a_live_throttle_claws_back_what_flagged_accounts_counted_before_it() -> None:
    # twelve accounts flagged by a ring's throttle on another partition; two fans comment first on
    # ann's post, then the flagged accounts: the throttle starts at the sixth comment (flagged
    # accounts decide before min_comments), and what the first three flagged accounts counted
    # before it is taken back; the fans keep theirs (seed 5 of the tuning split: ring posts at
    # 25-33 %, their first comments from the ring's flagged accounts)
    farm = [f"farm{i}" for i in range(12)]
    fans = ["fan0", "fan1"]
    d = Detector()
    feed(d, history(farm + fans, T0))
    d.flag(Evidence.of("p:far", T0, "ring", tuple(farm)))
    t = T0 + 600
    ev: list[Event] = [("post", t, "ann", "ann", "q", "Pictures from the weekend")]
    for i, a in enumerate(fans + farm):
        ev.append(("comment", t + 90 * (i + 1), a, "ann", "q", genuine(700 + i)))
    feed(d, ev)
    [x] = throttles(d.take_decisions())
    assert x.comments == 5 and "flagged_commenters" in x.reasons and not x.retroactive
    assert [a for a, _ in x.clawed] == ["farm0", "farm1", "farm2"]
    back = d.take_clawbacks()
    assert [(c.actor, c.post) for c in back] == [(a, "q") for a in ("farm0", "farm1", "farm2")]
    full = {e[2]: points_of(e) for e in ev[1:]}
    m = round(x.multiplier * FULL)
    assert m < FULL and all(
        c.withheld_mp == full[c.actor] - full[c.actor] * m // FULL for c in back
    )
    g = d.groups["p:q"]
    assert [g.commenters[e[0]] for e in g.counted] == fans  # (kept, for a claw that may follow)


@pytest.mark.parametrize("days", [2, 8])
def test_a_flag_expires_a_week_after_it_was_given_however_active_the_account(days: int) -> None:
    # twelve accounts flagged once as a ring's (say, under a throttle that was false), then active every
    # day: a flag is evidence of a week, not a mark for life (an account's own idle horizon is
    # renewed by any action, so it alone never let the flag go)
    farm = [f"farm{i}" for i in range(12)]
    d = Detector()
    feed(d, history(farm, T0))
    d.flag(Evidence.of("p:far", T0, "ring", tuple(farm)))
    feed(
        d,
        [
            ("like", T0 + k * DAY + i, a, "elsewhere", None, None)
            for k in range(1, days + 1)
            for i, a in enumerate(farm)
        ],
    )
    t = T0 + days * DAY + HOUR
    ev: list[Event] = [("post", t, "ann", "ann", "q", "Pictures from the weekend")]
    ev += [
        ("comment", t + 90 * (i + 1), a, "ann", "q", genuine(700 + i)) for i, a in enumerate(farm)
    ]
    feed(d, ev)
    flagged = [x for x in throttles(d.take_decisions()) if "flagged_commenters" in x.reasons]
    assert bool(flagged) == (days < 7)


def test_a_flag_from_late_evidence_lasts_a_week_from_when_it_arrived() -> None:
    # another partition's clock runs days behind this one: its evidence (stamped with its own
    # event time) flags the accounts for a week from when it reaches this partition, not from
    # the other partition's time (which would leave the flag a few hours, or none)
    farm = [f"farm{i}" for i in range(12)]
    d = Detector()
    feed(d, history(farm, T0))
    feed(d, [("like", T0 + 7 * DAY + i, a, "elsewhere", None, None) for i, a in enumerate(farm)])
    d.flag(Evidence.of("p:far", T0 - HOUR, "ring", tuple(farm)))  # (over 7 days behind)
    t = T0 + 7 * DAY + 2 * HOUR
    ev: list[Event] = [("post", t, "ann", "ann", "q", "Pictures from the weekend")]
    ev += [
        ("comment", t + 90 * (i + 1), a, "ann", "q", genuine(700 + i)) for i, a in enumerate(farm)
    ]
    feed(d, ev)
    assert any("flagged_commenters" in x.reasons for x in throttles(d.take_decisions()))


def test_friends_liking_each_others_posts_over_hours_are_no_pod() -> None:
    friends = [f"fr-{i}" for i in range(20)]
    d = Detector()
    for k in range(6):
        author, post, t0 = friends[k], f"fp{k}", T0 + k * DAY
        d.observe("post", t0, author, author, post, f"Holiday photos, day {k}")
        for i, actor in enumerate(a for a in friends if a != author):
            # people see the post when they see it: over the evening, most after the first hour
            d.observe("like", t0 + 1800 + 1500 * i, actor, author, post, None)
    assert throttles(d.take_decisions()) == []


def test_evidence_flags_accounts_and_names_a_throttles_accounts() -> None:
    d = Detector()
    d.flag(Evidence.of("p:far", T0, "comments", ("x", "y")))
    assert d.commenters["x"].flagged == 1 and d.commenters["y"].flagged == 1
    assert d.newest == T0  # evidence moves the clock like an event

    who = [f"s{i}" for i in range(40)]
    d2 = Detector(BaitParams())
    events: list[Event] = [*history(who, T0), ("post", T0, "ann", "ann", "q", NEUTRAL)]
    events += answers("q", "ann", T0, ["sunrise", "sunset"] * 20, who)
    feed(d2, events)
    [t] = throttles(d2.take_decisions())
    sent = d2.take_evidence()
    kinds = [e.kind for e in sent]
    assert kinds.count("commenters") == 4  # the post's sample at 8, 16, 24 and 40 accounts
    [thr] = [e for e in sent if e.kind == "comments"]
    assert thr.source == "p:q" and thr.at == t.at and set(thr.actors) <= set(who)
    # the same decision again (a redelivered batch) names the same record
    assert Evidence.of("p:q", t.at, "comments", thr.actors).id == thr.id


def test_near_duplicates_are_word_sets_three_fifths_alike() -> None:
    from hypothesis import given
    from hypothesis import strategies as st

    from leaderboard.bait.shapes import Shapes, near_any

    def _near(a: set[int], b: list[int]) -> bool:
        # the definition: Jaccard similarity of the two word sets at least 3/5
        return len(a & set(b)) / len(a | set(b)) >= 0.6

    @given(st.sets(st.integers(0, 12), min_size=1), st.lists(st.lists(st.integers(0, 12))))
    def agree(a: set[int], shapes: list[list[int]]) -> None:
        shapes = [sorted(set(s)) for s in shapes if s]
        assert near_any(a, shapes) == any(_near(a, s) for s in shapes)
        # the index answers the same, shape by shape as they are appended, asked twice (the
        # second answer may come from what it learnt)
        stored: list[list[int]] = []
        index = Shapes(stored)
        for s in [*shapes, []]:
            for _ in range(2):
                assert index.near(sorted(a)) == any(_near(a, b) for b in stored)
            if s:
                stored.append(s)

    agree()
    assert _near({1, 2}, [1, 2, 3]) and not _near({1, 2}, [1, 2, 3, 4])


def test_only_empty_answers_under_a_farmed_post_flag_their_accounts() -> None:
    # a real reply under a throttled post is a person, not the farm: no flag, so no cascade
    d = Detector()
    who = [f"s{i}" for i in range(60)]
    events: list[Event] = [*history([*who, "reader", "echo"], T0)]
    events.append(("post", T0, "ann", "ann", "q", NEUTRAL))
    events += answers("q", "ann", T0, ["sunrise", "sunset"] * 30, who)
    feed(d, events)
    assert throttles(d.take_decisions())
    later = T0 + 60 + 4 * 60 + 30
    feed(d, [("comment", later, "reader", "ann", "q", genuine(7))])
    feed(d, [("comment", later + 1, "echo", "ann", "q", "sunset!!")])
    assert "reader" not in d.commenters or d.commenters["reader"].flagged == 0
    assert d.commenters["echo"].flagged == 1


def _bait_answerers_then(thread: str, *, evidence: bool) -> list[Decision]:
    """Sixty accounts with a past answer an either-or post in a word: a bait post, throttled on
    its answers alone (strangers, one-word answers). A day later some of them comment on bob's
    post: ``thread`` "advice" (fifteen of them among thirty-five others, real answers, a
    sentence each: too few of the sixty to be in lockstep, but 30 % of the thread) or "flood"
    (forty of them, without a word). ``evidence``: the bait post was on another partition, and its
    throttle's record (kind ``comments``) is what reached this one. Answers the decisions about
    bob's post."""
    who = [f"s{i}" for i in range(60)]
    others = [f"o{i}" for i in range(35)]
    home = Detector()
    d = Detector() if evidence else home
    for det in {id(home): home, id(d): d}.values():
        feed(det, history(who + others, T0))
    events: list[Event] = [("post", T0, "ann", "ann", "q", NEUTRAL)]
    events += answers("q", "ann", T0, ["sunrise", "sunset"] * 30, who)
    feed(home, events)
    [bait] = throttles(home.take_decisions())
    assert "lockstep" not in bait.reasons and "fresh" not in bait.reasons
    if evidence:
        [record] = [e for e in home.take_evidence() if e.kind == "comments"]
        d.flag(record)
    t = T0 + DAY
    ev: list[Event] = [("post", t, "bob", "bob", "b", "How do I fix a dripping tap?")]
    if thread == "advice":
        crowd = list(others)
        for k in range(15):
            crowd.insert(1 + 10 * k // 3, who[k])
        ev += [
            ("comment", t + 60 * (i + 1), a, "bob", "b", genuine(300 + i))
            for i, a in enumerate(crowd)
        ]
    else:
        ev += [("comment", t + 5 * (i + 1), a, "bob", "b", None) for i, a in enumerate(who[:40])]
    feed(d, ev)
    return [x for x in throttles(d.take_decisions()) if x.post == "b"]


@pytest.mark.parametrize("evidence", [False, True])
def test_answering_bait_in_a_word_does_not_make_the_next_thread_you_join_bait(
    evidence: bool,
) -> None:
    # held-out seed 34: an advice thread was throttled on flagged accounts, flagged a week for
    # answering either-or, tag-a-friend and puzzle posts in a word. Real people answer bait:
    # such a flag counts only where the account again answers with nothing
    assert _bait_answerers_then("advice", evidence=evidence) == []
    # the same accounts flooding a post without a word: a farm moving on, throttled on its flags
    [flood] = _bait_answerers_then("flood", evidence=evidence)
    assert "flagged_commenters" in flood.reasons


@pytest.mark.parametrize("kind", ["engagement", "comments"])
def test_a_pod_throttles_record_flags_a_farm_and_a_bait_posts_record_answerers(kind: str) -> None:
    # twelve accounts named by another partition's throttle, then they share and like a post
    # here within minutes. A pod's throttle (record ``engagement``: it rested on flagged
    # accounts) names a farm's accounts, whose shares and likes count everywhere (held-out seed
    # 39: a pod's second post never throttled when they counted only on empty comments); a
    # comment throttle's (``comments``) names people who answered bait, which a like is not
    pod = [f"pod-{i}" for i in range(12)]
    d = Detector()
    feed(d, history(pod, T0 - DAY))
    d.flag(Evidence.of("e:far", T0 - HOUR, kind, tuple(pod)))
    ev: list[Event] = [("post", T0, "ann", "ann", "pp", "New photo set")]
    for i, a in enumerate(pod):
        ev += [("share", T0 + 30 + 20 * i, a, "ann", "pp", None)]
        ev += [("like", T0 + 31 + 20 * i, a, "ann", "pp", None)]
    mults = feed(d, ev)[1:]
    caught = [x for x in throttles(d.take_decisions()) if x.post == "pp"]
    if kind == "engagement":
        [t] = caught
        assert "flagged_commenters" in t.reasons and mults[-1] < FULL
    else:
        assert caught == [] and set(mults) == {FULL}


def test_evidence_edge_cases_decode_and_are_judged_as_documented() -> None:
    # a post id of the longest allowed length still makes valid evidence
    long = "p:" + "x" * 128
    e = Evidence.of(long, T0, "commenters", ("a", "b"))
    assert Evidence.from_json(e.to_json()) == e
    # a partition's own post sample (a replayed log) is not another partition's post
    d = Detector()
    d.observe("post", T0, "ann", "ann", "mine", "hello")
    d.flag(Evidence.of("p:mine", T0, "commenters", ("a", "b", "c", "d", "e")))
    assert d.shadows == {}
    # an account idle beyond the horizon that gets flagged starts afresh (no old history)
    d.observe("like", T0, "old", "someone", None, None)
    d.observe("like", T0 + 8 * DAY, "other", "someone", None, None)
    d.flag(Evidence.of("p:far", T0 + 8 * DAY, "comments", ("old",)))
    c = d.commenters["old"]
    assert (c.flagged, c.first, c.acts) == (1, None, 0)


def test_evidence_ids_follow_the_event_id_rule() -> None:
    # a line separator passes for an id nowhere: not in events, not in evidence
    import pytest

    from leaderboard.bait.evidence import BadEvidence

    bad = Evidence.of("p:x", T0, "comments", ("ok", "line\u2028break")).to_json()
    with pytest.raises(BadEvidence):
        Evidence.from_json(bad)
