"""What the web process reads and writes on a namespace kept as shards, beyond board pages: the
live feed, the board list, members' standings for their channels, alerts.

The live feed's shared state (epoch, each channel's seq, snapshot and frame log, the watched
set) stays in the namespace's own store, ``base`` (its base prefix: on a cluster one slot of its
own), so one publish is still one compare-and-set there. A board channel's change mark is the
shards' marks joined (``3|0|7``, each with its W on a decayed board); when it differs from the
published one, every shard's top rows are read with its mark in one atomic call each and merged,
and that joined mark is the one published with the frame. So a web process that published the
top rows of a moment names exactly the shard states it merged, as on one namespace; a merge is
not atomic across shards (an apply between two shards' reads shows in one only), and the next
tick publishes it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any

from leaderboard.errors import StoreConflict
from leaderboard.merge import merge_page, rebase
from leaderboard.ranking import Entry
from leaderboard.scoring import DECAYED, ScoringRules, decayed_value
from leaderboard.settings import MAX_SHARDS
from leaderboard.store import BoardPoll, FeedFrame, MemberPoll, Store

#: The board list's cursor names a shard as its value modulo this (KUDOS_REDIS_SHARDS ≤ it).
CURSOR_SHARDS = MAX_SHARDS
#: A standings read again when a shard's landmark moved between its two calls.
PLACES_RETRIES = 3


class _Moved(Exception):
    """A shard's landmark moved between the two calls of :meth:`ShardsLiveMixin.places`."""


#: Standing of a member on one board, as ``feed_members`` gives it: (rank, stored, points).
Place = tuple[int, float, float] | None


