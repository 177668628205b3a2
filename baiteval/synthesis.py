"""The labelled stream: synthetic campaigns and organic threads mixed into real background traffic.

:func:`build_eval` mixes real background traffic (SNAP Higgs Twitter and MathOverflow) with
synthetic posts whose truth is known: comment-bait campaigns in eight shapes and organic posts
(a viral surge, a lively discussion, a steady thread, a small one). The comment texts are real
YouTube comments (UCI YouTube Spam Collection): spam for the bait farms, ham for real people.
Each post's label (:class:`~baiteval.labels.PostLabel`) holds its comments and the points its
interactions earn with no throttle.

Pure: reads files under a data directory, talks to neither Redis nor Kafka, prints nothing.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any

from baiteval.content import (
    BAIT_TEMPLATES,
    CONGRATS,
    SHORT_REACTIONS,
    bait_comment,
    bait_post_text,
    cycle,
    neutral_text,
    vary,
)
from baiteval.data import HIGGS_START, Row, Texts, background_rows, texts
from baiteval.labels import (
    BASELINE,
    DAY,
    HOUR,
    MINUTE,
    ORGANIC_SHAPES,
    SHAPES,
    EvalStream,
    PostLabel,
)
from leaderboard.scoring import ScoringRules, contribution

__all__ = ["build_eval"]

COMMENT_KINDS = frozenset({"comment", "reply"})


# -- timing -------------------------------------------------------------------------------------


def _arrivals(rng: random.Random, n: int, duration: float, curve: str) -> list[float]:
    """``n`` offsets in (0, ``duration``] seconds, strictly increasing by at least 1 ms.

    ``front``: a Poisson process whose rate decays exponentially, conditioned on n arrivals
    (i.i.d. truncated-exponential offsets), so it starts steep. ``steady``: an even grid with a
    little jitter that ends at ``duration``. ``uniform``: a homogeneous Poisson process.
    Strictly increasing per post so that "comments before ``detected_at``" is exact.
    """
    if n <= 0:
        return []
    if curve == "front":
        tau = duration / rng.uniform(2.0, 4.0)
        cap = 1.0 - math.exp(-duration / tau)
        raw = [-tau * math.log(1.0 - rng.random() * cap) for _ in range(n)]
    elif curve == "steady":
        step = duration / n
        raw = [(j + 1) * step + rng.gauss(0.0, 0.3 * step) for j in range(n - 1)] + [duration]
    else:
        raw = [rng.uniform(0.0, duration) for _ in range(n)]
    out: list[float] = []
    prev = 0.0
    for t in sorted(min(max(t, 1.0), duration) for t in raw):
        t = round(max(t, prev + 0.001), 3)
        out.append(t)
        prev = t
    return out


# -- the builder ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Meta:
    author: str
    shape: str
    bait: bool


@dataclass(frozen=True)
class _Thread:
    """How one synthetic post's interactions unfold."""

    comments: int
    duration: float
    curve: str
    distinct: float  # share of comments written by distinct people
    replies: float  # chance a first comment by someone is a reply
    repeat_replies: float  # chance a repeat comment by the same person is a reply
    extras: Mapping[str, int]  # like/click/share/conversion counts


