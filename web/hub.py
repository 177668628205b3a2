"""The live push server side: websocket connections, subscriptions, limits and the feed tick.

The rules of the feed (what a delta is, resume decisions, frame encoding) live in ``web.feed``; the
shared state (sequences, snapshots, logs) in Redis through ``leaderboard.store``. This module owns
sockets and timing only. Protocol: docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import sys
import termios
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.exceptions import RedisError
from websockets.asyncio.server import ServerConnection, broadcast
from websockets.exceptions import ConnectionClosed

from leaderboard.errors import ClientError, UnknownBoard
from leaderboard.metrics import WebMetrics
from leaderboard.settings import WebSettings
from leaderboard.store import BoardPoll, MemberPoll, Store
from web import feed

log = logging.getLogger("kudos.web.push")

PROTOCOL = 1
#: The channel of every comment-bait alert (throttles started and ended), from ``kudos deliver``.
ALERTS_CHANNEL = "alerts"
#: Frames read from a channel's log per poll; a process further behind catches up over ticks.
MAX_FRAMES = 200
MAX_MEMBER_ID = 200
#: A client further behind than this gets a snapshot rather than a replay.
MAX_REPLAY = 500
#: Rank events come from comparing with the last published top list; one older than this (nobody
#: was watching the board) would announce hours of moves as if they just happened.
STALE_EVENTS_S = 10.0
#: Member channels read per script call, so one call never holds Redis for long.
MEMBER_CHUNK = 200
#: Web processes re-mark their members as watched this often, for twice as long.
WATCH_EVERY_S = 15.0
AUTH_TIMEOUT_S = 5.0

CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN = 1013


async def _close(ws: ServerConnection, code: int, reason: str) -> None:
    """Close, reading (and dropping) what the client had already sent meanwhile: with unread
    messages queued the client's close frame would never be read, and the close would hang."""
    closing = asyncio.create_task(ws.close(code, reason))
    with contextlib.suppress(ConnectionClosed):
        async for _ in ws:
            pass
    await closing


@dataclass(eq=False)
class Client:
    ws: ServerConnection
    rate: float
    #: channel → top-N (board channels) or 0 (member channels)
    subs: dict[str, int] = field(default_factory=dict)
    #: channels on which this client missed frames while it was slow
    stale: set[str] = field(default_factory=set)
    slow_since: float | None = None
    tokens: float = 0.0
    refilled: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = 2 * self.rate

    def allow_message(self) -> bool:
        """Token bucket: ``rate`` messages per second, bursts of twice that."""
        now = time.monotonic()
        self.tokens = min(2 * self.rate, self.tokens + (now - self.refilled) * self.rate)
        self.refilled = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def buffered(self) -> int:
        """Bytes queued in the process for this client (cheap: checked before every frame)."""
        transport = self.ws.transport
        return 0 if transport is None else transport.get_write_buffer_size()

    def unsent(self) -> int:
        """Bytes queued in the process plus those the kernel holds unacknowledged: a client that
        stopped reading first fills the kernel's buffers (megabytes on loopback), so the
        process's own buffer alone would notice it late."""
        total = self.buffered()
        transport = self.ws.transport
        sock = None if transport is None else transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
                total += int.from_bytes(raw, sys.byteorder, signed=True)
        return total


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


