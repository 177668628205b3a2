"""HTTP/1.1 answers on ``websockets``' server, shared by every Kudos process.

The web process answers its read API, ingest and page through ``websockets``' ``process_request``
hook; the worker (Faust's own web server is off) and ``kudos deliver`` have no web server and
answer only ``GET /metrics``, with :func:`serve_metrics`. Both build their answers with
:func:`response`, so every answer carries the same headers and no other server library is needed.
Metric definitions live in ``leaderboard.metrics``; the names are listed in docs/metrics.md.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from leaderboard.metrics import CONTENT_TYPE, METRICS_PATH

log = logging.getLogger("kudos.metrics")

Render = Callable[[], Awaitable[bytes]]

# The phrases of RFC 9110 for the statuses Kudos answers (Python 3.11's HTTPStatus still says
# "Request Entity Too Large" for 413).
_REASONS = {
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    421: "Misdirected Request",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def response(
    status: int, body: bytes, content_type: str, extra: tuple[tuple[str, str], ...] = ()
) -> Response:
    """An answer with its length, type and ``Cache-Control: no-store`` (every Kudos answer is
    live state, never to be cached by a proxy), plus ``extra`` headers."""
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            *extra,
        ]
    )
    return Response(status, _REASONS.get(status, "Error"), headers, body)


async def serve_metrics(host: str, port: int, render: Render) -> Server:
    """Listen on ``host:port`` and answer ``GET /metrics`` with ``await render()``; every other
    path is 404. Raises OSError when the address is taken (a misconfiguration: fail at start)."""

    async def process_request(connection: ServerConnection, request: Request) -> Response:
        if request.path.partition("?")[0] != METRICS_PATH:
            return response(404, b"only GET /metrics here\n", "text/plain")
        try:
            body = await render()
        except Exception:  # a bug in collecting must not take the process down with it
            log.exception("collecting metrics failed")
            return response(500, b"see the log\n", "text/plain")
        return response(200, body, CONTENT_TYPE)

    async def no_websockets(ws: ServerConnection) -> None:  # pragma: no cover - never reached
        await ws.close()

    # websockets logs every answered request at INFO ("connection rejected (200 OK)")
    quiet = logging.getLogger("kudos.metrics.http")
    quiet.setLevel(logging.WARNING)
    return await serve(no_websockets, host, port, process_request=process_request, logger=quiet)