class _Builder:
    """Collects synthetic events and their labels' metadata; owns the one RNG of a build."""

    def __init__(
        self,
        rng: random.Random,
        txt: Texts,
        people: Sequence[str],
        window: tuple[float, float],
    ) -> None:
        self.rng = rng
        self.texts = txt
        self.people = people
        self.window = window
        self.events: list[dict[str, Any]] = []
        self.meta: dict[str, _Meta] = {}
        self._next: dict[str, int] = {}
        # organic threads read from diverse ham; discussions from the longer half of it
        long_ham = [t for t in txt.ham if len(t) >= 40]
        self.long_ham: Sequence[str] = long_ham if len(long_ham) >= 20 else txt.ham

    def place(self) -> float:
        return self.rng.uniform(*self.window)

    def open_post(
        self, post: str, author: str, shape: str, bait: bool, ts: float, text: str
    ) -> None:
        self.meta[post] = _Meta(author, shape, bait)
        self._next[post] = 1
        self.events.append(
            {
                "id": f"{post}-e0",
                "ts": round(ts, 3),
                "kind": "post",
                "actor": author,
                "target": author,
                "post": post,
                "text": text,
            }
        )

    def interact(
        self, post: str, kind: str, actor: str, ts: float, text: str | None = None
    ) -> None:
        n = self._next[post]
        self._next[post] = n + 1
        ev: dict[str, Any] = {
            "id": f"{post}-e{n}",
            "ts": round(ts, 3),
            "kind": kind,
            "actor": actor,
            "target": self.meta[post].author,
            "post": post,
        }
        if text:
            ev["text"] = text
        self.events.append(ev)

    def sample_people(self, k: int, exclude: str) -> list[str]:
        """``k`` distinct real-looking people, never ``exclude`` (no self-interactions)."""
        k = max(0, min(k, len(self.people) - 1))
        return [p for p in self.rng.sample(self.people, k + 1) if p != exclude][:k]

    def thread(self, post: str, t0: float, spec: _Thread, ham: Sequence[str]) -> None:
        """Genuine interactions on ``post``: ham comments by real people, plus extras."""
        rng = self.rng
        author = self.meta[post].author
        n = spec.comments
        times = _arrivals(rng, n, spec.duration, spec.curve)
        actors = _spread(rng, self.sample_people(max(1, round(spec.distinct * n)), author), n)
        lines = cycle(rng, ham)
        seen: set[str] = set()
        for t, actor in zip(times, actors, strict=True):
            chance = spec.repeat_replies if actor in seen else spec.replies
            seen.add(actor)
            kind = "reply" if rng.random() < chance else "comment"
            text = vary(rng, rng.choice(SHORT_REACTIONS)) if rng.random() < 0.05 else next(lines)
            if ham is CONGRATS:
                text = vary(rng, text)
            self.interact(post, kind, actor, t0 + t, text)
        for kind, count in spec.extras.items():
            # shares and clicks follow the same curve as the comments
            extra = _arrivals(rng, count, spec.duration, spec.curve)
            for t, actor in zip(extra, self.sample_people(count, author), strict=False):
                self.interact(post, kind, actor, t0 + t)


def _spread(rng: random.Random, pool: Sequence[str], n: int) -> list[str]:
    """``n`` actors: everyone in ``pool`` once, the rest repeats from it, shuffled."""
    if not pool:
        return []
    actors = list(pool[:n]) + [rng.choice(pool) for _ in range(n - len(pool))]
    rng.shuffle(actors)
    return actors


FARM_SIZE = 400  # the shared bot pool (farm-<j>) that every campaign of a seed draws from


