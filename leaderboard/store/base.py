"""The connection and what every part of the store shares."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Self

import hiredis
import redis.asyncio as aioredis
from redis.connection import HiredisRespSerializer

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
            # the apply call: all str arguments, nothing for redis-py's wrapper to convert
            return [hiredis.pack_command(args)]
        return self._packer.pack(*args)  # type: ignore[no-any-return]

    async def on_connect(self) -> None:
        await super().on_connect()
        writer = getattr(self, "_writer", None)
        if writer is not None:
            writer.transport.set_write_buffer_limits(high=0)


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
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.rules = rules
        #: the identity applies are guarded by (leaderboard.bait.identity: rules + bait settings)
        self.scoring_id = scoring_id or rules.version
        #: checked by every apply (the worker's store has them; readers need not)
        self.perk_rules = tuple(perk_rules)
        self.keys = Keys(prefix)
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
    ) -> Self:
        kwargs: dict[str, Any] = {"decode_responses": True}
        if url.startswith("redis://"):
            kwargs["connection_class"] = _HiredisPackConnection
        pool = aioredis.ConnectionPool.from_url(url, **kwargs)
        return cls(aioredis.Redis.from_pool(pool), prefix, rules, perk_rules, scoring_id)

    async def close(self) -> None:
        await self.client.aclose()

    def key(self, family: str, *parts: object) -> str:
        """The name of a key of ``family`` (a :data:`leaderboard.store.keys.FAMILIES` name)."""
        return self.keys.key(family, *parts)

    def _to_points(
        self, board: str, stored: float, clock: tuple[float | None, int | None]
    ) -> float:
        if board.partition(":")[0] == DECAYED:
            wm, lm = clock
            if wm is None or lm is None:
                return 0.0
            return decayed_value(stored, wm, lm, self.rules.half_life_s) / 1000.0
        return stored / 1000.0
