"""The machinery every synthetic shape is written with: one :class:`Builder` per stream.

The builder owns the build's one RNG, the synthetic events and the truth about each post, and
hands out what shapes need: arrival times, real background people, fresh accounts and authors,
opaque post ids. Ids carry no label: a post is ``<12 hex digits>`` and a fresh account an
8-digit number like the real Higgs ids, so nothing in an event names its shape.

Pure: no I/O.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from baiteval.content import SHORT_REACTIONS, cycle, neutral_text, vary
from baiteval.data import Texts
from baiteval.labels import BASELINE, DAY, HOUR

__all__ = ["Builder", "Meta", "Thread", "arrivals", "distinct_times", "spread"]


def arrivals(rng: random.Random, n: int, duration: float, curve: str) -> list[float]:
    """``n`` offsets in (0, ``duration``] seconds, strictly increasing by at least 1 ms.

    ``front``: a Poisson process whose rate decays exponentially, conditioned on n arrivals
    (i.i.d. truncated-exponential offsets), so it starts steep. ``steady``: an even grid with a
    little jitter that ends at ``duration``. ``uniform``: a homogeneous Poisson process.
    Strictly increasing per post so that "interactions before ``detected_at``" is exact.
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
    return distinct_times(min(max(t, 1.0), duration) for t in raw)


def distinct_times(times: Iterator[float] | Sequence[float]) -> list[float]:
    """``times`` sorted, rounded to ms, each at least 1 ms after the one before."""
    out: list[float] = []
    prev = 0.0
    for t in sorted(times):
        t = round(max(t, prev + 0.001), 3)
        out.append(t)
        prev = t
    return out


def spread(rng: random.Random, pool: Sequence[str], n: int) -> list[str]:
    """``n`` actors: everyone in ``pool`` once, the rest repeats from it, shuffled."""
    if not pool:
        return []
    actors = list(pool[:n]) + [rng.choice(pool) for _ in range(n - len(pool))]
    rng.shuffle(actors)
    return actors


@dataclass(frozen=True)
class Meta:
    """What the builder knows about a post before the labels are scored."""

    author: str
    shape: str
    bait: bool
    template: str | None = None
    campaign: str | None = None


@dataclass(frozen=True)
class Thread:
    """How one genuine post's interactions unfold."""

    comments: int
    duration: float
    curve: str
    distinct: float  # share of comments written by distinct people
    replies: float  # chance a first comment by someone is a reply
    repeat_replies: float  # chance a repeat comment by the same person is a reply
    extras: Mapping[str, int]  # like/click/share/conversion counts


