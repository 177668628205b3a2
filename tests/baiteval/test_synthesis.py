"""The labelled stream of the comment-bait evaluation (baiteval/synthesis.py) and its labels."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from itertools import pairwise
from typing import Any

import orjson

from baiteval.content import MILESTONE_POSTS, NEUTRAL_SENTENCES
from baiteval.data import texts
from baiteval.labels import LEGACY_SHAPES, TUNING_SHAPES, EvalStream
from baiteval.metrics import MIN_COMMENTS
from baiteval.organic import organic_mix
from leaderboard.events import Event, decode_message
from leaderboard.scoring import ScoringRules
from tests.baiteval.conftest import campaigns, organic, small
from tests.conftest import DATA

#: Organic shapes whose authors answer in their own threads (self-interactions, not scored).
AUTHOR_REPLIES = ("ama", "advice", "network-congrats")

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]")


# -- the stream ---------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_stream(s1: EvalStream) -> None:
    again = small(1)
    assert again.events == s1.events
    assert again.posts == s1.posts
    assert again.background_full_mp == s1.background_full_mp


def test_different_seeds_give_different_streams(s1: EvalStream, s2: EvalStream) -> None:
    assert s1.events != s2.events
    assert s1.posts.keys().isdisjoint(s2.posts.keys())


def test_the_splits_read_disjoint_text_halves(s1: EvalStream, h1: EvalStream) -> None:
    assert (s1.split, s1.half, h1.split, h1.half) == ("tuning", "A", "heldout", "B")
    a, b = texts(DATA, "A"), texts(DATA, "B")
    assert len(a.spam) > 300 and len(b.spam) > 300 and len(a.ham) > 300 and len(b.ham) > 300
    # only the same text posted under two comment ids can be in both halves
    assert len(set(a.spam) & set(b.spam)) < 0.05 * len(a.spam)
    # plain campaigns comment with spam of their own half only (short generic ones aside)
    for s, own, other in ((s1, a, b), (h1, b, a)):
        plain = {lb.post for lb in campaigns(s) if "-plain-" in lb.shape}
        used = {
            e["text"]
            for e in s.events
            if e.get("post") in plain and e["kind"] != "post" and len(e.get("text", "")) > 25
        }
        assert used and used <= set(own.spam)
        assert used - set(other.spam)


def test_every_event_passes_the_schema_decoder(s1: EvalStream) -> None:
    kinds = ScoringRules.load().kinds
    decoded = decode_message(orjson.dumps(s1.events), kinds)
    assert all(isinstance(d, Event) for d in decoded), [
        d for d in decoded if not isinstance(d, Event)
    ][:3]
    assert [d.id for d in decoded if isinstance(d, Event)] == [e["id"] for e in s1.events]


def test_events_are_sorted_unique_and_clean(s1: EvalStream) -> None:
    ts = [e["ts"] for e in s1.events]
    assert ts == sorted(ts)
    assert len({e["id"] for e in s1.events}) == len(s1.events)
    for e in s1.events:
        assert all(len(e[f]) <= 128 for f in ("id", "actor", "target") if f in e)
        if "text" in e:
            assert 0 < len(e["text"]) <= 2000 and not CONTROL.search(e["text"])
            assert e["text"] == e["text"].strip() and "  " not in e["text"]
        if "post" in e:
            # self-interactions: the announcement itself, and authors answering in a thread
            if e["actor"] == e["target"] and e["kind"] != "post":
                assert s1.posts[e["post"]].shape in AUTHOR_REPLIES and e["kind"] == "reply"
        else:
            assert "text" not in e and e["id"].startswith(("bg-higgs-", "bg-mo-"))


def test_labels_match_the_events(s1: EvalStream) -> None:
    by_post: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in s1.events:
        if "post" in e:
            by_post[e["post"]].append(e)
    assert set(by_post) == set(s1.posts)
    for post, label in s1.posts.items():
        evs = by_post[post]
        assert evs[0]["kind"] == "post" and evs[0]["ts"] == label.start
        assert evs[-1]["ts"] == label.end
        assert all(e["target"] == label.author for e in evs)
        assert label.comments == tuple(
            (e["id"], e["ts"]) for e in evs if e["kind"] in ("comment", "reply")
        )
        times = [t for _, t in label.comments]
        assert all(a < b for a, b in pairwise(times))  # exact "before"


def test_campaign_shapes_and_timing(s1: EvalStream) -> None:
    per_shape = Counter(lb.shape for lb in campaigns(s1))
    assert set(per_shape) == set(TUNING_SHAPES) == set(s1.shapes)
    # a ring or a pod is one campaign of several posts
    assert all(per_shape[s] == 2 for s in TUNING_SHAPES if s not in ("ring", "pod"))
    assert per_shape["ring"] >= 8 and per_shape["pod"] >= 10
    for lb in campaigns(s1):
        if lb.shape not in LEGACY_SHAPES:
            continue
        n, span = len(lb.comments), lb.comments[-1][1] - lb.start
        if lb.shape.startswith("sudden"):
            assert 150 <= n <= 600 and span <= 40 * 60
        else:
            assert 120 <= n <= 400 and span >= 4 * 3600
        prior = [p for p in s1.posts.values() if p.author == lb.author and p is not lb]
        if lb.shape.endswith("-new"):
            # an account never seen before the campaign, with no other post
            assert not prior
            assert not any(e["target"] == lb.author for e in s1.events if "post" not in e)
        else:
            assert 3 <= len(prior) <= 6 and all(p.end < lb.start for p in prior)
            assert all(p.shape == "baseline" and not p.bait for p in prior)
            assert any(e["target"] == lb.author for e in s1.events if "post" not in e)


def test_ids_do_not_name_the_shape(s1: EvalStream) -> None:
    # the detector sees post ids and account ids: neither may carry the label
    for lb in s1.posts.values():
        assert re.fullmatch(r"[0-9a-f]{12}", lb.post)
    shapes = re.compile("|".join(map(re.escape, (*TUNING_SHAPES, "bot", "farm", "camp"))))
    assert not any(shapes.search(e["actor"]) for e in s1.events)


def test_first_shapes_farm_comments_not_shares(s1: EvalStream) -> None:
    legacy = {lb.post for lb in campaigns(s1) if lb.shape in LEGACY_SHAPES}
    kinds: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for e in s1.events:
        if e.get("post") in legacy:
            kinds[e["post"]][e["kind"]] += 1
    for post, c in kinds.items():
        comments = c["comment"] + c["reply"]
        assert c["share"] == c["conversion"] == 0
        assert c["like"] + c["click"] <= 0.05 * comments
        assert 0.05 < c["reply"] / comments < 0.3, post


def test_organic_posts(s1: EvalStream) -> None:
    assert Counter(
        lb.shape for lb in s1.posts.values() if not lb.bait and lb.shape != "baseline"
    ) == organic_mix(20)
    assert all(n >= 1 for n in organic_mix(20).values())
    for lb in organic(s1, "viral"):
        assert 60 <= len(lb.comments) <= 500
    for lb in organic(s1, "small"):
        assert 3 <= len(lb.comments) < MIN_COMMENTS
    # milestone threads: short alike comments from distinct people, no call to action
    for lb in organic(s1, "congrats"):
        evs = [e for e in s1.events if e.get("post") == lb.post and e["kind"] == "comment"]
        assert len({e["actor"] for e in evs}) >= 0.9 * len(evs)
        assert sum(len(e["text"].split()) <= 3 for e in evs) > 0.5 * len(evs)
        text = next(e["text"] for e in s1.events if e["id"] == lb.post + "-e0")
        assert any(text.startswith(n) for n in NEUTRAL_SENTENCES)
    for lb in organic(s1, "network-congrats"):
        assert next(e["text"] for e in s1.events if e["id"] == lb.post + "-e0") in MILESTONE_POSTS
    # discussions: people come back and reply to each other
    for lb in organic(s1, "discussion"):
        evs = [
            e for e in s1.events if e.get("post") == lb.post and e["kind"] in ("comment", "reply")
        ]
        assert len({e["actor"] for e in evs}) < 0.95 * len(evs)
        assert any(e["kind"] == "reply" for e in evs)


def _full_mp_by_hand(s: EvalStream, post: str | None) -> int:
    """Score ``post`` (None: the background) with the contract's rules, written plainly."""
    weights = ScoringRules.load().weights_mp
    runs: defaultdict[tuple[int, str, str], list[dict[str, Any]]] = defaultdict(list)
    for e in s.events:
        if e["actor"] != e["target"] and weights[e["kind"]] > 0:
            runs[(int(e["ts"] // 86400), e["actor"], e["target"])].append(e)
    return sum(
        weights[e["kind"]] // k
        for run in runs.values()
        for k, e in enumerate(run, start=1)
        if e.get("post") == post
    )


def test_full_mp_is_the_contract_scoring(s1: EvalStream) -> None:
    picks = [campaigns(s1)[0], organic(s1, "viral")[0], organic(s1, "baseline")[0]]
    for lb in picks:
        assert lb.full_mp == _full_mp_by_hand(s1, lb.post) > 0
    assert s1.background_full_mp == _full_mp_by_hand(s1, None) > 0


def test_diminishing_returns_show_in_full_mp(s1: EvalStream) -> None:
    # a campaign's repeat commenters earn less than weight × comments: bots repeat themselves
    lb = campaigns(s1)[0]
    assert lb.full_mp < 2000 * len(lb.comments)
