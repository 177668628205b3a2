"""The organic shapes: genuine posts a bait detector must leave untouched, in both splits.

- ``viral``, ``discussion``, ``steady``, ``congrats``, ``small``: the first harness's five;
- ``network-congrats``: a milestone post congratulated mostly by the author's network, people who
  commented on or liked the author's posts in the days before (that history is in the stream);
- ``viral-news``: news whose shares and clicks far outnumber its comments;
- ``ama`` and ``advice``: long, varied answers; participants come back and reply to each other,
  and the author answers;
- ``pod-like``: a circle of friends who often like each other's posts, but hours apart, not in
  lockstep.

Pure: no I/O.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

from baiteval.builder import Builder, Thread, arrivals, distinct_times, spread
from baiteval.content import (
    ADVICE_POSTS,
    AMA_POSTS,
    CONGRATS,
    MILESTONE_POSTS,
    SHORT_REACTIONS,
    THANKS,
    neutral_text,
    vary,
)
from baiteval.labels import BASELINE, DAY, HOUR, MINUTE, ORGANIC_SHAPES

__all__ = ["ORGANIC", "organic_mix"]

#: Share of each shape among the organic posts of a stream.
_MIX: dict[str, float] = {
    "viral": 0.12,
    "discussion": 0.12,
    "steady": 0.12,
    "congrats": 0.10,
    "small": 0.14,
    "network-congrats": 0.10,
    "viral-news": 0.08,
    "ama": 0.06,
    "advice": 0.08,
    "pod-like": 0.08,
}
assert set(_MIX) == set(ORGANIC_SHAPES)


def organic_mix(n: int) -> dict[str, int]:
    """How many posts of each organic shape ``n`` organic posts are: the mix above, at least one
    of each once there is room for all, ``small`` taking up the rounding."""
    counts = {s: round(f * n) for s, f in _MIX.items()}
    if n >= len(_MIX):
        counts = {s: max(1, c) for s, c in counts.items()}
    counts["small"] = 0
    while sum(counts.values()) > n:
        biggest = max(counts, key=lambda s: counts[s])
        counts[biggest] -= 1
    counts["small"] = n - sum(counts.values())
    return counts


def _times(rng: random.Random, lo: float, hi: float, n: int) -> int:
    return round(rng.uniform(lo, hi) * n)


def _spec(rng: random.Random, shape: str) -> Thread:
    """The first harness's five shapes."""
    if shape == "viral":
        n = rng.randint(60, 500)
        extras = {
            "share": _times(rng, 0.5, 2.0, n),
            "click": _times(rng, 1.0, 3.0, n),
            "like": _times(rng, 0.5, 2.0, n),
            "conversion": _times(rng, 0.01, 0.05, n),
        }
        return Thread(
            n, rng.uniform(1, 6) * HOUR, "front", rng.uniform(0.85, 0.98), 0.1, 0.3, extras
        )
    if shape == "discussion":
        n = rng.randint(30, 250)
        extras = {
            "share": _times(rng, 0.05, 0.3, n),
            "click": _times(rng, 0.2, 1.0, n),
            "like": _times(rng, 0.1, 0.5, n),
        }
        # people come back to answer each other: repeat comments are mostly replies
        return Thread(
            n, rng.uniform(2, 10) * HOUR, "uniform", rng.uniform(0.6, 0.9), 0.15, 0.75, extras
        )
    if shape == "steady":
        n = rng.randint(20, 80)
        extras = {
            "share": _times(rng, 0.3, 1.0, n),
            "click": _times(rng, 0.5, 2.0, n),
            "like": _times(rng, 0.3, 1.0, n),
            "conversion": _times(rng, 0.0, 0.05, n),
        }
        return Thread(
            n, rng.uniform(12, 36) * HOUR, "steady", rng.uniform(0.75, 0.95), 0.1, 0.3, extras
        )
    if shape == "congrats":
        n = rng.randint(30, 200)
        extras = {
            "share": _times(rng, 0.0, 0.1, n),
            "click": _times(rng, 0.0, 0.2, n),
            "like": _times(rng, 1.0, 3.0, n),
        }
        return Thread(
            n, rng.uniform(2, 12) * HOUR, "front", rng.uniform(0.95, 1.0), 0.05, 0.5, extras
        )
    if shape == "viral-news":
        # a news link: people pass it on and read it far more than they comment
        n = rng.randint(40, 400)
        extras = {
            "share": _times(rng, 2.0, 5.0, n),
            "click": _times(rng, 3.0, 8.0, n),
            "like": _times(rng, 1.0, 3.0, n),
            "conversion": _times(rng, 0.01, 0.03, n),
        }
        return Thread(
            n, rng.uniform(1, 6) * HOUR, "front", rng.uniform(0.9, 0.98), 0.1, 0.3, extras
        )
    n = rng.randint(3, 19)
    extras = {
        "share": rng.randint(0, n // 2),
        "click": rng.randint(0, n),
        "like": rng.randint(0, n),
    }
    return Thread(n, rng.uniform(1, 8) * HOUR, "uniform", rng.uniform(0.8, 1.0), 0.1, 0.3, extras)


def _author(b: Builder) -> str:
    # 70 % of organic authors are real background users, with their real history
    return b.author(b.rng.random() < 0.7)


def _thread_shape(shape: str) -> Callable[[Builder], int]:
    def generate(b: Builder) -> int:
        rng = b.rng
        author = _author(b)
        post, t0 = b.new_post(), b.place()
        text = neutral_text(rng, news=shape in ("viral", "viral-news"))
        b.open_post(post, author, shape, False, t0, text)
        ham = {"discussion": b.long_ham, "congrats": CONGRATS}.get(shape, b.texts.ham)
        b.thread(post, t0, _spec(rng, shape), ham, vary_ham=shape == "congrats")
        return 1

    return generate


def network_congrats(b: Builder) -> int:
    """A milestone congratulated mostly by friends who dealt with the author in the days before."""
    rng = b.rng
    author = _author(b)
    t0 = b.place()
    n = rng.randint(30, 200)
    network = b.sample_people(rng.randint(n + 10, n + 120), author)
    # the days before: the author's ordinary posts, commented on and liked by the network
    touched: set[str] = set()
    prior: list[tuple[str, float, float]] = []
    for _ in range(rng.randint(3, 7)):
        post, start, span = b.new_post(), t0 - rng.uniform(8 * HOUR, 10 * DAY), rng.uniform(2, 6)
        span *= HOUR
        prior.append((post, start, span))
        b.open_post(post, author, BASELINE, False, start, neutral_text(rng))
        talkers = rng.sample(network, round(rng.uniform(0.1, 0.35) * len(network)))
        for t, actor in zip(arrivals(rng, len(talkers), span, "uniform"), talkers, strict=True):
            b.interact(post, "comment", actor, start + t, rng.choice(b.texts.ham))
        likers = rng.sample(network, round(rng.uniform(0.2, 0.6) * len(network)))
        for actor in likers:
            b.interact(post, "like", actor, start + rng.uniform(1.0, span))
        touched.update(talkers, likers)
    for actor in network:
        if actor not in touched:  # everyone in the network dealt with the author at least once
            post, start, span = rng.choice(prior)
            b.interact(post, "like", actor, start + rng.uniform(1.0, span))
    post = b.new_post()
    b.open_post(post, author, "network-congrats", False, t0, rng.choice(MILESTONE_POSTS))
    friends = round(rng.uniform(0.8, 0.95) * n)
    pool = rng.sample(network, friends) + b.sample_people(n - friends, [author, *network])
    rng.shuffle(pool)
    lines = [(a, "comment", vary(rng, rng.choice(CONGRATS))) for a in pool]
    lines += [
        (author, "reply", rng.choice(THANKS)) for _ in range(round(rng.uniform(0.03, 0.1) * n))
    ]
    rng.shuffle(lines)
    duration = rng.uniform(2, 12) * HOUR
    for t, (actor, kind, text) in zip(
        arrivals(rng, len(lines), duration, "front"), lines, strict=True
    ):
        b.interact(post, kind, actor, t0 + t, text)
    likers = rng.sample(network, round(rng.uniform(0.5, 1.0) * len(network)))
    likers += b.sample_people(round(rng.uniform(0.0, 0.5) * n), [author, *network])
    for t, actor in zip(arrivals(rng, len(likers), duration, "front"), likers, strict=True):
        b.interact(post, "like", actor, t0 + t)
    return 1


def _answered_at_length(b: Builder, shape: str, texts: Sequence[str]) -> int:
    """An AMA or an advice request: long answers; participants come back and reply to each
    other; the author answers (an AMA's author answers much more)."""
    rng = b.rng
    ama = shape == "ama"
    author = _author(b)
    post, t0 = b.new_post(), b.place()
    b.open_post(post, author, shape, False, t0, rng.choice(texts))
    n = rng.randint(60, 300) if ama else rng.randint(30, 200)
    duration = (rng.uniform(3, 12) if ama else rng.uniform(6, 36)) * HOUR
    people = b.sample_people(max(2, round(rng.uniform(0.5, 0.8) * n)), author)
    offsets = arrivals(rng, n, duration, "uniform")
    lines: list[tuple[float, str, str]] = []
    seen: set[str] = set()
    for t, actor in zip(offsets, spread(rng, people, n), strict=True):
        again = actor in seen
        seen.add(actor)
        kind = "reply" if rng.random() < (0.85 if again else 0.1) else "comment"
        lines.append((t, kind, actor))
        if rng.random() < (rng.uniform(0.3, 0.6) if ama else 0.15):
            lines.append((t + rng.uniform(1, 40) * MINUTE, "reply", author))
    lines.sort()
    texts_ = [rng.choice(b.long_ham) for _ in lines]
    for t, (_, kind, actor), text in zip(
        distinct_times([x[0] for x in lines]), lines, texts_, strict=True
    ):
        b.interact(post, kind, actor, t0 + t, text)
    extras = {
        "like": _times(rng, 0.3, 1.5, n),
        "share": _times(rng, 0.02, 0.2, n),
        "click": _times(rng, 0.1, 0.5, n),
    }
    b.extras(post, t0, extras, duration, "uniform")
    return 1


def pod_like(b: Builder, posts: int) -> int:
    """A circle of friends over days: each likes many of the others' posts, but when they see
    them, hours apart; a few comments and shares. ``posts`` posts at most; returns how many."""
    rng = b.rng
    friends = [b.take_author() for _ in range(rng.randint(15, 40))]
    start, span = b.place(), rng.uniform(2, 6) * DAY
    fondness = rng.uniform(0.2, 0.6)
    made = min(posts, rng.randint(6, 12))
    for t0 in sorted(start + rng.uniform(0.0, span) for _ in range(made)):
        author = rng.choice(friends)
        post = b.new_post()
        b.open_post(post, author, "pod-like", False, t0, neutral_text(rng))
        median = rng.uniform(1, 4) * HOUR
        acts: list[tuple[float, str, str]] = []
        for f in friends:
            if f == author:
                continue
            if rng.random() < fondness:
                acts.append((_later(rng, median), "like", f))
            if rng.random() < 0.1:
                acts.append((_later(rng, median), "comment", f))
            if rng.random() < 0.04:
                acts.append((_later(rng, median), "share", f))
        acts += [
            (_later(rng, median), "click", p) for p in b.sample_people(rng.randint(0, 5), author)
        ]
        acts.sort()
        for t, (_, kind, actor) in zip(distinct_times([a[0] for a in acts]), acts, strict=True):
            text = None
            if kind == "comment":
                text = (
                    vary(rng, rng.choice(SHORT_REACTIONS))
                    if rng.random() < 0.3
                    else rng.choice(b.texts.ham)
                )
            b.interact(post, kind, actor, t0 + t, text)
    return made


def _later(rng: random.Random, median: float) -> float:
    """When a friend sees the post: log-normal around ``median``, from 2 minutes to 36 hours."""
    return min(36 * HOUR, max(2 * MINUTE, rng.lognormvariate(math.log(median), 1.0)))


#: Single-post organic shapes, by name: the builder → posts written (always 1).
ORGANIC: dict[str, Callable[[Builder], int]] = {
    **{
        s: _thread_shape(s)
        for s in ("viral", "discussion", "steady", "congrats", "small", "viral-news")
    },
    "network-congrats": network_congrats,
    "ama": lambda b: _answered_at_length(b, "ama", AMA_POSTS),
    "advice": lambda b: _answered_at_length(b, "advice", ADVICE_POSTS),
}
