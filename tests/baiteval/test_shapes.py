"""Each campaign and organic shape of the evaluation produces what it says it does
(baiteval/campaigns.py, baiteval/organic.py)."""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from itertools import combinations
from typing import Any

from baiteval.labels import EvalStream, PostLabel
from broker.producer import partition_for
from tests.baiteval.conftest import events_by_post, of_shape

WORD = re.compile(r"[^\W\d_]+")
COMMENTS = ("comment", "reply")


def comments(evs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in evs if e["kind"] in COMMENTS]


def known_before(s: EvalStream) -> dict[str, dict[str, float]]:
    """target → actor → ts of the actor's first interaction with the target."""
    out: defaultdict[str, dict[str, float]] = defaultdict(dict)
    for e in s.events:
        if e["actor"] != e["target"]:
            out[e["target"]].setdefault(e["actor"], e["ts"])
    return out


def first_seen(s: EvalStream) -> dict[str, float]:
    out: dict[str, float] = {}
    for e in s.events:
        out.setdefault(e["actor"], e["ts"])
    return out


def campaigns_of(labels: list[PostLabel]) -> dict[str, list[PostLabel]]:
    out: defaultdict[str, list[PostLabel]] = defaultdict(list)
    for lb in labels:
        assert lb.campaign is not None
        out[lb.campaign].append(lb)
    return dict(out)


# -- campaigns ----------------------------------------------------------------------------


def test_either_or_is_answered_by_strangers_in_a_word_or_two(s1: EvalStream) -> None:
    by_post, known = events_by_post(s1), known_before(s1)
    for lb in of_shape(s1, "either-or"):
        post = by_post[lb.post][0]["text"].lower()
        cs = comments(by_post[lb.post])
        assert 150 <= len(cs) <= 800
        assert len({e["actor"] for e in cs}) >= 0.8 * len(cs)
        assert sum(len(e["text"].split()) <= 3 for e in cs) >= 0.75 * len(cs)
        # the answers echo the options the post offers
        echo = sum(bool(set(WORD.findall(e["text"].lower())) & set(WORD.findall(post))) for e in cs)
        assert echo >= 0.5 * len(cs)
        # strangers: nobody among them had dealt with the author before the post
        assert not any(known[lb.author].get(e["actor"], lb.start) < lb.start for e in cs)


def test_tag_friend_is_answered_with_mentions(s1: EvalStream) -> None:
    by_post = events_by_post(s1)
    for lb in of_shape(s1, "tag-friend"):
        cs = comments(by_post[lb.post])
        mentions = [e for e in cs if "@" in e["text"]]
        assert len(cs) >= 150 and len(mentions) >= 0.5 * len(cs)
        # mostly the @mention alone or with a word or an emoji
        assert sum(len(e["text"].split()) <= 3 for e in mentions) >= 0.7 * len(mentions)
        handles = {h for e in mentions for h in re.findall(r"@[\w.]+", e["text"].lower())}
        assert len(handles) >= 0.5 * len(mentions)  # people tag their own friends


def test_greeting_farm_is_hundreds_of_near_identical_greetings(s1: EvalStream) -> None:
    by_post = events_by_post(s1)
    for lb in of_shape(s1, "greeting-farm"):
        cs = comments(by_post[lb.post])
        assert len(cs) >= 200
        assert len({e["actor"] for e in cs}) >= 0.95 * len(cs)
        opening = Counter(" ".join(WORD.findall(e["text"].lower())[:1]) for e in cs)
        assert sum(n for _, n in opening.most_common(3)) >= 0.6 * len(cs)


def test_ring_members_comment_on_each_others_posts_post_after_post(s1: EvalStream) -> None:
    by_post = events_by_post(s1)
    rings = campaigns_of(of_shape(s1, "ring"))
    assert rings
    for posts in rings.values():
        assert 8 <= len(posts) <= 20
        commenters = [{e["actor"] for e in comments(by_post[lb.post])} for lb in posts]
        members = set().union(*commenters)
        authors = {lb.author for lb in posts}
        assert authors <= members  # the authors are ring members too
        assert len({partition_for(a.encode(), 4) for a in authors}) >= 2
        # the same accounts, post after post: most of a post's commenters comment on at least
        # three other posts of the ring, and two posts share most of the smaller one's
        times = Counter(a for c in commenters for a in c)
        for c in commenters:
            assert sum(times[a] >= 4 for a in c) >= 0.8 * len(c)
        overlap = [len(a & b) / min(len(a), len(b)) for a, b in combinations(commenters, 2)]
        assert statistics.median(overlap) >= 0.5
        assert max(lb.start for lb in posts) - min(lb.start for lb in posts) >= 6 * 3600
        # generic praise, but varied
        texts = [e["text"] for lb in posts for e in comments(by_post[lb.post])]
        assert len(set(texts)) >= 0.3 * len(texts)


