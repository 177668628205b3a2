"""Cohort channels (docs/protocol.md): ``cohort:<board>`` with ``members`` (up to
:data:`MAX_MEMBERS`), a peer board live: those members ranked among themselves, each with their
rank on the whole board, as ``GET /api/boards/{board}/cohort`` answers.

A cohort is one visitor's own list, so there is nothing to share across web processes: each
distinct (board, members) is kept once per process, in memory, read again with
:meth:`Store.cohort <leaderboard.store.Store.cohort>` at most every :data:`TICK_S` (about
0.4 ms of Redis for 100 members) and only when the board's change mark moved (one pipelined
read otherwise), and a frame goes out only when the answer changed. A frame
carries the whole cohort (a ``snapshot`` first, then ``delta`` frames with ``entries`` to
replace: at most 100 rows, smaller than a diff's bookkeeping). Its ``(epoch, seq)`` are this
process's: a resume here recovers when nothing changed since, anywhere else it gets a fresh
snapshot (``recovered: false``), as the protocol allows.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from leaderboard.errors import ClientError, UnknownBoard
from leaderboard.ranking import parse_cohort
from leaderboard.store import Store
from leaderboard.store.shards import Shards
from web import feed
from web.channels import Channel
from web.protocol import MAX_COHORT

PREFIX = "cohort:"
#: Most members one cohort channel follows.
MAX_MEMBERS = MAX_COHORT
#: Seconds between two reads of one cohort.
TICK_S = 1.0
#: Cohort channels one connection may hold, and distinct cohorts one web process keeps: with
#: the change-mark check, an unchanged cohort costs one pipelined read a second, a changed one
#: about 0.4 ms of Redis; so a process spends at most a few hundred ms of Redis a second on them.
PER_CONNECTION = 5
PER_PROCESS = 2000
#: Cohorts read at once on a tick.
CONCURRENCY = 8


@dataclass(eq=False)
class CohortChannel(Channel):
    board: str = ""
    members: tuple[str, ...] = ()
    #: the last answer: entries (CohortEntry.to_json), the board's size, the ids not on it
    entries: list[dict[str, Any]] = field(default_factory=list)
    size: int = 0
    missing: list[str] = field(default_factory=list)
    #: when this process last read it (monotonic seconds), and the board's change mark then
    polled_at: float = -1e9
    mark: str = ""

    def body(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of,
            "board": self.board,
            "members": self.size,
            "entries": self.entries,
            "missing": self.missing,
        }


def parse(store: Store | Shards, msg: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    """(board, members) of a cohort subscribe.

    Raises:
        ClientError: a bad board id or member list (the reason says which).
    """
    name = msg["channel"]
    board = name[len(PREFIX) :]
    try:
        store.rules.check_board(board)
    except UnknownBoard as exc:
        raise ClientError("unknown_board", str(exc)) from None
    raw = msg.get("members")
    if not isinstance(raw, list) or not all(isinstance(m, str) for m in raw):
        raise ClientError("bad_request", "a cohort subscribe needs 'members': a list of ids")
    if len(raw) > MAX_MEMBERS:
        raise ClientError("bad_request", f"a cohort follows at most {MAX_MEMBERS} members")
    try:
        # (each id checked as the read API checks its members=; no commas inside ids here)
        members = parse_cohort(",".join(raw), MAX_MEMBERS) if raw else []
    except ValueError as exc:
        raise ClientError("bad_request", str(exc).replace("members=", "members")) from None
    if len(members) != len(dict.fromkeys(raw)) or not members:
        raise ClientError("bad_request", "members must be 1 to 100 distinct ids without commas")
    return board, tuple(members)


def new_channel(board: str, members: tuple[str, ...]) -> CohortChannel:
    return CohortChannel(
        f"{PREFIX}{board}", epoch=os.urandom(6).hex(), board=board, members=members
    )


async def poll(store: Store | Shards, ch: CohortChannel) -> bool:
    """Read the cohort again if its board changed since the last read; True if its answer
    changed (then ``seq`` moved on by one)."""
    ch.polled_at = time.monotonic()
    mark, _, _ = await store.board_mark(ch.board)
    if ch.loaded and mark == ch.mark:
        return False  # (one cheap read: the board's change counter did not move)
    ch.mark = mark
    entries, size, missing = await store.cohort(ch.board, list(ch.members))
    wm, _ = await store.clock()
    rows = [e.to_json() for e in entries]
    changed = not ch.loaded or (rows, size, missing) != (ch.entries, ch.size, ch.missing)
    ch.as_of = wm
    if changed:
        ch.entries, ch.size, ch.missing = rows, size, missing
        ch.seq += 1
    return changed


def frame(ch: CohortChannel, kind: str) -> bytes:
    return feed.frame(kind, ch.name, ch.epoch, ch.seq, ch.body())
