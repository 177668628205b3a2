"""The held-out material: wordings and one whole shape family never used while tuning.

Whoever tunes the detector does not read this file. The rest of the package imports it only to
build the held-out split (``build_eval(..., split="heldout")``).

- :data:`HELDOUT`: a template set with nothing in common with :data:`baiteval.content.TUNING`:
  other wordings of every bait family, other option pairs, handles, places, calls to action
  (other languages too) and praise;
- :data:`HELDOUT_FAMILY` and :func:`puzzle`: a campaign shape family the tuning split never
  generates. A "95 % get this wrong" puzzle or riddle answered by hundreds of strangers with a
  handful of answers, a few with a line of reasoning, some arguing in replies, over hours.

Pure: no I/O.
"""

from __future__ import annotations

from baiteval.builder import Builder, arrivals, spread
from baiteval.content import GENERIC_ANSWERS
from baiteval.grammar import Template, TemplateSet, typed
from baiteval.labels import HOUR

__all__ = ["HELDOUT", "HELDOUT_FAMILY", "puzzle"]

#: The campaign shape family only the held-out split generates.
HELDOUT_FAMILY = "puzzle"

_PAIRS: tuple[str, ...] = (
    "mango~🥭/pineapple~🍍", "guitar~🎸/piano~🎹", "sneakers~👟/boots~🥾", "tacos~🌮/sushi~🍣",
    "autumn~🍂/spring~🌸", "lake/ocean~🌊", "popcorn~🍿/nachos", "camping~🏕️/hotel~🏨",
    "bus/bike~🚲", "jeans/sweatpants", "Marvel/DC", "podcasts~🎧/audiobooks",
    "breakfast~🍳/dinner~🍽️", "ketchup/mustard", "lemonade~🍋/smoothie~🥤", "gold~🥇/silver~🥈",
    "skiing~⛷️/surfing~🏄", "vinyl/streaming", "paper/kindle", "curry~🍛/ramen~🍜",
    "Paris/Rome", "heels/flats",
)  # fmt: skip
_CTA: tuple[str, ...] = (
    "sound off below", "reply with your pick", "comente aqui 👇", "dis-nous en commentaire",
    "batao comments mein", "scrivi nei commenti", "antworte unten", "one word, go 👇",
    "your answer 👇👇", "responde aquí",
)  # fmt: skip
_HANDLE: tuple[str, ...] = (
    "{first}", "{first}__{last}", "{first}-{last}", "{first}{num}", "its.{first}", "{last}{num}",
    "x{first}x", "{first}.official",
)  # fmt: skip
_FIRST: tuple[str, ...] = (
    "bruna", "thiago", "mehdi", "ines", "yusuf", "camille", "arjun", "zara", "mateo", "keisha",
    "dmitri", "lena", "kofi", "amara", "ravi", "noor", "felipe", "hana", "olu", "sven",
    "bianca", "tariq", "mei", "rohan", "luana", "ezra",
)  # fmt: skip
_LAST: tuple[str, ...] = (
    "santos", "okafor", "dubois", "kaur", "novak", "haddad", "mensah", "rossi", "tanaka",
    "ferreira", "osei", "berg",
)  # fmt: skip
_NUM: tuple[str, ...] = ("[3|5|6][1|5|6]", "[2k|0][1|2][2|3|4]", "_", "xx")  # fmt: skip
_WHO: tuple[str, ...] = (
    "always eats your fries", "still owes you money", "sends you memes at 3am",
    "cries at every movie", "would get lost in their own street", "is secretly a cat",
    "snores the loudest", "can't keep a secret",
)  # fmt: skip
_GREETINGS: tuple[str, ...] = (
    "bom dia~🌞/bom diaa/bomdia", "happy friday~🎉/tgif/friyay", "bonjour~☕/bjr/bon matin",
    "blessed tuesday~🙏/happy tuesday/tuesday blessings", "guten Morgen~☀️/moin/morgen",
    "good evening~🌆/evening all/good evening fam", "jumma mubarak~🌙/jumma mubarak all/mubarak",
)  # fmt: skip
_GREET_TO: tuple[str, ...] = ("beautiful souls", "my dear ones", "lovely people", "squad", "galera")  # fmt: skip
_PLACE: tuple[str, ...] = ("Accra", "Cebu", "Punjab", "Lima", "Georgia", "Durban", "Recife", "Dhaka")  # fmt: skip
_EMO: tuple[str, ...] = ("🤣", "👀", "🥹", "🫶", "✨", "💀", "🤭", "")  # fmt: skip
_PRAISE: tuple[str, ...] = (
    "[Absolutely|Truly|Simply] [breathtaking|incredible|magnificent] [work|capture|energy] ✨",
    "[Keep shining|Keep glowing|Stay golden][!| 🌟|]",
    "[What a|Such a] vibe[ 😎| 🤩|]",
    "[Masterpiece|Pure art|Top tier][,|] [fr|honestly|no cap]",
    "[Obsessed with|Living for] [this|this look|these tones][!!|]",
    "[Chef's kiss|Goals|Elite content][ 🤌| 💯|]",
    "[Brilliant|Fabulous|Splendid] [as always|once again][ 🙌|]",
    "[Can't stop looking at this|Saving this one|This deserves more love][ 🫶|]",
)  # fmt: skip
_PUZZLES: tuple[str, ...] = (
    "8 ÷ 2(2+2) = ? => 16/1/8",
    "6 ÷ 2(1+2) = ? => 9/1/3",
    "3 + 3 × 3 − 3 + 3 = ? => 12/18/6",
    "What has keys but can't open locks? => a piano/a keyboard/a map",
    "How many triangles are in this picture? => 24/18/13",
    "If 🍎 + 🍎 = 10 and 🍎 + 🍌 = 12, what is 🍌 × 🍎? => 35/30/60",
    "Which word is spelled wrong in every dictionary? => wrong/misspelled/dictionary",
    "9 − 3 ÷ ⅓ + 1 = ? => 1/3/9",
    "What comes next: 2, 6, 12, 20, …? => 30/28/32",
    "A bat and a ball cost 1.10 and the bat costs 1.00 more. How much is the ball? => 0.05/0.10/5 cents",
)  # fmt: skip

