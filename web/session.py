"""One websocket connection's protocol session (docs/protocol.md): the hello, token auth, the
receive loop under the client's message rate, and the requests (subscribe with resume,
unsubscribe, ping). A subscribe finds, loads and replays channels through the process's hub
(``web.hub``), which then delivers the channel's frames on its tick; what a resume decides is
``web.feed``'s rule. Apart from the hub because a session speaks to one client, the hub to all.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import orjson
from redis.exceptions import RedisError
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from leaderboard.errors import ClientError, UnknownBoard
from leaderboard.settings import WebSettings
from leaderboard.store import Store
from web import feed
from web.channels import BoardChannel, Channel, MemberChannel
from web.clients import Client
from web.protocol import (
    ALERTS_CHANNEL,
    AUTH_TIMEOUT_S,
    CLOSE_POLICY,
    MAX_REPLAY,
    PROTOCOL,
    WATCH_EVERY_S,
)

if TYPE_CHECKING:  # the hub serves each connection with a session (Hub.serve)
    from web.hub import Hub

MAX_MEMBER_ID = 200


def hello(store: Store, settings: WebSettings) -> bytes:
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
    hub.clients.add(client)
    try:
        await ws.send(hub._hello, text=True)
        if hub.settings.token and not await _authenticate(hub, client):
            return
        async for message in ws:
            if not client.allow_message():
                await _close(
                    ws,
                    CLOSE_POLICY,
                    f"more than {hub.settings.max_messages_per_s:g} messages per second",
                )
                return
            reply = await _handle(hub, client, message)
            if reply is not None:
                await ws.send(reply, text=True)
    except ConnectionClosed:
        pass
    finally:
        hub.clients.discard(client)
        for name in client.subs:
            ch = hub._lookup(name)
            if ch is not None:
                ch.subscribers.discard(client)


async def _authenticate(hub: Hub, client: Client) -> bool:
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
    if msg.get("token") != hub.settings.token:
        await _close(client.ws, CLOSE_POLICY, "wrong token")
        return False
    await client.ws.send(orjson.dumps({"type": "authenticated", "id": msg.get("id")}), text=True)
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
            del client.subs[name]
            client.stale.discard(name)
            ch = hub._lookup(name)
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


def _parse_channel(hub: Hub, msg: dict[str, Any]) -> tuple[str, str, int]:
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
    raise ClientError("bad_channel", f"{name!r}: channels are board:<id>, member:<id> or alerts")


async def _subscribe(hub: Hub, client: Client, msg: dict[str, Any]) -> None:
    kind, key, limit = _parse_channel(hub, msg)
    name = ALERTS_CHANNEL if kind == "alerts" else f"{kind}:{key}"
    if name not in client.subs and len(client.subs) >= hub.settings.max_subscriptions:
        raise ClientError(
            "too_many_subscriptions",
            f"at most {hub.settings.max_subscriptions} channels per connection; unsubscribe first",
        )
    resume = msg.get("resume")
    if resume is not None and not isinstance(resume, dict):
        raise ClientError("bad_request", 'resume is {"epoch": ..., "seq": ...}')
    if kind == "board" and not await hub.store.board_known(key):
        # (a community board nobody has scored on yet; also keeps clients from creating keys)
        raise ClientError("unknown_board", f"no board {key!r} yet; see GET /api/boards")
    if name in client.subs:  # subscribing again replaces the subscription
        del client.subs[name]
        client.stale.discard(name)
        old = hub._lookup(name)
        if old is not None:
            old.subscribers.discard(client)
    ch: Channel = hub._board(key) if kind == "board" else hub._member(key)
    ch.pending += 1
    try:
        for _ in range(3):  # the first polls may only create the epoch or find a new one
            if isinstance(ch, BoardChannel) and not ch.loaded:
                await hub._tick_board(ch)
            elif isinstance(ch, MemberChannel) and (not ch.loaded or not ch.subscribers):
                # publish the member's current standing first, so the snapshot is current
                if ch.member:
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
                frames = await _replay(hub, ch, int(resume["seq"]))
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
    hub._send_one(client, orjson.dumps(reply))
    if decision is feed.Resume.SNAPSHOT:
        hub._send_one(client, hub._snapshot_frame(ch, limit))
    for seq, record in frames:
        if isinstance(ch, BoardChannel):
            data = feed.board_delta_frame(
                name, ch.epoch, seq, feed.decode_board_record(record), limit
            )
        else:
            data = feed.member_frames(name, ch.epoch, seq, record)
        hub._send_one(client, data)


async def _replay(hub: Hub, ch: Channel, after: int) -> list[tuple[int, str]]:
    """The retained frames after ``after`` up to this process's seq, contiguous, or []."""
    frames: list[tuple[int, str]] = []
    want = after + 1
    while want <= ch.seq:
        got = await hub.store.feed_log(ch.name, want - 1, ch.seq - want + 1)
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
