"""The campaign shapes both splits generate: the first harness's eight and the six of issue 13.

Each generator writes one campaign (one post, or for a ring or a pod a series of posts) into a
:class:`~baiteval.builder.Builder`, wording its posts and answers from the split's
:class:`~baiteval.grammar.TemplateSet`. They are written from the issue's description of bait as
it is seen in the wild, not from what any detector checks:

- the eight first shapes: sudden or slow-burn × with or without bait wording × new or established
  author; farmed by a bot pool that repeats itself and shares accounts with other farms;
- ``either-or``: "X or Y? let me know" answered by hundreds of strangers in one or two words;
- ``tag-friend``: a tag-a-friend post answered with @mentions, some with a word or an emoji;
- ``greeting-farm``: a greeting post farmed with hundreds of near-identical greetings;
- ``ring``: a few dozen accounts, also the authors, commenting on each other's posts for days;
- ``textless-flood``: hundreds of comments without text in minutes from accounts never seen
  before, and nothing else following;
- ``pod``: 20–60 accounts sharing and liking each other's posts within minutes, few comments.

Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from baiteval.builder import Builder, arrivals, distinct_times, spread
from baiteval.content import GENERIC_ANSWERS, GENERIC_SHORT, NEUTRAL_SENTENCES, neutral_text, vary
from baiteval.grammar import Bait, TemplateSet, typed
from baiteval.labels import DAY, HOUR, LEGACY_SHAPES, MINUTE

__all__ = ["CAMPAIGNS", "LEGACY_FAMILIES", "campaigns_of"]

#: The template families of the first harness's "phrased" shapes (Facebook's 2017 taxonomy).
LEGACY_FAMILIES = ("vote", "react", "share", "tag", "comment")

#: (builder, the split's wordings, campaign index) → the campaign written into the builder.
Generator = Callable[[Builder, TemplateSet, int], None]


def campaigns_of(shape: str, per_shape: int) -> int:
    """How many campaigns of ``shape`` a stream with ``per_shape`` per shape has: a ring or a pod
    is several posts (8–30), so fewer of them make as many labelled posts."""
    if shape in ("ring", "pod"):
        return max(1, math.ceil(per_shape / 3))
    return per_shape


def _lead(b: Builder, p: float) -> str:
    # a bait line often follows something ordinary ("Sunset tonight. Tag a friend!")
    return b.rng.choice(NEUTRAL_SENTENCES) if b.rng.random() < p else ""


def _open(
    b: Builder, shape: str, author: str, t0: float, text: str, bait: Bait | None = None
) -> str:
    post = b.new_post()
    b.open_post(post, author, shape, True, t0, text, template=bait.template.name if bait else None)
    return post


# -- the first harness's eight shapes ------------------------------------------------------------


def _bot_pool(b: Builder, n: int) -> list[str]:
    size = max(1, round(b.rng.uniform(0.4, 0.9) * n))
    shared = min(Builder.FARM_SIZE, round(0.1 * size))
    return b.rng.sample(b.farm, shared) + [b.fresh_account() for _ in range(size - shared)]


def _legacy(shape: str) -> Generator:
    sudden = shape.startswith("sudden")
    phrased = "-phrased-" in shape
    established = shape.endswith("-established")

    def generate(b: Builder, words: TemplateSet, i: int) -> None:
        rng = b.rng
        n = rng.randint(150, 600) if sudden else rng.randint(120, 400)
        duration = rng.uniform(8, 40) * MINUTE if sudden else rng.uniform(4, 12) * HOUR
        t0 = b.place()
        author = b.author(established)
        if established:
            b.prior_posts(author, t0)
        bait = words.draw(rng, LEGACY_FAMILIES, _lead(b, 0.35)) if phrased else None
        post = _open(b, shape, author, t0, bait.text if bait else neutral_text(rng), bait)
        times = arrivals(rng, n, duration, "front" if sudden else "steady")
        pool = _bot_pool(b, n)
        for t, actor in zip(times, spread(rng, pool, n), strict=True):
            kind = "reply" if rng.random() < 0.15 else "comment"
            if bait is not None and rng.random() < 0.5:
                text = (
                    typed(rng, rng.choice(GENERIC_ANSWERS))
                    if rng.random() < 0.2
                    else words.answer(rng, bait)
                )
            elif bait is None and rng.random() < 0.1:
                text = vary(rng, rng.choice(GENERIC_SHORT))
            else:
                # with replacement: farms repeat themselves, as they do for real
                text = rng.choice(b.texts.spam)
            b.interact(post, kind, actor, t0 + t, text)
        # bait farms comments, not shares: a few likes and clicks at most
        for _ in range(rng.randint(0, n * 5 // 100)):
            kind = rng.choice(("like", "click"))
            b.interact(post, kind, rng.choice(pool), t0 + rng.uniform(1.0, times[-1]))

    return generate


# -- answered by strangers: either-or, tag-a-friend ----------------------------------------------


def _answered(
    b: Builder,
    words: TemplateSet,
    shape: str,
    family: str,
    n: int,
    duration: float,
    generic: float,
) -> None:
    """A bait post answered by ``n`` strangers, most once; some like it, almost none share."""
    rng = b.rng
    established = rng.random() < 0.5
    t0 = b.place()
    author = b.author(established)
    if established:
        b.prior_posts(author, t0)
    bait = words.draw(rng, family, _lead(b, 0.2))
    post = _open(b, shape, author, t0, bait.text, bait)
    times = arrivals(rng, n, duration, "front")
    # strangers: real people who never dealt with the author, and accounts made for the occasion
    pool = b.strangers(max(1, round(rng.uniform(0.85, 1.0) * n)), rng.uniform(0.2, 0.8), author)
    for t, actor in zip(times, spread(rng, pool, n), strict=True):
        kind = "reply" if rng.random() < 0.05 else "comment"
        r = rng.random()
        if r < generic:
            text = typed(rng, rng.choice(GENERIC_ANSWERS))
        elif r < generic + 0.04:
            text = rng.choice(b.texts.ham)  # somebody writes a sentence
        else:
            text = words.answer(rng, bait)
        b.interact(post, kind, actor, t0 + t, text)
    for kind, share in (("like", rng.uniform(0.0, 0.2)), ("share", rng.uniform(0.0, 0.02))):
        for _ in range(round(share * n)):
            b.interact(post, kind, rng.choice(pool), t0 + rng.uniform(1.0, times[-1]))


def either_or(b: Builder, words: TemplateSet, i: int) -> None:
    rng = b.rng
    fast = rng.random() < 0.5
    duration = rng.uniform(15, 60) * MINUTE if fast else rng.uniform(1, 8) * HOUR
    _answered(b, words, "either-or", "either-or", rng.randint(150, 800), duration, 0.06)


def tag_friend(b: Builder, words: TemplateSet, i: int) -> None:
    rng = b.rng
    duration = rng.uniform(0.5, 6) * HOUR
    _answered(b, words, "tag-friend", "tag", rng.randint(150, 600), duration, 0.03)


# -- greeting farm -------------------------------------------------------------------------------


def greeting_farm(b: Builder, words: TemplateSet, i: int) -> None:
    """Hundreds of near-identical greetings from distinct accounts: mostly accounts made for it,
    some of the shared farm (greeting farms work many pages), a few real people."""
    rng = b.rng
    established = rng.random() < 0.6  # greeting pages run for years
    t0 = b.place()
    author = b.author(established)
    if established:
        b.prior_posts(author, t0)
    bait = words.draw(rng, "greeting")
    post = _open(b, "greeting-farm", author, t0, bait.text, bait)
    n = rng.randint(200, 900)
    times = arrivals(rng, n, rng.uniform(1, 6) * HOUR, "front")
    farm = rng.sample(b.farm, min(len(b.farm), round(rng.uniform(0.2, 0.4) * n)))
    real = b.sample_people(round(rng.uniform(0.0, 0.2) * n), author)
    fresh = [b.fresh_account() for _ in range(max(0, n - len(farm) - len(real)))]
    pool = farm + real + fresh
    for t, actor in zip(times, spread(rng, pool, n), strict=True):
        kind = "reply" if rng.random() < 0.03 else "comment"
        text = typed(rng, "amen 🙏") if rng.random() < 0.04 else words.answer(rng, bait)
        b.interact(post, kind, actor, t0 + t, text)
    for _ in range(round(rng.uniform(0.0, 0.15) * n)):
        b.interact(post, "like", rng.choice(pool), t0 + rng.uniform(1.0, times[-1]))


# -- textless flood ------------------------------------------------------------------------------


def textless_flood(b: Builder, words: TemplateSet, i: int) -> None:
    """Hundreds of comments without text in minutes, from accounts with no history, and nothing
    else: no likes, shares or clicks."""
    rng = b.rng
    established = rng.random() < 0.5
    t0 = b.place()
    author = b.author(established)
    if established:
        b.prior_posts(author, t0)
    post = _open(b, "textless-flood", author, t0, neutral_text(rng))
    n = rng.randint(200, 900)
    times = arrivals(rng, n, rng.uniform(2, 15) * MINUTE, rng.choice(("front", "uniform")))
    pool = [b.fresh_account() for _ in range(round(rng.uniform(0.92, 1.0) * n))]
    for t, actor in zip(times, spread(rng, pool, n), strict=True):
        b.interact(post, "reply" if rng.random() < 0.05 else "comment", actor, t0 + t)


# -- ring ----------------------------------------------------------------------------------------


def _members(b: Builder, m: int) -> list[str]:
    """A ring's or a pod's accounts: real, aged accounts half the time, else new ones."""
    # (real ones from the authors' pool: no account authors posts of two shapes)
    if b.rng.random() < 0.5:
        return [b.take_author() for _ in range(m)]
    return [b.fresh_account() for _ in range(m)]


def ring(b: Builder, words: TemplateSet, i: int) -> None:
    """A few dozen accounts that are also the authors, commenting on each other's posts post
    after post for hours or days: varied praise, some likes, the odd outsider."""
    rng = b.rng
    members = _members(b, rng.randint(25, 60))
    authors = rng.sample(members, rng.randint(max(4, len(members) // 6), len(members) // 2))
    campaign = f"ring-{i}"
    start = b.place()
    span = rng.uniform(12 * HOUR, 3 * DAY)
    turnout = rng.uniform(0.6, 0.95)
    for t0 in sorted(start + rng.uniform(0.0, span) for _ in range(rng.randint(8, 20))):
        author = rng.choice(authors)
        post = b.new_post()
        b.open_post(post, author, "ring", True, t0, neutral_text(rng), campaign=campaign)
        crew = [m for m in members if m != author and rng.random() < turnout]
        outsiders = b.sample_people(rng.randint(0, 3), members)
        lines = [(m, False) for m in crew]
        lines += [(m, True) for m in crew if rng.random() < 0.1]  # a second word, as a reply
        lines += [(m, False) for m in outsiders]
        rng.shuffle(lines)
        times = arrivals(rng, len(lines), rng.uniform(10 * MINUTE, 3 * HOUR), "front")
        for t, (actor, again) in zip(times, lines, strict=True):
            if actor in outsiders:
                text = rng.choice(b.texts.ham)
            else:
                text = words.phrase(rng, "praise")
                text = typed(rng, text) if rng.random() < 0.3 else text
            b.interact(post, "reply" if again else "comment", actor, t0 + t, text)
        for m in crew:
            if rng.random() < 0.5:
                b.interact(post, "like", m, t0 + rng.uniform(1.0, times[-1] if times else 60.0))


# -- pod -----------------------------------------------------------------------------------------


def pod(b: Builder, words: TemplateSet, i: int) -> None:
    """20–60 accounts that like and share each other's posts in lockstep, within minutes of
    each post, over days; a comment or two at most. A few outsiders like it later."""
    rng = b.rng
    members = _members(b, rng.randint(20, 60))
    authors = rng.sample(members, max(3, round(rng.uniform(0.3, 0.7) * len(members))))
    campaign = f"pod-{i}"
    start = b.place()
    span = rng.uniform(1, 5) * DAY
    turnout = rng.uniform(0.7, 1.0)
    share_rate = rng.uniform(0.4, 0.8)
    median = rng.uniform(2, 6) * MINUTE
    for t0 in sorted(start + rng.uniform(0.0, span) for _ in range(rng.randint(10, 30))):
        author = rng.choice(authors)
        post = b.new_post()
        b.open_post(post, author, "pod", True, t0, neutral_text(rng), campaign=campaign)
        acts: list[tuple[float, str, str]] = []
        for m in members:
            if m == author or rng.random() >= turnout:
                continue
            # the pod's chat announces the post; members react within minutes
            delay = min(15 * MINUTE, rng.lognormvariate(math.log(median), 0.6))
            acts.append((delay, "like", m))
            if rng.random() < share_rate:
                acts.append((delay + rng.uniform(2.0, 90.0), "share", m))
            if rng.random() < 0.05:
                acts.append((delay + rng.uniform(5.0, 120.0), "comment", m))
        for outsider in b.sample_people(rng.randint(0, 5), members):
            acts.append((rng.uniform(30 * MINUTE, 12 * HOUR), "like", outsider))
        acts.sort()
        times = distinct_times([max(1.0, d) for d, _, _ in acts])
        for t, (_, kind, actor) in zip(times, acts, strict=True):
            text = words.phrase(rng, "praise") if kind == "comment" else None
            b.interact(post, kind, actor, t0 + t, text)


#: Every campaign shape of the tuning split, by name.
CAMPAIGNS: dict[str, Generator] = {
    **{shape: _legacy(shape) for shape in LEGACY_SHAPES},
    "either-or": either_or,
    "tag-friend": tag_friend,
    "greeting-farm": greeting_farm,
    "ring": ring,
    "textless-flood": textless_flood,
    "pod": pod,
}