_LEXICON: dict[str, tuple[str, ...]] = {
    "pairs": _PAIRS,
    "cta": _CTA,
    "handle": _HANDLE,
    "first": _FIRST,
    "last": _LAST,
    "num": _NUM,
    "who": _WHO,
    "greetings": _GREETINGS,
    "greet_to": _GREET_TO,
    "place": _PLACE,
    "emo": _EMO,
    "praise": _PRAISE,
    "puzzles": _PUZZLES,
}

_EITHER_OR = (
    "{A}", "{B}", "{A}", "{B}", "{A~}", "{B~}{B~}", "{A} {A~}", "{B} forever", "{A} hands down",
    "obviously {B}", "{A} easily", "{B} {B~} no question", "neither lol", "{A} > {B}",
    "{B}, sorry", "{A} every time",
)  # fmt: skip
_TAG = (
    "{@}", "{@}", "{@} 🤣", "{@} literally you", "{@} {@} 👀", "omg {@}", "{@} it's us",
    "{@} 💀", "{@} kkkkk", "{@} 🫶", "{@} {@}", "{@} no comment", "{@} look 🤭",
)  # fmt: skip
_GREETING = (
    "{A}", "{A}", "{A} {A~}", "{B}", "{C}", "{A} {greet_to}", "{A} to you and yours",
    "{A} from {place}", "{A}, stay blessed", "{B} {A~}", "{A} 🫶", "likewise {A~}",
    "{A}{A~}", "{A} sister", "{A} brother",
)  # fmt: skip
_PUZZLE = (
    "{A}", "{A}", "{A}", "{B}", "{B}", "{C}", "it's {A}", "{A} easy", "the answer is {B}",
    "{A} 🤓", "{B}?", "= {A}", "{A}, order of operations", "{B}. pemdas people",
    "{A}... how do people get {B}", "i got {C}", "{A} 💯", "no it's {B}", "{A} final answer",
)  # fmt: skip


def _t(name: str, family: str, post: str, answers: tuple[str, ...], options: str = "") -> Template:
    return Template(name, family, post, answers, options)


