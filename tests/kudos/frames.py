"""Frames as the Kudos web process sends them, and a scripted websocket server that greets like
it, for the live clients' tests (kudos watch, the Python client)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

E = "ep1"


def board_snapshot(seq: int = 4, n: int = 5, channel: str = "board:all") -> dict[str, Any]:
    """m0..m{n-1} with 48, 44, 40, ... points."""
    entries = [{"rank": i + 1, "member": f"m{i}", "score": 48.0 - 4 * i} for i in range(n)]
    return {
        "type": "snapshot",
        "channel": channel,
        "epoch": E,
        "seq": seq,
        "as_of": 1.0,
        "members": 12,
        "entries": entries,
    }


def delta(seq: int, channel: str = "board:all", **lists: Any) -> dict[str, Any]:
    body = {"entered": [], "left": [], "moved": [], "score": [], **lists}
    return {"type": "delta", "channel": channel, "epoch": E, "seq": seq, "as_of": 2.0, **body}


def event(channel: str, seq: int, **body: Any) -> dict[str, Any]:
    return {"type": "event", "channel": channel, "epoch": E, "seq": seq, "as_of": 2.0, **body}


Script = Callable[[ServerConnection, int], Awaitable[None]]


@asynccontextmanager
async def scripted_server(
    script: Script, auth: bool = False, http: Any = None
) -> AsyncIterator[str]:
    """A websocket server that greets like Kudos and then runs ``script(ws, connection_number)``
    (``http``: websockets' ``process_request``, to answer plain HTTP on the same port)."""
    count = 0

    async def handler(ws: ServerConnection) -> None:
        nonlocal count
        count += 1
        hello = {"type": "hello", "protocol": 1, "limits": {"auth": auth}}
        # a client that leaves mid-script (it refused the server, or is done): the script ends
        # quietly, so the server closes this side at once rather than at garbage collection
        with contextlib.suppress(ConnectionClosed):
            await ws.send(orjson.dumps(hello).decode())
            await script(ws, count)

    async with serve(handler, "127.0.0.1", 0, process_request=http) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/ws"


async def recv(ws: ServerConnection) -> dict[str, Any]:
    msg: dict[str, Any] = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
    return msg


async def send(ws: ServerConnection, *frames: dict[str, Any]) -> None:
    for f in frames:
        await ws.send(orjson.dumps(f).decode())
