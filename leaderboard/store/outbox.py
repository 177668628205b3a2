"""The outboxes `kudos deliver` reads (perk unlocks, bait alerts) and their fan-out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import orjson
from redis.exceptions import ResponseError, WatchError

from leaderboard.explain import TRIMMED_FIELD, decision_time, shown_since
from leaderboard.moderation import tombstone
from leaderboard.perks import Unlock
from leaderboard.store.base import StoreBase
from leaderboard.store.feed import NO_FRAME, feed_publish_call
from leaderboard.store.keys import (
    ALERT_MARKS,
    ALERTS,
    OUTBOX_TRIM_STEP,
    PERK_MARKS,
    PERKBOX,
)
from leaderboard.store.scripts import SOURCES


class OutboxMixin(StoreBase):
    """Outbox streams and fan-out."""

    async def record_unlocks(self, unlocks: Sequence[Unlock]) -> list[str]:
        """Record unlocks as the apply script records its own: each into ``perks:<member>``
        once, ever, and if it was new, an outbox entry, in one atomic call (``lua/unlock.lua``).
        The rank rules of a namespace kept as shards (``stream/rank_judge.py``), and tests and
        tools that run no worker. The ids recorded (those not held already)."""
        if not unlocks:
            return []
        keys = [
            self.key("perkbox"),
            self.key("tombstones"),
            *(self.key("perks", u.member) for u in unlocks),
        ]
        args: list[str | bytes] = []
        for u in unlocks:
            args += [
                u.rule,
                orjson.dumps({**u.data(), "score": u.score}),
                u.id,
                u.title,
                u.member,
                u.board,
                str(u.rank),
                repr(u.score),
                repr(u.at),
            ]
        args += [orjson.dumps(u.payload) for u in unlocks]
        args += [tombstone(u.member) for u in unlocks]
        done = await self.scripts.unlock(keys=keys, args=args)
        return [str(x) for x in done]

    async def record_unlock(self, unlock: Mapping[str, str]) -> bool:
        """:meth:`record_unlocks` of one unlock given as its outbox fields (strings); False
        when the member already had the rule."""
        return bool(await self.record_unlocks([Unlock.from_fields(unlock)]))

    async def record_tie(self, rule: str, record: Mapping[str, Any]) -> None:
        """A rank rule's latest check that left a tie out (``perkties``; ``kudos perks``)."""
        await self.client.hset(self.key("perkties"), rule, orjson.dumps(record))

    async def outbox_recent(self, limit: int) -> list[dict[str, str]]:
        """The newest ``limit`` outbox entries (every member's unlocks), oldest first."""
        raw = cast(list[Any], await self.client.xrevrange(self.key("perkbox"), count=limit))
        return [fields for _, fields in reversed(raw)]

    async def alerts(self, limit: int, member: str | None = None) -> list[dict[str, Any]]:
        """The newest ``limit`` bait alerts (throttles started and ended), newest first; with
        ``member``, that member's throttle records instead (one per post, newest first)."""
        await self.follow()  # (the alerts outbox is the live generation's)
        if member is not None:
            raw_map = cast(
                "dict[str, str]", await self.client.hgetall(self.key("throttle", member))
            )
            wm = await self.client.get(self.key("wm"))
            since = shown_since(float(wm) if wm is not None else None)
            records = [orjson.loads(v) for g, v in raw_map.items() if g != TRIMMED_FIELD]
            # (the same records the explain view shows: older ones are dropped as they change)
            records = [r for r in records if since is None or decision_time(r) >= since]
            records.sort(key=lambda r: -(r.get("ended_at") or r.get("detected_at") or 0.0))
            return records[:limit]
        raw = cast(list[Any], await self.client.xrevrange(self.key(ALERTS), count=limit))
        return [orjson.loads(f["r"]) for _, f in raw]

    async def outbox_join(self, group: str, box: str = PERKBOX) -> None:
        """Create consumer group ``group`` on an outbox stream (``perkbox``, or ``alerts``)
        reading from its start, if missing. Every ``outbox_*`` method takes the same ``box``."""
        await self.follow()  # (the alerts outbox is the live generation's)
        try:
            await self.client.xgroup_create(self.key(box), group, "0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def outbox_read(
        self, group: str, consumer: str, count: int, block_ms: int, box: str = PERKBOX
    ) -> list[tuple[str, dict[str, str]]]:
        """New outbox entries for ``consumer`` (waits up to ``block_ms`` for some)."""
        await self.follow()  # (the alerts outbox is the live generation's)
        res = cast(
            list[Any],
            await self.client.xreadgroup(
                group, consumer, {self.key(box): ">"}, count=count, block=block_ms
            ),
        )
        return [(i, f) for _, entries in res or [] for i, f in entries]

    async def outbox_reclaim(
        self, group: str, consumer: str, min_idle_ms: int, count: int = 100, box: str = PERKBOX
    ) -> tuple[list[tuple[str, dict[str, str]]], list[str]]:
        """Entries another consumer (or this one) read but did not acknowledge within
        ``min_idle_ms``, now ``consumer``'s; and the ids of such entries that were trimmed from
        the stream before anyone acknowledged them (lost; their group entry is dropped)."""
        await self.follow()  # (the alerts outbox is the live generation's)
        key = self.key(box)
        claimed: list[tuple[str, dict[str, str]]] = []
        deleted: list[str] = []
        cursor = "0-0"
        while True:
            res = await self.client.xautoclaim(key, group, consumer, min_idle_ms, cursor, count)
            cursor = res[0]
            claimed += [(i, f) for i, f in res[1] if f is not None]
            if len(res) > 2:
                deleted += list(res[2])
            if cursor == "0-0" or len(claimed) >= count:
                return claimed, deleted

    async def outbox_ack(self, group: str, ids: Sequence[str], box: str = PERKBOX) -> None:
        await self.follow()  # (the alerts outbox is the live generation's)
        if ids:
            await self.client.xack(self.key(box), group, *ids)

    async def outbox_trim(self, box: str, keep: int, marks_in: StoreBase | None = None) -> int:
        """Trim an outbox stream to its newest ``keep`` entries, but only entries that every
        consumer group on it has acknowledged: one a group has not read yet, or read and not
        acknowledged, stays however many wait (a stream with no group is left alone: the first
        deliverer reads it from the start). How many entries it removed (see
        ``lua/outbox_trim.lua``). The fan-out marks of the entries it removes go with them,
        from ``marks_in``'s marks when given (a shard's outbox, whose entries were fanned out
        into the namespace's own store: deleted right after each step there, so a crash in
        between leaves at most a step's marks behind, which only cost memory)."""
        await self.follow()  # (the alerts outbox is the live generation's)
        marks, id_field = (ALERT_MARKS, "r") if box == ALERTS else (PERK_MARKS, "id")
        removed = 0
        while True:
            res: list[Any] = await self.scripts.outbox_trim(
                keys=[self.key(box), self.key(marks)], args=[keep, OUTBOX_TRIM_STEP, id_field]
            )
            removed += int(res[0])
            if marks_in is not None and marks_in is not self and res[2]:
                await marks_in.client.hdel(marks_in.key(marks), *res[2])
            if not int(res[1]):
                return removed

    async def perk_ties(self) -> dict[str, dict[str, Any]]:
        """Rank rule → its latest check that left a tie out (at, board, rank, tied, cap)."""
        raw = cast("dict[str, str]", await self.client.hgetall(self.key("perkties")))
        return {rule: orjson.loads(v) for rule, v in raw.items()}

    async def outbox_forget_consumers(
        self, group: str, keep: str, idle_ms: int, box: str = PERKBOX
    ) -> list[str]:
        """Remove consumers (e.g. of killed deliverers) that hold no entry and were idle for
        ``idle_ms``; their names, so a restarted deliverer does not leave one behind each time."""
        await self.follow()  # (the alerts outbox is the live generation's)
        key = self.key(box)
        gone: list[str] = []
        for c in await self.client.xinfo_consumers(key, group):
            if c["name"] != keep and int(c["pending"]) == 0 and int(c["idle"]) >= idle_ms:
                await self.client.xgroup_delconsumer(key, group, c["name"])
                gone.append(c["name"])
        return gone

    async def fanned_out(self, unlock_ids: Sequence[str], marks: str = PERK_MARKS) -> set[str]:
        """Which of these unlocks (alerts, with ``marks=ALERT_MARKS``) were already fanned out
        (:meth:`fan_out`)."""
        if not unlock_ids:
            return set()
        found = await self.client.hmget(self.key(marks), list(unlock_ids))
        return {u for u, m in zip(unlock_ids, found, strict=True) if m is not None}

    async def fan_out(
        self,
        unlocks: Sequence[tuple[str, str, bytes, Sequence[tuple[str, Mapping[str, str | bytes]]]]],
        now: float,
        member_maxlen: int = 100,
        board_records: Mapping[str, tuple[str, bytes]] | None = None,
        maxlen: int = 2000,
        marks: str = PERK_MARKS,
        to_alerts_channel: bool = False,
    ) -> list[str]:
        """For each (unlock id, member, websocket record, webhook jobs) not fanned out yet, in
        one transaction: mark it fanned out, push the record to the member's live channel (as
        :meth:`feed_member_events`) and create its jobs (job id, fields), due now. The mark is
        read under WATCH, so an unlock is pushed and its jobs made once, also when several
        deliverers handle the same outbox entry. Returns the unlock ids fanned out now.

        Bait alerts use the same path with their own ``marks`` and no jobs;
        ``to_alerts_channel`` pushes every record to the ``alerts`` channel too."""
        marks_key = self.key(marks)
        stones_key = self.key("tombstones")
        due = self.key("wh", "due")
        async with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    # (the tombstones watched too: an erase meanwhile makes this start over)
                    await pipe.watch(marks_key, stones_key)
                    ids = [u[0] for u in unlocks]
                    seen = await pipe.hmget(marks_key, ids) if ids else []
                    stones = [tombstone(u[1]) for u in unlocks if u[1]]
                    hits = await pipe.smismember(stones_key, stones) if stones else []
                    gone = {s for s, hit in zip(stones, hits, strict=True) if hit}
                    todo: dict[str, tuple[str, bytes, Sequence[Any]]] = {}
                    dropped: list[str] = []
                    for (uid, member, record, jobs), mark in zip(unlocks, seen, strict=True):
                        if mark is None and uid not in todo:
                            if member and tombstone(member) in gone:
                                dropped.append(uid)  # (erased: marked, never pushed)
                            else:
                                todo[uid] = (member, record, jobs)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    for uid in dropped:
                        pipe.hset(marks_key, uid, repr(now))
                    if not todo:
                        if dropped:
                            await pipe.execute()
                        else:
                            await pipe.reset()  # type: ignore[no-untyped-call]
                        return []
                    records = [(member, record) for member, record, _ in todo.values()]
                    if to_alerts_channel:
                        # member "" is the alerts channel in lua/feed_publish.lua
                        records += [("", record) for _, record, _ in todo.values()]
                    boards = [
                        board_records[uid] for uid in todo if board_records and uid in board_records
                    ]
                    keys, args = feed_publish_call(
                        self.keys, NO_FRAME, records, maxlen, member_maxlen, boards
                    )
                    # EVAL, not EVALSHA: a transaction cannot load a missing script, and a
                    # cluster pipeline refuses EVALSHA (the source is 2 KB, once per fan-out)
                    pipe.execute_command("EVAL", SOURCES["feed_publish"], len(keys), *keys, *args)
                    for uid, (_, _, jobs) in todo.items():
                        pipe.hset(marks_key, uid, repr(now))
                        for job_id, fields in jobs:
                            key = self.key("wh", "job", job_id)
                            mapping: dict[str, str | bytes] = {**fields, "created": repr(now)}
                            mapping.update(state="pending", attempts="0", lease="0")
                            pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]
                            pipe.zadd(due, {job_id: now}, nx=True)
                    await pipe.execute()
                    return list(todo)
                except WatchError:
                    continue