class Builder:
    """Collects synthetic events and their posts' truth; owns the one RNG of a build.

    ``people``: real background accounts (commenters, friends, ring and pod members).
    ``authors``: real accounts with background traffic aimed at them, handed out once each by
    :meth:`take_author`, so no account authors posts of two shapes. ``known``: who interacted
    with whom in the background (target → actors), so strangers can be told from acquaintances.
    """

    #: The shared pool of farm accounts every farm of a build may draw from: farms move on together.
    FARM_SIZE = 400

    def __init__(
        self,
        rng: random.Random,
        txt: Texts,
        people: Sequence[str],
        authors: Sequence[str],
        window: tuple[float, float],
        known: Mapping[str, set[str]] | None = None,
    ) -> None:
        self.rng = rng
        self.texts = txt
        self.people = people
        self.window = window
        self.events: list[dict[str, Any]] = []
        self.meta: dict[str, Meta] = {}
        self._next: dict[str, int] = {}
        # target → the accounts that interacted with it so far (background and synthetic)
        self.known: defaultdict[str, set[str]] = defaultdict(set)
        for target, actors in (known or {}).items():
            self.known[target] = set(actors)
        self._taken: set[str] = set(people) | set(authors)
        self._authors = list(authors)
        rng.shuffle(self._authors)
        # organic threads read from diverse ham; discussions from the longer half of it
        long_ham = [t for t in txt.ham if len(t) >= 40]
        self.long_ham: Sequence[str] = long_ham if len(long_ham) >= 20 else txt.ham
        self.farm = [self.fresh_account() for _ in range(self.FARM_SIZE)]

    # -- ids ----------------------------------------------------------------------------------

    def fresh_account(self) -> str:
        """An account never seen before in the stream (nor in the background)."""
        while True:
            acct = str(self.rng.randrange(10_000_000, 100_000_000))
            if acct not in self._taken:
                self._taken.add(acct)
                return acct

    def new_post(self) -> str:
        while True:
            post = f"{self.rng.getrandbits(48):012x}"
            if post not in self.meta:
                return post

    def take_author(self) -> str:
        """A real account with background history, never handed out before (fresh if none left)."""
        return self._authors.pop() if self._authors else self.fresh_account()

    def author(self, established: bool) -> str:
        return self.take_author() if established else self.fresh_account()

    # -- events -------------------------------------------------------------------------------

    def place(self) -> float:
        return self.rng.uniform(*self.window)

    def open_post(
        self,
        post: str,
        author: str,
        shape: str,
        bait: bool,
        ts: float,
        text: str,
        *,
        template: str | None = None,
        campaign: str | None = None,
    ) -> None:
        self.meta[post] = Meta(author, shape, bait, template, campaign)
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
        self.known[ev["target"]].add(actor)

    def sample_people(self, k: int, exclude: str | Sequence[str] = ()) -> list[str]:
        """``k`` distinct real people, none of ``exclude`` (no self-interactions)."""
        banned = {exclude} if isinstance(exclude, str) else set(exclude)
        k = max(0, min(k, len(self.people) - len(banned)))
        out = [p for p in self.rng.sample(self.people, k + len(banned)) if p not in banned]
        return out[:k]

    def strangers(self, n: int, real_share: float, exclude: str) -> list[str]:
        """``n`` distinct accounts that never dealt with ``exclude`` (the post's author): real
        people with probability ``real_share``, else accounts first seen at their comment."""
        real = sum(self.rng.random() < real_share for _ in range(n))
        out = self.sample_people(real, [exclude, *self.known.get(exclude, ())])
        out += [self.fresh_account() for _ in range(n - len(out))]
        self.rng.shuffle(out)
        return out

    def thread(
        self, post: str, t0: float, spec: Thread, ham: Sequence[str], vary_ham: bool = False
    ) -> None:
        """Genuine interactions on ``post``: ham comments by real people, plus extras."""
        rng = self.rng
        author = self.meta[post].author
        n = spec.comments
        times = arrivals(rng, n, spec.duration, spec.curve)
        actors = spread(rng, self.sample_people(max(1, round(spec.distinct * n)), author), n)
        lines = cycle(rng, ham)
        seen: set[str] = set()
        for t, actor in zip(times, actors, strict=True):
            chance = spec.repeat_replies if actor in seen else spec.replies
            seen.add(actor)
            kind = "reply" if rng.random() < chance else "comment"
            text = vary(rng, rng.choice(SHORT_REACTIONS)) if rng.random() < 0.05 else next(lines)
            if vary_ham:
                text = vary(rng, text)
            self.interact(post, kind, actor, t0 + t, text)
        self.extras(post, t0, spec.extras, spec.duration, spec.curve)

    def extras(
        self, post: str, t0: float, extras: Mapping[str, int], duration: float, curve: str
    ) -> None:
        """Shares, clicks, likes… by real people, following the same curve as the comments."""
        author = self.meta[post].author
        for kind, count in extras.items():
            times = arrivals(self.rng, count, duration, curve)
            for t, actor in zip(times, self.sample_people(count, author), strict=False):
                self.interact(post, kind, actor, t0 + t)

    def prior_posts(self, author: str, before: float) -> None:
        """3–6 normal posts in the days before a campaign: the author's own baseline."""
        rng = self.rng
        for _ in range(rng.randint(3, 6)):
            post = self.new_post()
            # starts ≥ 8 h before the campaign and lasts ≤ 8 h: never overlaps it
            t0 = before - rng.uniform(8 * HOUR, 4 * DAY)
            n = rng.randint(3, 25)
            extras = {
                "share": rng.randint(0, n // 2),
                "click": rng.randint(n // 2, 2 * n),
                "like": rng.randint(0, n),
            }
            spec = Thread(n, rng.uniform(2, 8) * HOUR, "uniform", 1.0, 0.1, 0.1, extras)
            self.open_post(post, author, BASELINE, False, t0, neutral_text(rng))
            self.thread(post, t0, spec, self.texts.ham)
