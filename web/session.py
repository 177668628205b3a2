"""One websocket connection's protocol session (docs/protocol.md): the hello, token auth (within
``auth_timeout_s``), the receive loop under the client's message rate and ``idle_timeout_s``,
and the requests (subscribe with resume, unsubscribe, ping). A subscribe finds, loads and
replays channels through the process's hub (``web.hub``), which then delivers the channel's
frames on its tick; what a resume decides is ``web.feed``'s rule. Every frame goes out through
the hub's slow-client bound; a replay in chunks, paced by the client's reading. Apart from the
hub because a session speaks to one client, the hub to all.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson
from redis.exceptions import RedisError
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed

from leaderboard.errors import ClientError, UnknownBoard
from leaderboard.settings import WebSettings
from leaderboard.store import Store
from leaderboard.store.shards import Shards
from web import cohorts, feed
from web.channels import BoardChannel, Channel, MemberChannel
from web.clients import Client
from web.protocol import (
    ALERTS_CHANNEL,
    CLOSE_GOING_AWAY,
    CLOSE_POLICY,
    MAX_REPLAY,
    PROTOCOL,
    WATCH_EVERY_S,
)

if TYPE_CHECKING:  # the hub serves each connection with a session (Hub.serve)
    from web.hub import Hub

MAX_MEMBER_ID = 200
#: Frames of a replay read from Redis and sent at once; the next chunk waits until the client
#: has read most of this one (``Hub.paced``).
REPLAY_CHUNK = 50

log = logging.getLogger("kudos.web.push")


def hello(store: Store | Shards, settings: WebSettings) -> bytes:
    """The first frame of every connection; the hub serialises it once."""
    return orjson.dumps(
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


async def _close(ws: ServerConnection, code: int, reason: str) -> None:
    """Close, reading (and dropping) what the client had already sent meanwhile: with unread
    messages queued the client's close frame would never be read, and the close would hang."""
    closing = asyncio.create_task(ws.close(code, reason))
    with contextlib.suppress(ConnectionClosed):
        async for _ in ws:
            pass
    await closing


async def serve(hub: Hub, ws: ServerConnection) -> None:
    """One websocket connection, from hello to close."""
    client = Client(ws, hub.settings.max_messages_per_s)
    client.address = hub.address(ws.remote_address, ws.request.headers if ws.request else Headers())
    hub.connect(client)
    try:
        hub._send_one(client, hub._hello)
        if hub.settings.token and not await _authenticate(hub, client):
            return
        while True:
            # a connection that follows nothing must keep talking (it holds a place of the
            # per-address and per-process caps); one that follows a channel may stay quiet
            idle = None if client.subs else hub.settings.idle_timeout_s
            try:
                message = await asyncio.wait_for(ws.recv(), idle)
            except TimeoutError:
                await _close(
                    ws,
                    CLOSE_GOING_AWAY,
                    f"idle: no channel followed and no message for {idle:g} s",
                )
                return
            if not client.allow_message():
                await _close(
                    ws,
                    CLOSE_POLICY,
                    f"more than {hub.settings.max_messages_per_s:g} messages per second",
                )
                return
            # a client over the slow-client bound is not answered (nor read) until it drains
            if not await hub.writable(client):
                return
            reply = await _handle(hub, client, message)
            if reply is not None:
                hub._send_one(client, reply)
    except ConnectionClosed:
        pass
    finally:
        hub.disconnect(client)
        for name in client.subs:
            ch = hub.channel_of(client, name)
            if ch is not None:
                ch.subscribers.discard(client)
        client.cohorts.clear()


async def _authenticate(hub: Hub, client: Client) -> bool:
    try:
        raw = await asyncio.wait_for(client.ws.recv(), hub.settings.auth_timeout_s)
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
    given = msg.get("token")
    if not isinstance(given, str) or not hmac.compare_digest(
        given.encode(), hub.settings.token.encode()
    ):
        await _close(client.ws, CLOSE_POLICY, "wrong token")
        return False
    hub._send_one(client, orjson.dumps({"type": "authenticated", "id": msg.get("id")}))
    return True


async def _handle(hub: Hub, client: Client, message: str | bytes) -> bytes | None:
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
            await _subscribe(hub, client, msg)
            return None
        if op == "unsubscribe":
            name = msg.get("channel")
            if not isinstance(name, str) or name not in client.subs:
                raise ClientError("not_subscribed", f"not subscribed to {name!r}")
            ch = hub.channel_of(client, name)
            del client.subs[name]
            client.stale.discard(name)
            client.cohorts.pop(name, None)
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
        # Redis's own words (hosts, keys) go to the log, not to the client
        log.warning("a websocket request failed, Redis is unavailable: %s", exc)
        return orjson.dumps(
            {
                "type": "error",
                "code": "unavailable",
                "message": "Redis is unavailable; retry shortly",
                "id": request_id,
            }
        )


