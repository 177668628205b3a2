"""What one web process knows of each live channel: :class:`Channel` (the state at ``seq`` and
the local subscribers) and its board and member kinds. The hub (``web.hub``) loads and advances
them on its tick; a session (``web.session``) finds, loads and replays them when a client
subscribes. Their own module so that both can use them without importing each other.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from web import feed
from web.clients import Client


@dataclass(eq=False)
class Channel:
    """What this process knows of one channel: the state at ``seq`` and its local subscribers."""

    name: str
    epoch: str = ""
    seq: int = -1  # -1: not loaded yet
    as_of: float | None = None
    first_retained: int | None = None
    subscribers: set[Client] = field(default_factory=set)
    #: subscribe calls in progress (the channel must not be forgotten under them)
    pending: int = 0
    #: set when this process fell behind the retained log: the next load sends snapshots
    resync: bool = False
    loading: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def loaded(self) -> bool:
        return self.seq >= 0


@dataclass(eq=False)
class BoardChannel(Channel):
    board: str = ""
    rows: list[feed.Row] = field(default_factory=list)
    members: int = 0
    #: the board's change mark when this process last looked (member standings follow it)
    last_src: str = ""
    #: when this process last polled the board (monotonic seconds)
    polled_at: float = -1e9


@dataclass(eq=False)
class MemberChannel(Channel):
    member: str = ""
    #: board → {"rank", "score"} or None, as the frames published it
    boards: dict[str, Any] = field(default_factory=dict)
    #: the base boards' change marks when this process last read the member's standing
    standing_srcs: dict[str, str] = field(default_factory=dict)
    #: False while the member has never been seen (``Store.member_known``): the channel is then
    #: not marked watched, so following a name writes nothing to Redis until a standing read
    #: finds the member on a board
    seen: bool = True
