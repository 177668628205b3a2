"""A small grammar for the words of synthetic bait posts and of the answers farmed under them.

A :class:`Template` is a post pattern and the patterns of its typical answers; a
:class:`TemplateSet` is templates with the lexicon their slots draw from. The evaluation has two
sets with nothing in common, a tuning one (:data:`baiteval.content.TUNING`) and a held-out one
(:data:`baiteval.heldout.HELDOUT`), so a detector tuned on one is reported on wordings it never saw.

Patterns:

- ``[a|b|c]``: one alternative, uniformly; brackets nest, and ``[a|]`` is an optional ``a``;
- ``{name}``: an entry of the lexicon's ``name`` list (itself a pattern), or a variable bound
  once per post: ``{A}``, ``{B}``, ``{C}`` its options, ``{A~}`` (…) an option's emoji, ``{Q}``
  its question, ``{@}`` a handle (from the lexicon's ``handle`` list, a new one each time).

A template's ``options`` names the lexicon list of its option sets, each written
``[question => ]option/option[/option]`` with ``option`` = ``words[~emoji]``: one set is drawn per
post, so the post asks "tea or coffee?" and its answers say "tea", "coffee ☕" or "team tea".

:func:`typed` then varies a rendered answer as people type it (case, stretched letters, typos,
repeated words, trailing punctuation and emoji), :func:`styled` a post.

Pure: no I/O; every choice is drawn from the ``random.Random`` passed in.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "Bait",
    "Lexicon",
    "Template",
    "TemplateSet",
    "expand",
    "styled",
    "typed",
]

#: Slot name → the patterns it stands for.
Lexicon = Mapping[str, tuple[str, ...]]

_SPACE = re.compile(r"\s+")
_SPACE_PUNCT = re.compile(r"\s+([,.!?])")
_MAX_DEPTH = 8  # lexicon entries may refer to other entries; no template needs more


@dataclass(frozen=True)
class Template:
    """One wording of a bait post: its pattern, its typical answers, its option sets' list."""

    name: str  # unique across both sets: labels carry it, the split test compares them
    family: str  # either-or, tag, greeting, vote, react, share, comment, …
    post: str
    answers: tuple[str, ...]
    options: str = ""  # the lexicon list the post's options are drawn from ("" = none)


@dataclass(frozen=True)
class Bait:
    """A template drawn for one post: the rendered post text and the variables it bound."""

    template: Template
    text: str
    bound: Mapping[str, str] = field(default_factory=dict)


def _close(pattern: str, i: int, open_: str, close: str) -> int:
    """Index of the bracket closing the one at ``i``."""
    depth = 0
    for j in range(i, len(pattern)):
        c = pattern[j]
        if c == open_:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return j
    raise ValueError(f"unbalanced {open_!r} in pattern {pattern!r}")


def _split_top(body: str) -> list[str]:
    """``a|[b|c]|d`` → ``["a", "[b|c]", "d"]``."""
    out: list[str] = []
    depth, start = 0, 0
    for j, c in enumerate(body):
        if c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
        elif c == "|" and depth == 0:
            out.append(body[start:j])
            start = j + 1
    out.append(body[start:])
    return out


def expand(
    pattern: str,
    rng: random.Random,
    lexicon: Lexicon,
    bound: Mapping[str, str] | None = None,
    _depth: int = 0,
) -> str:
    """The text of ``pattern`` with every alternative chosen and every slot filled.

    Raises:
        ValueError: an unknown slot, an unbalanced bracket, or entries nested too deep.
    """
    if _depth > _MAX_DEPTH:
        raise ValueError(f"lexicon entries nest deeper than {_MAX_DEPTH}: {pattern!r}")
    bound = bound or {}
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "[":
            j = _close(pattern, i, "[", "]")
            choice = rng.choice(_split_top(pattern[i + 1 : j]))
            out.append(expand(choice, rng, lexicon, bound, _depth + 1))
            i = j + 1
        elif c == "{":
            j = _close(pattern, i, "{", "}")
            name = pattern[i + 1 : j]
            if name in bound:
                out.append(bound[name])
            elif name == "@":
                out.append("@" + expand("{handle}", rng, lexicon, bound, _depth + 1))
            elif name in lexicon:
                out.append(expand(rng.choice(lexicon[name]), rng, lexicon, bound, _depth + 1))
            else:
                raise ValueError(f"unknown slot {{{name}}} in pattern {pattern!r}")
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _tidy(text: str) -> str:
    return _SPACE_PUNCT.sub(r"\1", _SPACE.sub(" ", text)).strip()


