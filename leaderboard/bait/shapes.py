"""The near-duplicate check of a post's answers, and the in-memory index that makes it cheap.

A post's group keeps the word sets of its first distinct answers (``Group.shapes``, stored with
the group). A texted comment repeats an earlier answer when its word set is at least 3/5 alike
(Jaccard similarity) to one of them: a greeting and the same greeting with a word added; "good
morning" and "gooood morning all". :func:`near_any` is that rule over a plain list.

Every texted comment is checked against up to 32 shapes, and in a bait thread most answers are
the same few words. :class:`Shapes` answers the same question from an index of one group's
shapes: the shapes as sets grouped by size (sizes too far apart for 3/5 are skipped a bucket at a
time, and a set intersects a set in C), and the word sets already known to be near-duplicates (a
repeat of one of them is answered by one lookup; in the bait-eval tuning stream 84 % of the
near-duplicates are exact repeats of a shape). A group's shapes are only ever appended to, so what
the index knows stays true while the group lives: it is derived, never stored, and rebuilt from
``Group.shapes`` when missing (after a restore).
"""

from __future__ import annotations

from collections.abc import Iterable

#: Word sets the index remembers as known near-duplicates, at most (beyond, it still answers by
#: intersecting: memory stays bounded however many distinct answers a farm sends).
KNOWN_MAX = 64


def near_any(a: set[int] | frozenset[int], shapes: list[list[int]]) -> bool:
    """Whether answer ``a`` is a near-duplicate of any of ``shapes`` (the rule; see above).
    Sizes too far apart for 3/5 are skipped without intersecting."""
    la = len(a)
    lo, hi = 3 * la / 5, 5 * la / 3
    for b in shapes:
        lb = len(b)
        if lb < lo or lb > hi:
            continue
        common = len(a.intersection(b))
        if 5 * common >= 3 * (la + lb - common):
            return True
    return False


class Shapes:
    """One group's shapes, indexed: :meth:`near` is :func:`near_any` over ``stored``.

    ``stored`` is the group's own list (the same object), which the detector appends to; the
    index catches up with it on each call, and a detector that finds ``stored`` is not its
    group's list any more (the group was replaced: a new episode, or forgotten) builds a new one.
    """

    __slots__ = ("_by_size", "_known", "_seen", "stored")

    def __init__(self, stored: list[list[int]]) -> None:
        self.stored = stored
        self._seen = 0
        #: the length of a shape's list (as :func:`near_any` measures it) → the shapes as sets
        self._by_size: dict[int, list[frozenset[int]]] = {}
        #: word sets known to be near-duplicates of a shape (shapes only grow: stays true)
        self._known: set[frozenset[int]] = set()

    def _catch_up(self) -> None:
        stored = self.stored
        if len(stored) < self._seen:  # (never: shapes are only appended to; but never wrong)
            self._seen, self._by_size, self._known = 0, {}, set()
        for b in stored[self._seen :]:
            s = frozenset(b)
            self._by_size.setdefault(len(b), []).append(s)
            # (a shape is its own near-duplicate when its list holds no repeated word: always,
            # for lists of distinct word hashes)
            if len(s) == len(b) and len(self._known) < KNOWN_MAX:
                self._known.add(s)
        self._seen = len(stored)

    def near(self, words: Iterable[int]) -> bool:
        """Whether the answer with these word hashes is a near-duplicate of a shape so far."""
        if len(self.stored) != self._seen:
            self._catch_up()
        a = frozenset(words)
        if a in self._known:
            return True
        la = len(a)
        for lb, shapes in self._by_size.items():
            # (3/5 ≤ lb/la ≤ 5/3 in integers: the same test as near_any's, exactly)
            if 5 * lb < 3 * la or 3 * lb > 5 * la:
                continue
            for b in shapes:
                if a.isdisjoint(b):
                    continue  # (half the shapes of a size share no word: no set to build)
                common = len(a & b)
                if 5 * common >= 3 * (la + lb - common):
                    if len(self._known) < KNOWN_MAX:
                        self._known.add(a)
                    return True
        return False
