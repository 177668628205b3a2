"""The connection and what every part of the store shares."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Self

import hiredis
import redis.asyncio as aioredis
from redis.connection import HiredisRespSerializer

from leaderboard.errors import StoreConflict
from leaderboard.perks import PerkRule
from leaderboard.scoring import DECAYED, ScoringRules, decayed_value
from leaderboard.store.keys import Keys
from leaderboard.store.scripts import Scripts


class _HiredisPackConnection(aioredis.Connection):
    """A connection tuned for the big apply calls.

    - redis-py's asyncio client packs commands in pure Python (its sync client uses hiredis); one
      apply of 5,000 events carries ~85k arguments: 43 ms to pack in Python, 6 ms with hiredis.
    - A zero write-buffer limit makes ``drain()`` return only once every byte is in the kernel, so
      a sent apply reaches Redis while the worker goes back to CPU-bound planning (with asyncio's
      default 64 KiB limit the tail of a 1 MB command waited for the next loop iteration).
    """

    _packer = HiredisRespSerializer()

    def pack_command(self, *args: Any) -> list[bytes]:
        if args and args[0] == "EVALSHA":
            # the apply call: str and bytes arguments only, nothing for redis-py's wrapper to convert
            return [hiredis.pack_command(args)]
        return self._packer.pack(*args)  # type: ignore[no-any-return]

    async def on_connect(self) -> None:
        await super().on_connect()
        writer = getattr(self, "_writer", None)
        if writer is not None:
            writer.transport.set_write_buffer_limits(high=0)


#: How long a reader trusts its cached generation before it reads the pointer again (one GET).
#: Plain reads may see the previous generation for about this long after a switch; the rebuild
#: waits longer than this before it drops that generation (``stream.rebuild.DROP_GRACE_S``).
FOLLOW_S = 0.5

#: Times an atomic read is retried when the generation moved under it ('stale').
STALE_RETRIES = 5


def clock_of(wm: str, landmark: str) -> tuple[float | None, int | None]:
    return (float(wm) if wm else None, int(landmark) if landmark else None)


class StoreBase:
    """The client, the namespace's key names, the rules, and the registered scripts: what every
    part of :class:`leaderboard.store.Store` shares."""

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        rules: ScoringRules,
        perk_rules: Sequence[PerkRule] = (),
        scoring_id: str | None = None,
        generation: int | None = None,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.rules = rules
        #: the identity applies are guarded by (leaderboard.bait.identity: rules + bait settings)
        self.scoring_id = scoring_id or rules.version
        #: checked by every apply (the worker's store has them; readers need not)
        self.perk_rules = tuple(perk_rules)
        #: the generation this store is pinned to (the rebuild's new one), or None: it follows
        #: the namespace's pointer (workers, web, CLI, deliverer)
        self.pinned = generation
        self.keys = Keys(prefix, generation or 0)
        #: serving keys (the pointer, the lock, the feed, ...), whatever the generation
        self.serving = Keys(prefix)
        self._followed_at = -float("inf")
        self.scripts = Scripts(client)
        self._sha: str | None = None
        #: board rows each Lua call of the latest apply expired or rescaled (several calls when
        #: it had to do that in steps, see :meth:`send_apply`)
        self.apply_work: list[int] = []
        #: awaited between those calls (tests read the boards there)
        self.between_apply_calls: Callable[[], Awaitable[None]] | None = None

    @classmethod
    def connect(
        cls,
        url: str,
        prefix: str,
        rules: ScoringRules,
        perk_rules: Sequence[PerkRule] = (),
        scoring_id: str | None = None,
        generation: int | None = None,
    ) -> Self:
        kwargs: dict[str, Any] = {"decode_responses": True}
        if url.startswith("redis://"):
            kwargs["connection_class"] = _HiredisPackConnection
        pool = aioredis.ConnectionPool.from_url(url, **kwargs)
        return cls(
            aioredis.Redis.from_pool(pool), prefix, rules, perk_rules, scoring_id, generation
        )

    async def close(self) -> None:
        await self.client.aclose()

    def key(self, family: str, *parts: object) -> str:
        """The name of a key of ``family`` (a :data:`leaderboard.store.keys.FAMILIES` name)."""
        return self.keys.key(family, *parts)

    @property
    def generation(self) -> int:
        """The generation this store's keys name (the last one it saw the pointer at)."""
        return self.keys.generation

    def at_generation(self, generation: int) -> None:
        if generation != self.keys.generation:
            self.keys = Keys(self.prefix, generation)

    async def pointer(self) -> int:
        """The namespace's live generation (one GET)."""
        return int(await self.client.get(self.serving.key("live")) or 0)

    async def follow(self, force: bool = False) -> int:
        """Bring the key names up to the live generation if the cached one is older than
        :data:`FOLLOW_S` (or ``force``); the generation. A pinned store stays where it is."""
        if self.pinned is not None:
            return self.pinned
        now = time.monotonic()
        if force or now - self._followed_at > FOLLOW_S:
            self.at_generation(await self.pointer())
            self._followed_at = now
        return self.keys.generation

    async def _atomic(self, script: Any, build: Callable[[], tuple[list[str], list[Any]]]) -> Any:
        """Run a read script (``read``, ``explain``, ``feed_poll``) on the live generation:
        ``build`` names its keys after :meth:`follow`; the script gets the pointer as its last
        KEY and the generation assumed as its last ARGV, and answers 'stale' (having read
        nothing) when they differ: then the pointer is read again and the call retried, so one
        answer never mixes two generations or reads a dropped one."""
        for _ in range(STALE_RETRIES):
            generation = await self.follow()
            keys, args = build()
            want = "" if self.pinned is not None else str(generation)
            res = await script(keys=[*keys, self.serving.key("live")], args=[*args, want])
            if res != "stale":
                return res
            await self.follow(force=True)
        raise StoreConflict("the rebuild generation kept moving under a read")

    def _to_points(
        self, board: str, stored: float, clock: tuple[float | None, int | None]
    ) -> float:
        if board.partition(":")[0] == DECAYED:
            wm, lm = clock
            if wm is None or lm is None:
                return 0.0
            return decayed_value(stored, wm, lm, self.rules.half_life_s) / 1000.0
        return stored / 1000.0
