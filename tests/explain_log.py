"""A small hand-made log whose explanation is worked out by hand, for the explain API and CLI tests.

Members: ``alice`` (several kinds, a repeated actor, a self-interaction, posts, six different hours
and one event 30 hours before the others), ``bob`` (one share) and ``zed`` (only a self-like: known,
on no board). Times are built on ``T0``, the start of a UTC day and of an hour.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

T0 = 1_599_955_200  # 2020-09-13T00:00:00Z
H0 = T0 // 3600
W = T0 + 5 * 3600 + 40  # the watermark: the newest applied event (bob's share)


def _e(id: str, dt: int, kind: str, actor: str, target: str, **more: Any) -> dict[str, Any]:
    return {"id": id, "ts": T0 + dt, "kind": kind, "actor": actor, "target": target, **more}


EVENTS: list[dict[str, Any]] = [
    _e("e0", -30 * 3600, "share", "gina", "alice"),  # 4000, 30 h before T0: in 7d, not in 24h
    _e("e1", 10, "share", "bob", "alice", post="p1"),  # 4000
    _e("e2", 20, "share", "bob", "alice", post="p1"),  # bob→alice k=2: 2000 (2000 discounted)
    _e("e3", 3600 + 5, "like", "bob", "alice", post="p2"),  # k=3: 1000 // 3 = 333 (667 discounted)
    _e("e4", 3600 + 100, "comment", "carol", "alice", post="p2"),  # 2000
    _e("e5", 3 * 3600 + 1, "conversion", "dave", "alice", post="p3"),  # 10000
    _e("e6", 3 * 3600 + 2, "like", "alice", "alice", post="p1"),  # self: ignored
    _e("e1", 10, "share", "bob", "alice", post="p1"),  # the same event sent again: a duplicate
    _e("e8", 5 * 3600 + 30, "mention", "erin", "alice"),  # 2000, no post
    _e("e9", 5 * 3600 + 40, "share", "frank", "bob", post="q1"),  # 4000 for bob
    _e("e10", 100, "like", "zed", "zed"),  # zed's only event: self
]


def jsonl() -> bytes:
    return b"".join(orjson.dumps(e) + b"\n" for e in EVENTS)


def _decayed(parts: list[tuple[int, int]]) -> float:
    return sum(mp * 2.0 ** (-(W - ts) / 86400) for ts, mp in parts) / 1000


ALICE_DECAYED = _decayed(
    [
        (T0 - 30 * 3600, 4000),
        (T0 + 10, 4000),
        (T0 + 20, 2000),
        (T0 + 3605, 333),
        (T0 + 3700, 2000),
        (T0 + 3 * 3600 + 1, 10000),
        (T0 + 5 * 3600 + 30, 2000),
    ]
)


def _hourly(points: dict[int, float]) -> list[dict[str, Any]]:
    """168 hours ending at the hour holding W; ``points`` keyed by hour relative to T0."""
    last = W // 3600
    return [
        {"hour": h * 3600, "points": points.get(h - H0, 0.0)} for h in range(last - 167, last + 1)
    ]


def _kind(count: int, points: float, full: float) -> dict[str, Any]:
    return {
        "count": count,
        "points": points,
        "full_points": full,
        "discounted": round(full - points, 3),
        "withheld": 0.0,
    }


#: ``GET /api/members/alice/explain``, except the decayed score (a float: compare approximately)
ALICE: dict[str, Any] = {
    "member": "alice",
    "scoring_version": "2026-11-21.1",
    "as_of": float(W),
    "kinds": {  # in the scoring rules' order
        "like": _kind(2, 0.333, 1.0),  # the self-like is counted, not scored
        "comment": _kind(1, 2.0, 2.0),
        "mention": _kind(1, 2.0, 2.0),
        "share": _kind(3, 10.0, 12.0),
        "conversion": _kind(1, 10.0, 10.0),
    },
    "self_ignored": 1,
    "totals": {"count": 8, "points": 24.333, "discounted": 2.667, "withheld": 0.0},
    "top_posts": [
        {"post": "p3", "points": 10.0},
        {"post": "p1", "points": 6.0},
        {"post": "p2", "points": 2.333},
    ],
    "throttles": [],
    "boards": {
        "all": {"rank": 1, "score": 24.333, "members": 2, "percentile": 100.0},
        "1h": {"rank": 2, "score": 2.0, "members": 2, "percentile": 50.0},
        "24h": {"rank": 1, "score": 20.333, "members": 2, "percentile": 100.0},
        "7d": {"rank": 1, "score": 24.333, "members": 2, "percentile": 100.0},
        "decayed": {"rank": 1, "score": ALICE_DECAYED, "members": 2, "percentile": 100.0},
        # W is on Sunday 2020-09-13, the last day of ISO week 2020-W37; e0 is on the Friday
        "day": {"rank": 1, "score": 20.333, "members": 2, "percentile": 100.0},
        "week": {"rank": 1, "score": 24.333, "members": 2, "percentile": 100.0},
        "month": {"rank": 1, "score": 24.333, "members": 2, "percentile": 100.0},
    },
    "trend": {
        "24h": 20.333,
        "7d": 24.333,
        "rank": 1,
        "hourly": _hourly({-30: 4.0, 0: 6.0, 1: 2.333, 3: 10.0, 5: 2.0}),
    },
}

ZED: dict[str, Any] = {
    "member": "zed",
    "scoring_version": "2026-11-21.1",
    "as_of": float(W),
    "kinds": {"like": _kind(1, 0.0, 0.0)},
    "self_ignored": 1,
    "totals": {"count": 1, "points": 0.0, "discounted": 0.0, "withheld": 0.0},
    "top_posts": [],
    "throttles": [],
    "boards": {},
    "trend": {"24h": 0, "7d": 0, "rank": None, "hourly": _hourly({})},
}


def assert_explains(got: dict[str, Any], expected: dict[str, Any]) -> None:
    """Equal, with the decayed score compared to a relative 1e-9."""
    got_decayed = got["boards"].get("decayed", {}).get("score")
    want_decayed = expected["boards"].get("decayed", {}).get("score")
    if want_decayed is None:
        assert got_decayed is None
    else:
        assert got_decayed == pytest.approx(want_decayed, rel=1e-9)
    strip = {"score": None}
    assert {
        **got,
        "boards": {b: {**v, **strip} if b == "decayed" else v for b, v in got["boards"].items()},
    } == {
        **expected,
        "boards": {
            b: {**v, **strip} if b == "decayed" else v for b, v in expected["boards"].items()
        },
    }
    # the JSON key order of the kinds follows the scoring rules
    assert list(got["kinds"]) == list(expected["kinds"])
