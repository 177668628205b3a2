"""Erasing and hiding members (pure, no I/O): tombstones, the rules for who and why, and the
audit record. The Redis side is :mod:`leaderboard.store.moderation` (and ``lua/hidden.lua``); the
commands ``kudos erase``, ``kudos hide``, ``kudos unhide``; the HTTP endpoints
:mod:`web.moderation`.

- **Erase** (the right to erasure): the member's rows go from every board, archive and window
  bucket, with their explain counters, posts, throttles, perks, profile and live-feed logs, and
  a *tombstone* is kept so that no later event and no ``kudos rebuild`` brings them back. Events
  about them are still read in order (the detector, diminishing returns and the clocks see them
  as before, so every other member's score is what it was), and nothing is written for them:
  they are counted as ``erased``. Points they gave to others stay; their id is kept only inside
  fingerprints.
- **Hide** (moderation): the member's points keep accruing exactly as the contract gives, but
  every read (pages, standings, peer boards, exports, explain views, the live feed, perk rules'
  ranks) leaves them out and ranks the others as if they were not there; ``unhide`` shows them
  again, with nothing lost.

A tombstone is the SHA-1 of :data:`TOMBSTONE_SALT` and the id, so the namespace lists no erased id.
Anyone who can read Redis can still test a guessed id against it (the worker has to: it must
recognise the member's next event), so it hides ids from a listing, not from a guess.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from leaderboard.errors import ModerationError

__all__ = ["ModerationError", "Tombstones", "audit_entry", "audit_fields", "tombstone"]

#: Hashed with the id into its tombstone (the same in Python and in the apply script).
TOMBSTONE_SALT = "kudos erased member\x1f"

#: Most members hidden at once in a namespace: every board read checks them (one ZMSCORE of the
#: hidden ids, and a ZREVRANK for each one on the board read), so the set must stay small.
MAX_HIDDEN = 1000

#: Longest reason (characters) an erase, hide or unhide may carry.
MAX_REASON = 300

#: Who did it: a name of 1-64 letters, digits and ``._@-`` (a login, a token's name).
_ACTOR = re.compile(r"[A-Za-z0-9._@-]{1,64}")

#: Audit entries kept (the ``modlog`` stream), about.
MODLOG_MAXLEN = 100_000

ERASE, HIDE, UNHIDE = "erase", "hide", "unhide"
ACTIONS = (ERASE, HIDE, UNHIDE)


def tombstone(member: str) -> str:
    """The tombstone of ``member``: hex SHA-1 of the salt and the id."""
    return hashlib.sha1((TOMBSTONE_SALT + member).encode(), usedforsecurity=False).hexdigest()


def check_reason(reason: str | None, *, required: bool = False) -> str:
    """``reason`` as it will be logged: text of at most :data:`MAX_REASON` characters, no
    control, format (bidi, zero-width) or line-separator characters."""
    text = (reason or "").strip()
    if required and not text:
        raise ModerationError("a reason is required (what the member did, for the audit log)")
    if len(text) > MAX_REASON:
        raise ModerationError(f"the reason has {len(text)} characters; at most {MAX_REASON}")
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
            raise ModerationError(
                f"the reason holds a control or invisible character (U+{ord(ch):04X})"
            )
    return text


def check_actor(actor: str) -> str:
    """``actor`` (who is doing it), checked: 1-64 of letters, digits and ``._@-``."""
    if not _ACTOR.fullmatch(actor or ""):
        raise ModerationError(
            f"{actor!r} is not a name the audit log can record: 1-64 letters, digits or ._@-"
        )
    return actor


def audit_fields(action: str, subject: str, actor: str, at: float, reason: str) -> list[str]:
    """The fields of one ``modlog`` entry: the action, its subject (the member's id for hide
    and unhide, the tombstone for an erase: the log must not keep an erased id), who, when
    (unix seconds, wall clock) and why."""
    if action not in ACTIONS:
        raise ValueError(f"unknown moderation action {action!r}")
    return ["action", action, "subject", subject, "by", actor, "at", repr(at), "reason", reason]


def audit_entry(entry_id: str, fields: dict[str, str]) -> dict[str, Any]:
    """One ``modlog`` entry as the API and ``kudos moderation`` show it."""
    return {
        "id": entry_id,
        "action": fields.get("action", ""),
        "subject": fields.get("subject", ""),
        "by": fields.get("by", ""),
        "at": float(fields.get("at", "0") or 0),
        "reason": fields.get("reason", ""),
    }


class Tombstones:
    """The erased members a worker knows of, as tombstones, with a cache of the ids it has
    checked (one hash per distinct id, not per event). Empty is falsy: the planner skips the
    check entirely while nobody is erased."""

    __slots__ = ("_cache", "_set")

    #: ids remembered (cleared whole when full: a lookup is only a hash)
    CACHE = 100_000

    def __init__(self, stones: Iterable[str] = ()) -> None:
        self._set = set(stones)
        self._cache: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self._set)

    def __len__(self) -> int:
        return len(self._set)

    def __contains__(self, member: object) -> bool:
        if not isinstance(member, str) or not self._set:
            return False
        hit = self._cache.get(member)
        if hit is None:
            if len(self._cache) >= self.CACHE:
                self._cache.clear()
            hit = self._cache[member] = tombstone(member) in self._set
        return hit

    def update(self, stones: Iterable[str]) -> None:
        self._set.update(stones)
        self._cache.clear()
