"""The metrics of the comment-bait evaluation (baiteval/metrics.py) and the printed report."""

from __future__ import annotations

import pytest

from baiteval.labels import EvalStream, PostLabel
from baiteval.metrics import FRACTION_TARGET, Throttle, report
from baiteval.report import format_report
from baiteval.synthesis import build_eval
from tests.baiteval.conftest import campaigns, of_shape, organic
from tests.conftest import DATA


def throttle_at(label: PostLabel, index: int, withheld_mp: int = 0, group: str = "p:") -> Throttle:
    """A throttle that starts at the ``index``-th farmed interaction of ``label`` (its
    comments, or a pod's shares and likes)."""
    return Throttle(
        group=f"{group}{label.post}",
        post=label.post,
        target=label.author,
        detected_at=(label.farmed or label.comments)[index][1],
        multiplier=0.25,
        reasons=("short_comments", "bait_phrase"),
        withheld_mp=withheld_mp,
    )


def perfect(s: EvalStream) -> list[Throttle]:
    return [throttle_at(lb, 0) for lb in campaigns(s)]


# -- the metrics ------------------------------------------------------------------------------


def test_a_perfect_detector_passes(s1: EvalStream) -> None:
    r = report(s1, perfect(s1))
    assert r.passed and r.failures == []
    assert r.recall == dict.fromkeys(s1.shapes, 1.0)
    assert r.max_fraction_before == 0.0
    assert r.false_throttle_rate == 0.0 and r.organic_withheld_share == 0.0
    assert r.precision == 1.0 and r.false_throttles == ()
    assert all(s.median_seconds == 0.0 for s in r.shapes.values())
    text = format_report(r)
    assert "PASSED" in text and "MISS" not in text and all(shape in text for shape in s1.shapes)
    assert "tuning split" in text


def test_throttling_at_half_the_comments_fails_the_20_percent_target(s1: EvalStream) -> None:
    r = report(s1, [throttle_at(lb, len(lb.farmed) // 2) for lb in campaigns(s1)])
    assert r.recall == dict.fromkeys(s1.shapes, 1.0)
    assert not r.passed
    assert r.max_fraction_before == pytest.approx(0.5, abs=0.01)
    assert len(r.failures) == 1 and "20 %" in r.failures[0]
    assert all(s.late == s.campaigns for s in r.shapes.values())
    assert "MISS every campaign throttled before 20 %" in format_report(r)


def test_the_comment_at_detected_at_is_already_throttled(s1: EvalStream) -> None:
    lb = campaigns(s1)[0]
    n = len(lb.farmed)
    k = int(FRACTION_TARGET * n)  # exactly k comments got through in full
    r = report(s1, [*perfect(s1)[1:], throttle_at(lb, k)])
    assert r.shapes[lb.shape].max_fraction == k / n
    assert r.passed
    late = report(s1, [*perfect(s1)[1:], throttle_at(lb, k + 1)])
    assert late.shapes[lb.shape].late == 1 and not late.passed


def test_an_undetected_campaign_fails_recall_and_the_20_percent_target(s1: EvalStream) -> None:
    missed = campaigns(s1)[0]
    r = report(s1, [t for t in perfect(s1) if t.post != missed.post])
    assert r.recall[missed.shape] == 1 - 1 / len(of_shape(s1, missed.shape))
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


def test_a_pod_is_measured_over_its_shares_and_likes(s1: EvalStream) -> None:
    pod = of_shape(s1, "pod")[0]
    kinds = {e["id"]: e["kind"] for e in s1.events if e.get("post") == pod.post}
    assert pod.farmed and {kinds[i] for i, _ in pod.farmed} == {"share", "like"}
    assert len(pod.farmed) > 5 * len(pod.comments)
    k = len(pod.farmed) // 2
    others = [t for t in perfect(s1) if t.post != pod.post]
    r = report(s1, [*others, throttle_at(pod, k, group="e:")])
    assert r.shapes["pod"].max_fraction == k / len(pod.farmed)
    assert r.shapes["pod"].median_seconds is not None and not r.passed


def test_a_post_throttled_in_two_groups_counts_once_at_its_first(s1: EvalStream) -> None:
    camp = campaigns(s1)[0]
    viral = organic(s1, "viral")[0]
    throttles = [
        *perfect(s1)[1:],
        throttle_at(camp, 10, withheld_mp=100, group="e:"),
        throttle_at(camp, 3, withheld_mp=50),
        throttle_at(viral, 5, withheld_mp=10),
        throttle_at(viral, 7, withheld_mp=20, group="e:"),
    ]
    r = report(s1, throttles)
    assert r.shapes[camp.shape].max_fraction == 3 / len(camp.farmed)
    assert r.shapes[camp.shape].withheld_mp == 150
    assert r.organic["viral"].throttled == 1
    [f] = r.false_throttles
    assert (f.group, f.withheld_mp) == (f"p:{viral.post}", 30)
    assert r.throttled_groups == len(campaigns(s1)) + 1
