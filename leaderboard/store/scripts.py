"""The Lua scripts of the store, loaded once and registered per client.

Every script receives the keys it touches in ``KEYS`` (named by :mod:`leaderboard.store.keys`);
see each file's header for its ``KEYS`` and ``ARGV``.
"""

from __future__ import annotations

from importlib import resources

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

NAMES = (
    "apply",
    "read",
    "feed_poll",
    "feed_publish",
    "explain",
    "webhook_claim",
    "webhook_finish",
    "webhook_replay",
    "switch",
    "outbox_trim",
    "unlock",
    "admit",
    "cohort",
    "erase",
)

#: The scripts that read board rows or ranks get ``lua/hidden.lua`` (a library: hidden members
#: left out of every read) put in front of them.
WITH_HIDDEN = frozenset({"apply", "read", "feed_poll", "explain", "cohort"})


def _source(name: str) -> str:
    text = resources.files("leaderboard.store").joinpath(f"lua/{name}.lua").read_text()
    if name in WITH_HIDDEN:
        return _HIDDEN + text
    return text


_HIDDEN = resources.files("leaderboard.store").joinpath("lua/hidden.lua").read_text()
SOURCES: dict[str, str] = {n: _source(n) for n in NAMES}


class Scripts:
    """The registered scripts of one client (each an ``AsyncScript``: EVALSHA, loaded on demand)."""

    def __init__(self, client: aioredis.Redis) -> None:
        s = {n: client.register_script(src) for n, src in SOURCES.items()}
        self.apply: AsyncScript = s["apply"]
        self.read: AsyncScript = s["read"]
        self.feed_poll: AsyncScript = s["feed_poll"]
        self.feed_publish: AsyncScript = s["feed_publish"]
        self.explain: AsyncScript = s["explain"]
        self.webhook_claim: AsyncScript = s["webhook_claim"]
        self.webhook_finish: AsyncScript = s["webhook_finish"]
        self.webhook_replay: AsyncScript = s["webhook_replay"]
        self.switch: AsyncScript = s["switch"]
        self.outbox_trim: AsyncScript = s["outbox_trim"]
        self.unlock: AsyncScript = s["unlock"]
        self.admit: AsyncScript = s["admit"]
        self.cohort: AsyncScript = s["cohort"]
        self.erase: AsyncScript = s["erase"]