def _bind(rng: random.Random, option_set: str) -> dict[str, str]:
    question, sep, rest = option_set.partition(" => ")
    if not sep:
        question, rest = "", option_set
    bound = {"Q": question.strip()}
    options = [o.strip() for o in rest.split("/")]
    if len(options) > 1 and rng.random() < 0.5:
        # "tea or coffee" and "coffee or tea" are the same bait
        options[0], options[1] = options[1], options[0]
    for name, option in zip("ABC", options + options[:1] * 3, strict=False):
        word, _, emoji = option.partition("~")
        bound[name] = word.strip()
        bound[name + "~"] = emoji.strip()
    return bound


# -- how people type --------------------------------------------------------------------------

# most answers end plainly; the rest with the usual flourishes
_SUFFIXES = (
    "", "", "", "", "", "", "", "", "!", "!!", "!!!", ".", " 🙏", " 😂", " ❤️", " 👍", " 😍",
    " lol", " 🙌",
)  # fmt: skip
_PREFIXES = ("😂 ", "❤️ ", "omg ", "hahaha ", "👉 ")


def _typo(rng: random.Random, word: str) -> str:
    if len(word) < 3 or not word.isalpha():
        return word
    j = rng.randrange(1, len(word) - 1)
    how = rng.random()
    if how < 0.4:  # neighbours swapped
        return word[:j] + word[j + 1] + word[j] + word[j + 2 :]
    if how < 0.7:  # a letter dropped
        return word[:j] + word[j + 1 :]
    return word[:j] + word[j] + word[j:]  # a letter doubled


def _stretch(rng: random.Random, text: str) -> str:
    """The last letter held: "yes" → "yesss"."""
    for j in range(len(text) - 1, -1, -1):
        if text[j].isalpha():
            return text[: j + 1] + text[j] * rng.randint(2, 4) + text[j + 1 :]
    return text


def typed(rng: random.Random, text: str) -> str:
    """A short answer as people type it: case, a stretched letter, a typo, a repeated word,
    a leading or trailing emoji or punctuation. Never empty if ``text`` is not."""
    text = _tidy(text)
    if not text:
        return text
    words = text.split(" ")
    if rng.random() < 0.08:
        k = rng.randrange(len(words))
        words[k] = _typo(rng, words[k])
    if len(words) == 1 and rng.random() < 0.04:
        words = words * rng.randint(2, 3)  # "tea tea tea"
    text = " ".join(words)
    form = rng.random()
    if form < 0.15:
        text = text.upper()
    elif form < 0.45:
        text = text.lower()
    elif form < 0.6:
        text = text[:1].upper() + text[1:]
    if rng.random() < 0.1:
        text = _stretch(rng, text)
    if rng.random() < 0.04:
        text = rng.choice(_PREFIXES) + text
    return _tidy(text + rng.choice(_SUFFIXES))


def styled(rng: random.Random, text: str, lead: str = "") -> str:
    """A post as pages write them: sentence case, sometimes shouted or all lower case, sometimes
    after an ordinary sentence (``lead``), sometimes with a trailing emoji."""
    text = _tidy(text)
    text = text[:1].upper() + text[1:]
    form = rng.random()
    if form < 0.15:
        text = text.upper()
    elif form < 0.27:
        text = text.lower()
    if lead:
        text = lead + " " + text
    return _tidy(text + rng.choice(("", "", "", " 👇", " 🔥", " 😍", " 🙏", " ✨")))


# -- the sets -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateSet:
    """Templates and the lexicon their slots draw from: everything a split may say."""

    name: str
    templates: tuple[Template, ...]
    lexicon: Lexicon

    def family(self, family: str) -> tuple[Template, ...]:
        """The templates of ``family`` (empty if none)."""
        return tuple(t for t in self.templates if t.family == family)

    def draw(self, rng: random.Random, family: str | tuple[str, ...], lead: str = "") -> Bait:
        """One post of ``family`` (or of any of several families): template, options, text.

        Raises:
            ValueError: the set has no template of that family.
        """
        families = (family,) if isinstance(family, str) else family
        pool = [t for t in self.templates if t.family in families]
        if not pool:
            raise ValueError(f"template set {self.name!r} has no {family!r} template")
        template = rng.choice(pool)
        bound = _bind(rng, rng.choice(self.lexicon[template.options])) if template.options else {}
        text = styled(rng, expand(template.post, rng, self.lexicon, bound), lead)
        return Bait(template, text, bound)

    def answer(self, rng: random.Random, bait: Bait) -> str:
        """One typed answer to ``bait``: one of its template's answers, filled and varied."""
        pattern = rng.choice(bait.template.answers)
        text = _tidy(expand(pattern, rng, self.lexicon, bait.bound))
        return typed(rng, text or bait.bound.get("A", "yes"))

    def phrase(self, rng: random.Random, slot: str) -> str:
        """One rendering of the lexicon's ``slot`` (praise for a ring, a greeting, …)."""
        return _tidy(expand("{" + slot + "}", rng, self.lexicon))
