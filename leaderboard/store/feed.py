"""The live feed's shared state: channel polls, publishes, member events, resume logs."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

from leaderboard.moderation import tombstone
from leaderboard.store.base import StoreBase, clock_of
from leaderboard.store.keys import Keys


def _log_entries(raw: list[Any]) -> list[tuple[int, str]]:
    """XRANGE rows ``[id, [field, value]]`` of a feed log as (seq, record)."""
    return [(int(entry_id.partition("-")[0]), fields[1]) for entry_id, fields in raw]


def _first_seq(entry_id: str) -> int | None:
    return int(entry_id.partition("-")[0]) if entry_id else None


class FeedFrame(NamedTuple):
    """A channel's next frame for ``lua/feed_publish.lua``: appended only if the channel's seq is
    still ``expected_seq`` (and the feed epoch still ``epoch``), with the state it leaves."""

    channel: str
    expected_seq: int
    epoch: str
    #: the change counter the frame was diffed at, and the snapshot it leaves published
    src: str
    snap: bytes
    #: None: no frame, only remember that the board was looked at
    record: bytes | None


#: No channel frame of its own: member events only (perk unlocks, bait alerts).
NO_FRAME = FeedFrame("", 0, "", "", b"", None)


def member_channel(member: str) -> str:
    """A member's live channel; member "" is the bait alerts channel (events only)."""
    return f"member:{member}" if member else "alerts"


def feed_publish_call(
    keys: Keys,
    frame: FeedFrame,
    member_records: list[tuple[str, bytes]],
    maxlen: int,
    member_maxlen: int,
    board_records: Sequence[tuple[str, bytes]] = (),
) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of ``lua/feed_publish.lua``."""
    f = frame
    names = [keys.key("feedepoch"), keys.key("watched")]
    names += [keys.key("feed", f.channel), keys.key("feedlog", f.channel)]
    args: list[Any] = [f.channel, f.expected_seq, f.epoch, f.src, f.snap, f.record or b""]
    args += [maxlen, member_maxlen, repr(time.time()), len(member_records)]
    for m, rec in member_records:
        channel = member_channel(m)
        names += [keys.key("feed", channel), keys.key("feedlog", channel)]
        args += [m, rec]
    args.append(len(board_records))
    for b, rec in board_records:
        names += [keys.key("feed", f"board:{b}"), keys.key("feedlog", f"board:{b}")]
        args += [b, rec]
    return names, args


@dataclass(frozen=True, slots=True)
class BoardPoll:
    """One board channel's shared feed state, read atomically (see ``lua/feed_poll.lua``)."""

    epoch: str
    seq: int
    #: the board's change mark now; ``changed`` when it differs from the last published one
    src: str
    changed: bool
    #: the published snapshot (only when asked for or when changed), encoded by web.feed
    snap: str
    #: (seq, record) after the caller's seq
    frames: list[tuple[int, str]]
    #: when changed: the current top rows as (member, points), best first; the board size now
    rows: list[tuple[str, float]]
    members: int
    as_of: float | None
    first_retained: int | None
    #: wall-clock time of the last publish (None: never published)
    published_at: float | None


@dataclass(frozen=True, slots=True)
class MemberPoll:
    seq: int
    snap: str
    frames: list[tuple[int, str]]
    #: board → (rank, stored score, points) or None, when standing was asked for; else empty
    standing: dict[str, tuple[int, float, float] | None]
    first_retained: int | None