def _campaign(b: _Builder, shape: str, i: int, author: str) -> None:
    rng = b.rng
    sudden = shape.startswith("sudden")
    post = f"camp-{shape}-{i}"
    n = rng.randint(150, 600) if sudden else rng.randint(120, 400)
    duration = rng.uniform(8, 40) * MINUTE if sudden else rng.uniform(4, 12) * HOUR
    t0 = b.place()
    if shape.endswith("-established"):
        _prior_posts(b, shape, i, author, t0)
    bait = rng.choice(BAIT_TEMPLATES) if "-phrased-" in shape else None
    text = bait_post_text(rng, bait) if bait else neutral_text(rng)
    b.open_post(post, author, shape, True, t0, text)
    times = _arrivals(rng, n, duration, "front" if sudden else "steady")
    pool = _bot_pool(rng, shape, i, n)
    for t, actor in zip(times, _spread(rng, pool, n), strict=True):
        kind = "reply" if rng.random() < 0.15 else "comment"
        b.interact(post, kind, actor, t0 + t, bait_comment(rng, bait, b.texts))
    # bait farms comments, not shares: a few likes and clicks at most
    for _ in range(rng.randint(0, n * 5 // 100)):
        kind = rng.choice(("like", "click"))
        b.interact(post, kind, rng.choice(pool), t0 + rng.uniform(1.0, times[-1]))


def _bot_pool(rng: random.Random, shape: str, i: int, n: int) -> list[str]:
    size = max(1, round(rng.uniform(0.4, 0.9) * n))
    shared = min(FARM_SIZE, round(0.1 * size))
    farm = [f"farm-{j}" for j in rng.sample(range(FARM_SIZE), shared)]
    return farm + [f"bot-{shape}-{i}-{j}" for j in range(size - shared)]


def _prior_posts(b: _Builder, shape: str, i: int, author: str, before: float) -> None:
    """3–6 normal posts in the days before a campaign: the author's own baseline."""
    rng = b.rng
    for m in range(rng.randint(3, 6)):
        post = f"prior-{shape}-{i}-{m}"
        # starts ≥ 8 h before the campaign and lasts ≤ 8 h: never overlaps it
        t0 = before - rng.uniform(8 * HOUR, 4 * DAY)
        n = rng.randint(3, 25)
        extras = {
            "share": rng.randint(0, n // 2),
            "click": rng.randint(n // 2, 2 * n),
            "like": rng.randint(0, n),
        }
        spec = _Thread(n, rng.uniform(2, 8) * HOUR, "uniform", 1.0, 0.1, 0.1, extras)
        b.open_post(post, author, BASELINE, False, t0, neutral_text(rng))
        b.thread(post, t0, spec, b.texts.ham)


def _organic_spec(rng: random.Random, shape: str) -> _Thread:
    def times(lo: float, hi: float, n: int) -> int:
        return round(rng.uniform(lo, hi) * n)

    if shape == "viral":
        n = rng.randint(60, 500)
        extras = {
            "share": times(0.5, 2.0, n),
            "click": times(1.0, 3.0, n),
            "like": times(0.5, 2.0, n),
            "conversion": times(0.01, 0.05, n),
        }
        return _Thread(
            n, rng.uniform(1, 6) * HOUR, "front", rng.uniform(0.85, 0.98), 0.1, 0.3, extras
        )
    if shape == "discussion":
        n = rng.randint(30, 250)
        extras = {
            "share": times(0.05, 0.3, n),
            "click": times(0.2, 1.0, n),
            "like": times(0.1, 0.5, n),
        }
        # people come back to answer each other: repeat comments are mostly replies
        return _Thread(
            n, rng.uniform(2, 10) * HOUR, "uniform", rng.uniform(0.6, 0.9), 0.15, 0.75, extras
        )
    if shape == "steady":
        n = rng.randint(20, 80)
        extras = {
            "share": times(0.3, 1.0, n),
            "click": times(0.5, 2.0, n),
            "like": times(0.3, 1.0, n),
            "conversion": times(0.0, 0.05, n),
        }
        return _Thread(
            n, rng.uniform(12, 36) * HOUR, "steady", rng.uniform(0.75, 0.95), 0.1, 0.3, extras
        )
    if shape == "congrats":
        n = rng.randint(30, 200)
        extras = {
            "share": times(0.0, 0.1, n),
            "click": times(0.0, 0.2, n),
            "like": times(1.0, 3.0, n),
        }
        return _Thread(
            n, rng.uniform(2, 12) * HOUR, "front", rng.uniform(0.95, 1.0), 0.05, 0.5, extras
        )
    n = rng.randint(3, 19)
    extras = {
        "share": rng.randint(0, n // 2),
        "click": rng.randint(0, n),
        "like": rng.randint(0, n),
    }
    return _Thread(n, rng.uniform(1, 8) * HOUR, "uniform", rng.uniform(0.8, 1.0), 0.1, 0.3, extras)


def _organic_shapes(n: int) -> list[str]:
    counts = [round(0.25 * n), round(0.20 * n), round(0.20 * n), round(0.15 * n)]
    counts.append(max(0, n - sum(counts)))
    return [shape for shape, c in zip(ORGANIC_SHAPES, counts, strict=True) for _ in range(c)][:n]


# -- the stream -----------------------------------------------------------------------------------


def build_eval(
    data_dir: Path,
    *,
    seed: int = 1,
    campaigns_per_shape: int = 12,
    organic_posts: int = 240,
    background: int = 150_000,
    rules: ScoringRules | None = None,
) -> EvalStream:
    """Build the labelled evaluation stream; the same arguments give the same stream.

    Odd seeds use text half A, even seeds half B. ``rules`` (default: the packaged
    scoring.toml) only sets the weights behind ``full_mp``.

    Raises:
        ValueError: a negative size.
        OSError: a data file cannot be read.
    """
    if min(campaigns_per_shape, organic_posts, background) < 0:
        raise ValueError("sizes must not be negative")
    rules = rules or ScoringRules.load()
    rng = random.Random(seed)
    half = "A" if seed % 2 else "B"
    txt = texts(Path(data_dir), half)
    rows = background_rows(Path(data_dir), background // 2)
    higgs_targets = list(
        dict.fromkeys(r[4] for r in rows if r[0].startswith("bg-higgs-") and r[3] != r[4])
    )
    b = _Builder(rng, txt, _people(rows), _post_window(rows))

    # established campaign authors and 70 % of organic authors are real background users;
    # one sample keeps them apart, so a campaign author has no organic post and vice versa
    n_established = campaigns_per_shape * sum(s.endswith("-established") for s in SHAPES)
    authors = iter(
        rng.sample(higgs_targets, min(len(higgs_targets), n_established + organic_posts))
    )
    for shape in SHAPES:
        for i in range(campaigns_per_shape):
            fresh = f"newauthor-{shape}-{i}"
            author = next(authors, fresh) if shape.endswith("-established") else fresh
            _campaign(b, shape, i, author)
    for i, shape in enumerate(_organic_shapes(organic_posts)):
        fresh = f"author-{shape}-{i}"
        author = next(authors, fresh) if rng.random() < 0.7 else fresh
        post = f"org-{shape}-{i}"
        t0 = b.place()
        b.open_post(post, author, shape, False, t0, neutral_text(rng, news=shape == "viral"))
        spec = _organic_spec(rng, shape)
        ham = {"discussion": b.long_ham, "congrats": CONGRATS}.get(shape, txt.ham)
        b.thread(post, t0, spec, ham)

    events: list[dict[str, Any]] = [
        {"id": i, "ts": ts, "kind": k, "actor": a, "target": t} for i, ts, k, a, t in rows
    ]
    events.extend(b.events)
    events.sort(key=itemgetter("ts"))  # stable: background first among equal times
    posts, background_mp = _labels(events, b.meta, rules)
    return EvalStream(events, posts, background_mp, seed, half)


def _people(rows: Sequence[Row]) -> list[str]:
    """Real background users to comment on organic posts, padded with fresh ones if few."""
    people = list(dict.fromkeys(a for r in rows for a in (r[3], r[4])))
    people += [f"user-{j}" for j in range(max(0, 5000 - len(people)))]
    return people


def _post_window(rows: Sequence[Row]) -> tuple[float, float]:
    """[T0 + 6 h, T1 − 3 h]; T1 reaches at least T0 + 48 h when the background is short."""
    t0 = float(min((r[1] for r in rows), default=HIGGS_START))
    t1 = float(max((r[1] for r in rows), default=HIGGS_START))
    if t1 - t0 < 24 * HOUR:
        t1 = t0 + 48 * HOUR
    return t0 + 6 * HOUR, t1 - 3 * HOUR


def _labels(
    events: Sequence[dict[str, Any]], meta: Mapping[str, _Meta], rules: ScoringRules
) -> tuple[dict[str, PostLabel], int]:
    """Labels and full milli-points, scoring exactly as the contract says, in stream order."""
    weights = rules.weights_mp
    period = rules.dr_period_s
    k_of: dict[tuple[int, str, str], int] = {}
    full = dict.fromkeys(meta, 0)
    start: dict[str, float] = {}
    end: dict[str, float] = {}
    comments: dict[str, list[tuple[str, float]]] = {p: [] for p in meta}
    background = 0
    for ev in events:
        post, ts, kind, actor, target = (
            ev.get("post"),
            ev["ts"],
            ev["kind"],
            ev["actor"],
            ev["target"],
        )
        if post is not None:
            if kind == "post":
                start[post] = ts
            else:
                end[post] = max(end.get(post, ts), ts)
                if kind in COMMENT_KINDS:
                    comments[post].append((ev["id"], ts))
        weight = weights.get(kind, 0)
        if weight == 0 or actor == target:
            continue  # not scored, so not counted in k either
        key = (math.floor(ts / period), actor, target)
        k = k_of.get(key, 0) + 1
        k_of[key] = k
        if post is None:
            background += contribution(weight, k)
        else:
            full[post] += contribution(weight, k)
    labels = {
        p: PostLabel(
            p,
            m.author,
            m.shape,
            m.bait,
            start[p],
            end.get(p, start[p]),
            tuple(comments[p]),
            full[p],
        )
        for p, m in meta.items()
    }
    return labels, background
