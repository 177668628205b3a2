"""The wording the comment-bait detector reads (pure functions of a text).

- :data:`BAIT_PATTERNS` / :func:`phrasing`: the engagement-bait categories of Facebook's 2017
  taxonomy (vote, react, share, tag and comment baiting) that a post's (or comment's) wording
  falls in; the detector's ``bait_phrasing`` signal;
- :func:`comment_features`: what one comment's text says about it (self-promotion, an answer to a
  bait call, its word count, a hash of its words), behind the ``low_value`` signal;
- :func:`normalise` / :func:`words`: the text normalisation both work on (NFKC, lowercase, links
  replaced by " url ").
"""

from __future__ import annotations

import re
import unicodedata
import zlib

# Facebook's 2017 engagement-bait taxonomy. Patterns match the normalised post or comment text
# (lowercase, URLs replaced by " url ", punctuation kept for "?"). Each is deliberately about the
# *call to action*, not the topic, and a match is one signal among several.
_CALL = r"(comment|vote|type|reply|tell us|let us know|answer|drop)"
_EMOJI = r"[\u2600-\u27bf\U0001f300-\U0001faff]"
BAIT_PATTERNS: dict[str, re.Pattern[str]] = {
    # "tea or coffee? comment below", "which one do you pick, 1 or 2?", "vote with reactions"
    "vote": re.compile(
        r"\b\w+,? or \w+\s*\?+.*\b" + _CALL + r"\b"
        r"|\b(which|what) (one|would|do|will|cake|outfit)\b[^?]*\b(pick|choose|prefer|eat)\b"
        r"[^?]*(\?.*\b" + _CALL + r"\b|,? (1|a) or (2|b)\b)"
        r"|\bvote (with (a |your )?(reactions?|emojis?)|below|in the comments)\b"
        r"|\b(comment|type|reply)( with)? (1|2|a|b|l|r)( or (2|b|r))?\b"
        r"|\bpick a number\b|\b\w, \w,? or \w\?"
    ),
    # "react ❤️ if you love dogs", "LIKE if you're an Aries", "like for yes, love for no"
    "react": re.compile(
        r"\b(react|tap|hit)\b.{0,12}\b(if|for|with)\b"
        r"|^\W*(like|love|react)\b( this( post)?)? (if|for) "
        r"|\bhit (the )?(like|love|heart)\b|\blike for \w+, love for\b"
        r"|(react|tap|hit) " + _EMOJI
    ),
    # "share if you agree", "SHARE with 10 friends to win", "share this before it gets deleted"
    "share": re.compile(
        r"^\W*share\b( this| it)?( now)? (if|with|before|so)\b"
        r"|\bshare (this |it )?with (all |\d+ |ten |five )?(your |ur )?(friends|everyone)\b"
        r"|\bshare (this|it) (now|everywhere|with everyone)\b"
    ),
    # "tag a friend who needs this", "tag 3 friends", "TAG YOUR BESTIE"
    "tag": re.compile(
        r"\btag (a|your|\d+|three|two|five|someone|somebody|them)\b.{0,30}"
        r"\b(friends?|bestie|bff|someone|who|mom|dad|sister|brother|partner|people)\b"
        r"|\btag (someone|somebody|them|a friend)\b"
    ),
    # "type YES if you agree", "comment AMEN", "drop a 🔥 in the comments", "can I get a yes?"
    "comment": re.compile(
        r"\b(type|comment|reply|say)\s+[\"'“‘]?(yes|amen|no|me|done|1|2|your name|"
        r"your birth|an? " + _EMOJI + r"|" + _EMOJI + r"|something nice)"
        r"|\b(comment|drop|say|write|put)\b[^.!?]{0,30}\bin the comments\b"
        r"|\bcomment below\b|\bcan i get an? (yes|amen)\b|\bwho else remembers\b"
        r"|\bcomment your\b"
    ),
}
#: Comments that answer a bait call: one or two tokens from this set (or a bare @mention).
_ANSWERS = frozenset(
    [
        "yes",
        "yess",
        "yesss",
        "yep",
        "yeah",
        "no",
        "nope",
        "amen",
        "tea",
        "coffee",
        "1",
        "2",
        "3",
        "a",
        "b",
        "one",
        "two",
        "me",
        "done",
        "agree",
        "agreed",
        "same",
        "true",
        "this",
        "here",
        "present",
        "tagged",
        "ok",
        "okay",
    ]
)
# Self-promotion, the commonest low-value comment besides one-word ones.
_PROMO = re.compile(
    r"\b(?:url|subscrib\w*|check (?:out )?(?:my|this|our)|my (?:channel|page|video|profile|music)"
    r"|follow me|visit|free|click|www|please (?:like|sub))\b|\.com\b"
)
_URL = re.compile(r"(https?://|www\.)\S+|\b\S+\.(com|net|org|ly|be|io)(/\S*)?\b", re.IGNORECASE)
_URL_MARKS = ("http", "www", ".com", ".net", ".org", ".ly", ".be", ".io")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def normalise(text: str) -> str:
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    text = text.lower()
    # (the URL pattern is slow on long texts; most have no link at all)
    if any(m in text for m in _URL_MARKS):
        text = _URL.sub(" url ", text)
    return text


def words(norm: str) -> list[str]:
    return _WORD.findall(norm)


def phrasing(text: str) -> list[str]:
    """The engagement-bait categories a text's wording falls in (sorted)."""
    norm = normalise(text)
    return sorted(name for name, pat in BAIT_PATTERNS.items() if pat.search(norm))


def comment_features(text: str) -> tuple[bool, bool, int, int]:
    """(self-promotion, answers a bait call, word count, hash of the normalised words) of one
    comment's text.

    Shortness alone is not low value: a wedding post collects hundreds of "congrats!" from
    distinct friends. Farmed comments are self-promotion, or answers to the bait's call ("YES",
    "coffee", "amen", a tagged handle), or the same text over and over (counted by the caller).
    """
    norm = normalise(text)
    ws = words(norm)
    answer = bool(ws) and len(ws) <= 2 and all(w in _ANSWERS or w.isdigit() for w in ws)
    answer = answer or (not ws and "@" in norm)
    key = " ".join(ws) if ws else norm.strip()
    return bool(_PROMO.search(norm)), answer, len(ws), zlib.crc32(key.encode())
