"""The wording the comment-bait detector reads (pure functions of a text).

- :data:`BAIT_PATTERNS` / :func:`phrasing`: the engagement-bait categories of Facebook's 2017
  taxonomy (vote, react, share, tag and comment baiting) that a post's (or comment's) wording
  falls in; the detector's ``bait_phrasing`` signal;
- :func:`comment_features`: what one comment's text says about it (:class:`Features`: how much
  information it carries — self-promotion, a stock answer, @mentions or emoji only, its words as
  small hashes for near-duplicate and echo checks), behind the ``low_info`` and ``duplicates``
  signals;
- :func:`post_words`: the word hashes of a post's own text (an answer that only repeats them, as
  "tea" under "tea or coffee?", echoes the post);
- :func:`normalise` / :func:`words`: the text normalisation both work on (NFKC, lowercase, links
  replaced by " url ").
"""

from __future__ import annotations

import functools
import re
import unicodedata
import zlib
from collections.abc import Callable
from typing import NamedTuple

# Facebook's 2017 engagement-bait taxonomy. Patterns match the normalised post or comment text
# (lowercase, URLs replaced by " url ", punctuation kept for "?"). Each is deliberately about the
# *call to action*, not the topic, and a match is one signal among several.
#
# Every check runs in time linear in the text (a post is up to 2,000 characters of anyone's
# choosing). Python's `re` backtracks, so no pattern here may try an unbounded span from each of
# many starts: each regular expression below consumes a bounded span per start, or a single run
# (a word, the blanks after it) that no other start can share. The two "vote" shapes with an
# unbounded gap ("X or Y? ... comment", "which one ... pick ... ?") are searched piece by piece
# in Python instead; their docstrings say why that finds exactly what the one regex would.
_CALL = r"(comment|vote|type|reply|tell us|let us know|answer|drop)"
_EMOJI = r"[\u2600-\u27bf\U0001f300-\U0001faff]"
_CALL_WORD = re.compile(r"\b" + _CALL + r"\b")
# "tea or coffee?", up to its first "?" (more "?" belong to the gap after it)
_EITHER_OR = re.compile(r"\b\w+,? or \w+\s*\?")
_WHICH = re.compile(r"\b(which|what) (one|would|do|will|cake|outfit)\b")
_PICK = re.compile(r"\b(pick|choose|prefer|eat)\b")
_NUMBERED = re.compile(r",? (1|a) or (2|b)\b")
_VOTE_CALLS = re.compile(
    r"\bvote (with (a |your )?(reactions?|emojis?)|below|in the comments)\b"
    r"|\b(comment|type|reply)( with)? (1|2|a|b|l|r)( or (2|b|r))?\b"
    r"|\bpick a number\b|\b\w, \w,? or \w\?"
)


def _call_later_on_line(norm: str, pos: int) -> bool:
    r"""Is there a call to action at ``pos`` or after it on its line (the regex ``.*\bCALL\b``;
    ``.`` stops at a newline)?"""
    end = norm.find("\n", pos)
    return _CALL_WORD.search(norm, pos, len(norm) if end < 0 else end) is not None


def _either_or_then_call(norm: str) -> bool:
    r"""``\b\w+,? or \w+\s*\?+.*\bCALL\b``: a call to action after "X or Y?", on the line of its
    "?".

    One regex retries ``.*`` to the end of the line from every "X or Y?" (quadratic). Here each
    line is searched once, from the first "X or Y?" that ends on it: a later one ends later, so
    what follows it on the line is part of what was searched. `finditer` skips matches that
    overlap a found one, but such a match ends at the same "?" (a match holds one "?", its last
    character), so nothing is missed.
    """
    searched_to = -1  # the end of the last line searched
    for m in _EITHER_OR.finditer(norm):
        if m.end() <= searched_to:
            continue
        if _call_later_on_line(norm, m.end()):
            return True
        end = norm.find("\n", m.end())
        searched_to = len(norm) if end < 0 else end
    return False


def _which_then_pick(norm: str) -> bool:
    r"""``\b(which|what) (one|…)\b[^?]*\b(pick|…)\b[^?]*(\?.*\bCALL\b|,? (1|a) or (2|b)\b)``:
    "which one … pick …" then a call to action after the next "?" (on its line), or "1 or 2".

    The gaps hold no "?", so all of it but the call lies in one stretch between two "?". In a
    stretch the earliest "which one" ends first and the earliest "pick" after it ends first, so
    those leave the most room for what must follow; one regex instead tried every pair against the
    whole rest of the stretch (cubic). The rest of a line after a "?" is searched once, as above.
    """
    searched_to = -1
    start, n = 0, len(norm)
    while True:
        q = norm.find("?", start)
        stop = n if q < 0 else q
        which = _WHICH.search(norm, start, stop)
        pick = which and _PICK.search(norm, which.end(), stop)
        if pick:
            if _NUMBERED.search(norm, pick.end(), stop):
                return True
            if q >= 0 and q + 1 > searched_to:
                if _call_later_on_line(norm, q + 1):
                    return True
                end = norm.find("\n", q + 1)
                searched_to = n if end < 0 else end
        if q < 0:
            return False
        start = q + 1