class FeedMixin(StoreBase):
    """Live feed state."""

    def _clock_keys(self) -> tuple[str, str, str]:
        return self.key("feedepoch"), self.key("wm"), self.key("landmark")

    async def feed_epoch(self) -> str:
        """The feed's epoch, created on first use (and again after Redis lost it)."""
        key = self.key("feedepoch")
        await self.client.set(key, os.urandom(6).hex(), nx=True)
        return cast(str, await self.client.get(key))

    async def feed_board(
        self, board: str, after_seq: int, depth: int, max_frames: int, src: str = ""
    ) -> BoardPoll:
        """A board channel's state; ``after_seq`` < 0 also returns the published snapshot.
        ``src``: the change mark of a board kept as shards (this store is the namespace's
        own, holding the feed; the caller reads the rows from the shards), compared instead
        of this namespace's own mark."""
        self.rules.check_board(board)
        channel = f"board:{board}"

        def build() -> tuple[list[str], list[Any]]:
            keys = [
                *self._clock_keys(),
                self.key("feed", channel),
                self.key("feedlog", channel),
                self.key("changes"),
                self.key("board", board),
                self.key("hidden"),
            ]
            return keys, ["board", max_frames, board, depth, after_seq, src]

        res: list[Any] = await self._atomic(self.scripts.feed_poll, build)
        epoch, wm, lm, seq, src, changed, snap, frames, flat, size, first, at = res
        clock = clock_of(wm, lm)
        rows = [
            (m, self._to_points(board, float(v), clock))
            for m, v in zip(flat[0::2], flat[1::2], strict=True)
        ]
        return BoardPoll(
            epoch,
            int(seq),
            src,
            bool(changed),
            snap,
            _log_entries(frames),
            rows,
            int(size),
            clock[0],
            _first_seq(first),
            float(at) if at else None,
        )

    async def feed_members(
        self, members: list[tuple[str, int, bool]], max_frames: int
    ) -> tuple[str, float | None, dict[str, MemberPoll]]:
        """(epoch, as_of, member → state) of member channels given as (member, after_seq,
        want_standing), with their standing on the base boards where wanted."""
        boards = self.rules.base_boards

        def build() -> tuple[list[str], list[Any]]:
            keys = [*self._clock_keys(), *(self.key("board", b) for b in boards)]
            args: list[Any] = ["members", max_frames, len(boards), len(members)]
            for m, after, want in members:
                channel = member_channel(m)
                keys += [self.key("feed", channel), self.key("feedlog", channel)]
                args += [m, after, "1" if want else "0"]
            return [*keys, self.key("hidden")], args

        res: list[Any] = await self._atomic(self.scripts.feed_poll, build)
        epoch, wm, lm = res[0], res[1], res[2]
        clock = clock_of(wm, lm)
        out: dict[str, MemberPoll] = {}
        for (m, _, _), (seq, snap, frames, flat, first) in zip(members, res[3:], strict=True):
            standing: dict[str, tuple[int, float, float] | None] = {}
            for b, rank, score in zip(boards, flat[0::2], flat[1::2], strict=False):
                standing[b] = (
                    None
                    if score == ""
                    else (int(rank), float(score), self._to_points(b, float(score), clock))
                )
            out[m] = MemberPoll(int(seq), snap, _log_entries(frames), standing, _first_seq(first))
        return epoch, clock[0], out

    async def feed_publish(
        self,
        frame: FeedFrame,
        member_records: list[tuple[str, bytes]],
        maxlen: int,
        member_maxlen: int,
    ) -> int | None:
        """Append ``frame`` as its channel's next frame if the seq is still the expected one,
        and each member record to that member's channel; the new seq, or None if another web
        process published first (nothing was written then)."""
        keys, args = feed_publish_call(self.keys, frame, member_records, maxlen, member_maxlen)
        res: list[Any] = await self.scripts.feed_publish(keys=keys, args=args)
        return int(res[1]) if res[0] == "ok" else None

    async def feed_member_events(self, records: list[tuple[str, bytes]], maxlen: int = 100) -> None:
        """Push (member, record) pairs — perk unlocks, bait alerts, encoded with
        ``web.feed.member_record`` — to members' live channels, each as its next frame."""
        await self.feed_publish(NO_FRAME, records, maxlen, maxlen)

    async def feed_watch(self, members: list[str], ttl_s: float) -> None:
        """Mark members as watched for ``ttl_s`` (rank events reach only watched members'
        channels) and drop marks that ran out."""
        now = time.time()
        if members:
            # an erased member is watched no more (a web process may still hold their channel)
            stones = [tombstone(m) for m in members]
            hits = await self.client.smismember(self.key("tombstones"), stones)
            members = [m for m, hit in zip(members, hits, strict=True) if not hit]
        pipe = self.client.pipeline(transaction=False)
        if members:
            pipe.zadd(self.key("watched"), dict.fromkeys(members, now + ttl_s))
        pipe.zremrangebyscore(self.key("watched"), "-inf", now)
        await pipe.execute()

    async def feed_new_epoch(self, old: str) -> None:
        """Start a new feed history if the epoch is still ``old`` (the old one is unusable, e.g.
        Redis came back from a crash with fewer frames than clients have seen)."""
        await self.client.eval(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2]) end",
            1,
            self.key("feedepoch"),
            old,
            os.urandom(6).hex(),
        )

    async def feed_log(self, channel: str, after_seq: int, limit: int) -> list[tuple[int, str]]:
        """Retained frames of a channel after ``after_seq`` (for a resuming client)."""
        raw = cast(
            list[Any],
            await self.client.xrange(
                self.key("feedlog", channel), f"{after_seq + 1}-0", "+", count=limit
            ),
        )
        return [(int(i.partition("-")[0]), f["r"]) for i, f in raw]
