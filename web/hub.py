"""The hub of one web process's live push: every websocket client, the channels they follow, and
the tick (every ``tick_s``, 50 ms by default) that publishes what changed, delivers new frames to
each channel's subscribers and looks after slow clients. One place, because a frame is computed
and serialised once per channel and handed to all its subscribers at once.

The rules of the feed (what a delta is, resume decisions, frame encoding) live in ``web.feed``; the
shared state (sequences, snapshots, logs) in Redis through ``leaderboard.store``; one connection's
requests in ``web.session``; one client's limits in ``web.clients``. This module owns timing and
fan-out. Protocol: docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from redis.exceptions import RedisError
from websockets.asyncio.server import ServerConnection, broadcast
from websockets.datastructures import Headers
from websockets.protocol import State

from leaderboard.errors import StoreConflict
from leaderboard.metrics import WebMetrics
from leaderboard.settings import WebSettings
from leaderboard.store import BoardPoll, FeedFrame, MemberPoll, Store
from leaderboard.store.shards import Shards
from web import cohorts, feed, session
from web.channels import BoardChannel, Channel, MemberChannel
from web.clients import Client, client_address
from web.cohorts import CohortChannel
from web.protocol import ALERTS_CHANNEL, CLOSE_TRY_AGAIN, WATCH_EVERY_S

log = logging.getLogger("kudos.web.push")

#: Frames read from a channel's log per poll; a process further behind catches up over ticks.
MAX_FRAMES = 200
#: Rank events come from comparing with the last published top list; one older than this (nobody
#: was watching the board) would announce hours of moves as if they just happened.
STALE_EVENTS_S = 10.0
#: Member channels read per script call, so one call never holds Redis for long.
MEMBER_CHUNK = 200
#: How often a session waiting for its client to drain (before a request, between replay
#: chunks) looks again.
DRAIN_POLL_S = 0.01


class Hub:
    """All websocket clients of one web process and the channels they follow."""

    def __init__(self, store: Store | Shards, settings: WebSettings) -> None:
        self.store = store
        self.settings = settings
        self.clients: set[Client] = set()
        #: connections per client address (``max_connections_per_address``), until their
        #: session ends (a client being closed as slow still counts)
        self.addresses: dict[str, int] = {}
        self.boards: dict[str, BoardChannel] = {}
        self.members: dict[str, MemberChannel] = {}
        #: (board, members) → its cohort channel (web.cohorts)
        self.cohorts: dict[tuple[str, tuple[str, ...]], CohortChannel] = {}
        self.frames_sent = 0
        self.slow_dropped = 0
        #: counters and timings of this process, exposed at GET /metrics (``web.metrics``)
        self.metrics = WebMetrics()
        self._retention = settings.feed_retention
        # (a member channel gets a frame per tick on which any of its eight base boards moved,
        # from every web process: 200 frames is about 5 s of the busiest member at 20 ticks a
        # second from two processes, what a process stalled under load must catch up from)
        self._member_retention = max(10, settings.feed_retention // 10)
        self._member_lock = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()
        self._next_sweep = 0.0
        self._next_watch = 0.0
        self._hello = session.hello(store, settings)

    # -- the tick --------------------------------------------------------------------------

    async def run(self) -> None:
        """Tick forever: publish what changed, deliver new frames, look after slow clients."""
        while True:
            started = time.monotonic()
            try:
                await self.tick()
                self._check_slow()
            except RedisError as exc:
                self.metrics.feed_tick_failures.inc()
                log.warning("live feed paused, Redis unavailable: %s", exc)
            except Exception:  # keep serving; a bug in one tick must not end the feed
                self.metrics.feed_tick_failures.inc()
                log.exception("live feed tick failed")
            self.metrics.feed_tick_seconds.observe(time.monotonic() - started)
            await asyncio.sleep(max(0.0, self.settings.tick_s - (time.monotonic() - started)))

    async def tick(self) -> None:
        members = [m for m in self.members.values() if m.subscribers]
        boards = {b for b, ch in self.boards.items() if ch.subscribers}
        if members:
            # member channels need the base boards published (overtaken, entered_top)
            boards |= set(self.store.rules.base_boards)
        await asyncio.gather(*(self._tick_board(self._board(b)) for b in boards))
        if members:
            now = time.monotonic()
            if now >= self._next_watch:
                self._next_watch = now + WATCH_EVERY_S
                await self.store.feed_watch(
                    [m.member for m in members if m.member and m.seen], 2 * WATCH_EVERY_S
                )
            srcs = {b: self.boards[b].last_src for b in self.store.rules.base_boards}
            await self._tick_members(members, srcs)
        await self._tick_cohorts()
        # forget channels nobody follows (their state is in Redis)
        for name in [
            b
            for b, ch in self.boards.items()
            if not ch.subscribers and not ch.pending and b not in boards
        ]:
            del self.boards[name]
        for name in [m for m, ch in self.members.items() if not ch.subscribers and not ch.pending]:
            del self.members[name]
        for key in [k for k, ch in self.cohorts.items() if not ch.subscribers and not ch.pending]:
            del self.cohorts[key]

    def cohort(self, board: str, members: tuple[str, ...]) -> CohortChannel:
        ch = self.cohorts.get((board, members))
        if ch is None:
            ch = self.cohorts[(board, members)] = cohorts.new_channel(board, members)
        return ch

    async def _tick_cohorts(self) -> None:
        """Read again each followed cohort not read for ``cohorts.TICK_S``; send what changed."""
        now = time.monotonic()
        due = [
            ch
            for ch in self.cohorts.values()
            if ch.subscribers and ch.loaded and now - ch.polled_at >= cohorts.TICK_S
        ]
        gate = asyncio.Semaphore(cohorts.CONCURRENCY)

        async def one(ch: CohortChannel) -> None:
            async with gate:
                try:
                    changed = await cohorts.poll(self.store, ch)
                except (RedisError, StoreConflict) as exc:  # (that cohort only; next second again)
                    log.warning("cohort %s: read failed: %s", ch.board, exc)
                    return
            if changed:
                self._broadcast(list(ch.subscribers), ch.name, cohorts.frame(ch, "delta"))

        await asyncio.gather(*(one(ch) for ch in due))

    def _board(self, board: str) -> BoardChannel:
        ch = self.boards.get(board)
        if ch is None:
            ch = self.boards[board] = BoardChannel(f"board:{board}", board=board)
        return ch

    def _member(self, member: str) -> MemberChannel:
        ch = self.members.get(member)
        if ch is None:
            # member "" is the bait alerts channel: events only, no standing
            name = f"member:{member}" if member else ALERTS_CHANNEL
            ch = self.members[member] = MemberChannel(name, member=member)
        return ch

    async def _tick_board(self, ch: BoardChannel) -> bool:
        """Deliver new frames of one board, then publish its change if it has one. True if the
        board changed since this process last looked (member standings are then re-read)."""
        async with ch.loading:
            # following: this process saw the board unchanged a moment ago, so the published
            # snapshot is current whatever its age
            following = ch.loaded and time.monotonic() - ch.polled_at < 1.0
            ch.polled_at = time.monotonic()
            poll = await self.store.feed_board(
                ch.board, ch.seq if ch.loaded else -1, feed.DEPTH, MAX_FRAMES
            )
            moved = poll.src != ch.last_src
            ch.last_src = poll.src
            if not poll.epoch:
                await self.store.feed_epoch()
                return moved
            ch.first_retained = poll.first_retained
            if ch.loaded and poll.epoch == ch.epoch and poll.seq < ch.seq:
                # Redis lost frames we already sent (a crash within its fsync window, a lagging
                # replica): this history cannot be resumed; start a new epoch and resync
                log.warning("feed of %s went back from seq %d to %d", ch.name, ch.seq, poll.seq)
                await self.store.feed_new_epoch(poll.epoch)
                ch.seq, ch.resync = -1, True
                return moved
            if ch.loaded and poll.epoch != ch.epoch and not poll.snap:
                ch.seq, ch.resync = -1, True  # a new epoch: load its snapshot next tick
                return moved
            if not ch.loaded or poll.epoch != ch.epoch:
                self._reset_board(ch, poll)
            else:
                frames = [f for f in poll.frames if f[0] > ch.seq]
                if frames and frames[0][0] != ch.seq + 1:
                    # this process fell behind the retained log: start again from the snapshot
                    ch.seq, ch.resync = -1, True
                    return moved
                for seq, record in frames:
                    self._deliver_board(ch, seq, feed.decode_board_record(record))
            if poll.changed and ch.seq == poll.seq:
                await self._publish_board(ch, poll, following)
            return moved

    def _reset_board(self, ch: BoardChannel, poll: BoardPoll) -> None:
        notify = ch.loaded or ch.resync
        ch.epoch, ch.seq, ch.as_of = poll.epoch, poll.seq, poll.as_of
        ch.rows, ch.resync, ch.members = feed.decode_rows(poll.snap), False, poll.members
        if notify:  # a new epoch, or frames this process missed: start again from a snapshot
            for client in list(ch.subscribers):
                self._send_snapshot(client, ch, recovered_from_reset=True)

    async def _publish_board(self, ch: BoardChannel, poll: BoardPoll, following: bool) -> None:
        old = feed.decode_rows(poll.snap)
        new = feed.top_rows(poll.rows)
        changes = feed.diff(old, new)
        record: bytes | None = None
        events: list[dict[str, Any]] = []
        member_records: list[tuple[str, bytes]] = []
        if changes:
            # Rank events for the base boards (member channels follow those), and only against
            # a current snapshot: the very first publish has nothing to compare with, and one
            # made after nobody watched for a while would announce old moves as news.
            base = ch.board in self.store.rules.base_boards
            fresh = poll.published_at is not None and (
                following or time.time() - poll.published_at <= STALE_EVENTS_S
            )
            events = feed.rank_events(ch.board, changes, old, new) if base and fresh else []
            record = feed.encode_board_record(changes, events, poll.as_of, poll.members)
            member_records = [
                (m, feed.member_record(None, [e], poll.as_of))
                for e in events
                for m in feed.event_members(e)
            ]
        seq = await self.store.feed_publish(
            FeedFrame(ch.name, poll.seq, poll.epoch, poll.src, feed.encode_rows(new), record),
            member_records,
            self._retention,
            self._member_retention,
        )
        if seq is not None and record is not None:
            self._deliver_board(
                ch, seq, feed.BoardRecord(changes, events, poll.as_of, poll.members)
            )

    def _deliver_board(self, ch: BoardChannel, seq: int, record: feed.BoardRecord) -> None:
        ch.seq = seq
        if record.changes or not record.events:  # an events-only frame (a perk) keeps the rest
            ch.rows = feed.apply_changes(ch.rows, record.changes)
            ch.as_of, ch.members = record.as_of, record.members
        by_limit: dict[int, list[Client]] = {}
        for client in ch.subscribers:
            by_limit.setdefault(client.subs[ch.name], []).append(client)
        for n, clients in by_limit.items():
            self._broadcast(
                clients, ch.name, feed.board_delta_frame(ch.name, ch.epoch, seq, record, n)
            )

    async def _tick_members(
        self, channels: list[MemberChannel], srcs: dict[str, str] | None
    ) -> None:
        """Deliver member channels' new frames and publish standings that changed. A standing
        is re-read when a base board moved since this process last read it (``srcs``: the base
        boards' change marks now; None: read it regardless)."""
        async with self._member_lock:
            for start in range(0, len(channels), MEMBER_CHUNK):
                chunk = channels[start : start + MEMBER_CHUNK]
                asks = [
                    (
                        ch.member,
                        ch.seq if ch.loaded else -1,
                        bool(ch.member)
                        and (srcs is None or not ch.loaded or ch.standing_srcs != srcs),
                    )
                    for ch in chunk
                ]
                epoch, as_of, polls = await self.store.feed_members(asks, MAX_FRAMES)
                if not epoch:
                    await self.store.feed_epoch()
                    return
                for ch, (_, _, wanted) in zip(chunk, asks, strict=True):
                    await self._member_poll(ch, epoch, as_of, polls[ch.member])
                    if wanted:
                        ch.standing_srcs = dict(srcs) if srcs is not None else {}

    async def _member_poll(
        self, ch: MemberChannel, epoch: str, as_of: float | None, poll: MemberPoll
    ) -> None:
        ch.first_retained = poll.first_retained
        if not ch.seen and any(st is not None for st in poll.standing.values()):
            ch.seen = True  # on a board now: from here on its rank events are kept
            await self.store.feed_watch([ch.member], 2 * WATCH_EVERY_S)
        if not ch.loaded or epoch != ch.epoch:
            notify = ch.loaded or ch.resync
            ch.epoch, ch.seq, ch.as_of, ch.resync = epoch, poll.seq, as_of, False
            ch.boards = feed.standing_view(orjson.loads(poll.snap) if poll.snap else {})
            if notify:
                for client in list(ch.subscribers):
                    self._send_snapshot(client, ch, recovered_from_reset=True)
        else:
            frames = [f for f in poll.frames if f[0] > ch.seq]
            if frames and frames[0][0] != ch.seq + 1:
                ch.seq, ch.resync = -1, True
                return
            for seq, record in frames:
                self._deliver_member(ch, seq, record)
        if poll.standing and ch.seq == poll.seq:
            published = orjson.loads(poll.snap) if poll.snap else {}
            delta = feed.standing_changes(published, poll.standing)
            if delta:
                blob = feed.member_record(delta, [], as_of)
                published_seq = await self.store.feed_publish(
                    FeedFrame(ch.name, poll.seq, epoch, "", orjson.dumps(poll.standing), blob),
                    [],
                    self._member_retention,
                    0,
                )
                if published_seq is not None:
                    self._deliver_member(ch, published_seq, blob.decode())

    def _deliver_member(self, ch: MemberChannel, seq: int, record: str) -> None:
        d = orjson.loads(record)
        if d["boards"] is not None:
            ch.boards.update(d["boards"])
        ch.seq, ch.as_of = seq, d["as_of"]
        self._broadcast(
            list(ch.subscribers), ch.name, feed.member_frames(ch.name, ch.epoch, seq, record)
        )

    # -- sending ---------------------------------------------------------------------------

    # Every frame to a client passes the slow-client bound (``slow_client_bytes`` unsent in this
    # process): a channel's frames through ``_broadcast`` or ``_send_one`` with the channel (over
    # the bound the client misses them and gets a snapshot once drained), replies through
    # ``_send_one`` after the session waited in ``writable`` (a client over the bound is not
    # read from, so its requests wait in its own socket), replays in chunks paced by ``paced``.

    def _broadcast(self, clients: list[Client], channel: str, data: bytes) -> None:
        """Send one serialised frame to many clients without waiting for any of them; a client
        over the slow-client limit misses it and is marked stale on that channel."""
        ready: list[ServerConnection] = []
        now = time.monotonic()
        for client in clients:
            if not self._holds_back(client, channel, now):
                ready.append(client.ws)
        if ready:
            broadcast(ready, data, text=True)
            self.frames_sent += len(ready)

    def _holds_back(self, client: Client, channel: str, now: float) -> bool:
        """Whether a frame of ``channel`` must not go to ``client`` (over the bound, or it already
        missed one there); marks it slow and stale on the channel if so."""
        if channel in client.stale or client.buffered() > self.settings.slow_client_bytes:
            self._mark_slow(client, channel, now)
            return True
        return False

    def _mark_slow(self, client: Client, channel: str | None, since: float) -> None:
        if channel is not None and channel not in client.stale:
            client.stale.add(channel)
            self.slow_dropped += 1
        if client.slow_since is None:
            client.slow_since = since
            log.info(
                "slow client %s: %d bytes unsent; conflating its frames",
                client.ws.remote_address,
                client.buffered(),
            )

    def _send_one(self, client: Client, data: bytes, channel: str | None = None) -> bool:
        """Send one frame to one client: a frame of ``channel`` under the bound (False: held
        back, the client gets a snapshot once drained), a reply (no channel) always; the
        session waited for ``writable`` before the request, so replies stay one per request."""
        if channel is not None and self._holds_back(client, channel, time.monotonic()):
            return False
        if client.ws.state is not State.OPEN:
            return False
        broadcast([client.ws], data, text=True)
        self.frames_sent += 1
        return True

    async def writable(self, client: Client) -> bool:
        """Wait until ``client`` is under the bound (marked slow meanwhile, so it is closed
        after ``slow_client_timeout_s`` if it never drains). False if its connection closed."""
        while client.buffered() > self.settings.slow_client_bytes:
            if client.ws.state is not State.OPEN:
                return False
            self._mark_slow(client, None, time.monotonic())
            await asyncio.sleep(DRAIN_POLL_S)
        return client.ws.state is State.OPEN

    async def paced(self, client: Client) -> float | None:
        """Wait until what was sent to ``client`` has mostly reached it (a quarter of the bound
        left unsent, kernel included: the level at which a slow client counts as caught up).
        None when it did; otherwise when the wait began (the client did not drain within
        ``slow_client_timeout_s``, or its connection closed)."""
        low = self.settings.slow_client_bytes // 4
        started = time.monotonic()
        while client.unsent() > low:
            if (
                client.ws.state is not State.OPEN
                or time.monotonic() - started > self.settings.slow_client_timeout_s
            ):
                return started
            await asyncio.sleep(DRAIN_POLL_S)
        return None

    def _snapshot_frame(self, ch: Channel, n: int, **extra: Any) -> bytes:
        if isinstance(ch, CohortChannel):
            body: dict[str, Any] = ch.body()
        elif isinstance(ch, BoardChannel):
            body = {
                "as_of": ch.as_of,
                "members": ch.members,
                "entries": feed.entries(ch.rows, n),
            }
        else:
            assert isinstance(ch, MemberChannel)
            body = {"as_of": ch.as_of}
            if ch.member:  # (the alerts channel has events only; GET /api/alerts lists them)
                body["boards"] = {b: ch.boards.get(b) for b in self.store.rules.base_boards}
        body.update(extra)
        return feed.frame("snapshot", ch.name, ch.epoch, max(ch.seq, 0), body)

    def _send_snapshot(self, client: Client, ch: Channel, recovered_from_reset: bool) -> None:
        n = client.subs.get(ch.name, 0)
        self._send_one(client, self._snapshot_frame(ch, n, reset=recovered_from_reset), ch.name)

    def _check_slow(self) -> None:
        """Find slow clients (once a second, with the kernel's queue too), catch up those whose
        buffers drained, close those slow for too long."""
        limit = self.settings.slow_client_bytes
        now = time.monotonic()
        sweep = now >= self._next_sweep
        if sweep:
            self._next_sweep = now + 1.0
        for client in list(self.clients):
            if client.slow_since is None:
                if not sweep or not client.subs or client.unsent() <= limit:
                    continue
                client.slow_since = now
                client.stale.update(client.subs)
                self.slow_dropped += 1
                log.info("slow client %s: over %d bytes unsent", client.ws.remote_address, limit)
                continue
            buffered = client.unsent()
            if buffered <= limit // 4:
                stale = sorted(client.stale)
                client.stale.clear()
                client.slow_since = None
                for name in stale:  # (under the bound too: a channel held back stays stale)
                    ch = self.channel_of(client, name)
                    if ch is not None and ch.loaded and name in client.subs:
                        n = client.subs[name]
                        self._send_one(client, self._snapshot_frame(ch, n, conflated=True), name)
            elif now - client.slow_since > self.settings.slow_client_timeout_s:
                self.clients.discard(client)  # being closed: no more sweeps or catch-ups
                self.metrics.ws_slow_closed.inc()
                task = asyncio.create_task(
                    client.ws.close(
                        CLOSE_TRY_AGAIN, "too slow: frames piled up; reconnect and resume"
                    )
                )
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

    def channel_of(self, client: Client, name: str) -> Channel | None:
        """The channel ``client`` follows as ``name`` (a cohort's is the client's own)."""
        if name.startswith(cohorts.PREFIX):
            found: CohortChannel | None = client.cohorts.get(name)
            return found
        return self._lookup(name)

    def _lookup(self, name: str) -> Channel | None:
        kind, _, key = name.partition(":")
        if kind == "board":
            return self.boards.get(key)
        return self.members.get(key)

    # -- connections -----------------------------------------------------------------------

    def address(self, peer: Any, headers: Headers) -> str:
        """The client address a connection counts against (``web.clients.client_address``)."""
        return client_address(
            peer, headers.get_all("X-Forwarded-For"), self.settings.trusted_proxies
        )

    def connections_from(self, address: str) -> int:
        return self.addresses.get(address, 0)

    def connect(self, client: Client) -> None:
        self.clients.add(client)
        self.addresses[client.address] = self.addresses.get(client.address, 0) + 1

    def disconnect(self, client: Client) -> None:
        self.clients.discard(client)
        left = self.addresses.get(client.address, 0) - 1
        if left > 0:
            self.addresses[client.address] = left
        else:
            self.addresses.pop(client.address, None)

    async def serve(self, ws: ServerConnection) -> None:
        """One websocket connection, from hello to close: a protocol session (``web.session``)."""
        await session.serve(self, ws)
