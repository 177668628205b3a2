"""The words of the synthetic posts and comments, and the tuning set of bait wordings.

:data:`TUNING` is the template set (:mod:`baiteval.grammar`) the tuning split draws its bait posts
and answers from: the first harness's bait templates (Facebook's 2017 engagement-bait taxonomy,
:data:`BAIT_TEMPLATES`) and the either-or, tag-a-friend and greeting families, with their
lexicon (options, handles, calls to action in several languages, praise). The held-out split's
set lives in :mod:`baiteval.heldout` and shares no template, option, handle or phrase with it.

Also here, used by both splits: neutral and news-like post sentences, the posts of AMAs and advice
threads, short reactions and congratulations, and the helpers that vary them as people type.
Comments of bait farms mix these with real YouTube spam (:mod:`baiteval.data`).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from baiteval.grammar import Template, TemplateSet

__all__ = [
    "ADVICE_POSTS",
    "AMA_POSTS",
    "BAIT_TEMPLATES",
    "CONGRATS",
    "GENERIC_ANSWERS",
    "GENERIC_SHORT",
    "MILESTONE_POSTS",
    "NEUTRAL_SENTENCES",
    "NEWS_SENTENCES",
    "SHORT_REACTIONS",
    "THANKS",
    "TUNING",
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


#: Ask-me-anything openings: a call for comments, but genuine; the answers are long questions and
#: the author replies. The organic look-alike of bait wording.
AMA_POSTS: tuple[str, ...] = (
    "I've been a paramedic for twelve years. Ask me anything for the next few hours.",
    "AMA: I build violins by hand in a small workshop. Questions welcome!",
    "I just finished rowing across the Atlantic solo. Ask me anything.",
    "I'm a school librarian and I answer all your questions about children's books today.",
    "Ten years running a bakery: ask me anything about starting a small food business.",
    "I work on the night shift at an observatory. Ask away, I'll answer as many as I can.",
)

#: Advice requests: a question to readers, answered at length by people who reply to each other.
ADVICE_POSTS: tuple[str, ...] = (
    "Need advice: my landlord wants to raise the rent by 20 % mid-lease. What would you do?",
    "How do you get a toddler to sleep through the night? We have tried everything.",
    "Thinking of switching careers from accounting to nursing at 38. Has anyone done it?",
    "Our old dog has stopped eating his usual food. Any ideas before we see the vet again?",
    "What's the best way to learn to swim as an adult? I'm a bit scared of deep water.",
    "We're moving abroad with two kids next year. What do you wish you had known?",
)

#: Milestones announced to friends: the posts of congratulation threads.
MILESTONE_POSTS: tuple[str, ...] = (
    "We got married on Saturday! Thank you all for being part of it.",
    "Today was my first day at the new job.",
    "Our daughter was born last night, mother and baby are doing well.",
    "I passed the bar exam!",
    "Twenty years at the hospital today, time flies.",
    "Finally finished my PhD thesis defence.",
    "We bought our first house!",
    "Ran my first marathon this morning, 4h12.",
)

#: The author thanking friends under a milestone post.
THANKS: tuple[str, ...] = (
    "Thank you all so much ❤️", "thanks everyone!", "You are all wonderful, thank you",
    "Thank you!! 🙏", "So grateful for all of you",
)  # fmt: skip

# -- the tuning set of bait wordings ------------------------------------------------------------

# options of either-or posts: one set per post, the answers echo them
_PAIRS: tuple[str, ...] = (
    "tea~☕/coffee~☕", "cats~🐱/dogs~🐶", "beach~🏖️/mountains~⛰️", "pizza~🍕/burgers~🍔",
    "summer~☀️/winter~❄️", "sunrise~🌅/sunset~🌇", "books~📚/movies~🎬", "sweet~🍩/salty~🥨",
    "early bird~🐦/night owl~🦉", "iPhone/Android", "Netflix/YouTube",
    "city~🏙️/countryside~🌾", "pancakes~🥞/waffles~🧇", "chocolate~🍫/vanilla~🍦",
    "road trip~🚗/plane~✈️", "rain~🌧️/snow~☃️", "Messi/Ronaldo", "call/text",
    "cake~🎂/pie~🥧", "fries~🍟/onion rings", "hot~🔥/cold~🧊", "rice~🍚/pasta~🍝",
)  # fmt: skip

_CTA: tuple[str, ...] = (
    "comment below", "let me know", "tell me in the comments", "drop your answer 👇",
    "answer in the comments", "comenta abajo", "escribe tu respuesta 👇",
    "sag's uns in den Kommentaren", "let us know 👇", "vote in the comments",
)  # fmt: skip

# tagged friends' handles: hundreds of distinct ones, as real tags are
_HANDLE: tuple[str, ...] = (
    "{first}", "{first}_{last}", "{first}.{last}", "{first}{num}", "{first}_{num}", "{last}.{first}",
    "{first}{last}", "the.real.{first}",
)  # fmt: skip
_FIRST: tuple[str, ...] = (
    "jess", "mike", "ana", "tom", "sara", "leo", "dani", "chris", "kim", "jenny", "marco", "priya",
    "josh", "lauren", "carlos", "emma", "ryan", "sofia", "liam", "nina", "omar", "katie", "ben",
    "maria", "alex", "tyler", "megan", "jamal", "grace", "hugo", "aisha", "kevin", "chloe",
)  # fmt: skip
_LAST: tuple[str, ...] = (
    "smith", "lee", "garcia", "brown", "khan", "martin", "silva", "nguyen", "jones", "ali",
    "miller", "lopez", "wilson", "patel", "moore", "king", "reyes", "cole",
)  # fmt: skip
_NUM: tuple[str, ...] = ("[1|2|9][0|2|4|7|8|9]", "[19|20][8|9|0][0|1|3|5|7]", "_x", "x")  # fmt: skip

_TAG_WHO: tuple[str, ...] = (
    "needs this", "would do this", "owes you lunch", "is always late", "can't cook",
    "laughs too loud", "loves dogs more than people", "needs a vacation", "is always hungry",
    "would survive this", "still hasn't texted back",
)  # fmt: skip

_GREETINGS: tuple[str, ...] = (
    "good morning~☀️/gm/morning", "happy sunday~🙏/happy sunday fam/sunday blessings",
    "good night~🌙/gn/night night", "buenos días~☀️/buen día/buenos dias",
    "happy monday~💪/happy new week/monday vibes", "have a nice weekend~🌻/nice weekend/happy weekend",
)  # fmt: skip

_GREET_TO: tuple[str, ...] = ("everyone", "friends", "family", "my people", "all", "fam", "amigos")  # fmt: skip

_PLACE: tuple[str, ...] = ("Lagos", "Manila", "Texas", "Kerala", "Ohio", "Nairobi", "Karachi", "Leeds")  # fmt: skip

_EMO: tuple[str, ...] = ("😂", "👇", "🔥", "😍", "🙌", "❤️", "💯", "😅", "")  # fmt: skip

_PRAISE: tuple[str, ...] = (
    "[This is|Such a|What a] [great|amazing|beautiful|lovely|stunning] "
    "[shot|post|picture|view|idea][!|!!| 😍| 🔥|]",
    "[Love|Loving] [this|it|the colors|the vibe|your style][!| ❤️| 😍|]",
    "[Great|Awesome|Nice] [work|job|stuff][,|] [keep it up|keep going|well done][!| 👏|]",
    "[So|Very|Really] [inspiring|true|beautiful|cool][!| 🙌|]",
    "[Wow|Amazing][,|] [just wow|looks great|well done|love it]",
    "[You|This] [never disappoints|always delivers|made my day][ ❤️| 🔥|]",
    "[Beautiful|Gorgeous|Lovely] [place|colours|capture|picture] [bro|sis|my friend|]",
    "[Congrats|Well done][,|] [so proud of you|you deserve it][!| 🎉|]",
)  # fmt: skip

_TUNING_LEXICON: dict[str, tuple[str, ...]] = {
    "pairs": _PAIRS,
    "cta": _CTA,
    "handle": _HANDLE,
    "first": _FIRST,
    "last": _LAST,
    "num": _NUM,
    "tag_who": _TAG_WHO,
    "greetings": _GREETINGS,
    "greet_to": _GREET_TO,
    "place": _PLACE,
    "emo": _EMO,
    "praise": _PRAISE,
}


def _t(name: str, family: str, post: str, answers: tuple[str, ...], options: str = "") -> Template:
    return Template(name, family, post, answers, options)


_EITHER_OR_ANSWERS = (
    "{A}", "{B}", "{A}", "{B}", "{A} {A~}", "{B} {B~}", "{A~}", "team {A}", "{B} obviously",
    "{A} all day", "{B} 100%", "{A} for sure", "definitely {B}", "both", "{A}!!", "{B} no doubt",
    "{A} always", "{B} {B~}{B~}",
)  # fmt: skip
_TAG_ANSWERS = (
    "{@}", "{@}", "{@}", "{@} {@}", "{@} 😂", "{@} this is you", "{@} lol", "lol {@}",
    "{@} we need this", "{@} {@} {@}", "{@} 👀", "{@} remember this?", "haha {@}", "{@} 😂😂",
)  # fmt: skip
_GREETING_ANSWERS = (
    "{A}", "{A}", "{A}", "{A} {A~}", "{B}", "{C}", "{A} dear", "{A} to you too", "{A} {greet_to}",
    "{A} my friend", "same to you", "you too {A~}", "{A} 🙏", "{A} ❤️", "{A} from {place}",
    "{A}!!", "{A} {A~}{A~}", "{B} {A~}",
)  # fmt: skip

_TUNING_TEMPLATES: tuple[Template, ...] = (
    *(
        Template(
            f"legacy-{b.category}-{i}",
            b.category,
            b.text,
            tuple(a.replace("@", "{@}") for a in b.answers),
        )
        for i, b in enumerate(BAIT_TEMPLATES)
    ),
    _t("either-or-t1", "either-or", "{A} or {B}? {cta}", _EITHER_OR_ANSWERS, "pairs"),
    _t(
        "either-or-t2",
        "either-or",
        "[Team|] {A} or [team|] {B}[?|??|?!]",
        _EITHER_OR_ANSWERS,
        "pairs",
    ),
    _t(
        "either-or-t3",
        "either-or",
        "{A} or {B}... [which one|what's your pick|you can only choose one][?|!] {cta}",
        _EITHER_OR_ANSWERS,
        "pairs",
    ),
    _t(
        "either-or-t4",
        "either-or",
        "[Quick question|Settle this|Be honest]: {A} or {B}?",
        _EITHER_OR_ANSWERS,
        "pairs",
    ),
    _t("either-or-t5", "either-or", "{A} vs {B} [—|-] {cta} {emo}", _EITHER_OR_ANSWERS, "pairs"),
    _t(
        "either-or-t6",
        "either-or",
        "[Would you rather have|Would you pick] {A} or {B}? {cta}",
        _EITHER_OR_ANSWERS,
        "pairs",
    ),
    _t("tag-t1", "tag", "Tag a friend who {tag_who} {emo}", _TAG_ANSWERS),
    _t(
        "tag-t2",
        "tag",
        "Tag [your bestie|your best friend|your partner in crime] {emo}",
        _TAG_ANSWERS,
    ),
    _t("tag-t3", "tag", "Tag someone who {tag_who} 😂", _TAG_ANSWERS),
    _t(
        "tag-t4",
        "tag",
        "Tag [3|2|5] friends [you'd take on this trip|who need to see this] ✈️",
        _TAG_ANSWERS,
    ),
    _t(
        "tag-t5",
        "tag",
        "Etiqueta a [tu mejor amigo|alguien que necesita esto|tu hermana] 😂",
        _TAG_ANSWERS,
    ),
    _t(
        "greeting-t1",
        "greeting",
        "{A} {greet_to} {A~} [stay blessed|God bless|]",
        _GREETING_ANSWERS,
        "greetings",
    ),
    _t(
        "greeting-t2",
        "greeting",
        "{A}[!|!!] [Wishing you a wonderful day|God bless you all|] {A~}",
        _GREETING_ANSWERS,
        "greetings",
    ),
    _t(
        "greeting-t3",
        "greeting",
        "{A} [to all my friends|everyone] {A~}{A~}",
        _GREETING_ANSWERS,
        "greetings",
    ),
)

#: The tuning split's wordings.
TUNING = TemplateSet("tuning", _TUNING_TEMPLATES, _TUNING_LEXICON)


def vary(rng: random.Random, text: str) -> str:
    """A short reaction as people type it: case and trailing punctuation/emoji vary."""
    form = rng.random()
    if form < 0.2:
        text = text.upper()
    elif form < 0.45:
        text = text.lower()
    elif form < 0.6:
        text = text.capitalize()
    return text + rng.choice(("", "", "", "!", "!!", "!!!", " 🙏", " 😂", " ❤️", " 👍"))


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
