"""The web server: one ``websockets`` server that also answers plain HTTP GETs (read API, page)."""

from __future__ import annotations

import asyncio
import signal
from importlib import resources

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from leaderboard.scoring import ScoringRules
from leaderboard.settings import Settings
from leaderboard.store import Store
from web import api

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}


def _static(name: str) -> bytes:
    return resources.files("web").joinpath("static", name).read_bytes()


def _response(status: int, body: bytes, content_type: str) -> Response:
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
        ]
    )
    return Response(status, _REASONS.get(status, "Error"), headers, body)


def make_process_request(store: Store):  # type: ignore[no-untyped-def]
    async def process_request(connection: ServerConnection, request: Request) -> Response | None:
        if request.path in ("/", "/index.html"):
            return _response(200, _static("index.html"), "text/html; charset=utf-8")
        status, body = await api.handle(store, "GET", request.path)
        return _response(status, body, api.JSON)

    return process_request


async def _no_push(connection: ServerConnection) -> None:  # pragma: no cover - unreachable
    await connection.close(1008, "no websocket endpoint here")


async def run(settings: Settings, ready: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM/SIGINT."""
    rules = ScoringRules.load(settings.scoring.path or None)
    store = Store.connect(settings.redis.url, settings.redis.prefix, rules)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    try:
        async with serve(
            _no_push,
            settings.web.host,
            settings.web.port,
            process_request=make_process_request(store),
            compression=None,
        ):
            if ready is not None:
                ready.set()
            await stop
    finally:
        await store.close()
