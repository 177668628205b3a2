"""The tuning and held-out splits share nothing a detector could be tuned on (baiteval/heldout.py,
baiteval/content.py, baiteval/synthesis.py)."""

from __future__ import annotations

import random
import re

import pytest

from baiteval.content import TUNING
from baiteval.grammar import TemplateSet
from baiteval.heldout import HELDOUT, HELDOUT_FAMILY
from baiteval.labels import TUNING_SHAPES, EvalStream
from baiteval.synthesis import build_eval, split_shapes
from tests.baiteval.conftest import small
from tests.conftest import DATA

WORD = re.compile(r"[^\W_]+")


def rendered_posts(words: TemplateSet, n: int = 60) -> set[str]:
    rng = random.Random(2024)
    out: set[str] = set()
    for t in words.templates:
        one = TemplateSet(words.name, (t,), words.lexicon)
        out.update(one.draw(rng, t.family).text for _ in range(n))
    return out


def literal(entries: tuple[str, ...]) -> set[str]:
    """The entries without a slot (a pattern like ``{first}{num}`` fills in other names)."""
    return {x for x in entries if x and "{" not in x}


def texts(s: EvalStream) -> set[str]:
    return {e["text"] for e in s.events if "text" in e}


def test_the_splits_generate_their_own_shapes(s1: EvalStream, h1: EvalStream) -> None:
    assert s1.shapes == TUNING_SHAPES == split_shapes("tuning")
    assert h1.shapes == (*TUNING_SHAPES, HELDOUT_FAMILY)
    assert HELDOUT_FAMILY not in {lb.shape for lb in s1.posts.values()}
    assert sum(lb.shape == HELDOUT_FAMILY for lb in h1.posts.values()) == 2
    with pytest.raises(ValueError):
        build_eval(DATA, split="both")


def test_each_split_words_its_posts_from_its_own_templates(s1: EvalStream, h1: EvalStream) -> None:
    tuning = {t.name for t in TUNING.templates}
    heldout = {t.name for t in HELDOUT.templates}
    assert not tuning & heldout
    used_t = {lb.template for lb in s1.posts.values() if lb.template}
    used_h = {lb.template for lb in h1.posts.values() if lb.template}
    assert used_t and used_t <= tuning
    assert used_h and used_h <= heldout


def test_no_held_out_post_text_appears_in_a_tuning_stream(s1: EvalStream, h1: EvalStream) -> None:
    assert not rendered_posts(HELDOUT) & texts(s1)
    assert not rendered_posts(TUNING) & texts(h1)
    assert not {t.post for t in HELDOUT.templates} & {t.post for t in TUNING.templates}


def test_the_lexicons_share_no_option_name_place_or_phrase() -> None:
    shared = set(TUNING.lexicon) & set(HELDOUT.lexicon)
    assert {"pairs", "greetings", "first", "last", "place", "praise", "cta", "handle"} <= shared
    rng = random.Random(9)
    for slot in shared:
        # entries never repeat (so no answer pattern can draw the same option or phrase), and
        # neither do their renderings (the same handle pattern fills in other names)
        assert not literal(TUNING.lexicon[slot]) & literal(HELDOUT.lexicon[slot]), slot
        t = {TUNING.phrase(rng, slot) for _ in range(300)} - {""}
        h = {HELDOUT.phrase(rng, slot) for _ in range(300)} - {""}
        assert not t & h, (slot, t & h)
    # and the words people answer with (options, names, places) are different words
    for slot in ("pairs", "first", "last", "place"):
        words_t = {w.casefold() for x in TUNING.lexicon[slot] for w in WORD.findall(x)}
        words_h = {w.casefold() for x in HELDOUT.lexicon[slot] for w in WORD.findall(x)}
        assert not words_t & words_h, (slot, words_t & words_h)


def test_the_held_out_split_is_deterministic_and_unlike_the_tuning_one(
    s1: EvalStream, h1: EvalStream
) -> None:
    again = small(1, "heldout")
    assert again.events == h1.events and again.posts == h1.posts
    # the same seed draws an unrelated stream in the other split
    assert s1.posts.keys().isdisjoint(h1.posts.keys())
