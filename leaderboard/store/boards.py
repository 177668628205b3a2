"""Board reads: pages, standings, cohorts, export, the board list, the clock and counters."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from leaderboard.calendar import UNITS, parse_board
from leaderboard.errors import StoreConflict, UnknownBoard
from leaderboard.ranking import CohortEntry, Entry, competition_ranks, percentile, rank_cohort
from leaderboard.scoring import DECAYED, format_mp
from leaderboard.store.base import StoreBase, clock_of
from leaderboard.store.keys import (
    COMMUNITY_STAT_FIELDS,
    STAT_FIELDS,
)


@dataclass(frozen=True, slots=True)
class Standing:
    """A member's place on one board."""

    board: str
    member: str
    rank: int
    score: float
    members: int
    percentile: float
    around: list[Entry]


class BoardsMixin(StoreBase):
    """Board reads."""

    async def boards(self, cursor: int = 0, limit: int = 100) -> tuple[list[tuple[str, int]], int]:
        """One page of the boards that exist, with their sizes, and the cursor of the next page
        (0: this was the last). The first page starts with the base boards; community boards
        follow in ``SSCAN`` order, sorted within the page. Each page costs about ``limit``
        reads whatever the number of boards (``SSCAN`` with ``COUNT``, one pipelined
        ``ZCARD`` each); a board made while paging may be missed or listed twice (SSCAN's own
        guarantee), never a board that existed throughout."""
        await self.follow()
        base = {b: i for i, b in enumerate(self.rules.base_boards)}
        names: set[str] = set()
        nxt = cursor
        while True:
            nxt, found = await self.client.sscan(self.key("boards"), nxt, count=limit)
            names.update(cast("list[str]", found))
            if nxt == 0 or len(names) >= limit:
                break
        names -= set(base)
        ordered = sorted(
            names, key=lambda b: (b.partition(":")[2], base.get(b.partition(":")[0], 99))
        )
        if cursor == 0:
            ordered = list(self.rules.base_boards) + ordered
        pipe = self.client.pipeline(transaction=False)
        for b in ordered:
            pipe.zcard(self.key("board", b))
        sizes = await pipe.execute()
        return list(zip(ordered, (int(n) for n in sizes), strict=True)), int(nxt)

    async def clock(self) -> tuple[float | None, int | None]:
        """(watermark, landmark)."""
        await self.follow()
        wm, lm = await self.client.mget(self.key("wm"), self.key("landmark"))
        return (float(wm) if wm is not None else None, int(lm) if lm is not None else None)

    async def board_mark(self, board: str) -> tuple[str, float | None, int]:
        """The board's change mark (with W on a decayed board, whose points move with it), W,
        and the board's size: to see whether to read it again (not atomic)."""
        self.rules.check_board(board)
        await self.follow()
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(self.key("changes"), board)
        pipe.get(self.key("wm"))
        pipe.zcard(self.key("board", board))
        mark, wm, size = await pipe.execute()
        decayed = board.partition(":")[0] == DECAYED
        text = f"{self.generation}:{mark or 0}" + (f"@{wm or ''}" if decayed else "")
        return text, float(wm) if wm is not None else None, int(size)

    async def count(self, board: str) -> int:
        self.rules.check_board(board)
        await self.follow()
        return int(await self.client.zcard(self.key("board", board)))

    async def _read(self, board: str, *args: str | int) -> list[Any] | None:
        self.rules.check_board(board)

        def build() -> tuple[list[str], list[Any]]:
            keys = [self.key("board", board), self.key("wm"), self.key("landmark")]
            return [*keys, self.key("hidden")], list(args)

        return await self._atomic(self.scripts.read, build)  # type: ignore[no-any-return]

    def _entries(self, board: str, res: list[Any], first_position: int) -> list[Entry]:
        flat, first_rank, clock = res[0], int(res[1]), clock_of(res[3], res[4])
        members, scores = flat[0::2], [float(x) for x in flat[1::2]]
        ranks = competition_ranks(scores, first_rank, first_position)
        return [
            Entry(r, m, self._to_points(board, s, clock))
            for r, m, s in zip(ranks, members, scores, strict=True)
        ]

    async def cohort_read(
        self, board: str, members: Sequence[str], thresholds: Sequence[str] = ()
    ) -> list[Any]:
        """``lua/cohort.lua`` on the live generation: {scores, ranks, counts above each of
        ``thresholds`` (stored units), size, W, L}."""
        self.rules.check_board(board)

        def build() -> tuple[list[str], list[Any]]:
            keys = [self.key("board", board), self.key("wm"), self.key("landmark")]
            return [*keys, self.key("hidden")], [len(members), *members, *thresholds]

        return await self._atomic(self.scripts.cohort, build)  # type: ignore[no-any-return]

    async def cohort(
        self, board: str, members: Sequence[str]
    ) -> tuple[list[CohortEntry], int, list[str]]:
        """A peer board: ``members`` (at most :data:`~leaderboard.ranking.MAX_COHORT`) ranked
        among themselves, each with their rank on the whole board, read in one atomic call;
        the board's size; and those of ``members`` not on it.

        Raises:
            UnknownBoard: ``board`` is not a valid board id.
        """
        scores, ranks, _, size, wm, lm = await self.cohort_read(board, members)
        clock = clock_of(wm, lm)
        found: list[tuple[str, float, int]] = []
        missing: list[str] = []
        for m, s, r in zip(members, scores, ranks, strict=True):
            if s == "":
                missing.append(m)
            else:
                found.append((m, self._to_points(board, float(s), clock), int(r)))
        return rank_cohort(found), int(size), missing

    async def page(self, board: str, limit: int = 10, offset: int = 0) -> tuple[list[Entry], int]:
        """One page of a board, best first, with competition ranks; and the board's size.

        Raises:
            UnknownBoard: ``board`` is not a valid board id.
        """
        res = await self._read(board, "page", offset, offset + limit - 1)
        assert res is not None
        return self._entries(board, res, offset), int(res[2])

    async def standing(self, board: str, member: str, around: int = 2) -> Standing | None:
        """Rank, score, percentile and the ``around`` members above and below; None if absent."""
        res = await self._read(board, "member", member, around)
        if res is None:
            return None
        size, rank = int(res[2]), int(res[6])
        score = self._to_points(board, float(res[5]), clock_of(res[3], res[4]))
        neighbours = self._entries(board, res, int(res[7]))
        return Standing(board, member, rank, score, size, percentile(rank, size), neighbours)

    async def export(self, board: str, chunk: int = 10_000) -> AsyncIterator[tuple[int, str, str]]:
        """The whole board as (rank, member, score text), best first.

        Milli-point boards print exact decimals; ``decayed`` prints the float in points.

        Raises:
            StoreConflict: a ``kudos rebuild`` switched the namespace during the export (its
                generation is dropped soon after, so the rest could be missing): run it again.
        """
        clock = await self.clock()
        rows = (
            (m, self._to_points(board, s, clock), s)
            async for m, s in self.export_rows(board, chunk)
        )
        async for line in export_lines(board, rows):
            yield line

    async def export_rows(
        self, board: str, chunk: int = 10_000
    ) -> AsyncIterator[tuple[str, float]]:
        """The whole board's stored rows, (member, stored score) in ``ZREVRANGE`` order, read
        ``chunk`` at a time (what :meth:`export` prints, and a sharded export merges).

        Raises:
            StoreConflict: a ``kudos rebuild`` switched the namespace during the read.
        """
        self.rules.check_board(board)
        generation = await self.follow()
        key = self.key("board", board)
        offset = 0
        while True:
            pipe = self.client.pipeline(transaction=True)
            pipe.zrevrange(key, offset, offset + chunk - 1, withscores=True)
            pipe.get(self.serving.key("live"))
            pipe.hkeys(self.key("hidden"))
            raw_rows, live, hidden = await pipe.execute()
            if self.pinned is None and int(live or 0) != generation:
                raise StoreConflict(
                    f"board {board!r} was rebuilt during the export (after {offset} rows); "
                    "run the export again"
                )
            rows = cast(list[tuple[str, float]], raw_rows)
            if not rows:
                return
            for row in rows:
                if row[0] not in hidden:  # (kudos hide: left out, the ranks as if not there)
                    yield row
            offset += len(rows)

    async def stats(self) -> dict[str, int]:
        await self.follow()
        raw = cast("dict[str, str]", await self.client.hgetall(self.key("stats")))
        out = {f: int(raw.get(f, 0)) for f in STAT_FIELDS}
        out["dead_lettered"] = out["invalid"] + out["late"] + out["future"]
        out["total"] = sum(out[f] for f in STAT_FIELDS)
        out.update({f: int(raw.get(f, 0)) for f in COMMUNITY_STAT_FIELDS})
        return out

    async def fences(self) -> dict[int, int]:
        await self.follow()
        raw = cast("dict[str, str]", await self.client.hgetall(self.key("fence")))
        return {int(p): int(o) for p, o in raw.items()}

    async def ping(self) -> bool:
        """Whether the Redis holding this namespace answers. On a cluster, a read of the
        namespace's slot (a PING would go to whichever node the client picked, not to the
        primary serving the boards)."""
        if self.cluster:
            await self.client.exists(self.serving.key("live"))
            return True
        return bool(await self.client.ping())

    async def board_known(self, board: str) -> bool:
        """A base board, a community board that has had members, or an archived calendar
        period that is kept (leaderboard.calendar)."""
        if board in self.rules.base_boards:
            return True
        await self.follow()
        cb = parse_board(board)
        if cb is not None and cb.period is not None:
            found = await self.client.zscore(self.key("archives", cb.unit), board)
            return found is not None
        return bool(await self.client.sismember(self.key("boards"), board))

    async def periods(self, unit: str, limit: int = 100) -> list[tuple[str, int]]:
        """The archived periods of ``unit`` (day, week or month) that are kept, newest first,
        each as (archive board id, members on it): at most ``limit``."""
        if unit not in UNITS:
            raise UnknownBoard(f"{unit!r} is not a calendar unit; they are {', '.join(UNITS)}")
        await self.follow()
        labels = cast(
            "list[str]", await self.client.zrevrange(self.key("periods", unit), 0, limit - 1)
        )
        ids = [f"{unit}@{label}" for label in labels]
        pipe = self.client.pipeline(transaction=False)
        for b in ids:
            pipe.zcard(self.key("board", b))
        sizes = await pipe.execute() if ids else []
        return list(zip(ids, (int(n) for n in sizes), strict=True))

    async def member_known(self, member: str) -> bool:
        """Whether ``member`` was ever seen, as :meth:`explanation` decides it (explain data, or
        a place on a base board; a community board's members are on its base board too). Reads
        only: a live channel is opened for known members alone, so clients cannot make keys."""
        await self.follow()
        pipe = self.client.pipeline(transaction=False)
        pipe.exists(self.key("explain", member))
        for b in self.rules.base_boards:
            pipe.zscore(self.key("board", b), member)
        found = await pipe.execute()
        return bool(found[0]) or any(s is not None for s in found[1:])


async def export_lines(
    board: str, rows: AsyncIterator[tuple[str, float, float]]
) -> AsyncIterator[tuple[int, str, str]]:
    """(rank, member, score text) of ``rows``, (member, points, stored score) best first.

    Ranks follow the printed value: far down a decayed board two stored values can become the
    same (subnormal) number of points, and equal scores share a rank. Milli-point boards print
    the stored value's exact decimals, ``decayed`` the float in points (the exact double;
    batching can change its last bits).
    """
    is_decayed = board.partition(":")[0] == DECAYED
    prev: float | None = None
    rank = 0
    i = 0
    async for m, pts, stored in rows:
        i += 1
        if pts != prev:
            rank = i
            prev = pts
        yield rank, m, repr(pts) if is_decayed else format_mp(int(stored))