class Hub:
    """All websocket clients of one web process and the channels they follow."""

    def __init__(self, store: Store, settings: WebSettings) -> None:
        self.store = store
        self.settings = settings
        self.clients: set[Client] = set()
        self.boards: dict[str, BoardChannel] = {}
        self.members: dict[str, MemberChannel] = {}
        self.frames_sent = 0
        self.slow_dropped = 0
        #: counters and timings of this process, exposed at GET /metrics (``web.metrics``)
        self.metrics = WebMetrics()
        self._retention = settings.feed_retention
        self._member_retention = max(10, settings.feed_retention // 20)
        self._member_lock = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()
        self._next_sweep = 0.0
        self._next_watch = 0.0
        self._hello = orjson.dumps(
            {
                "type": "hello",
                "protocol": PROTOCOL,
                "scoring_version": store.rules.version,
                "limits": {
                    "max_message_bytes": settings.max_message_bytes,
                    "max_subscriptions": settings.max_subscriptions,
                    "max_messages_per_s": settings.max_messages_per_s,
                    "max_limit": feed.DEPTH,
                    "auth": bool(settings.token),
                },
            }
        )

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
                    [m.member for m in members if m.member], 2 * WATCH_EVERY_S
                )
            srcs = {b: self.boards[b].last_src for b in self.store.rules.base_boards}
            await self._tick_members(members, srcs)
        # forget channels nobody follows (their state is in Redis)
        for name in [
            b
            for b, ch in self.boards.items()
            if not ch.subscribers and not ch.pending and b not in boards
        ]:
            del self.boards[name]
        for name in [m for m, ch in self.members.items() if not ch.subscribers and not ch.pending]:
            del self.members[name]

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
            ch.name,
            poll.seq,
            poll.epoch,
            poll.src,
            feed.encode_rows(new),
            record,
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
                    ch.name,
                    poll.seq,
                    epoch,
                    "",
                    orjson.dumps(poll.standing),
                    blob,
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

    def _broadcast(self, clients: list[Client], channel: str, data: bytes) -> None:
        """Send one serialised frame to many clients without waiting for any of them; a client
        over the slow-client limit misses it and is marked stale on that channel."""
        limit = self.settings.slow_client_bytes
        ready: list[ServerConnection] = []
        now = time.monotonic()
        for client in clients:
            if channel in client.stale or client.buffered() > limit:
                if channel not in client.stale:
                    client.stale.add(channel)
                    self.slow_dropped += 1
                if client.slow_since is None:
                    client.slow_since = now
                    log.info(
                        "slow client %s: %d bytes unsent; conflating its frames",
                        client.ws.remote_address,
                        client.buffered(),
                    )
                continue
            ready.append(client.ws)
        if ready:
            broadcast(ready, data, text=True)
            self.frames_sent += len(ready)

    def _send_one(self, client: Client, data: bytes) -> None:
        broadcast([client.ws], data, text=True)
        self.frames_sent += 1

    def _snapshot_frame(self, ch: Channel, n: int, **extra: Any) -> bytes:
        if isinstance(ch, BoardChannel):
            body: dict[str, Any] = {
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
        self._send_one(client, self._snapshot_frame(ch, n, reset=recovered_from_reset))

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
                for name in sorted(client.stale):
                    ch = self._lookup(name)
                    if ch is not None and ch.loaded:
                        n = client.subs.get(name, 0)
                        self._send_one(client, self._snapshot_frame(ch, n, conflated=True))
                client.stale.clear()
                client.slow_since = None
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

    def _lookup(self, name: str) -> Channel | None:
        kind, _, key = name.partition(":")
        if kind == "board":
            return self.boards.get(key)
        return self.members.get(key)

    # -- connections -----------------------------------------------------------------------

    async def serve(self, ws: ServerConnection) -> None:
        """One websocket connection, from hello to close."""
        client = Client(ws, self.settings.max_messages_per_s)
        self.clients.add(client)
        try:
            await ws.send(self._hello, text=True)
            if self.settings.token and not await self._authenticate(client):
                return
            async for message in ws:
                if not client.allow_message():
                    await _close(
                        ws,
                        CLOSE_POLICY,
                        f"more than {self.settings.max_messages_per_s:g} messages per second",
                    )
                    return
                reply = await self._handle(client, message)
                if reply is not None:
                    await ws.send(reply, text=True)
        except ConnectionClosed:
            pass
        finally:
            self.clients.discard(client)
            for name in client.subs:
                ch = self._lookup(name)
                if ch is not None:
                    ch.subscribers.discard(client)

    async def _authenticate(self, client: Client) -> bool:
        try:
            raw = await asyncio.wait_for(client.ws.recv(), AUTH_TIMEOUT_S)
            msg = orjson.loads(raw)
        except (TimeoutError, orjson.JSONDecodeError):
            msg = None
        if not isinstance(msg, dict) or msg.get("op") != "auth":
            await _close(
                client.ws,
                CLOSE_POLICY,
                'authentication required: send {"op": "auth", "token": ...} first',
            )
            return False
        if msg.get("token") != self.settings.token:
            await _close(client.ws, CLOSE_POLICY, "wrong token")
            return False
        await client.ws.send(
            orjson.dumps({"type": "authenticated", "id": msg.get("id")}), text=True
        )
        return True

    async def _handle(self, client: Client, message: str | bytes) -> bytes | None:
        request_id: Any = None
        try:
            if isinstance(message, bytes):
                raise ClientError("bad_request", "send JSON in text frames")
            try:
                msg = orjson.loads(message)
            except orjson.JSONDecodeError as exc:
                raise ClientError("bad_json", f"not JSON: {exc}") from None
            if not isinstance(msg, dict):
                raise ClientError("bad_request", "a message is a JSON object with an 'op'")
            request_id = msg.get("id")
            op = msg.get("op")
            if op == "subscribe":
                await self._subscribe(client, msg)
                return None
            if op == "unsubscribe":
                name = msg.get("channel")
                if not isinstance(name, str) or name not in client.subs:
                    raise ClientError("not_subscribed", f"not subscribed to {name!r}")
                del client.subs[name]
                client.stale.discard(name)
                ch = self._lookup(name)
                if ch is not None:
                    ch.subscribers.discard(client)
                return orjson.dumps({"type": "unsubscribed", "channel": name, "id": request_id})
            if op == "ping":
                return orjson.dumps({"type": "pong", "id": request_id})
            if op == "auth":
                return orjson.dumps({"type": "authenticated", "id": request_id})
            raise ClientError(
                "bad_request", f"unknown op {op!r}; ops are subscribe, unsubscribe, ping, auth"
            )
        except ClientError as exc:
            return orjson.dumps(
                {"type": "error", "code": exc.code, "message": str(exc), "id": request_id}
            )
        except RedisError as exc:
            return orjson.dumps(
                {
                    "type": "error",
                    "code": "unavailable",
                    "message": f"Redis is unavailable ({exc}); retry shortly",
                    "id": request_id,
                }
            )

    def _parse_channel(self, msg: dict[str, Any]) -> tuple[str, str, int]:
        name = msg.get("channel")
        if not isinstance(name, str):
            raise ClientError("bad_request", "subscribe needs a 'channel' string")
        if name == ALERTS_CHANNEL:
            return "alerts", "", 0
        kind, sep, key = name.partition(":")
        if not sep or not key:
            raise ClientError(
                "bad_channel", f"{name!r}: channels are board:<id>, member:<id> or alerts"
            )
        if kind == "board":
            try:
                self.store.rules.check_board(key)
            except UnknownBoard as exc:
                raise ClientError("unknown_board", str(exc)) from None
            limit = msg.get("limit", 10)
            if (
                not isinstance(limit, int)
                or isinstance(limit, bool)
                or not 1 <= limit <= feed.DEPTH
            ):
                raise ClientError("bad_request", f"limit must be an integer from 1 to {feed.DEPTH}")
            return kind, key, limit
        if kind == "member":
            if len(key) > MAX_MEMBER_ID or any(ord(c) < 32 for c in key):
                raise ClientError(
                    "bad_channel", f"member ids are 1–{MAX_MEMBER_ID} printable characters"
                )
            return kind, key, 0
        raise ClientError(
            "bad_channel", f"{name!r}: channels are board:<id>, member:<id> or alerts"
        )

    async def _subscribe(self, client: Client, msg: dict[str, Any]) -> None:
        kind, key, limit = self._parse_channel(msg)
        name = ALERTS_CHANNEL if kind == "alerts" else f"{kind}:{key}"
        if name not in client.subs and len(client.subs) >= self.settings.max_subscriptions:
            raise ClientError(
                "too_many_subscriptions",
                f"at most {self.settings.max_subscriptions} channels per connection; unsubscribe first",
            )
        resume = msg.get("resume")
        if resume is not None and not isinstance(resume, dict):
            raise ClientError("bad_request", 'resume is {"epoch": ..., "seq": ...}')
        if kind == "board" and not await self.store.board_known(key):
            # (a community board nobody has scored on yet; also keeps clients from creating keys)
            raise ClientError("unknown_board", f"no board {key!r} yet; see GET /api/boards")
        if name in client.subs:  # subscribing again replaces the subscription
            del client.subs[name]
            client.stale.discard(name)
            old = self._lookup(name)
            if old is not None:
                old.subscribers.discard(client)
        ch: Channel = self._board(key) if kind == "board" else self._member(key)
        ch.pending += 1
        try:
            for _ in range(3):  # the first polls may only create the epoch or find a new one
                if isinstance(ch, BoardChannel) and not ch.loaded:
                    await self._tick_board(ch)
                elif isinstance(ch, MemberChannel) and (not ch.loaded or not ch.subscribers):
                    # publish the member's current standing first, so the snapshot is current
                    if ch.member:
                        await self.store.feed_watch([ch.member], 2 * WATCH_EVERY_S)
                    await self._tick_members([ch], None)
            if not ch.loaded:
                raise ClientError("unavailable", "the feed is starting; retry shortly")
            decision = feed.Resume.SNAPSHOT
            frames: list[tuple[int, str]] = []
            if resume is not None:
                decision = feed.resume(
                    resume.get("epoch"), resume.get("seq"), ch.epoch, ch.seq, ch.first_retained
                )
                if decision is feed.Resume.REPLAY and ch.seq - int(resume["seq"]) > MAX_REPLAY:
                    decision = feed.Resume.SNAPSHOT  # a snapshot is smaller than that history
                if decision is feed.Resume.REPLAY:
                    epoch = ch.epoch
                    frames = await self._replay(ch, int(resume["seq"]))
                    if not frames or ch.epoch != epoch:
                        decision, frames = feed.Resume.SNAPSHOT, []
                if not ch.loaded:  # the feed reset during the replay
                    raise ClientError("unavailable", "the feed is resynchronising; retry shortly")
        finally:
            ch.pending -= 1
        client.subs[name] = limit
        client.stale.discard(name)
        ch.subscribers.add(client)
        reply = {
            "type": "subscribed",
            "channel": name,
            "epoch": ch.epoch,
            "seq": ch.seq,
            "recovered": decision is not feed.Resume.SNAPSHOT,
            "id": msg.get("id"),
        }
        if kind == "board":
            reply["limit"] = limit
        self._send_one(client, orjson.dumps(reply))
        if decision is feed.Resume.SNAPSHOT:
            self._send_one(client, self._snapshot_frame(ch, limit))
        for seq, record in frames:
            if isinstance(ch, BoardChannel):
                data = feed.board_delta_frame(
                    name, ch.epoch, seq, feed.decode_board_record(record), limit
                )
            else:
                data = feed.member_frames(name, ch.epoch, seq, record)
            self._send_one(client, data)

    async def _replay(self, ch: Channel, after: int) -> list[tuple[int, str]]:
        """The retained frames after ``after`` up to this process's seq, contiguous, or []."""
        frames: list[tuple[int, str]] = []
        want = after + 1
        while want <= ch.seq:
            got = await self.store.feed_log(ch.name, want - 1, ch.seq - want + 1)
            if not got or got[0][0] != want:
                return []
            for seq, record in got:
                if seq > ch.seq:
                    break
                if seq != want:
                    return []
                frames.append((seq, record))
                want += 1
        return frames
