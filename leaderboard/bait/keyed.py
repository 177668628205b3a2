"""Keyed hashes of account ids: sets and counts an adversary cannot aim.

The detector keeps accounts as hashes where it cannot keep them whole: an author's network (who
is no stranger) and a post's engagers (each account and kind counted about once). With a public
hash (crc32) an attacker computes offline which account ids collide: a sock that passes for
someone in the author's network, or forty-six accounts whose likes fill a post's engagers bitmap
so that one account's thousand clicks count as a thousand fans (an adversarial review of detector
12). A keyed BLAKE2b (``[bait] key``, ``KUDOS_BAIT_KEY``, 32 characters or more) makes those collisions as unlikely as
chance; the same key gives the same hashes, so a rebuild from the log makes the same decisions.

Without a key the hashes use :data:`PUBLIC_KEY`, which everyone can read here: fine for a demo
and for replays, not for a deployment facing adversaries (docs/security.md).
"""

from __future__ import annotations

import hashlib

#: The key used when none is configured (public: it is in this file).
PUBLIC_KEY = b"kudos bait detector: public default key"
#: A configured key must have at least this many characters (a short one can be guessed
#: offline, from the hashes' effects or from the scoring identity's key fingerprint); the
#: public key itself is refused.
MIN_KEY_CHARS = 32


class Keyed:
    """The detector's keyed hashes (one BLAKE2b state, copied per hash: ~0.6 µs each)."""

    __slots__ = ("_base",)

    def __init__(self, key: bytes = b"") -> None:
        key = key or PUBLIC_KEY
        if len(key) > hashlib.blake2b.MAX_KEY_SIZE:
            key = hashlib.blake2b(key).digest()  # (BLAKE2b takes at most 64 bytes of key)
        self._base = hashlib.blake2b(key=key, digest_size=8)

    def h64(self, data: str) -> int:
        """A 64-bit keyed hash of ``data``."""
        h = self._base.copy()
        h.update(data.encode())
        return int.from_bytes(h.digest(), "little")

    def actor(self, actor: str) -> int:
        """A 24-bit hash of an account id (an author's network keeps these: 1 in 16 million odds
        that a stranger passes for someone known, per known account, and no way to aim it)."""
        return self.h64(actor) & 0xFFFFFF

    def pair(self, actor: str, kind: str) -> int:
        """A 64-bit hash of an account and an interaction kind (a post's engagers)."""
        return self.h64(f"{actor}\x1f{kind}")


def fingerprint(key: bytes) -> str:
    """Four hex digits that tell keys apart in the scoring identity ('' for no key): a changed
    key changes every stored hash, so a namespace kept under another key must be rebuilt."""
    if not key:
        return ""
    return hashlib.blake2b(key, digest_size=2, person=b"kudos-bait-fp").hexdigest()