def _parse_channel(hub: Hub, msg: dict[str, Any]) -> tuple[str, str, int]:
    name = msg.get("channel")
    if not isinstance(name, str):
        raise ClientError("bad_request", "subscribe needs a 'channel' string")
    if name == ALERTS_CHANNEL:
        return "alerts", "", 0
    kind, sep, key = name.partition(":")
    if not sep or not key:
        raise ClientError(
            "bad_channel",
            f"{name!r}: channels are board:<id>, member:<id>, cohort:<board> or alerts",
        )
    if kind == "board":
        try:
            hub.store.rules.check_board(key)
        except UnknownBoard as exc:
            raise ClientError("unknown_board", str(exc)) from None
        limit = msg.get("limit", 10)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= feed.DEPTH:
            raise ClientError("bad_request", f"limit must be an integer from 1 to {feed.DEPTH}")
        return kind, key, limit
    if kind == "member":
        if len(key) > MAX_MEMBER_ID or any(ord(c) < 32 for c in key):
            raise ClientError(
                "bad_channel", f"member ids are 1–{MAX_MEMBER_ID} printable characters"
            )
        return kind, key, 0
    raise ClientError(
        "bad_channel", f"{name!r}: channels are board:<id>, member:<id>, cohort:<board> or alerts"
    )


async def _subscribe(hub: Hub, client: Client, msg: dict[str, Any]) -> None:
    name = msg.get("channel")
    if isinstance(name, str) and name.startswith(cohorts.PREFIX):
        await _subscribe_cohort(hub, client, msg)
        return
    kind, key, limit = _parse_channel(hub, msg)
    name = ALERTS_CHANNEL if kind == "alerts" else f"{kind}:{key}"
    resume = _room_and_resume(hub, client, name, msg)
    if kind == "board" and not await hub.store.board_known(key):
        # (a community board nobody has scored on yet; also keeps clients from creating keys)
        raise ClientError("unknown_board", f"no board {key!r} yet; see GET /api/boards")
    # a member channel writes keys for its member (the ``watched`` mark, then its feed and
    # log): for a member never seen, none until a standing read finds them on a board
    seen = kind == "member" and await hub.store.member_known(key)
    if name in client.subs:  # subscribing again replaces the subscription
        del client.subs[name]
        client.stale.discard(name)
        old = hub._lookup(name)
        if old is not None:
            old.subscribers.discard(client)
    ch: Channel = hub._board(key) if kind == "board" else hub._member(key)
    if isinstance(ch, MemberChannel) and ch.member:
        ch.seen = seen
    ch.pending += 1
    try:
        for _ in range(3):  # the first polls may only create the epoch or find a new one
            if isinstance(ch, BoardChannel) and not ch.loaded:
                await hub._tick_board(ch)
            elif isinstance(ch, MemberChannel) and (not ch.loaded or not ch.subscribers):
                # publish the member's current standing first, so the snapshot is current
                if ch.member and ch.seen:
                    await hub.store.feed_watch([ch.member], 2 * WATCH_EVERY_S)
                await hub._tick_members([ch], None)
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
                frames = await _replay_chunk(hub, ch, int(resume["seq"]))
                if not frames or ch.epoch != epoch:
                    decision, frames = feed.Resume.SNAPSHOT, []
            if not ch.loaded:  # the feed reset during the replay
                raise ClientError("unavailable", "the feed is resynchronising; retry shortly")
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
        hub._send_one(client, orjson.dumps(reply))
        if decision is feed.Resume.REPLAY:
            await _send_replay(hub, client, ch, limit, frames)
        else:
            _join(client, ch, limit)
            if decision is feed.Resume.SNAPSHOT:
                hub._send_one(client, hub._snapshot_frame(ch, limit), name)
    finally:
        ch.pending -= 1


def _room_and_resume(hub: Hub, client: Client, name: str, msg: dict[str, Any]) -> Any:
    """The subscribe's ``resume`` (None or a dict), once the connection has room for ``name``.

    Raises:
        ClientError: too many subscriptions, or a resume that is not an object.
    """
    if name not in client.subs and len(client.subs) >= hub.settings.max_subscriptions:
        raise ClientError(
            "too_many_subscriptions",
            f"at most {hub.settings.max_subscriptions} channels per connection; unsubscribe first",
        )
    resume = msg.get("resume")
    if resume is not None and not isinstance(resume, dict):
        raise ClientError("bad_request", 'resume is {"epoch": ..., "seq": ...}')
    return resume


