"""The labelled stream: synthetic campaigns and organic posts mixed into real background traffic.

:func:`build_eval` mixes real background traffic (SNAP Higgs Twitter and MathOverflow) with
synthetic posts whose truth is known: comment-bait campaigns (:mod:`baiteval.campaigns`, and in
the held-out split also :mod:`baiteval.heldout`'s family) and organic posts
(:mod:`baiteval.organic`). Comment texts are real YouTube comments (UCI YouTube Spam
Collection): spam for bait farms, ham for real people; bait wordings come from the split's
template set. Each post's label (:class:`~baiteval.labels.PostLabel`) holds its comments, the
interactions its 20 % target is measured over and the points its interactions earn with no
throttle.

Two splits with nothing in common but the background traffic and the organic shapes:

- ``tuning``: the tuning wordings (:data:`baiteval.content.TUNING`), the tuning shapes
  (:data:`baiteval.labels.TUNING_SHAPES`), YouTube texts half A;
- ``heldout``: the held-out wordings (:data:`baiteval.heldout.HELDOUT`), every shape family
  including the held-out one, YouTube texts half B;

and each split draws from its own random stream (the same ``seed`` gives two unrelated streams).

Pure: reads files under a data directory, talks to neither Redis nor Kafka, prints nothing.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

from baiteval.builder import Builder, Meta
from baiteval.campaigns import CAMPAIGNS, Generator, campaigns_of
from baiteval.content import TUNING
from baiteval.data import HIGGS_START, Row, background_rows, texts
from baiteval.heldout import HELDOUT, HELDOUT_FAMILY, puzzle
from baiteval.labels import (
    COMMENT_KINDS,
    FARMED_KINDS,
    HOUR,
    SPLITS,
    TUNING_SHAPES,
    EvalStream,
    PostLabel,
)
from baiteval.organic import ORGANIC, organic_mix, pod_like
from leaderboard.scoring import ScoringRules, contribution

__all__ = ["build_eval", "split_shapes"]


def split_shapes(split: str) -> tuple[str, ...]:
    """The campaign shapes ``split`` generates, in report order.

    Raises:
        ValueError: not a split.
    """
    if split == "tuning":
        return TUNING_SHAPES
    if split == "heldout":
        return (*TUNING_SHAPES, HELDOUT_FAMILY)
    raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")


def build_eval(
    data_dir: Path,
    *,
    seed: int = 1,
    split: str = "tuning",
    campaigns_per_shape: int = 12,
    organic_posts: int = 240,
    background: int = 150_000,
    rules: ScoringRules | None = None,
) -> EvalStream:
    """Build the labelled evaluation stream; the same arguments give the same stream.

    ``split``: ``tuning`` (tuning wordings and shapes, YouTube half A) or ``heldout`` (held-out
    wordings, every shape family including the held-out one, half B). ``rules`` (default: the
    packaged scoring.toml) only sets the weights behind ``full_mp``.

    Raises:
        ValueError: a negative size or an unknown split.
        OSError: a data file cannot be read.
    """
    shapes = split_shapes(split)
    if min(campaigns_per_shape, organic_posts, background) < 0:
        raise ValueError("sizes must not be negative")
    rules = rules or ScoringRules.load()
    # a string seed is hashed (SHA-512) by random.Random: stable across runs and platforms
    rng = random.Random(f"kudos-bait-eval/{split}/{seed}")
    half = "A" if split == "tuning" else "B"
    words = TUNING if split == "tuning" else HELDOUT
    txt = texts(Path(data_dir), half)
    rows = background_rows(Path(data_dir), background // 2)
    # real accounts with traffic aimed at them: the authors of established campaigns, organic
    # posts, rings and pods; each authors one shape only
    higgs_targets = list(
        dict.fromkeys(r[4] for r in rows if r[0].startswith("bg-higgs-") and r[3] != r[4])
    )
    known: dict[str, set[str]] = {}
    for r in rows:
        known.setdefault(r[4], set()).add(r[3])
    b = Builder(rng, txt, _people(rows), higgs_targets, _post_window(rows), known)

    generators: dict[str, Generator] = {**CAMPAIGNS, HELDOUT_FAMILY: puzzle}
    for shape in shapes:
        for i in range(campaigns_of(shape, campaigns_per_shape)):
            generators[shape](b, words, i)
    mix = organic_mix(organic_posts)
    for shape, count in mix.items():
        if shape == "pod-like":
            while count > 0:
                count -= pod_like(b, count)
        else:
            for _ in range(count):
                ORGANIC[shape](b)

    events: list[dict[str, Any]] = [
        {"id": i, "ts": ts, "kind": k, "actor": a, "target": t} for i, ts, k, a, t in rows
    ]
    events.extend(b.events)
    events.sort(key=itemgetter("ts"))  # stable: background first among equal times
    posts, background_mp = _labels(events, b.meta, rules)
    return EvalStream(events, posts, background_mp, seed, half, split, shapes)


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
    events: Sequence[dict[str, Any]], meta: Mapping[str, Meta], rules: ScoringRules
) -> tuple[dict[str, PostLabel], int]:
    """Labels and full milli-points, scoring exactly as the contract says, in stream order."""
    weights = rules.weights_mp
    period = rules.dr_period_s
    k_of: dict[tuple[int, str, str], int] = {}
    full = dict.fromkeys(meta, 0)
    start: dict[str, float] = {}
    end: dict[str, float] = {}
    comments: dict[str, list[tuple[str, float]]] = {p: [] for p in meta}
    farmed: dict[str, list[tuple[str, float]]] = {p: [] for p in meta}
    farmed_kinds = {
        p: FARMED_KINDS.get(m.shape, COMMENT_KINDS) if m.bait else COMMENT_KINDS
        for p, m in meta.items()
    }
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
                if kind in farmed_kinds[post]:
                    farmed[post].append((ev["id"], ts))
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
            tuple(farmed[p]),
            m.template,
            m.campaign,
        )
        for p, m in meta.items()
    }
    return labels, background
