"""`kudos rebuild`: shadow namespaces, the rebuild lock, the switch, and the reads its diff uses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from leaderboard.store.base import StoreBase
from leaderboard.store.keys import (
    REBUILT_FAMILIES,
    glob_escape,
)


class RebuildMixin(StoreBase):
    """Rebuild support."""

    async def drop_namespace(self) -> int:
        """Delete every key of this namespace (a shadow namespace after use); how many."""
        pattern = glob_escape(self.prefix) + ":*"
        keys = [k async for k in self.client.scan_iter(match=pattern, count=1000)]
        for start in range(0, len(keys), 1000):
            await self.client.unlink(*keys[start : start + 1000])
        return len(keys)

    async def switch_from(self, shadow: StoreBase, outbox_group: str, token: str) -> str:
        """Replace this namespace's scoring state (:data:`REBUILT_FAMILIES`) with ``shadow``'s in
        one atomic script and take on its scoring identity: "ok"; "behind" (nothing changed) if
        the shadow is behind this namespace's fences; "lock" if ``token`` no longer holds the
        rebuild lock. The alerts outbox's consumer group is recreated at the stream's end; the
        live feed, perks, webhooks and meta stay."""
        args = [
            self.prefix,
            shadow.prefix,
            glob_escape(self.prefix) + ":*",
            glob_escape(shadow.prefix) + ":*",
            shadow.scoring_id,
            outbox_group,
            token,
            *REBUILT_FAMILIES,
        ]
        res: list[Any] = await self.scripts.switch(args=args)
        return str(res[0])

    async def lock_rebuild(self, token: str, ttl_s: int) -> str | None:
        """Take (or extend, with the same token) the namespace's rebuild lock; the holder's
        token if someone else holds it."""
        holder = await self.client.eval(
            "local h = redis.call('GET', KEYS[1])\n"
            "if h == false or h == ARGV[1] then\n"
            "  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]); return false end\n"
            "return h",
            1,
            self.key("rebuilding"),
            token,
            ttl_s,
        )
        return cast("str | None", holder)

    async def unlock_rebuild(self, token: str) -> None:
        await self.client.eval(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end",
            1,
            self.key("rebuilding"),
            token,
        )

    async def shadow_prefixes(self, marker: str) -> list[str]:
        """Prefixes of this namespace's shadow namespaces (``<prefix><marker>…``) with keys."""
        pattern = glob_escape(self.prefix + marker) + "*"
        found = {
            k.partition(":")[0] async for k in self.client.scan_iter(match=pattern, count=1000)
        }
        return sorted(found)

    async def board_mp(self, board: str) -> dict[str, int]:
        """A milli-point board, whole: member → milli-points (for the rebuild's diff)."""
        rows = cast(
            list[tuple[str, float]],
            await self.client.zrange(self.key("board", board), 0, -1, withscores=True),
        )
        return {m: round(s) for m, s in rows}

    async def explain_counters(self, members: Sequence[str]) -> dict[str, dict[str, int]]:
        pipe = self.client.pipeline(transaction=False)
        for m in members:
            pipe.hgetall(self.key("explain", m))
        rows = await pipe.execute()
        return {m: {f: int(v) for f, v in r.items()} for m, r in zip(members, rows, strict=True)}

    async def scoring_version(self) -> str | None:
        return cast("str | None", await self.client.hget(self.key("meta"), "scoring_version"))
