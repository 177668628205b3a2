"""The comment-bait evaluation: a labelled stream and the metrics that score a detector on it.

:func:`build_eval` mixes real background traffic (SNAP Higgs Twitter and MathOverflow) with
synthetic posts whose truth is known: comment-bait campaigns in eight shapes and organic posts
(a viral surge, a lively discussion, a steady thread, a small one). The comment texts are real
YouTube comments (UCI YouTube Spam Collection): spam for the bait farms, ham for real people.

:func:`report` takes what the detector did (one :class:`Throttle` per throttled group, read back
from the store by the replay harness) and measures recall, time to throttle, false throttles and
points withheld against fixed targets; :func:`format_report` prints it.

Pure: reads files under a data directory, talks to neither Redis nor Kafka, prints nothing.
"""

from __future__ import annotations

import bisect
import csv
import functools
import gzip
import hashlib
import html
import math
import random
import re
import statistics
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple

from broker.formats import HIGGS_KINDS, SX_KINDS
from leaderboard.events import MAX_TEXT
from leaderboard.scoring import ScoringRules, contribution, format_mp

__all__ = [
    "ORGANIC_SHAPES",
    "SHAPES",
    "EvalReport",
    "EvalStream",
    "FalseThrottle",
    "OrganicResult",
    "PostLabel",
    "ShapeResult",
    "Texts",
    "Throttle",
    "build_eval",
    "clean_text",
    "format_report",
    "report",
    "texts",
]

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0

#: 2012-07-03 00:00 UTC: the Higgs slice starts here, a day before the 4 July announcement, so it
#: holds ordinary days and the start of the real organic surge.
HIGGS_START = 1341273600

SHAPES: tuple[str, ...] = tuple(
    f"{speed}-{wording}-{author}"
    for speed in ("sudden", "slowburn")
    for wording in ("phrased", "plain")
    for author in ("new", "established")
)
ORGANIC_SHAPES: tuple[str, ...] = ("viral", "discussion", "steady", "congrats", "small")
#: Shape label of an established author's earlier, normal posts (not bait, counted as organic).
BASELINE = "baseline"
#: Shape label of a throttled group that is not a synthetic post (real background traffic).
BACKGROUND = "background"

# The four targets of the evaluation.
RECALL_TARGET = 0.95
FRACTION_TARGET = 0.20
FALSE_THROTTLE_TARGET = 0.01
ORGANIC_WITHHELD_TARGET = 0.005
#: Organic posts with fewer comments are too small to judge a throttle on (not in the rate).
MIN_COMMENTS = 20

COMMENT_KINDS = frozenset({"comment", "reply"})


# -- texts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Texts:
    """Cleaned YouTube comments of one half: spam = low-value comments, ham = genuine ones."""

    half: str
    spam: tuple[str, ...]
    ham: tuple[str, ...]


_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")
# C0/C1 controls, the line/paragraph separators the event schema refuses, and the BOM YouTube
# leaves at the end of many comments
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]")
_SPACE = re.compile(r"\s+")


def clean_text(raw: str) -> str:
    """Plain text from a YouTube comment: tags stripped, entities unescaped, no control chars.

    Tags go before unescaping so that an escaped ``&lt;3`` stays a heart and is not taken for a
    tag; controls go after, since an entity such as ``&#10;`` can produce one. Empty means drop.
    """
    text = _TAG.sub("", _BR.sub(" ", raw))
    text = _CONTROL.sub(" ", html.unescape(text))
    return _SPACE.sub(" ", text).strip()[:MAX_TEXT]


def _half_of(comment_id: str) -> str:
    # a hash, not file order, so both halves hold all five videos and both classes
    return "A" if hashlib.sha256(comment_id.encode()).digest()[0] % 2 == 0 else "B"


