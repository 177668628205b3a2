"""The explanation of a member's score (leaderboard/explain.py), without Redis."""

from __future__ import annotations

import orjson
import pytest

from leaderboard.explain import (
    Explanation,
    KindLine,
    Place,
    hourly_series,
    hourly_window,
    kind_lines,
    not_seen,
    throttle_lines,
)
from leaderboard.scoring import ScoringRules, Window

RULES = ScoringRules.load()


def test_kind_lines_follow_the_rules_order_and_default_missing_fields_to_zero() -> None:
    fields = {
        "n:share": 3,
        "full:share": 12000,
        "mp:share": 10000,
        "n:like": 2,
        "full:like": 1000,
        "mp:like": 333,
        "wh:like": 250,  # withheld by the comment-bait throttle
        "n:retweet": 1,  # a kind the current rules no longer have
        "self": 1,
        "odd": 7,
    }
    lines = kind_lines(fields, RULES.weights_mp)
    assert list(lines) == ["like", "share", "retweet"]
    assert lines["share"] == KindLine(3, 10000, 12000, 0)
    assert lines["share"].discounted_mp == 2000
    assert lines["like"] == KindLine(2, 333, 1000, 250)
    assert lines["like"].discounted_mp == 1000 - 333 - 250
    assert lines["retweet"] == KindLine(1, 0, 0, 0)


def test_hourly_window_is_the_longest_window_with_hour_buckets() -> None:
    assert hourly_window(RULES) == Window("7d", 3600, 168)
    two = ScoringRules("t", {"like": 1000}, (Window("2d", 3600, 48), Window("1w", 3600, 168)))
    assert hourly_window(two) == Window("1w", 3600, 168)
    none = ScoringRules("t", {"like": 1000}, (Window("1h", 60, 60), Window("24h", 900, 96)))
    assert hourly_window(none) is None


def test_hourly_series_ends_at_the_hour_holding_the_watermark() -> None:
    w = Window("3h", 3600, 3)
    wm = 100 * 3600 + 1799.5
    assert hourly_series(w, wm, [1, 2, 3]) == [(98 * 3600, 1), (99 * 3600, 2), (100 * 3600, 3)]
    assert hourly_series(w, 100 * 3600.0, [0, 0, 5])[-1] == (
        100 * 3600,
        5,
    )  # an hour's first second
    assert hourly_series(None, wm, []) == []
    assert hourly_series(w, None, []) == []
    with pytest.raises(ValueError, match="2 hourly values for a window of 3"):
        hourly_series(w, wm, [1, 2])


def test_json_totals_trend_and_points() -> None:
    e = Explanation(
        member="tom",
        scoring_version="v1",
        as_of=7200.0,
        kinds={"like": KindLine(2, 333, 1000, 0), "share": KindLine(3, 10000, 12000, 1500)},
        self_ignored=1,
        top_posts=[("p1", 6000), ("p2", 333)],
        boards={"all": Place(3, 10.333, 9, 77.7778), "7d": Place(1, 4.5, 2, 100.0)},
        hourly=[(0, 0), (3600, 4500)],
    )
    body = e.to_json()
    assert body["kinds"]["like"] == {
        "count": 2,
        "points": 0.333,
        "full_points": 1.0,
        "discounted": 0.667,
        "withheld": 0.0,
    }
    assert body["kinds"]["share"]["withheld"] == 1.5
    # discounted is what diminishing returns took: full - counted - withheld (12 - 10 - 1.5 = 0.5)
    assert body["kinds"]["share"]["discounted"] == 0.5
    assert body["totals"] == {"count": 5, "points": 10.333, "discounted": 1.167, "withheld": 1.5}
    assert body["top_posts"] == [{"post": "p1", "points": 6.0}, {"post": "p2", "points": 0.333}]
    assert body["boards"]["all"] == {
        "rank": 3,
        "score": 10.333,
        "members": 9,
        "percentile": 77.7778,
    }
    assert body["trend"] == {
        "24h": 0,  # not on the 24h board
        "7d": 4.5,
        "rank": 3,
        "hourly": [{"hour": 0, "points": 0.0}, {"hour": 3600, "points": 4.5}],
    }
    off_all = Explanation("x", "v1", None, {}, 0, [], {}, [])
    assert off_all.to_json()["trend"] == {"24h": 0, "7d": 0, "rank": None, "hourly": []}
    assert off_all.to_json()["totals"] == {
        "count": 0,
        "points": 0.0,
        "discounted": 0.0,
        "withheld": 0.0,
    }


def test_not_seen_names_the_member() -> None:
    assert "'ann' has never been seen" in not_seen("ann")


def test_throttle_lines_newest_first_with_withheld_points() -> None:
    old = {"post": "p1", "state": "ended", "detected_at": 100.0, "ended_at": 900.0}
    new = {"post": "p2", "state": "throttled", "detected_at": 1000.0, "ended_at": None}
    records = {
        "p:p1": orjson.dumps({**old, "multiplier": 0.25, "reasons": ["low_value"]}).decode(),
        "p:p2": orjson.dumps({**new, "multiplier": 0.1, "reasons": ["spike"]}).decode(),
    }
    lines = throttle_lines(records, {"p:p1": 1500})
    assert [t.group for t in lines] == ["p:p2", "p:p1"]
    assert lines[1].to_json() == {
        "group": "p:p1",
        "post": "p1",
        "state": "ended",
        "detected_at": 100.0,
        "ended_at": 900.0,
        "multiplier": 0.25,
        "reasons": ["low_value"],
        "withheld": 1.5,
    }
    assert lines[0].withheld_mp == 0
