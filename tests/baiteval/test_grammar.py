"""The template grammar of the evaluation's wordings (baiteval/grammar.py)."""

from __future__ import annotations

import random

import pytest

from baiteval.content import TUNING
from baiteval.grammar import Template, TemplateSet, expand, typed
from baiteval.heldout import HELDOUT

LEX = {"fruit": ("apple", "pear"), "dish": ("{fruit} pie", "[baked|stewed] {fruit}")}


def renders(pattern: str, n: int = 300, **bound: str) -> set[str]:
    rng = random.Random(7)
    return {expand(pattern, rng, LEX, bound) for _ in range(n)}


def test_alternatives_nest_and_an_empty_one_makes_a_word_optional() -> None:
    assert renders("[a|b[c|d]]") == {"a", "bc", "bd"}
    assert renders("x[ y|]") == {"x y", "x"}


def test_slots_draw_from_the_lexicon_recursively_and_bound_variables_win() -> None:
    assert renders("{dish}") == {
        "apple pie", "pear pie", "baked apple", "baked pear", "stewed apple", "stewed pear",
    }  # fmt: skip
    assert renders("{fruit} or {A}", A="plum") == {"apple or plum", "pear or plum"}


@pytest.mark.parametrize("bad", ["{nope}", "[a|b", "{fruit"])
def test_a_bad_pattern_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        expand(bad, random.Random(1), LEX)


def test_a_post_binds_its_options_once_and_its_answers_echo_them() -> None:
    t = Template("t", "either-or", "{A} or {B}?", ("{A}", "{B} {B~}"), "pairs")
    words = TemplateSet("x", (t,), {"pairs": ("tea~☕/coffee~☕",)})
    rng = random.Random(3)
    echoes = 0
    for _ in range(50):
        bait = words.draw(rng, "either-or")
        assert bait.text.lower().rstrip(" 👇🔥😍🙏✨") in ("tea or coffee?", "coffee or tea?")
        answer = words.answer(rng, bait).lower()
        echoes += "tea" in answer or "coffee" in answer or "☕" in answer
    assert echoes >= 0.8 * 50  # (the rest: typos)


def test_typed_answers_vary_but_stay_recognisable() -> None:
    rng = random.Random(11)
    out = [typed(rng, "good morning") for _ in range(500)]
    assert all(out) and all("  " not in x and x == x.strip() for x in out)
    assert len(set(out)) > 40  # case, stretched letters, typos, emoji, punctuation
    assert sum("good morning" in x.lower() for x in out) > 0.7 * len(out)


@pytest.mark.parametrize("words", [TUNING, HELDOUT], ids=lambda w: w.name)
def test_every_template_of_both_sets_renders(words: TemplateSet) -> None:
    rng = random.Random(5)
    names = [t.name for t in words.templates]
    assert len(names) == len(set(names))
    for t in words.templates:
        one = TemplateSet(words.name, (t,), words.lexicon)
        for _ in range(20):
            bait = one.draw(rng, t.family)
            assert bait.text and "{" not in bait.text and "[" not in bait.text
            answer = one.answer(rng, bait)
            assert answer and "{" not in answer
    for slot in ("praise", "handle"):
        assert len({words.phrase(rng, slot) for _ in range(200)}) > 30
