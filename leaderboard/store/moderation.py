"""Erasing and hiding members (``kudos erase``, ``kudos hide``, ``kudos unhide`` and their HTTP
endpoints) in Redis.

:func:`erase` runs the whole erasure over a namespace's stores (one, or its shards and its own
store): it takes the rebuild lock (a rebuild filling a generation meanwhile would write the member
back), records the tombstone and removes the member's scoring state in one atomic script per
store (``lua/erase.lua``), then removes what names them from the outboxes (unlocks, bait
alerts), the webhook jobs and attempts log, the live feed (every channel's history: a new
feed epoch, so every client starts again from a snapshot), and logs the erasure with who, when
and why in ``modlog`` (with the tombstone, not the id). :func:`hide` and :func:`unhide` set or
clear the member's entry in the ``hidden`` hash of every store (every read leaves hidden members
out, ``lua/hidden.lua``) and bump their boards' change marks, so the live feed re-reads them.
The rules are :mod:`leaderboard.moderation`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson

from leaderboard.calendar import UNITS
from leaderboard.errors import StoreConflict
from leaderboard.explain import POSTS_PERIOD_S
from leaderboard.ids import id_problem
from leaderboard.moderation import (
    ERASE,
    HIDE,
    MAX_HIDDEN,
    MODLOG_MAXLEN,
    UNHIDE,
    ModerationError,
    audit_entry,
    audit_fields,
    check_actor,
    check_reason,
    tombstone,
)
from leaderboard.store.keys import ALERTS, PERKBOX, glob_escape
from leaderboard.store.rebuild import RebuildMixin

log = logging.getLogger(__name__)

#: Stream entries read per step while looking for a member's (the outboxes, the webhook log).
SCAN_STEP = 1000
#: How long an erase holds the rebuild lock at most (it is released as soon as it is done).
LOCK_TTL_S = 600


@dataclass(frozen=True, slots=True)
class Erasure:
    """What one erase removed."""

    tombstone: str
    #: board, archive, bucket and rescale rows
    rows: int
    unlocks: int
    #: entries taken out of the outboxes, webhook jobs and the webhook log
    outbox_entries: int
    webhook_jobs: int
    #: live-feed keys deleted (the channels' states and histories)
    feed_keys: int
    #: the modlog entry's id
    logged: str

    def to_json(self, by: str) -> dict[str, Any]:
        """What ``kudos erase --json`` and the HTTP endpoint answer."""
        return {
            "erased": True,
            "tombstone": self.tombstone,
            "rows": self.rows,
            "unlocks": self.unlocks,
            "outbox_entries": self.outbox_entries,
            "webhook_jobs": self.webhook_jobs,
            "by": by,
            "logged": self.logged,
        }


class ModerationMixin(RebuildMixin):
    """The per-store steps of :func:`erase`, and the audit log."""

    async def erase_scoring(self, member: str) -> tuple[int, list[str], bool]:
        """``lua/erase.lua`` on the live generation: the tombstone, and the member's rows and
        hashes gone; (rows removed, ids of the unlocks deleted, whether erased before)."""
        rules = self.rules

        def build() -> tuple[list[str], list[Any]]:
            keys = [
                self.key("tombstones"),
                self.key("erasures"),
                self.key("changes"),
                self.key("wm"),
                self.key("perkfanout"),
            ]
            args: list[Any] = [
                member,
                tombstone(member),
                self.keys.scoped,
                self.prefix,
                POSTS_PERIOD_S,
            ]
            for names in (rules.base_boards, [w.name for w in rules.windows], UNITS):
                args += [len(names), *names]
            return keys, args

        rows, uids, new = await self._atomic(self.scripts.erase, build)
        return int(rows), list(uids), not int(new)

    async def _drop_entries(self, key: str, names_member: Any) -> int:
        """XDEL every entry of stream ``key`` that ``names_member(fields)`` picks, read
        :data:`SCAN_STEP` at a time, and acknowledge them for every consumer group (a deleted
        entry left pending would be reported lost)."""
        groups = []
        if await self.client.exists(key):
            groups = [g["name"] for g in await self.client.xinfo_groups(key)]
        dropped = 0
        start = "-"
        while True:
            raw = cast(list[Any], await self.client.xrange(key, start, "+", count=SCAN_STEP))
            ids = [i for i, fields in raw if fields is not None and names_member(fields)]
            if ids:
                pipe = self.client.pipeline(transaction=False)
                pipe.xdel(key, *ids)
                for g in groups:
                    pipe.xack(key, g, *ids)
                await pipe.execute()
                dropped += len(ids)
            if len(raw) < SCAN_STEP:
                return dropped
            last = raw[-1][0]
            start = "(" + last

    async def erase_outboxes(self, member: str) -> int:
        """Take the member's unlocks out of ``perkbox`` and the bait alerts on their posts out
        of ``alerts`` (the live generation's); how many entries."""
        await self.follow()

        def is_alert_of(fields: dict[str, str]) -> bool:
            try:
                return bool(orjson.loads(fields.get("r", "{}")).get("target") == member)
            except (orjson.JSONDecodeError, AttributeError):
                return False

        n = await self._drop_entries(self.key(PERKBOX), lambda f: f.get("member") == member)
        return n + await self._drop_entries(self.key(ALERTS), is_alert_of)

    async def erase_webhooks(self, unlock_ids: Sequence[str]) -> tuple[int, int]:
        """Delete the webhook jobs of ``unlock_ids`` (due or dead; a job id is
        ``<endpoint>:<unlock id>``) and their attempts-log entries; (jobs, log entries)."""
        if not unlock_ids:
            return 0, 0
        wanted = set(unlock_ids)
        jobs: list[str] = []
        for which in ("due", "dead"):
            async for job, _ in self.client.zscan_iter(self.key("wh", which), count=SCAN_STEP):
                if str(job).rpartition(":")[2] in wanted:
                    jobs.append(str(job))
        if jobs:
            pipe = self.client.pipeline(transaction=False)
            for job in jobs:
                pipe.zrem(self.key("wh", "due"), job)
                pipe.zrem(self.key("wh", "dead"), job)
                pipe.unlink(self.key("wh", "job", job))
            await pipe.execute()
        logged = await self._drop_entries(
            self.key("wh", "log"), lambda f: f.get("unlock") in wanted
        )
        return len(set(jobs)), logged

    async def erase_feed(self, member: str) -> int:
        """Forget the live feed's histories (every channel's: other members' channels and the
        boards' logs carry rank events and rows naming the member): its keys are deleted and a
        new epoch started, so every client and web process starts again from a snapshot read
        after the erase. Deleted twice, around the new epoch, so that a frame published from a
        snapshot read before the erase is caught. The keys deleted."""
        await self.client.zrem(self.key("watched"), member)
        n = await self._drop_feed_keys()
        await self.client.set(self.key("feedepoch"), os.urandom(6).hex())
        return n + await self._drop_feed_keys()

    async def _drop_feed_keys(self) -> int:
        epoch = self.key("feedepoch")
        pattern = glob_escape(self.serving.key("feed")) + "*"
        n, cursor = 0, 0
        while True:
            cursor, found = await self._scan(cursor, pattern, SCAN_STEP)
            doomed = [k for k in found if k != epoch]
            if doomed:
                await self.client.unlink(*doomed)
                n += len(doomed)
            if cursor == 0:
                return n

    async def set_hidden(self, member: str, record: bytes | None) -> int:
        """Hide ``member`` with ``record`` (JSON: by, at, reason), or unhide them (None): 1 if
        that changed something, 0 if not, -1 when :data:`MAX_HIDDEN` members are hidden
        already (nothing changed). The member's boards get a new change mark."""
        await self.follow()
        base = self.rules.base_boards
        res = await self.client.eval(
            _SET_HIDDEN,
            3,
            self.key("hidden"),
            self.key("changes"),
            self.key("mcomm", member),
            member,
            record or b"",
            MAX_HIDDEN,
            *base,
        )
        return int(res)

    async def hidden_members(self) -> dict[str, dict[str, Any]]:
        """Every hidden member → their record (by, at, reason)."""
        raw = cast("dict[str, str]", await self.client.hgetall(self.key("hidden")))
        return {m: orjson.loads(v) for m, v in raw.items()}

    async def moderation_log(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest ``limit`` entries of the moderation audit log, newest first."""
        raw = cast(list[Any], await self.client.xrevrange(self.key("modlog"), count=limit))
        return [audit_entry(i, f) for i, f in raw]

    async def log_moderation(self, fields: list[str]) -> str:
        entry: dict[Any, Any] = dict(zip(fields[0::2], fields[1::2], strict=True))
        return str(
            await self.client.xadd(
                self.key("modlog"), entry, maxlen=MODLOG_MAXLEN, approximate=True
            )
        )

    async def erased(self, member: str) -> bool:
        """Whether ``member`` was erased (their tombstone is recorded)."""
        return bool(await self.client.sismember(self.key("tombstones"), tombstone(member)))


#: Hide (ARGV[2] a record) or unhide (ARGV[2] '') one member, and mark their boards changed.
#: KEYS: hidden, changes, mcomm:<member>; ARGV: member, record, the cap, the base boards.
_SET_HIDDEN = """
local m, record = ARGV[1], ARGV[2]
local done
if record == '' then
  done = redis.call('HDEL', KEYS[1], m)
else
  if redis.call('HEXISTS', KEYS[1], m) == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3])
  then return -1 end
  done = redis.call('HSET', KEYS[1], m, record)
  if done == 0 then return 0 end