def test_textless_flood_comes_from_accounts_with_no_history_and_nothing_else(
    s1: EvalStream,
) -> None:
    by_post, seen = events_by_post(s1), first_seen(s1)
    for lb in of_shape(s1, "textless-flood"):
        evs = by_post[lb.post][1:]
        assert {e["kind"] for e in evs} <= set(COMMENTS)  # no likes, shares, clicks
        assert len(evs) >= 200 and all("text" not in e for e in evs)
        assert evs[-1]["ts"] - lb.start <= 15 * 60
        firsts: dict[str, float] = {}
        for e in evs:
            firsts.setdefault(e["actor"], e["ts"])
        # each commenter's first event anywhere in the stream is its comment here
        assert all(seen[a] == ts for a, ts in firsts.items())


def test_pod_members_share_and_like_each_others_posts_within_minutes(s1: EvalStream) -> None:
    by_post = events_by_post(s1)
    pods = campaigns_of(of_shape(s1, "pod"))
    assert pods
    for posts in pods.values():
        assert len(posts) >= 10
        engaged = [
            {e["actor"] for e in by_post[lb.post] if e["kind"] in ("share", "like")} for lb in posts
        ]
        overlap = [len(a & b) / len(a | b) for a, b in combinations(engaged, 2)]
        assert statistics.median(overlap) >= 0.4  # the same group, post after post
        delays = [
            e["ts"] - lb.start
            for lb in posts
            for e in by_post[lb.post]
            if e["kind"] in ("share", "like")
        ]
        assert sum(d <= 15 * 60 for d in delays) >= 0.8 * len(delays)
        assert statistics.median(len(lb.comments) for lb in posts) <= 3
        for lb in posts:
            assert lb.farmed and len(lb.farmed) == len(
                [e for e in by_post[lb.post] if e["kind"] in ("share", "like")]
            )


# -- organic ------------------------------------------------------------------------------


def test_network_congrats_comes_from_people_who_dealt_with_the_author_before(
    s1: EvalStream,
) -> None:
    by_post, known = events_by_post(s1), known_before(s1)
    for lb in of_shape(s1, "network-congrats"):
        cs = [e for e in comments(by_post[lb.post]) if e["actor"] != lb.author]
        friends = sum(known[lb.author].get(e["actor"], lb.start) < lb.start for e in cs)
        assert friends >= 0.75 * len(cs) and len(cs) >= 30
        # the history is in the stream: the author's earlier posts, commented on and liked
        assert sum(p.shape == "baseline" and p.author == lb.author for p in s1.posts.values()) >= 3


def test_viral_news_is_shared_and_read_more_than_commented(s1: EvalStream) -> None:
    by_post = events_by_post(s1)
    for lb in of_shape(s1, "viral-news"):
        kinds = Counter(e["kind"] for e in by_post[lb.post])
        assert kinds["share"] + kinds["click"] >= 5 * len(lb.comments)


def test_ama_and_advice_have_long_answers_and_people_replying_to_each_other(
    s1: EvalStream,
) -> None:
    by_post = events_by_post(s1)
    for shape in ("ama", "advice"):
        for lb in of_shape(s1, shape):
            cs = comments(by_post[lb.post])
            assert statistics.median(len(e["text"]) for e in cs) >= 40
            counts = Counter(e["actor"] for e in cs if e["actor"] != lb.author)
            repeat = sum(n - 1 for n in counts.values())
            assert repeat >= 0.1 * len(cs)
            assert sum(e["kind"] == "reply" for e in cs) >= 0.15 * len(cs)
            assert any(e["actor"] == lb.author for e in cs)  # the author answers


def test_pod_like_friends_like_each_other_but_hours_apart(s1: EvalStream) -> None:
    by_post = events_by_post(s1)
    posts = of_shape(s1, "pod-like")
    assert posts and not any(lb.bait for lb in posts)
    delays = [e["ts"] - lb.start for lb in posts for e in by_post[lb.post] if e["kind"] == "like"]
    assert delays and statistics.median(delays) >= 30 * 60
    assert sum(d <= 15 * 60 for d in delays) <= 0.25 * len(delays)
