"""The words of the synthetic posts and comments.

Bait post templates (Facebook's 2017 engagement-bait taxonomy) with their typical answers, neutral
and news-like post sentences, short reactions and congratulations, and the helpers that vary them
as people type. Comments of bait farms mix these with real YouTube spam (:mod:`baiteval.data`).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from baiteval.data import Texts

__all__ = [
    "BAIT_TEMPLATES",
    "CONGRATS",
    "GENERIC_ANSWERS",
    "GENERIC_SHORT",
    "NEUTRAL_SENTENCES",
    "NEWS_SENTENCES",
    "SHORT_REACTIONS",
    "bait_comment",
    "bait_post_text",
    "cycle",
    "neutral_text",
    "vary",
]


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


def vary(rng: random.Random, text: str) -> str:
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
    return vary(rng, answer)


def bait_post_text(rng: random.Random, bait: _Bait) -> str:
    body = bait.text
    form = rng.random()
    if form < 0.2:
        body = body.upper()
    elif form < 0.35:
        body = body.lower()
    # a bait line often follows something ordinary ("Sunset tonight. Tag a friend!")
    lead = rng.choice(NEUTRAL_SENTENCES) + " " if rng.random() < 0.35 else ""
    return lead + body + rng.choice(("", "", " 👇", " 🔥", " 😍", " 🙏"))


def neutral_text(rng: random.Random, *, news: bool = False) -> str:
    first = rng.choice(NEWS_SENTENCES if news else NEUTRAL_SENTENCES)
    if rng.random() < 0.5:
        return first
    return first + " " + rng.choice([s for s in NEUTRAL_SENTENCES if s != first])


def cycle(rng: random.Random, pool: Sequence[str]) -> Iterator[str]:
    """Texts without repeats until the pool is used up: a real thread is diverse."""
    while True:
        order = list(pool)
        rng.shuffle(order)
        yield from order


def bait_comment(rng: random.Random, bait: _Bait | None, txt: Texts) -> str:
    if bait is not None:
        return _short_answer(rng, bait) if rng.random() < 0.5 else rng.choice(txt.spam)
    if rng.random() < 0.1:
        return vary(rng, rng.choice(GENERIC_SHORT))
    # with replacement: farms repeat themselves, so near-duplicates occur as they do for real
    return rng.choice(txt.spam)