@functools.lru_cache(maxsize=8)
def texts(data_dir: Path, half: str) -> Texts:
    """The spam and ham texts of half ``"A"`` or ``"B"`` of the five YouTube files.

    Each class is split in two by a hash of COMMENT_ID, so a detector tuned on one half can be
    reported on texts it never saw. Texts are de-duplicated within a class, in file order.

    Raises:
        ValueError: ``half`` is not "A" or "B".
        OSError: the files cannot be read.
    """
    if half not in ("A", "B"):
        raise ValueError(f"half must be 'A' or 'B', got {half!r}")
    spam: dict[str, None] = {}
    ham: dict[str, None] = {}
    seen_ids: set[str] = set()
    for path in sorted((Path(data_dir) / "youtube_spam").glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                cid = row["COMMENT_ID"]
                if cid in seen_ids or _half_of(cid) != half:
                    continue  # the files repeat three COMMENT_IDs
                seen_ids.add(cid)
                text = clean_text(row["CONTENT"])
                if text:
                    (spam if row["CLASS"].strip() == "1" else ham)[text] = None
    return Texts(half, tuple(spam), tuple(ham))


# -- background ---------------------------------------------------------------------------------

# (id, ts, kind, actor, target): immutable, so the cached slice can be shared by many builds
_Row = tuple[str, int, str, str, str]


@functools.lru_cache(maxsize=4)
def _background(data_dir: Path, per_source: int) -> tuple[_Row, ...]:
    """``per_source`` Higgs events from 2012-07-03 and as many MathOverflow events, aligned.

    The MathOverflow slice is its busiest stretch as long as the Higgs slice (at most
    ``per_source`` events), shifted in time (spacing kept) to start at the first Higgs event, so
    both sources run side by side over the same day or two.
    """
    higgs = _higgs_rows(Path(data_dir) / "higgs" / "higgs-activity_time.txt.gz", per_source)
    start = higgs[0][1] if higgs else HIGGS_START
    span = (higgs[-1][1] - higgs[0][1]) if higgs else DAY
    mo_path = Path(data_dir) / "mathoverflow" / "sx-mathoverflow-typed.DERIVED.txt.gz"
    return tuple(higgs) + tuple(_mo_rows(mo_path, per_source, start, span))


def _higgs_rows(path: Path, n: int) -> list[_Row]:
    rows: list[_Row] = []
    if n <= 0:
        return rows
    with gzip.open(path, "rb") as f:
        # ids carry the file's line number, as `kudos replay --format higgs` numbers them
        for lineno, line in enumerate(f, start=1):
            parts = line.split()
            if len(parts) != 4 or not parts[2].isdigit():
                continue
            ts = int(parts[2])
            kind = HIGGS_KINDS.get(parts[3].decode())
            if ts < HIGGS_START or kind is None:
                continue
            rows.append((f"bg-higgs-{lineno}", ts, kind, parts[0].decode(), parts[1].decode()))
            if len(rows) == n:
                break
    return rows


def _mo_rows(path: Path, n: int, start: int, span: float) -> list[_Row]:
    if n <= 0:
        return []
    lines: list[tuple[int, int, bytes]] = []  # (ts, line number, line)
    with gzip.open(path, "rb") as f:
        for lineno, line in enumerate(f, start=1):
            parts = line.split()
            if len(parts) == 4 and parts[2].isdigit() and parts[3].decode() in SX_KINDS:
                lines.append((int(parts[2]), lineno, line))
    lines.sort(key=itemgetter(0))  # stable: the README says sort before replaying
    n = min(n, len(lines))
    if n == 0:
        return []
    # the window of ``span`` seconds holding the most events (two pointers over sorted times)
    first, best, lo = 0, 0, 0
    for hi in range(len(lines)):
        while lines[hi][0] - lines[lo][0] > span:
            lo += 1
        if hi - lo + 1 > best:
            first, best = lo, hi - lo + 1
    shift = start - lines[first][0]
    rows: list[_Row] = []
    for ts, lineno, line in lines[first : first + min(n, best)]:
        a, b, _, code = line.decode().split()
        rows.append((f"bg-mo-{lineno}", ts + shift, SX_KINDS[code], f"mo{a}", f"mo{b}"))
    return rows


# -- synthetic content ------------------------------------------------------------------------


class _Bait(NamedTuple):
    """A bait post template (Facebook's 2017 engagement-bait taxonomy) and its typical answers.

    ``@`` in ``answers`` stands for a tagged handle.
    """

    category: str
    text: str
    answers: tuple[str, ...]


BAIT_TEMPLATES: tuple[_Bait, ...] = (
    # vote baiting
    _Bait("vote", "Tea or coffee? Comment below!", ("tea", "coffee", "Tea!!", "coffee obviously")),
    _Bait("vote", "Which one do you pick, 1 or 2?", ("1", "2", "2 for sure", "number 1")),
    _Bait("vote", "Beach or mountains? Tell us in the comments 👇", ("beach", "mountains")),
    _Bait("vote", "Cats or dogs?? Vote in the comments!", ("dogs", "cats", "DOGS 🐶", "cats 🐱")),
    _Bait("vote", "Pizza or burgers? Comment your pick!", ("pizza", "burgers", "pizza 🍕")),
    _Bait("vote", "Left or right? Which outfit wins? Comment L or R", ("L", "R", "left", "right")),
    _Bait("vote", "Summer or winter? Drop your answer below ⬇️", ("summer", "winter", "summer ☀️")),
    _Bait(
        "vote", "Would you rather be rich or famous? Answer now!", ("rich", "famous", "rich lol")
    ),
    _Bait("vote", "Pick a number from 1 to 5 for a surprise 🎁", ("3", "5", "1", "4", "2")),
    _Bait("vote", "A, B or C? Which cake would you eat first?", ("A", "B", "C", "b!")),
    # react baiting
    _Bait("react", "React ❤️ if you love dogs", ("❤️", "❤️❤️", "love dogs")),
    _Bait("react", "Like if you remember this! 👍", ("👍", "remember!", "yes")),
    _Bait("react", "Hit ❤️ for cats, 😮 for dogs", ("❤️", "😮", "cats")),
    _Bait("react", "Tap 😂 if this made you laugh", ("😂", "😂😂😂", "lol")),
    _Bait("react", "REACT 😍 IF YOU WANT ONE", ("😍", "want", "me!")),
    _Bait("react", "Like for yes, love for no!", ("yes", "no", "❤️")),
    # share baiting
    _Bait("share", "Share if you agree", ("agree", "shared", "done")),
    _Bait("share", "SHARE this with everyone you know!!", ("shared", "done ✅", "done")),
    _Bait("share", "Share if you love your mom ❤️", ("love you mom", "❤️", "shared")),
    _Bait("share", "Share this before it gets deleted", ("shared", "done", "saved")),
    _Bait("share", "Share so your friends see this too 🙏", ("🙏", "shared", "amen")),
    # tag baiting
    _Bait("tag", "Tag a friend who needs this", ("@", "@", "lol @")),
    _Bait("tag", "Tag someone you'd take on this trip ✈️", ("@", "@ let's go")),
    _Bait("tag", "TAG YOUR BESTIE 👯", ("@", "@ 😂")),
    _Bait("tag", "Tag 3 friends and win a free phone!", ("@ @ @", "@", "done")),
    _Bait("tag", "Tag a friend who always eats your fries 🍟", ("@", "@ 🍟")),
    # comment baiting
    _Bait("comment", "Type YES if you agree", ("YES", "yes", "Yes!!", "yes 🙌")),
    _Bait("comment", "Comment AMEN", ("amen", "AMEN", "amen 🙏", "Amen!")),
    _Bait("comment", "Say something nice in the comments", ("you're great", "nice", "love you")),
    _Bait("comment", "Type 'me' if you're still awake 😴", ("me", "me!!", "ME 😴")),
    _Bait("comment", "Comment 'done' and I'll send you the link", ("done", "Done", "done!!")),
    _Bait("comment", "Drop a 🔥 in the comments if you're ready", ("🔥", "🔥🔥", "ready")),
    _Bait("comment", "Type your name and see what happens 😱", ("Maria", "John", "Ana", "Li")),
    _Bait("comment", "Write 'I love you mom' in the comments ❤️", ("I love you mom", "love u mom")),
    _Bait("comment", "Comment your birth month 🎂", ("march", "July", "may!", "december")),
    _Bait("comment", "Can I get a yes?? 🙌", ("yes", "YES", "yes!!")),
)

#: Neutral post sentences: no bait wording (no comment/share/tag/like/vote/react/type requests).
NEUTRAL_SENTENCES: tuple[str, ...] = (
    "Finished repotting the tomato seedlings this morning.",
    "The new bridge downtown opens to cyclists next week.",
    "Our team shipped the quarterly report, the notes are on the wiki.",
    "Here is the recipe for the lentil soup I made on Sunday.",
    "Photos from Saturday's hike along the ridge trail.",
    "The library is extending its opening hours during exam season.",
    "Reading a good book about the history of maps.",
    "Trying out a new sourdough starter, day three.",
    "The local orchestra announced its spring programme.",
    "Rain all week, so the garden finally got a proper soak.",
    "We measured the river level again after the storm.",
    "A short write-up of the conference talk on sensor networks.",
    "The museum opened a new room for early photography.",
    "Notes from our weekly chess club meeting.",
    "Repaired the old bicycle with parts from the flea market.",
    "The farmers market moves to the main square from June.",
    "Some thoughts on learning a second language as an adult.",
    "Our school's robotics team placed third at the regional fair.",
    "Sunset over the harbour from the ferry tonight.",
    "The city published the new bus timetable.",
    "Baked bread with the kids this afternoon.",
    "A summary of the council meeting about the new park.",
    "Slides from today's workshop on statistics are online.",
    "The first cherry blossoms are out along the canal.",
)

#: News-like openings for viral posts (a real surge is usually news).
NEWS_SENTENCES: tuple[str, ...] = (
    "The lab just announced the discovery of a new particle consistent with the Higgs boson.",
    "Breaking: the national team won the final on penalties.",
    "The space probe has landed safely and sent its first pictures.",
    "The election results for our district are in.",
    "The bridge collapse this morning closed the main road into town.",
    "Scientists released the first image of a black hole's shadow.",
)

#: Short generic comments that also show up in spam-farmed threads.
GENERIC_SHORT: tuple[str, ...] = (
    "nice", "wow", "👍", "cool", "first!", "nice video", "lol", "😍😍", "great", "love this",
)  # fmt: skip

#: Short but genuine reactions: real organic threads have some too.
SHORT_REACTIONS: tuple[str, ...] = (
    "great point", "thanks!", "so true", "interesting", "well said", "congrats!",
    "this is great news", "agreed", "nice work", "thank you for this",
)  # fmt: skip

#: Milestone threads (a wedding, a new job, a birthday): many short, alike, genuine comments from
#: distinct friends and no call to action. No corpus in ../shared/data has them, so they are
#: written here; they are the organic look-alike of a comment farm that text alone cannot tell.
CONGRATS: tuple[str, ...] = (
    "Congratulations!!", "congrats!", "Congrats, well deserved", "So happy for you",
    "So happy for you both ❤️", "Happy birthday!", "happy birthday 🎂", "Best wishes!",
    "Amazing news", "wow congrats", "Congratulations to you both", "🎉🎉🎉", "❤️",
    "Well done!", "You deserve it", "Proud of you", "Many happy returns", "Love this!",
    "Huge congrats", "Yay!!", "Cheers to that", "Awesome news, congrats", "Happy for you!",
    "Enjoy your day", "Wishing you all the best",
)  # fmt: skip

#: Generic answers people give to any bait ("me", "done") besides the template's own.
GENERIC_ANSWERS: tuple[str, ...] = ("me", "done", "yes", "❤️", "🙏", "ok")

_HANDLES = ("jess", "mike_22", "ana.lu", "tom", "sara.k", "leo", "bff", "dani", "chris_m", "kim")
_AT = re.compile("@")
_SUFFIXES = ("", "", "", "!", "!!", "!!!", " 🙏", " 😂", " ❤️", " 👍")


def _vary(rng: random.Random, text: str) -> str:
    """A short answer as people type it: case and trailing punctuation/emoji vary."""
    form = rng.random()
    if form < 0.2:
        text = text.upper()
    elif form < 0.45:
        text = text.lower()
    elif form < 0.6:
        text = text.capitalize()
    return text + rng.choice(_SUFFIXES)


def _short_answer(rng: random.Random, bait: _Bait) -> str:
    answer = rng.choice(GENERIC_ANSWERS) if rng.random() < 0.2 else rng.choice(bait.answers)
    answer = _AT.sub(lambda _: "@" + rng.choice(_HANDLES), answer)
    return _vary(rng, answer)


def _bait_post_text(rng: random.Random, bait: _Bait) -> str:
    body = bait.text
    form = rng.random()
    if form < 0.2:
        body = body.upper()
    elif form < 0.35:
        body = body.lower()
    # a bait line often follows something ordinary ("Sunset tonight. Tag a friend!")
    lead = rng.choice(NEUTRAL_SENTENCES) + " " if rng.random() < 0.35 else ""
    return lead + body + rng.choice(("", "", " 👇", " 🔥", " 😍", " 🙏"))


def _neutral_text(rng: random.Random, *, news: bool = False) -> str:
    first = rng.choice(NEWS_SENTENCES if news else NEUTRAL_SENTENCES)
    if rng.random() < 0.5:
        return first
    return first + " " + rng.choice([s for s in NEUTRAL_SENTENCES if s != first])


def _cycle(rng: random.Random, pool: Sequence[str]) -> Iterator[str]:
    """Texts without repeats until the pool is used up: a real thread is diverse."""
    while True:
        order = list(pool)
        rng.shuffle(order)
        yield from order


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
        lines = _cycle(rng, ham)
        seen: set[str] = set()
        for t, actor in zip(times, actors, strict=True):
            chance = spec.repeat_replies if actor in seen else spec.replies
            seen.add(actor)
            kind = "reply" if rng.random() < chance else "comment"
            text = _vary(rng, rng.choice(SHORT_REACTIONS)) if rng.random() < 0.05 else next(lines)
            if ham is CONGRATS:
                text = _vary(rng, text)
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
    text = _bait_post_text(rng, bait) if bait else _neutral_text(rng)
    b.open_post(post, author, shape, True, t0, text)
    times = _arrivals(rng, n, duration, "front" if sudden else "steady")
    pool = _bot_pool(rng, shape, i, n)
    for t, actor in zip(times, _spread(rng, pool, n), strict=True):
        kind = "reply" if rng.random() < 0.15 else "comment"
        b.interact(post, kind, actor, t0 + t, _bait_comment(rng, bait, b.texts))
    # bait farms comments, not shares: a few likes and clicks at most
    for _ in range(rng.randint(0, n * 5 // 100)):
        kind = rng.choice(("like", "click"))
        b.interact(post, kind, rng.choice(pool), t0 + rng.uniform(1.0, times[-1]))


def _bot_pool(rng: random.Random, shape: str, i: int, n: int) -> list[str]:
    size = max(1, round(rng.uniform(0.4, 0.9) * n))
    shared = min(FARM_SIZE, round(0.1 * size))
    farm = [f"farm-{j}" for j in rng.sample(range(FARM_SIZE), shared)]
    return farm + [f"bot-{shape}-{i}-{j}" for j in range(size - shared)]


def _bait_comment(rng: random.Random, bait: _Bait | None, txt: Texts) -> str:
    if bait is not None:
        return _short_answer(rng, bait) if rng.random() < 0.5 else rng.choice(txt.spam)
    if rng.random() < 0.1:
        return _vary(rng, rng.choice(GENERIC_SHORT))
    # with replacement: farms repeat themselves, so near-duplicates occur as they do for real
    return rng.choice(txt.spam)


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
        b.open_post(post, author, BASELINE, False, t0, _neutral_text(rng))
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


@dataclass(frozen=True)
class PostLabel:
    """The truth about one synthetic post.

    ``full_mp``: milli-points its interactions earn with no throttle (weights with diminishing
    returns per (actor, target, UTC day) over the whole stream, in stream order).
    """

    post: str
    author: str
    shape: str
    bait: bool
    start: float  # ts of the post event
    end: float  # ts of its last interaction
    comments: tuple[tuple[str, float], ...]  # (event id, ts) of its comments/replies, stream order
    full_mp: int


@dataclass(frozen=True)
class EvalStream:
    """A labelled stream: events sorted by ts, labels of the synthetic posts."""

    events: list[dict[str, Any]]
    posts: dict[str, PostLabel]
    background_full_mp: int  # full milli-points of the background events (those without a post)
    seed: int
    half: str


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
    rows = _background(Path(data_dir), background // 2)
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
        b.open_post(post, author, shape, False, t0, _neutral_text(rng, news=shape == "viral"))
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


def _people(rows: Sequence[_Row]) -> list[str]:
    """Real background users to comment on organic posts, padded with fresh ones if few."""
    people = list(dict.fromkeys(a for r in rows for a in (r[3], r[4])))
    people += [f"user-{j}" for j in range(max(0, 5000 - len(people)))]
    return people


def _post_window(rows: Sequence[_Row]) -> tuple[float, float]:
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


# -- metrics --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Throttle:
    """What the detector did to one group, as read back from the store.

    ``group`` is ``p:<post>`` for a post, ``t:<target>`` for comments without a post. A group can
    appear several times (throttled, calmed, throttled again).
    """

    group: str
    post: str | None
    target: str
    detected_at: float  # event time of the comment at which the throttle started
    multiplier: float
    reasons: tuple[str, ...]
    withheld_mp: int


@dataclass(frozen=True)
class ShapeResult:
    """One campaign shape. Times and fractions are over detected campaigns only (else None)."""

    shape: str
    campaigns: int
    detected: int
    median_seconds: float | None  # detected_at − first comment ts
    max_seconds: float | None
    median_fraction: float | None  # comments before the throttle / the campaign's comments
    max_fraction: float | None
    late: int  # detected campaigns throttled after more than FRACTION_TARGET of their comments
    full_mp: int
    withheld_mp: int

    @property
    def recall(self) -> float:
        return self.detected / self.campaigns if self.campaigns else 1.0

    @property
    def withheld_share(self) -> float:
        return self.withheld_mp / self.full_mp if self.full_mp else 0.0


@dataclass(frozen=True)
class OrganicResult:
    """One organic shape (``background`` = real traffic, throttled as ``t:`` groups)."""

    shape: str
    posts: int
    eligible: int  # posts with ≥ MIN_COMMENTS comments: those the false-throttle rate counts
    throttled: int  # eligible posts throttled
    full_mp: int
    withheld_mp: int


@dataclass(frozen=True)
class FalseThrottle:
    """A throttle on anything but a campaign, for the report's list."""

    group: str
    post: str | None
    target: str
    shape: str  # organic shape, "baseline", or "background"
    comments: int  # the post's comments (0 for a background group)
    detected_at: float
    multiplier: float
    reasons: tuple[str, ...]  # of every detection of the group, first seen first
    withheld_mp: int


@dataclass(frozen=True)
class EvalReport:
    """The evaluation of one detector run on one :class:`EvalStream`."""

    seed: int
    half: str
    shapes: dict[str, ShapeResult]
    organic: dict[str, OrganicResult]
    throttled_groups: int
    true_groups: int
    false_throttles: tuple[FalseThrottle, ...]
    max_fraction_before: float  # max over all campaigns; an undetected one counts as 1.0
    false_throttle_rate: float  # eligible organic posts throttled / eligible organic posts
    organic_withheld_share: float  # withheld on non-campaign groups / organic + background full
    passed: bool
    failures: list[str]

    @property
    def recall(self) -> dict[str, float]:
        return {s: r.recall for s, r in self.shapes.items()}

    @property
    def precision(self) -> float:
        return self.true_groups / self.throttled_groups if self.throttled_groups else 1.0


class _Group(NamedTuple):
    first: Throttle
    withheld_mp: int
    reasons: tuple[str, ...]


def _merge(throttles: Sequence[Throttle]) -> dict[str, _Group]:
    """One entry per group: its first detection, withheld summed, reasons united."""
    out: dict[str, _Group] = {}
    for t in sorted(throttles, key=lambda t: t.detected_at):
        g = out.get(t.group)
        if g is None:
            out[t.group] = _Group(t, t.withheld_mp, t.reasons)
        else:
            reasons = tuple(dict.fromkeys(g.reasons + t.reasons))
            out[t.group] = _Group(g.first, g.withheld_mp + t.withheld_mp, reasons)
    return out


def _post_of(t: Throttle) -> str | None:
    if t.post is not None:
        return t.post
    return t.group[2:] if t.group.startswith("p:") else None


def report(stream: EvalStream, throttles: Sequence[Throttle]) -> EvalReport:
    """Score what the detector did against the stream's labels and the four targets."""
    groups = _merge(throttles)
    by_post = {p: g for g in groups.values() if (p := _post_of(g.first)) in stream.posts}
    shapes = {s: _shape_result(stream, s, by_post) for s in SHAPES}
    organic, false_list = _organic(stream, groups)
    eligible = sum(o.eligible for o in organic.values())
    throttled = sum(o.throttled for o in organic.values())
    rate = throttled / eligible if eligible else 0.0
    organic_full = sum(o.full_mp for o in organic.values())
    share = sum(o.withheld_mp for o in organic.values()) / organic_full if organic_full else 0.0
    fractions = [
        _fraction(label, by_post.get(p)) for p, label in stream.posts.items() if label.bait
    ]
    failures = _failures(shapes, rate, share)
    return EvalReport(
        seed=stream.seed,
        half=stream.half,
        shapes=shapes,
        organic=organic,
        throttled_groups=len(groups),
        true_groups=len(groups) - len(false_list),
        false_throttles=tuple(false_list),
        max_fraction_before=max(fractions, default=0.0),
        false_throttle_rate=rate,
        organic_withheld_share=share,
        passed=not failures,
        failures=failures,
    )


def _fraction(label: PostLabel, group: _Group | None) -> float:
    """Share of the comments scored in full before the throttle; 1.0 if never throttled.

    The comment AT ``detected_at`` is already throttled; comment times within a synthetic post
    are distinct, so counting the ones strictly before is exact.
    """
    if group is None or not label.comments:
        return 1.0
    times = [ts for _, ts in label.comments]
    return bisect.bisect_left(times, group.first.detected_at) / len(times)


def _shape_result(stream: EvalStream, shape: str, by_post: Mapping[str, _Group]) -> ShapeResult:
    labels = [lb for lb in stream.posts.values() if lb.bait and lb.shape == shape]
    seconds: list[float] = []
    fractions: list[float] = []
    withheld = 0
    for label in labels:
        group = by_post.get(label.post)
        if group is None:
            continue
        withheld += group.withheld_mp
        if label.comments:
            seconds.append(group.first.detected_at - label.comments[0][1])
        fractions.append(_fraction(label, group))
    return ShapeResult(
        shape=shape,
        campaigns=len(labels),
        detected=len(fractions),
        median_seconds=statistics.median(seconds) if seconds else None,
        max_seconds=max(seconds, default=None),
        median_fraction=statistics.median(fractions) if fractions else None,
        max_fraction=max(fractions, default=None),
        late=sum(f > FRACTION_TARGET for f in fractions),
        full_mp=sum(lb.full_mp for lb in labels),
        withheld_mp=withheld,
    )


def _organic(
    stream: EvalStream, groups: Mapping[str, _Group]
) -> tuple[dict[str, OrganicResult], list[FalseThrottle]]:
    rows: dict[str, list[int]] = {}  # shape → [posts, eligible, throttled, full, withheld]
    for shape in (*ORGANIC_SHAPES, BASELINE):
        rows[shape] = [0, 0, 0, 0, 0]
    rows[BACKGROUND] = [0, 0, 0, stream.background_full_mp, 0]
    for lb in stream.posts.values():
        if not lb.bait:
            row = rows.setdefault(lb.shape, [0, 0, 0, 0, 0])
            row[0] += 1
            row[1] += len(lb.comments) >= MIN_COMMENTS
            row[3] += lb.full_mp
    false_list: list[FalseThrottle] = []
    for group, g in groups.items():
        post = _post_of(g.first)
        label = stream.posts.get(post) if post is not None else None
        if label is not None and label.bait:
            continue
        shape = label.shape if label is not None else BACKGROUND
        row = rows.setdefault(shape, [0, 0, 0, 0, 0])
        n_comments = len(label.comments) if label is not None else 0
        row[2] += label is not None and n_comments >= MIN_COMMENTS
        row[4] += g.withheld_mp
        t = g.first
        false_list.append(
            FalseThrottle(
                group,
                post,
                t.target,
                shape,
                n_comments,
                t.detected_at,
                t.multiplier,
                g.reasons,
                g.withheld_mp,
            )
        )
    false_list.sort(key=lambda f: (f.detected_at, f.group))
    return {s: OrganicResult(s, *r) for s, r in rows.items()}, false_list


def _failures(shapes: Mapping[str, ShapeResult], rate: float, share: float) -> list[str]:
    failures = [
        f"recall {s.shape}: {s.detected} of {s.campaigns} campaigns detected "
        f"({s.recall:.0%} < {RECALL_TARGET:.0%})"
        for s in shapes.values()
        if s.recall < RECALL_TARGET
    ]
    late = {s.shape: s.late + s.campaigns - s.detected for s in shapes.values()}
    if any(late.values()):
        detected = [s.max_fraction for s in shapes.values() if s.max_fraction is not None]
        worst = f"; worst detected {max(detected):.1%}" if detected else ""
        names = ", ".join(f"{shape} {n}" for shape, n in late.items() if n)
        failures.append(
            f"throttled before 20 %: {sum(late.values())} campaigns let more than "
            f"{FRACTION_TARGET:.0%} of their comments through or were never throttled "
            f"({names}{worst})"
        )
    if rate > FALSE_THROTTLE_TARGET:
        failures.append(
            f"false throttles {rate:.2%} of organic posts > {FALSE_THROTTLE_TARGET:.0%}"
        )
    if share > ORGANIC_WITHHELD_TARGET:
        failures.append(f"organic points withheld {share:.3%} > {ORGANIC_WITHHELD_TARGET:.1%}")
    return failures


# -- printing -----------------------------------------------------------------------------------


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if abs(seconds) < 120:
        return f"{seconds:.0f}s"
    if abs(seconds) < 2 * HOUR:
        return f"{seconds / MINUTE:.1f}m"
    return f"{seconds / HOUR:.1f}h"


def _pct(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}%}"


def format_report(r: EvalReport) -> str:
    """A compact fixed-width text report: campaigns per shape, organic, false throttles, verdict."""
    lines = [
        f"comment-bait evaluation: seed {r.seed}, texts half {r.half}",
        "",
        f"{'campaign shape':<30}{'n':>4}{'det':>5}{'recall':>8}{'t med':>8}{'t max':>8}"
        f"{'frac med':>10}{'frac max':>10}{'>20%':>6}{'withheld':>10}",
    ]
    for s in r.shapes.values():
        lines.append(
            f"{s.shape:<30}{s.campaigns:>4}{s.detected:>5}{_pct(s.recall):>8}"
            f"{_dur(s.median_seconds):>8}{_dur(s.max_seconds):>8}{_pct(s.median_fraction):>10}"
            f"{_pct(s.max_fraction):>10}{s.late:>6}{_pct(s.withheld_share):>10}"
        )
    lines += [
        f"precision {_pct(r.precision)}: {r.true_groups} of {r.throttled_groups} throttled groups are campaigns",
        "",
        f"{'organic shape':<30}{'posts':>6}{f'>={MIN_COMMENTS}c':>7}{'throttled':>10}"
        f"{'full pts':>14}{'withheld':>10}",
    ]
    for o in r.organic.values():
        share = o.withheld_mp / o.full_mp if o.full_mp else 0.0
        lines.append(
            f"{o.shape:<30}{o.posts:>6}{o.eligible:>7}{o.throttled:>10}"
            f"{format_mp(o.full_mp):>14}{_pct(share, 3):>10}"
        )
    lines.append(f"false throttles: {len(r.false_throttles)}")
    for f in r.false_throttles:
        lines.append(
            f"  {f.group} [{f.shape}, {f.comments} comments] at ts {f.detected_at:.0f} "
            f"x{f.multiplier:g} withheld {format_mp(f.withheld_mp)} pts: {', '.join(f.reasons) or '-'}"
        )
    worst_recall = min(r.recall.values(), default=1.0)
    checks = (
        (
            worst_recall >= RECALL_TARGET,
            f"recall per shape >= {RECALL_TARGET:.0%} (worst {worst_recall:.1%})",
        ),
        (
            not any(s.late or s.detected < s.campaigns for s in r.shapes.values()),
            f"every campaign throttled before 20 % of its comments (max {r.max_fraction_before:.1%})",
        ),
        (
            r.false_throttle_rate <= FALSE_THROTTLE_TARGET,
            f"false throttles <= {FALSE_THROTTLE_TARGET:.0%} of organic posts with >= {MIN_COMMENTS} "
            f"comments ({r.false_throttle_rate:.2%})",
        ),
        (
            r.organic_withheld_share <= ORGANIC_WITHHELD_TARGET,
            f"organic points withheld <= {ORGANIC_WITHHELD_TARGET:.1%} ({r.organic_withheld_share:.3%})",
        ),
    )
    lines.append("")
    lines += [f"{'PASS' if ok else 'MISS'} {text}" for ok, text in checks]
    lines.append("PASSED" if r.passed else f"FAILED: {'; '.join(r.failures)}")
    return "\n".join(lines)
