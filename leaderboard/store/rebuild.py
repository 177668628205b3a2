"""`kudos rebuild`: generations, the rebuild lock, the switch, and the reads its diff uses.

The rebuilt families (:data:`REBUILT_FAMILIES`) of generation N live under ``<prefix>:g<N>:``
(generation 0: under ``<prefix>:`` itself); the ``live`` key is the pointer to the live one.
A rebuild takes a generation number never used before (:meth:`RebuildMixin.take_generation`:
the ``generations`` counter, above the pointer), fills it while N serves, switches by moving the
pointer (``lua/switch.lua``: O(boards), not O(keys)), and then drops generation N in bounded
steps. Numbers are never reused, so a rebuild that lost its lock and still writes can only ever
write into its own generation, which nothing else fills or switches to.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Sequence
from typing import Any, cast

from leaderboard.calendar import UNITS
from leaderboard.errors import StoreConflict
from leaderboard.store.base import StoreBase
from leaderboard.store.keys import Keys, glob_escape

#: Keys one step of a generation drop looks at (SCAN COUNT) and removes at most (UNLINK).
DROP_STEP = 1000


class RebuildMixin(StoreBase):
    """Rebuild support."""

    async def drop_namespace(self) -> int:
        """Delete every key of this namespace (e.g. a pre-generations shadow namespace
        ``<prefix>~rebuild-<token>``, or a test's); how many. Not for a generation: see
        :meth:`drop_generation`."""
        pattern = glob_escape(self.prefix) + ":*"
        keys = [k async for k in self.client.scan_iter(match=pattern, count=1000)]
        for start in range(0, len(keys), 1000):
            await self.client.unlink(*keys[start : start + 1000])
        return len(keys)

    async def switch_from(
        self, new: StoreBase, outbox_group: str, token: str, *, previous: int | None = None
    ) -> str:
        """Make ``new``'s generation (a pinned store of this namespace) the live one in place of
        ``previous`` (the live generation when the rebuild started; default: the one before
        ``new``'s) in one short atomic script and take on its scoring identity: "ok"; "behind"
        (nothing changed) if it is behind the live fences; "lock" if ``token`` no longer holds
        the rebuild lock; "moved" if the live generation is no longer ``previous``. Every
        board's change counter is bumped (the live feed re-reads) and the deliverer's group is
        created at the end of the new generation's alerts outbox. The old generation stays
        until :meth:`drop_generation`."""
        if new.pinned is None or new.prefix != self.prefix:
            raise ValueError("switch_from takes a store pinned at a generation of this namespace")
        old = Keys(self.prefix, new.pinned - 1 if previous is None else previous)
        keys = [
            self.serving.key("rebuilding"),
            self.serving.key("live"),
            old.key("fence"),
            old.key("boards"),
            new.key("fence"),
            new.key("boards"),
            new.key("alerts"),
            self.serving.key("changes"),
            new.key("meta"),
            *(k.key("archives", unit) for unit in UNITS for k in (old, new)),
        ]
        args: list[str | int] = [token, old.generation, new.pinned, outbox_group, new.scoring_id]
        res: list[Any] = await self.scripts.switch(keys=keys, args=args)
        if res[0] == "ok":
            await self.follow(force=True)
        return str(res[0])

    async def drop_steps(self, generation: int, step: int = DROP_STEP) -> AsyncGenerator[int, None]:
        """Delete generation ``generation``'s keys (its rebuilt families; never serving state),
        one bounded step at a time (a SCAN of ``step`` and an UNLINK of what it found); yields
        the keys each step removed. Refuses the live generation (StoreConflict), and stops
        with StoreConflict at the step where it finds the pointer moved to it: the pointer is
        read again before every UNLINK, not only before the first (a drop takes many steps).

        Generation 0's keys have no segment of their own: its step scans the whole namespace
        and keeps the rebuilt families' keys without a ``g<N>`` segment."""
        keys = Keys(self.prefix, generation)
        match = keys.generation_pattern() if generation else keys.pattern()
        cursor = 0
        while True:
            if generation == await self.pointer():
                raise StoreConflict(f"generation {generation} is the live one: not dropping it")
            cursor, names = await self._scan(cursor, match, step)
            if not generation:
                names = [k for k in names if keys.is_unscoped(k)]
            if names:
                await self.client.unlink(*names)
            yield len(names)
            if cursor == 0:
                return

    async def drop_generation(self, generation: int, step: int = DROP_STEP) -> int:
        """:meth:`drop_steps` to the end; how many keys it removed."""
        return sum([n async for n in self.drop_steps(generation, step)])

    async def generations(self) -> set[int]:
        """The generations that have keys in this namespace (0: rebuilt families' keys without a
        ``g<N>`` segment). A walk of the whole namespace (SCAN), for the rebuild's clean-up."""
        keys = Keys(self.prefix)
        seg = re.compile(re.escape(self.prefix) + r":g(\d+):")
        found: set[int] = set()
        async for k in self.client.scan_iter(match=keys.pattern(), count=1000):
            m = seg.match(k)
            if m is not None:
                found.add(int(m.group(1)))
            elif keys.is_unscoped(k):
                found.add(0)
        return found

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

    async def renew_rebuild_lock(self, token: str, ttl_s: int) -> bool:
        """Extend the rebuild lock if ``token`` still holds it; False if it does not (it ran
        out, or another rebuild took it). Unlike :meth:`lock_rebuild` it never takes a free
        lock: a rebuild whose lock ran out may have been overtaken by one that already finished,
        so it must stop, not carry on."""
        held = await self.client.eval(
            "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
            "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]); return 1",
            1,
            self.key("rebuilding"),
            token,
            ttl_s,
        )
        return bool(held)

    async def take_generation(self, token: str) -> int:
        """A generation number never used before in this namespace, for the rebuild holding the
        lock (``token``): the ``generations`` counter, first raised to the pointer (a namespace
        from before the counter, or one whose counter was lost), then incremented, in one
        script. So the number is above the live generation and above every number an earlier
        rebuild took, dead or alive. Raises StoreConflict if ``token`` does not hold the lock."""
        n = await self.client.eval(
            "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end\n"
            "local live = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
            "local last = tonumber(redis.call('GET', KEYS[3]) or '0')\n"
            "if last < live then redis.call('SET', KEYS[3], live) end\n"
            "return redis.call('INCR', KEYS[3])",
            3,
            self.serving.key("rebuilding"),
            self.serving.key("live"),
            self.serving.key("generations"),
            token,
        )
        if n is None:
            raise StoreConflict("the rebuild lock is not held: not taking a generation number")
        return int(n)

    async def unlock_rebuild(self, token: str) -> None:
        await self.client.eval(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end",
            1,
            self.key("rebuilding"),
            token,
        )

    async def shadow_prefixes(self, marker: str) -> list[str]:
        """Prefixes of this namespace's shadow namespaces (``<prefix><marker>…``) with keys (the
        rebuild's layout before generations; a new rebuild drops any it finds)."""
        pattern = glob_escape(self.prefix + marker) + "*"
        found = {
            k.partition(":")[0] async for k in self.client.scan_iter(match=pattern, count=1000)
        }
        return sorted(found)

    async def board_mp(self, board: str) -> dict[str, int]:
        """A milli-point board, whole: member → milli-points (for the rebuild's diff)."""
        await self.follow()
        rows = cast(
            list[tuple[str, float]],
            await self.client.zrange(self.key("board", board), 0, -1, withscores=True),
        )
        return {m: round(s) for m, s in rows}

    async def explain_counters(self, members: Sequence[str]) -> dict[str, dict[str, int]]:
        await self.follow()
        pipe = self.client.pipeline(transaction=False)
        for m in members:
            pipe.hgetall(self.key("explain", m))
        rows = await pipe.execute()
        return {m: {f: int(v) for f, v in r.items()} for m, r in zip(members, rows, strict=True)}

    async def scoring_version(self) -> str | None:
        await self.follow()
        return cast("str | None", await self.client.hget(self.key("meta"), "scoring_version"))
