"""The comment-bait evaluation (baiteval/harness.py): the labelled stream and its metrics."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from itertools import pairwise
from typing import Any

import orjson
import pytest

from baiteval.harness import (
    FRACTION_TARGET,
    MIN_COMMENTS,
    SHAPES,
    EvalStream,
    PostLabel,
    Throttle,
    build_eval,
    clean_text,
    format_report,
    report,
    texts,
)
from leaderboard.bait import phrasing
from leaderboard.events import Event, decode_message
from leaderboard.scoring import ScoringRules
from tests.conftest import DATA

BACKGROUND = 4000


def small(seed: int) -> EvalStream:
    """A stream small enough for a unit test: 2 campaigns per shape, 20 organic posts."""
    return build_eval(
        DATA, seed=seed, background=BACKGROUND, campaigns_per_shape=2, organic_posts=20
    )


CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]")


@pytest.fixture(scope="module")
def s1() -> EvalStream:
    return small(1)


@pytest.fixture(scope="module")
def s2() -> EvalStream:
    return small(2)


def campaigns(s: EvalStream) -> list[PostLabel]:
    return [lb for lb in s.posts.values() if lb.bait]


def organic(s: EvalStream, shape: str) -> list[PostLabel]:
    return [lb for lb in s.posts.values() if not lb.bait and lb.shape == shape]


def throttle_at(label: PostLabel, index: int, withheld_mp: int = 0) -> Throttle:
    """A throttle that starts at the ``index``-th comment of ``label``."""
    return Throttle(
        group=f"p:{label.post}",
        post=label.post,
        target=label.author,
        detected_at=label.comments[index][1],
        multiplier=0.25,
        reasons=("short_comments", "bait_phrase"),
        withheld_mp=withheld_mp,
    )


def perfect(s: EvalStream) -> list[Throttle]:
    return [throttle_at(lb, 0) for lb in campaigns(s)]


# -- the stream ---------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_stream(s1: EvalStream) -> None:
    again = small(1)
    assert again.events == s1.events
    assert again.posts == s1.posts
    assert again.background_full_mp == s1.background_full_mp


def test_different_seeds_give_different_streams_and_text_halves(
    s1: EvalStream, s2: EvalStream
) -> None:
    assert s1.events != s2.events
    assert (s1.half, s2.half) == ("A", "B")
    a, b = texts(DATA, "A"), texts(DATA, "B")
    assert len(a.spam) > 300 and len(b.spam) > 300 and len(a.ham) > 300 and len(b.ham) > 300
    # only the same text posted under two comment ids can be in both halves
    assert len(set(a.spam) & set(b.spam)) < 0.05 * len(a.spam)
    # plain campaigns comment with spam of their own half only (short generic ones aside)
    for s, own, other in ((s1, a, b), (s2, b, a)):
        used = {
            e["text"]
            for e in s.events
            if e.get("post", "").startswith("camp-")
            and "-plain-" in e["post"]
            and e["kind"] != "post"
            if "text" in e and len(e["text"]) > 25
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
            # self-interactions only for the announcement itself
            assert (e["actor"] == e["target"]) == (e["kind"] == "post")
        else:
            assert "text" not in e and e["id"].startswith(("bg-higgs-", "bg-mo-"))


def test_background_is_half_higgs_half_shifted_mathoverflow(s1: EvalStream) -> None:
    bg = [e for e in s1.events if "post" not in e]
    higgs = [e for e in bg if e["id"].startswith("bg-higgs-")]
    mo = [e for e in bg if e["id"].startswith("bg-mo-")]
    assert len(higgs) == BACKGROUND // 2
    assert 0 < len(mo) <= BACKGROUND // 2
    assert min(e["ts"] for e in higgs) == min(e["ts"] for e in mo) >= 1341273600  # 2012-07-03
    # MathOverflow's busiest stretch runs beside the Higgs slice, not for months after it
    span = max(e["ts"] for e in higgs) - min(e["ts"] for e in higgs)
    assert max(e["ts"] for e in mo) - min(e["ts"] for e in mo) <= span
    assert {e["kind"] for e in higgs} <= {"share", "mention", "reply"}
    assert {e["kind"] for e in mo} <= {"reply", "comment"}
    assert all(e["actor"].startswith("mo") and e["target"].startswith("mo") for e in mo)


def test_youtube_text_is_cleaned() -> None:
    assert clean_text("I love it &lt;3<br />see <a href='x'>this</a>&#39;s\ufeff") == (
        "I love it <3 see this's"
    )
    assert clean_text(" \ufeff <br/> ") == ""


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
    assert Counter(lb.shape for lb in campaigns(s1)) == dict.fromkeys(SHAPES, 2)
    for lb in campaigns(s1):
        n, span = len(lb.comments), lb.comments[-1][1] - lb.start
        if lb.shape.startswith("sudden"):
            assert 150 <= n <= 600 and span <= 40 * 60
        else:
            assert 120 <= n <= 400 and span >= 4 * 3600
        if lb.shape.endswith("-new"):
            assert lb.author.startswith("newauthor-")
            assert not any(p.author == lb.author for p in s1.posts.values() if p.post != lb.post)
        else:
            prior = [p for p in s1.posts.values() if p.author == lb.author and p is not lb]
            assert 3 <= len(prior) <= 6 and all(p.end < lb.start for p in prior)
            assert all(p.shape == "baseline" and not p.bait for p in prior)
            assert any(e["target"] == lb.author for e in s1.events if "post" not in e)


def test_campaigns_farm_comments_not_shares(s1: EvalStream) -> None:
    kinds: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for e in s1.events:
        if e.get("post", "").startswith("camp-"):
            kinds[e["post"]][e["kind"]] += 1
    for post, c in kinds.items():
        comments = c["comment"] + c["reply"]
        assert c["share"] == c["conversion"] == 0
        assert c["like"] + c["click"] <= 0.05 * comments
        assert 0.05 < c["reply"] / comments < 0.3, post


def test_organic_posts(s1: EvalStream) -> None:
    assert Counter(
        lb.shape for lb in s1.posts.values() if not lb.bait and lb.shape != "baseline"
    ) == {
        "viral": 5,
        "discussion": 4,
        "steady": 4,
        "congrats": 3,
        "small": 4,
    }
    for lb in organic(s1, "viral"):
        assert 60 <= len(lb.comments) <= 500
    for lb in organic(s1, "small"):
        assert 3 <= len(lb.comments) < MIN_COMMENTS
    # milestone threads: short alike comments from distinct friends, no bait wording
    for lb in organic(s1, "congrats"):
        evs = [e for e in s1.events if e.get("post") == lb.post and e["kind"] == "comment"]
        assert len({e["actor"] for e in evs}) >= 0.9 * len(evs)
        assert sum(len(e["text"].split()) <= 3 for e in evs) > 0.5 * len(evs)
        assert not phrasing(next(e["text"] for e in s1.events if e["id"] == lb.post + "-e0"))
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


# -- the metrics ------------------------------------------------------------------------------


def test_a_perfect_detector_passes(s1: EvalStream) -> None:
    r = report(s1, perfect(s1))
    assert r.passed and r.failures == []
    assert r.recall == dict.fromkeys(SHAPES, 1.0)
    assert r.max_fraction_before == 0.0
    assert r.false_throttle_rate == 0.0 and r.organic_withheld_share == 0.0
    assert r.precision == 1.0 and r.false_throttles == ()
    assert all(s.median_seconds == 0.0 for s in r.shapes.values())
    text = format_report(r)
    assert "PASSED" in text and "MISS" not in text and all(shape in text for shape in SHAPES)


def test_throttling_at_half_the_comments_fails_the_20_percent_target(s1: EvalStream) -> None:
    r = report(s1, [throttle_at(lb, len(lb.comments) // 2) for lb in campaigns(s1)])
    assert r.recall == dict.fromkeys(SHAPES, 1.0)
    assert not r.passed
    assert r.max_fraction_before == pytest.approx(0.5, abs=0.01)
    assert len(r.failures) == 1 and "20 %" in r.failures[0]
    assert all(s.late == s.campaigns for s in r.shapes.values())
    assert "MISS every campaign throttled before 20 %" in format_report(r)


def test_the_comment_at_detected_at_is_already_throttled(s1: EvalStream) -> None:
    lb = campaigns(s1)[0]
    n = len(lb.comments)
    k = int(FRACTION_TARGET * n)  # exactly k comments got through in full
    r = report(s1, [*perfect(s1)[1:], throttle_at(lb, k)])
    assert r.shapes[lb.shape].max_fraction == k / n
    assert r.passed
    late = report(s1, [*perfect(s1)[1:], throttle_at(lb, k + 1)])
    assert late.shapes[lb.shape].late == 1 and not late.passed


def test_an_undetected_campaign_fails_recall_and_the_20_percent_target(s1: EvalStream) -> None:
    missed = campaigns(s1)[0]
    r = report(s1, [t for t in perfect(s1) if t.post != missed.post])
    assert r.recall[missed.shape] == 0.5
    assert r.max_fraction_before == 1.0
    assert any(missed.shape in f and f.startswith("recall") for f in r.failures)
    assert any("20 %" in f for f in r.failures)


def test_throttling_a_viral_post_is_a_listed_false_throttle(s1: EvalStream) -> None:
    viral = organic(s1, "viral")[0]
    t = throttle_at(viral, 30, withheld_mp=1500)
    r = report(s1, [*perfect(s1), t])
    eligible = sum(1 for lb in s1.posts.values() if not lb.bait and len(lb.comments) >= 20)
    assert r.false_throttle_rate == 1 / eligible
    assert r.organic["viral"].throttled == 1
    [f] = r.false_throttles
    assert (f.post, f.shape, f.reasons, f.withheld_mp) == (viral.post, "viral", t.reasons, 1500)
    assert r.precision == len(campaigns(s1)) / (len(campaigns(s1)) + 1)
    assert viral.post in format_report(r)
    assert r.passed == (1 / eligible <= 0.01 and r.organic_withheld_share <= 0.005)


def test_small_posts_and_background_groups_are_listed_but_not_in_the_rate(s1: EvalStream) -> None:
    small = organic(s1, "small")[0]
    bg = Throttle("t:88", None, "88", 1341300000.0, 0.5, ("rate_spike",), 0)
    r = report(s1, [*perfect(s1), throttle_at(small, 0), bg])
    assert r.false_throttle_rate == 0.0
    assert {f.shape for f in r.false_throttles} == {"small", "background"}
    assert r.true_groups == len(campaigns(s1)) and r.throttled_groups == len(campaigns(s1)) + 2


def test_withheld_shares_add_up(s1: EvalStream) -> None:
    viral = organic(s1, "viral")[0]
    camp = campaigns(s1)[0]
    throttles = [
        *perfect(s1)[1:],
        throttle_at(camp, 0, withheld_mp=700),
        # throttled, calmed, throttled again: the first detection counts, withheld adds up
        throttle_at(camp, 5, withheld_mp=300),
        throttle_at(viral, 10, withheld_mp=4000),
        Throttle("t:mo1", None, "mo1", 1341300000.0, 0.5, ("near_duplicates",), 1000),
    ]
    r = report(s1, throttles)
    organic_full = sum(lb.full_mp for lb in s1.posts.values() if not lb.bait)
    assert r.organic_withheld_share == 5000 / (organic_full + s1.background_full_mp)
    shape = r.shapes[camp.shape]
    same_shape_full = sum(lb.full_mp for lb in campaigns(s1) if lb.shape == camp.shape)
    assert shape.withheld_mp == 1000
    assert shape.withheld_share == 1000 / same_shape_full
    assert shape.max_fraction == 0.0 and r.throttled_groups == len(campaigns(s1)) + 2


def test_an_organic_withheld_share_over_target_fails() -> None:
    s = build_eval(DATA, seed=3, background=2000, campaigns_per_shape=1, organic_posts=4)
    total = sum(lb.full_mp for lb in s.posts.values() if not lb.bait) + s.background_full_mp
    bg = Throttle("t:x", None, "x", 1341300000.0, 0.5, ("rate_spike",), total // 100)
    r = report(s, [*perfect(s), bg])
    assert r.organic_withheld_share == pytest.approx(0.01, rel=1e-3)
    assert [f for f in r.failures if "withheld" in f] and not r.passed
    assert "MISS organic points withheld" in format_report(r)
