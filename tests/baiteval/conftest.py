"""Shared by the comment-bait evaluation tests: small labelled streams and label filters."""

from __future__ import annotations

import pytest

from baiteval.labels import EvalStream, PostLabel
from baiteval.synthesis import build_eval
from tests.conftest import DATA

BACKGROUND = 4000


def small(seed: int) -> EvalStream:
    """A stream small enough for a unit test: 2 campaigns per shape, 20 organic posts."""
    return build_eval(
        DATA, seed=seed, background=BACKGROUND, campaigns_per_shape=2, organic_posts=20
    )


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