def _vote(norm: str) -> bool:
    # "tea or coffee? comment below", "which one do you pick, 1 or 2?", "vote with reactions"
    return bool(_VOTE_CALLS.search(norm)) or _either_or_then_call(norm) or _which_then_pick(norm)


def _searches(pattern: re.Pattern[str]) -> Callable[[str], bool]:
    return lambda norm: pattern.search(norm) is not None


#: Each category's check of a normalised text (:func:`normalise`).
BAIT_PATTERNS: dict[str, Callable[[str], bool]] = {
    "vote": _vote,
    # "react ❤️ if you love dogs", "LIKE if you're an Aries", "like for yes, love for no"
    "react": _searches(
        re.compile(
            r"\b(react|tap|hit)\b.{0,12}\b(if|for|with)\b"
            r"|^\W*(like|love|react)\b( this( post)?)? (if|for) "
            r"|\bhit (the )?(like|love|heart)\b|\blike for \w+, love for\b"
            r"|(react|tap|hit) " + _EMOJI
        )
    ),
    # "share if you agree", "SHARE with 10 friends to win", "share this before it gets deleted"
    "share": _searches(
        re.compile(
            r"^\W*share\b( this| it)?( now)? (if|with|before|so)\b"
            r"|\bshare (this |it )?with (all |\d+ |ten |five )?(your |ur )?(friends|everyone)\b"
            r"|\bshare (this|it) (now|everywhere|with everyone)\b"
        )
    ),
    # "tag a friend who needs this", "tag 3 friends", "TAG YOUR BESTIE"
    "tag": _searches(
        re.compile(
            r"\btag (a|your|\d+|three|two|five|someone|somebody|them)\b.{0,30}"
            r"\b(friends?|bestie|bff|someone|who|mom|dad|sister|brother|partner|people)\b"
            r"|\btag (someone|somebody|them|a friend)\b"
        )
    ),
    # "type YES if you agree", "comment AMEN", "drop a 🔥 in the comments", "can I get a yes?"
    "comment": _searches(
        re.compile(
            r"\b(type|comment|reply|say)\s+[\"'“‘]?(yes|amen|no|me|done|1|2|your name|"
            r"your birth|an? " + _EMOJI + r"|" + _EMOJI + r"|something nice)"
            r"|\b(comment|drop|say|write|put)\b[^.!?]{0,30}\bin the comments\b"
            r"|\bcomment below\b|\bcan i get an? (yes|amen)\b|\bwho else remembers\b"
            r"|\bcomment your\b"
        )
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
# A link is what ``(https?://|www\.)\S+|\b\S+\.(com|net|org|ly|be|io)(/\S*)?\b`` (ignoring case)
# matches. As one regex the second branch is quadratic: from each word boundary of a long unbroken
# run ("a.a.a.a…") ``\S+`` runs to the end of the run and backs off looking for a domain.
# :func:`_links_to_url` finds the same matches in one pass over each run.
_URL_MARKS = ("http", "www", ".com", ".net", ".org", ".ly", ".be", ".io")
_RUN = re.compile(r"\S+")
_SCHEME = re.compile(r"(https?://|www\.)(?=\S)", re.IGNORECASE)
_DOMAIN = re.compile(r"\.(com|net|org|ly|be|io)", re.IGNORECASE)
_BOUNDARY = re.compile(r"\b")
_WORD_CHAR = re.compile(r"\w")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def _links_to_url(text: str) -> str:
    r"""Each link in ``text`` replaced by " url " (``_URL.sub(" url ", text)`` of the regex above).

    A link lies inside one run of non-blanks. In a run, from position ``pos`` on, the regex's
    leftmost match starts either at the first scheme (``http://``, ``www.``; it then takes the
    rest of the run), or at the first word boundary before the *last* domain whose ending holds
    (greedy ``\S+`` backs off from the end of the run to the last one). A domain's ending is the
    path up to the run's last word boundary, if a "/" follows the domain and that boundary lies
    after it, or else a word boundary right after the domain. After a domain match no later
    domain remains, so only a scheme can follow in that run.
    """
    out: list[str] = []
    done = 0  # text[:done] is in out
    for run in _RUN.finditer(text):
        a, b = run.span()
        last_word = b - 1
        while last_word >= a and not _WORD_CHAR.match(text, last_word):
            last_word -= 1
        # the run's last word boundary: just after its last word character
        last_boundary = last_word + 1 if last_word >= a else -1
        pos = a
        while pos < b:
            scheme = _SCHEME.search(text, pos, b)
            at = scheme.start() if scheme else b
            # the last domain after pos + 1 whose ending holds, and where its match would end
            ends = None
            for d in reversed(list(_DOMAIN.finditer(text, pos + 1, b))):
                q = d.end()
                if q < b and text[q] == "/" and last_boundary > q:
                    ends = (d.start(), last_boundary)
                elif _BOUNDARY.match(text, q, b):
                    ends = (d.start(), q)
                if ends:
                    break
            first = ends and _BOUNDARY.search(text, pos, ends[0])
            if ends and first and first.start() < min(ends[0], at):
                out += (text[done : first.start()], " url ")
                done = pos = ends[1]
            elif scheme:
                out += (text[done:at], " url ")
                done = pos = b
            else:
                break
    out.append(text[done:])
    return "".join(out)


def normalise(text: str) -> str:
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    text = text.lower()
    # (most texts have no link at all)
    if any(m in text for m in _URL_MARKS):
        text = _links_to_url(text)
    return text


def words(norm: str) -> list[str]:
    return _WORD.findall(norm)


def phrasing(text: str) -> list[str]:
    """The engagement-bait categories a text's wording falls in (sorted)."""
    norm = normalise(text)
    return sorted(name for name, found in BAIT_PATTERNS.items() if found(norm))


#: Words that carry no answer of their own (an echo check ignores them in the post).
_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "of",
        "to",
        "in",
        "on",
        "at",
        "for",
        "is",
        "are",
        "be",
        "it",
        "this",
        "that",
        "my",
        "your",
        "you",
        "we",
        "i",
        "me",
        "do",
        "does",
        "did",
        "what",
        "which",
        "who",
        "how",
        "would",
        "will",
        "with",
        "from",
        "so",
        "if",
    ]
)
_MENTION = re.compile(r"@[^\s@]{1,64}")
_REPEATS = re.compile(r"(.)\1+")
#: Word hashes kept per comment (the first distinct ones) and per post.
MAX_COMMENT_WORDS = 16
MAX_POST_WORDS = 48