class ShardsLiveMixin:
    """The live feed and serving reads of :class:`leaderboard.store.shards.Shards`."""

    stores: tuple[Store, ...]
    #: the namespace's own store: the live feed's state, the shard count (None: board reads
    #: only, as the worker's)
    base: Store | None
    rules: ScoringRules

    @property
    def own(self) -> Store:
        """The namespace's own store (the live feed's state)."""
        if self.base is None:
            raise ValueError("the live feed of a sharded namespace needs its own store (base)")
        return self.base

    def store_of(self, member: str) -> Store:
        raise NotImplementedError

    async def clock(self) -> tuple[float | None, int | None]:
        raise NotImplementedError

    # -- the feed's own state, in the namespace's store ---------------------------------------

    async def feed_epoch(self) -> str:
        return await self.own.feed_epoch()

    async def feed_new_epoch(self, old: str) -> None:
        await self.own.feed_new_epoch(old)

    async def feed_watch(self, members: list[str], ttl_s: float) -> None:
        await self.own.feed_watch(members, ttl_s)

    async def feed_log(self, channel: str, after_seq: int, limit: int) -> list[tuple[int, str]]:
        return await self.own.feed_log(channel, after_seq, limit)

    async def feed_publish(
        self,
        frame: FeedFrame,
        member_records: list[tuple[str, bytes]],
        maxlen: int,
        member_maxlen: int,
    ) -> int | None:
        return await self.own.feed_publish(frame, member_records, maxlen, member_maxlen)

    async def feed_member_events(self, records: list[tuple[str, bytes]], maxlen: int = 100) -> None:
        await self.own.feed_member_events(records, maxlen)

    # -- board channels -----------------------------------------------------------------------

    async def board_mark(self, board: str) -> tuple[str, float | None, int]:
        """The board's change mark over the shards, the namespace's W, and the board's size
        (one pipelined read per shard, not atomic across them: only to see whether to look)."""
        decayed = board.partition(":")[0] == DECAYED

        async def one(s: Store) -> list[Any]:
            await s.follow()
            pipe = s.client.pipeline(transaction=False)
            pipe.hget(s.key("changes"), board)
            pipe.get(s.key("wm"))
            pipe.zcard(s.key("board", board))
            return list(await pipe.execute())

        got = await asyncio.gather(*(one(s) for s in self.stores))
        marks = [(c or "0") + (f"@{w or ''}" if decayed else "") for c, w, _ in got]
        known = [float(w) for _, w, _ in got if w is not None]
        return "|".join(marks), max(known) if known else None, sum(int(n) for _, _, n in got)

    async def feed_board(
        self, board: str, after_seq: int, depth: int, max_frames: int
    ) -> BoardPoll:
        """A board channel's state, as :meth:`Store.feed_board` gives one namespace's, with the
        merged top ``depth`` rows when the shards' mark moved since the last publish."""
        self.rules.check_board(board)
        src, wm, size = await self.board_mark(board)
        poll = await self.own.feed_board(board, after_seq, depth, max_frames, src=src)
        poll = dataclasses.replace(poll, as_of=wm, members=size)
        if not poll.changed:
            return poll
        # each shard's top rows with its own mark, from one moment of that shard
        reads = await asyncio.gather(*(s.feed_board(board, -1, depth, 0) for s in self.stores))
        known = [r.as_of for r in reads if r.as_of is not None]
        common = max(known) if known else None
        decayed = board.partition(":")[0] == DECAYED
        slices = []
        for r in reads:
            rows = r.rows
            if decayed and r.as_of is not None and common is not None:
                # (a shard's points are at its own W: restated at the namespace's)
                f = 2.0 ** (-(common - r.as_of) / self.rules.half_life_s)
                rows = [(m, p * f) for m, p in rows]
            slices.append(rows)
        merged: list[Entry] = merge_page(slices, 0, depth)
        return dataclasses.replace(
            poll,
            src="|".join(r.src for r in reads),
            changed=True,
            rows=[(e.member, e.score) for e in merged],
            members=sum(r.members for r in reads),
            as_of=common,
        )

    # -- member channels ----------------------------------------------------------------------

    async def feed_members(
        self, members: list[tuple[str, int, bool]], max_frames: int
    ) -> tuple[str, float | None, dict[str, MemberPoll]]:
        """Member channels' states as :meth:`Store.feed_members` gives them: the channels from
        the namespace's store, the standings on the merged base boards."""
        epoch, _, polls = await self.own.feed_members(
            [(m, after, False) for m, after, _ in members], max_frames
        )
        wanted = [m for m, _, want in members if want and m]
        places, wm = await self.places(wanted, self.rules.base_boards)
        for m in wanted:
            polls[m] = dataclasses.replace(polls[m], standing=places[m])
        return epoch, wm, polls

    async def places(
        self, members: Sequence[str], boards: Sequence[str]
    ) -> tuple[dict[str, dict[str, Place]], float | None]:
        """Each member's (rank, stored score, points) on each board, merged (None: not on it),
        and the namespace's W: the scores from each member's shard, then every shard's count
        above them (two round trips for any number of members). Read again (at most
        :data:`PLACES_RETRIES` times) when a shard's decay landmark moved in between, which
        would put its counts of a decayed board off by the move's factor.

        Raises:
            StoreConflict: the landmarks kept moving.
        """
        for _ in range(PLACES_RETRIES):
            got = await self._places(members, boards)
            if got is not None:
                return got
        raise StoreConflict("shards' decay landmarks kept moving under a standings read")

    async def _places(
        self, members: Sequence[str], boards: Sequence[str]
    ) -> tuple[dict[str, dict[str, Place]], float | None] | None:
        clocks = await asyncio.gather(*(s.clock() for s in self.stores))
        known = [w for w, _ in clocks if w is not None]
        common = max(known) if known else None
        stored: dict[tuple[str, str], tuple[float, Store]] = {}
        # hidden members (kudos hide) have no place, and do not count above anyone
        hidden = await asyncio.gather(*(s.client.hkeys(s.key("hidden")) for s in self.stores))
        hidden_of = {id(s): [str(m) for m in h] for s, h in zip(self.stores, hidden, strict=True)}

        async def scores(s: Store, mine: list[str]) -> None:
            await s.follow()
            pipe = s.client.pipeline(transaction=False)
            for m in mine:
                for b in boards:
                    pipe.zscore(s.key("board", b), m)
            got = iter(await pipe.execute())
            for m in mine:
                for b in boards:
                    v = next(got)
                    if v is not None and m not in hidden_of[id(s)]:
                        stored[(m, b)] = (float(v), s)

        by_store: dict[int, list[str]] = {}
        for m in members:
            by_store.setdefault(self.stores.index(self.store_of(m)), []).append(m)
        await asyncio.gather(*(scores(self.stores[k], ms) for k, ms in by_store.items()))
        lm_of = {id(s): lm for s, (_, lm) in zip(self.stores, clocks, strict=True)}
        asked = sorted(stored)

        async def above(s: Store) -> list[int]:
            if not asked:
                return []
            pipe = s.client.pipeline(transaction=False)
            pipe.get(s.key("landmark"))
            ids = hidden_of[id(s)]
            values = []
            for m, b in asked:
                v, own = stored[(m, b)]
                own_lm, lm = lm_of[id(own)], lm_of[id(s)]
                if b.partition(":")[0] == DECAYED and own_lm is not None and lm is not None:
                    v = rebase(v, own_lm, lm, self.rules.half_life_s)
                values.append(v)
                pipe.zcount(s.key("board", b), f"({v!r}", "+inf")
            marked = sorted({b for _, b in asked}) if ids else []
            for b in marked:
                pipe.zmscore(s.key("board", b), ids)
            lm, *found = await pipe.execute()
            if (int(lm) if lm is not None else None) != lm_of[id(s)]:
                raise _Moved
            counts, tail = found[: len(asked)], found[len(asked) :]
            hid = {
                b: [float(x) for x in got if x is not None]
                for b, got in zip(marked, tail, strict=True)
            }
            return [
                int(n) - sum(1 for h in hid.get(b, ()) if h > v)
                for n, (_, b), v in zip(counts, asked, values, strict=True)
            ]

        try:
            counts = await asyncio.gather(*(above(s) for s in self.stores))
        except _Moved:
            return None
        out: dict[str, dict[str, Place]] = {m: dict.fromkeys(boards) for m in members}
        for i, (m, b) in enumerate(asked):
            v, own = stored[(m, b)]
            rank = 1 + sum(c[i] for c in counts)
            lm = lm_of[id(own)]
            if b.partition(":")[0] == DECAYED:
                points = (
                    0.0
                    if common is None or lm is None
                    else decayed_value(v, common, lm, self.rules.half_life_s) / 1000.0
                )
            else:
                points = v / 1000.0
            out[m][b] = (rank, v, points)
        return out, common

    # -- the board list, known boards and members, alerts, health -----------------------------

    async def boards(self, cursor: int = 0, limit: int = 100) -> tuple[list[tuple[str, int]], int]:
        """One page of the boards of any shard, with their merged sizes, and the cursor of the
        next page (0: the last). The first page starts with the base boards; then each shard's
        board set is scanned in turn (one ``SSCAN`` step of about ``limit`` per page, the cursor
        naming the shard and its scan position), a board listed from the first shard that
        has it. A page costs about ``limit`` reads per shard, whatever the number of boards;
        one may come back short or empty with a next page to follow (SSCAN's own guarantee: a
        board made while paging may be missed, never one that existed throughout)."""
        n = len(self.stores)
        k, inner = cursor % CURSOR_SHARDS, cursor // CURSOR_SHARDS
        if k >= n:
            return [], 0
        s = self.stores[k]
        await s.follow()
        nxt, found = await s.client.sscan(s.key("boards"), inner, count=limit)
        base = {b: i for i, b in enumerate(self.rules.base_boards)}
        names = sorted(
            {str(b) for b in found} - set(base),
            key=lambda b: (b.partition(":")[2], base.get(b.partition(":")[0], 99)),
        )
        if k > 0 and names:
            # (listed already from an earlier shard that has it)
            earlier = await asyncio.gather(
                *(e.client.smismember(e.key("boards"), names) for e in self.stores[:k])
            )
            names = [b for i, b in enumerate(names) if not any(m[i] for m in earlier)]
        if cursor == 0:
            names = list(self.rules.base_boards) + names

        async def sizes(st: Store) -> list[int]:
            pipe = st.client.pipeline(transaction=False)
            for b in names:
                pipe.zcard(st.key("board", b))
            return [int(x) for x in await pipe.execute()]

        per = await asyncio.gather(*(sizes(st) for st in self.stores)) if names else []
        page = [(b, sum(p[i] for p in per)) for i, b in enumerate(names)]
        if int(nxt):
            return page, int(nxt) * CURSOR_SHARDS + k
        return page, (k + 1 if k + 1 < n else 0)

    async def board_known(self, board: str) -> bool:
        if board in self.rules.base_boards:
            return True
        return any(await asyncio.gather(*(s.board_known(board) for s in self.stores)))

    async def periods(self, unit: str, limit: int = 100) -> list[tuple[str, int]]:
        """The archived periods of ``unit`` on any shard, newest first, with the members of
        each merged archive (a member is on one shard)."""
        got = await asyncio.gather(*(s.periods(unit, limit) for s in self.stores))
        sizes: dict[str, int] = {}
        for rows in got:
            for board, n in rows:
                sizes[board] = sizes.get(board, 0) + n
        # (labels of one unit sort as their periods do: zero-padded, most significant first)
        return sorted(sizes.items(), reverse=True)[:limit]

    async def member_known(self, member: str) -> bool:
        return await self.store_of(member).member_known(member)

    async def alerts(self, limit: int, member: str | None = None) -> list[dict[str, Any]]:
        """The newest ``limit`` bait alerts of every shard, by event time (each shard's outbox
        holds its partitions' posts); with ``member``, that member's throttle records."""
        if member is not None:
            return await self.store_of(member).alerts(limit, member)
        got = await asyncio.gather(*(s.alerts(limit) for s in self.stores))
        merged = [r for part in got for r in part]
        merged.sort(key=lambda r: -(r.get("ended_at") or r.get("detected_at") or 0.0))
        return merged[:limit]

    async def outbox_recent(self, limit: int) -> list[dict[str, str]]:
        """The newest ``limit`` unlocks of every shard's outbox, oldest first (by the event
        time they happened at; within a shard, outbox order)."""
        got = await asyncio.gather(*(s.outbox_recent(limit) for s in self.stores))
        rows = [(float(f.get("at") or 0.0), k, i, f) for k, part in enumerate(got)
                for i, f in enumerate(part)]  # fmt: skip
        rows.sort(key=lambda r: r[:3])
        return [f for *_, f in rows[-limit:]] if limit > 0 else []

    async def perk_ties(self) -> dict[str, dict[str, Any]]:
        """Rank rule → its latest check that left a tie out, over the shards."""
        out: dict[str, dict[str, Any]] = {}
        for part in await asyncio.gather(*(s.perk_ties() for s in self.stores)):
            for rule, t in part.items():
                if rule not in out or float(t.get("at") or 0) > float(out[rule].get("at") or 0):
                    out[rule] = t
        return out

    async def webhook_log(self, limit: int) -> list[dict[str, str]]:
        """The newest webhook attempts (the jobs live in the namespace's own store)."""
        return await self.own.webhook_log(limit)

    async def webhook_replay(
        self, endpoint: str, enable: bool, now: float
    ) -> tuple[list[str], list[str], list[str]]:
        return await self.own.webhook_replay(endpoint, enable, now)

    async def ping(self) -> bool:
        """Whether the namespace's store and every shard answer (on a cluster, their slots)."""
        return all(await asyncio.gather(self.own.ping(), *(s.ping() for s in self.stores)))