end
if done == 1 then
  local communities = redis.call('SMEMBERS', KEYS[3])
  for j = 4, #ARGV do
    redis.call('HINCRBY', KEYS[2], ARGV[j], 1)
    for _, c in ipairs(communities) do redis.call('HINCRBY', KEYS[2], ARGV[j] .. ':' .. c, 1) end
  end
end
return done
"""


def _checked(member: str, by: str, reason: str, *, required: bool = False) -> tuple[str, str]:
    problem = id_problem(member) if isinstance(member, str) else "must be a string"
    if problem is not None:
        raise ModerationError(f"the member id {problem}")
    return check_actor(by), check_reason(reason, required=required)


async def hide(
    stores: Sequence[ModerationMixin],
    own: ModerationMixin,
    member: str,
    *,
    by: str,
    reason: str,
) -> bool:
    """Take ``member`` off every board of the namespace (``stores``: the store, or every shard)
    until :func:`unhide`, with ``reason`` (required) logged in ``own``'s ``modlog`` under the
    member's id; False if they were hidden already (nothing logged).

    Raises:
        ModerationError: a bad id, actor or reason, or MAX_HIDDEN members hidden already.
    """
    by, reason = _checked(member, by, reason, required=True)
    at = time.time()
    record = orjson.dumps({"by": by, "at": at, "reason": reason})
    changed = 0
    for s in stores:
        got = await s.set_hidden(member, record)
        if got < 0:
            raise ModerationError(
                f"{MAX_HIDDEN} members are hidden already (every read checks them): unhide some, "
                "or erase those who are gone for good"
            )
        changed = max(changed, got)
    if changed:
        await own.log_moderation(audit_fields(HIDE, member, by, at, reason))
    return bool(changed)


async def unhide(
    stores: Sequence[ModerationMixin],
    own: ModerationMixin,
    member: str,
    *,
    by: str,
    reason: str = "",
) -> bool:
    """Show ``member`` on the boards again (their points never stopped accruing); False if they
    were not hidden (nothing logged)."""
    by, reason = _checked(member, by, reason)
    changed = 0
    for s in stores:
        changed = max(changed, await s.set_hidden(member, None))
    if changed:
        await own.log_moderation(audit_fields(UNHIDE, member, by, time.time(), reason))
    return bool(changed)


async def erase(
    stores: Sequence[ModerationMixin],
    own: ModerationMixin,
    member: str,
    *,
    by: str,
    reason: str = "",
) -> Erasure:
    """Erase ``member`` from a namespace: ``stores`` hold its scoring state (the one store, or
    every shard: the member's data is in one, the tombstone goes in each, so that no shard's
    worker scores them again), ``own`` its serving state (the rebuild lock, the live feed, the
    webhooks, the audit log; the same store when not sharded).

    Raises:
        ModerationError: ``member``, ``by`` or ``reason`` cannot be recorded.
        StoreConflict: a ``kudos rebuild`` is running (erase after it has switched).
    """
    by, reason = _checked(member, by, reason)
    token = "erase:" + os.urandom(8).hex()
    holder = await own.lock_rebuild(token, LOCK_TTL_S)
    if holder is not None:
        raise StoreConflict(
            f"a kudos rebuild is running ({holder}): erase once it has switched "
            "(`kudos rebuild` prints when), or it would write the member back"
        )
    stone = tombstone(member)
    try:
        # first the tombstone and the scoring state in every store (the own store too, when
        # sharded: its live feed checks the tombstone), then the audit entry, then the rest;
        # the lock renewed between the steps (an erase of a big namespace scans its outboxes)
        rows, uids, boxed, again = 0, [], 0, False
        everywhere = [*stores, *([] if any(s is own for s in stores) else [own])]
        for s in everywhere:
            r, u, before = await s.erase_scoring(member)
            rows += r
            uids += u
            again = again or before
            await s.set_hidden(member, None)  # (nothing left to hide)
        entry = await own.log_moderation(audit_fields(ERASE, stone, by, time.time(), reason))
        for s in stores:
            await own.lock_rebuild(token, LOCK_TTL_S)
            boxed += await s.erase_outboxes(member)
        await own.lock_rebuild(token, LOCK_TTL_S)
        jobs, logged = await own.erase_webhooks(uids)
        # (hide and unhide entries name the member: this erase's entry stands for them)
        logged += await own._drop_entries(own.key("modlog"), lambda f: f.get("subject") == member)
        # the feed's history goes unless the member cannot be in it (never on a board, never
        # unlocked, never erased before: a repeat finishes an erase that may have been cut off)
        feed_keys = await own.erase_feed(member) if rows or uids or again else 0
        log.info(
            "erased member %s: %d rows, %d unlocks, %d outbox entries, %d webhook jobs",
            stone, rows, len(uids), boxed + logged, jobs,
        )  # fmt: skip
        return Erasure(stone, rows, len(uids), boxed + logged, jobs, feed_keys, entry)
    finally:
        await own.unlock_rebuild(token)