_TEMPLATES: tuple[Template, ...] = (
    # the first harness's families, worded otherwise
    _t("ho-vote-1", "vote", "Rate this from 1 to 10 👇", ("10", "8", "10/10", "7", "11!!")),
    _t(
        "ho-vote-2",
        "vote",
        "Red, blue or green: what's your colour?",
        ("red", "blue", "green", "blue 💙"),
    ),
    _t("ho-vote-3", "vote", "Choose your fighter: 🐻 or 🦈?", ("🐻", "🦈", "bear", "shark 🦈")),
    _t("ho-vote-4", "vote", "Heads or tails? Reply now 🪙", ("heads", "tails", "HEADS")),
    _t("ho-react-1", "react", "Smash ❤️ if you'd try this", ("❤️", "would try", "😋", "❤️❤️❤️")),
    _t("ho-react-2", "react", "Drop a 😻 if you'd adopt her", ("😻", "😻😻", "I would")),
    _t("ho-react-3", "react", "Send a 🌹 for grandma", ("🌹", "🌹🌹", "🌹 bless her")),
    _t(
        "ho-share-1",
        "share",
        "Repost this if you still believe in kindness",
        ("reposted", "believe", "🙏"),
    ),
    _t("ho-share-2", "share", "Pass it on if you agree 🙏", ("passed on", "agreed 🙏", "🙏🙏")),
    _t("ho-share-3", "share", "Spread this so everyone knows ⚠️", ("spreading", "sent it", "⚠️")),
    _t("ho-tag-1", "tag", "Send this to your sister 😂", ("{@}", "{@} 😂", "{@} look")),
    _t("ho-tag-2", "tag", "Who do you know like this? 👀", ("{@}", "{@} 👀", "{@} literally")),
    _t(
        "ho-comment-1",
        "comment",
        "Say 'amen' to claim this blessing 🙏",
        ("amen", "Amen 🙏", "AMEN AMEN", "claimed"),
    ),
    _t("ho-comment-2", "comment", "Drop a 💯 if this is you", ("💯", "💯💯", "this is me")),
    _t("ho-comment-3", "comment", "Write 'mine' to claim yours 🎁", ("mine", "MINE", "mine!!")),
    _t("ho-comment-4", "comment", "Type 7 and watch what happens", ("7", "77", "7 ✨", "seven")),
    _t(
        "ho-comment-5",
        "comment",
        "Only real fans will finish this lyric: 'never gonna…'",
        ("give you up", "let you down", "run around"),
    ),
    # the new families, worded otherwise
    _t(
        "ho-either-or-1",
        "either-or",
        "[Which side are you on|Pick a side]: {A} or {B}? {cta}",
        _EITHER_OR,
        "pairs",
    ),
    _t(
        "ho-either-or-2",
        "either-or",
        "{A} [versus|vs.] {B}. [Reply with your choice|Your move] {emo}",
        _EITHER_OR,
        "pairs",
    ),
    _t("ho-either-or-3", "either-or", "Honest answers only 👀 {A} or {B}", _EITHER_OR, "pairs"),
    _t(
        "ho-either-or-4",
        "either-or",
        "[If you had to choose|Only one allowed]: {A} or {B}? {cta}",
        _EITHER_OR,
        "pairs",
    ),
    _t(
        "ho-either-or-5",
        "either-or",
        "{A}? {B}? [one word answers only|you know the drill] {emo}",
        _EITHER_OR,
        "pairs",
    ),
    _t("ho-tag-3", "tag", "Mention the person who {who}", _TAG),
    _t("ho-tag-4", "tag", "Send this to someone who {who} [— drop their @|👇]", _TAG),
    _t("ho-tag-5", "tag", "Marca alguém que [precisa ver isso|vive atrasado|{who}] 🤣", _TAG),
    _t("ho-tag-6", "tag", "Who's your [ride or die|travel buddy|gym partner]? @ them", _TAG),
    _t(
        "ho-greeting-1",
        "greeting",
        "{A} {greet_to} {A~} [stay blessed|keep smiling|]",
        _GREETING,
        "greetings",
    ),
    _t(
        "ho-greeting-2",
        "greeting",
        "[Sending you all|Wishing everyone] a [lovely|peaceful] day — {A}!",
        _GREETING,
        "greetings",
    ),
    _t(
        "ho-greeting-3",
        "greeting",
        "{A}! [Who's up already|Who's awake]? {A~}",
        _GREETING,
        "greetings",
    ),
    # the held-out family
    _t(
        "ho-puzzle-1",
        "puzzle",
        "[Only|Just] [3|5|7]% [of people|] can solve this 🤔 {Q} [Show your work|Answer below|]",
        _PUZZLE,
        "puzzles",
    ),
    _t(
        "ho-puzzle-2", "puzzle", "[Genius test|IQ test|Brain teaser]: {Q} [🧠|]", _PUZZLE, "puzzles"
    ),
    _t(
        "ho-puzzle-3",
        "puzzle",
        "{Q} [Most people get this wrong|95% fail this]. [Let's see|Prove me wrong]!",
        _PUZZLE,
        "puzzles",
    ),
    _t(
        "ho-puzzle-4", "puzzle", "[Can you solve it|Solve this if you can]? {Q}", _PUZZLE, "puzzles"
    ),
)

#: The held-out split's wordings: no template, option, handle, place or phrase in common with
#: the tuning set.
HELDOUT = TemplateSet("heldout", _TEMPLATES, _LEXICON)


def puzzle(b: Builder, words: TemplateSet, i: int) -> None:
    """A puzzle post answered by hundreds of strangers over hours: most give one of a handful of
    answers, some a line of reasoning, some argue in replies, some like it."""
    rng = b.rng
    established = rng.random() < 0.5
    t0 = b.place()
    author = b.author(established)
    if established:
        b.prior_posts(author, t0)
    bait = words.draw(rng, HELDOUT_FAMILY)
    post = b.new_post()
    b.open_post(post, author, HELDOUT_FAMILY, True, t0, bait.text, template=bait.template.name)
    n = rng.randint(200, 900)
    times = arrivals(rng, n, rng.uniform(1, 10) * HOUR, "front")
    pool = b.strangers(max(1, round(rng.uniform(0.85, 1.0) * n)), rng.uniform(0.3, 0.7), author)
    for t, actor in zip(times, spread(rng, pool, n), strict=True):
        kind = "reply" if rng.random() < 0.15 else "comment"
        r = rng.random()
        if r < 0.04:
            text = typed(rng, rng.choice(GENERIC_ANSWERS))
        elif r < 0.08:
            text = rng.choice(b.texts.ham)
        else:
            text = words.answer(rng, bait)
        b.interact(post, kind, actor, t0 + t, text)
    for _ in range(round(rng.uniform(0.05, 0.2) * n)):
        b.interact(post, "like", rng.choice(pool), t0 + rng.uniform(1.0, times[-1]))
    for _ in range(round(rng.uniform(0.0, 0.03) * n)):
        b.interact(post, "share", rng.choice(pool), t0 + rng.uniform(1.0, times[-1]))
