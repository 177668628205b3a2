"""Shared by the comment-bait evaluation tests: small labelled streams and label filters."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from baiteval.labels import EvalStream, PostLabel
from baiteval.synthesis import build_eval
from tests.conftest import DATA

BACKGROUND = 4000


def small(seed: int, split: str = "tuning") -> EvalStream:
    """A stream small enough for a unit test: 2 campaigns per shape, 20 organic posts."""
    return build_eval(
        DATA,
        seed=seed,
        split=split,
        background=BACKGROUND,
        campaigns_per_shape=2,
        organic_posts=20,
    )


@pytest.fixture(scope="session")
def s1() -> EvalStream:
    return small(1)


@pytest.fixture(scope="session")
def s2() -> EvalStream:
    return small(2)


@pytest.fixture(scope="session")
def h1() -> EvalStream:
    return small(1, "heldout")


def campaigns(s: EvalStream) -> list[PostLabel]:
    return [lb for lb in s.posts.values() if lb.bait]


def organic(s: EvalStream, shape: str) -> list[PostLabel]:
    return [lb for lb in s.posts.values() if not lb.bait and lb.shape == shape]


def of_shape(s: EvalStream, shape: str) -> list[PostLabel]:
    return [lb for lb in s.posts.values() if lb.shape == shape]


def events_by_post(s: EvalStream) -> dict[str, list[dict[str, Any]]]:
    out: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in s.events:
        if "post" in e:
            out[e["post"]].append(e)
    return dict(out)