async def _subscribe_cohort(hub: Hub, client: Client, msg: dict[str, Any]) -> None:
    """A cohort (web.cohorts): the client's own list on one board, one per board and
    connection (subscribing again replaces the list)."""
    name = msg["channel"]
    board, members = cohorts.parse(hub.store, msg)
    if name not in client.cohorts and len(client.cohorts) >= cohorts.PER_CONNECTION:
        raise ClientError(
            "too_many_subscriptions",
            f"at most {cohorts.PER_CONNECTION} cohort channels per connection; unsubscribe first",
        )
    if (board, members) not in hub.cohorts and len(hub.cohorts) >= cohorts.PER_PROCESS:
        raise ClientError(
            "unavailable",
            f"this web process follows {cohorts.PER_PROCESS:,} cohorts already; retry later",
        )
    resume = _room_and_resume(hub, client, name, msg)
    if not await hub.store.board_known(board):
        raise ClientError("unknown_board", f"no board {board!r} yet; see GET /api/boards")
    old = client.cohorts.pop(name, None)
    if old is not None:
        old.subscribers.discard(client)
        client.subs.pop(name, None)
        client.stale.discard(name)
    ch = hub.cohort(board, members)
    ch.pending += 1
    try:
        if not ch.loaded:
            await cohorts.poll(hub.store, ch)
        recovered = (
            resume is not None and resume.get("epoch") == ch.epoch and resume.get("seq") == ch.seq
        )
        reply = {
            "type": "subscribed",
            "channel": name,
            "epoch": ch.epoch,
            "seq": ch.seq,
            "recovered": recovered,
            "members": list(members),
            "id": msg.get("id"),
        }
        hub._send_one(client, orjson.dumps(reply))
        client.cohorts[name] = ch
        _join(client, ch, 0)
        if not recovered:
            hub._send_one(client, cohorts.frame(ch, "snapshot"), name)
    finally:
        ch.pending -= 1


def _join(client: Client, ch: Channel, limit: int) -> None:
    """From here on the hub's tick delivers the channel's frames to the client."""
    client.subs[ch.name] = limit
    ch.subscribers.add(client)


async def _send_replay(
    hub: Hub, client: Client, ch: Channel, limit: int, frames: list[tuple[int, str]]
) -> None:
    """Send a resuming client the frames it missed, a chunk at a time (the next one once it
    has read most of the last), then join it to the channel: it is not a subscriber meanwhile,
    so live frames cannot overtake the replay, and the replay runs on to whatever seq this
    process reached while it waited. A client over the bound gets no more of it: it is marked
    stale and gets a fresh snapshot once it drains (or is closed as slow), like a subscriber
    that missed frames."""
    epoch = ch.epoch
    while True:
        for seq, record in frames:
            if isinstance(ch, BoardChannel):
                data = feed.board_delta_frame(
                    ch.name, epoch, seq, feed.decode_board_record(record), limit
                )
            else:
                data = feed.member_frames(ch.name, epoch, seq, record)
            # (the kernel's queue counts too: a client that stopped reading fills it first,
            # and a replay, unlike a tick's frames, can fill it within one call)
            over = client.unsent() > hub.settings.slow_client_bytes
            if over or not hub._send_one(client, data, ch.name):
                hub._mark_slow(client, ch.name, time.monotonic())
                _join(client, ch, limit)  # (stale: the snapshot comes when it drains)
                return
        after = frames[-1][0]
        if after >= ch.seq:  # caught up; nothing awaited between this check and joining
            _join(client, ch, limit)
            return
        waited = await hub.paced(client)
        if waited is not None:  # it does not read: the rest would only pile up here
            hub._mark_slow(client, ch.name, waited)
            _join(client, ch, limit)
            return
        frames = await _replay_chunk(hub, ch, after) if ch.epoch == epoch else []
        if not frames:
            # the feed reset, or this process fell behind the log, meanwhile: start again from
            # a snapshot (one is on its way if the channel is reloading)
            _join(client, ch, limit)
            if ch.loaded:
                hub._send_snapshot(client, ch, recovered_from_reset=True)
            return


async def _replay_chunk(hub: Hub, ch: Channel, after: int) -> list[tuple[int, str]]:
    """Up to REPLAY_CHUNK retained frames after ``after`` up to this process's seq,
    contiguous, or [] if the log no longer has them."""
    if after >= ch.seq:
        return []
    got = await hub.store.feed_log(ch.name, after, min(REPLAY_CHUNK, ch.seq - after))
    frames = [(seq, record) for seq, record in got if seq <= ch.seq]
    if not frames or any(seq != after + 1 + i for i, (seq, _) in enumerate(frames)):
        return []
    return frames