@functools.lru_cache(maxsize=1 << 16)
def word_hash(word: str) -> int:
    """A 24-bit hash of a word with its letter runs collapsed ("goood" and "god" alike): a
    stored answer stays small, and a typo of emphasis is the same answer."""
    return zlib.crc32(_REPEATS.sub(r"\1", word).encode()) & 0xFFFFFF


class Features(NamedTuple):
    """What one comment's text says about it (:func:`comment_features`)."""

    #: self-promotion: links, "subscribe", "check out my …"
    promo: bool
    #: a stock answer to a call ("yes", "amen", "1", "done")
    stock: bool
    #: nothing but @mentions (a tag), or nothing but emoji and punctuation
    mention_only: bool
    emoji_only: bool
    #: words, @mentions left out
    n_words: int
    #: hashes of its first distinct words (:func:`word_hash`), sorted; () for no words
    words: tuple[int, ...]

    @property
    def empty(self) -> bool:
        """Carries no information of its own: a stock answer, a tag, emoji, one or two words, or
        self-promotion. Whether that is bait depends on *who* answers (a friend's "congrats!" is
        not), which the detector judges."""
        return self.promo or self.stock or self.mention_only or self.emoji_only or self.n_words <= 2


# (cached: a pure function of the text, and the texts a post's comments repeat are what bait
# farms: in the bait-eval tuning stream 91,373 texted comments hold 16,953 distinct texts; a miss
# costs a dict insert, and at most this many texts of at most 2,000 characters are kept)
@functools.lru_cache(maxsize=1 << 12)
def comment_features(text: str) -> Features:
    """The features of one comment's text (linear in its length)."""
    norm = normalise(text)
    mentions = _MENTION.findall(norm)
    bare = _MENTION.sub(" ", norm) if mentions else norm
    ws = words(bare)
    stock = bool(ws) and len(ws) <= 2 and all(w in _ANSWERS or w.isdigit() for w in ws)
    hashes = sorted({word_hash(w) for w in ws[: 4 * MAX_COMMENT_WORDS]})[:MAX_COMMENT_WORDS]
    return Features(
        promo=bool(_PROMO.search(norm)),
        stock=stock,
        mention_only=bool(mentions) and not ws,
        emoji_only=not ws and not mentions and bool(norm.strip()),
        n_words=len(ws),
        words=tuple(hashes),
    )


def post_words(text: str) -> list[int]:
    """Hashes of the content words of a post's text (at most :data:`MAX_POST_WORDS`)."""
    ws = [w for w in words(normalise(text)) if w not in _STOP]
    return sorted({word_hash(w) for w in ws})[:MAX_POST_WORDS]
