"""``GET /metrics`` for the processes that have no web server of their own: the worker (Faust's is
off) and ``kudos deliver``. A tiny HTTP server on ``websockets``' HTTP/1.1 handling, the same the
web process answers its read API with, so no other server library is needed. Metric definitions
live in ``leaderboard.metrics``; the names are listed in docs/metrics.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from leaderboard.metrics import CONTENT_TYPE, WorkerMetrics
from leaderboard.store import Store

log = logging.getLogger("kudos.metrics")

METRICS_PATH = "/metrics"
#: A scrape waits this long for the broker's end offsets, then answers without the lag.
END_OFFSETS_TIMEOUT_S = 2.0

Render = Callable[[], Awaitable[bytes]]


def _response(status: int, reason: str, body: bytes, content_type: str) -> Response:
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
        ]
    )
    return Response(status, reason, headers, body)


async def serve_metrics(host: str, port: int, render: Render) -> Server:
    """Listen on ``host:port`` and answer ``GET /metrics`` with ``await render()``; every other
    path is 404. Raises OSError when the address is taken (a misconfiguration: fail at start)."""

    async def process_request(connection: ServerConnection, request: Request) -> Response:
        if request.path.partition("?")[0] != METRICS_PATH:
            return _response(404, "Not Found", b"only GET /metrics here\n", "text/plain")
        try:
            body = await render()
        except Exception:  # a bug in collecting must not take the process down with it
            log.exception("collecting metrics failed")
            return _response(500, "Internal Server Error", b"see the log\n", "text/plain")
        return _response(200, "OK", body, CONTENT_TYPE)

    async def no_websockets(ws: ServerConnection) -> None:  # pragma: no cover - never reached
        await ws.close()

    # websockets logs every answered request at INFO ("connection rejected (200 OK)")
    quiet = logging.getLogger("kudos.metrics.http")
    quiet.setLevel(logging.WARNING)
    return await serve(no_websockets, host, port, process_request=process_request, logger=quiet)


async def consumer_lag(consumer: Any, topic: str, store: Store, metrics: WorkerMetrics) -> None:
    """Set ``kudos_worker_consumer_lag`` for the partitions of ``topic`` assigned to ``consumer``
    (a Faust consumer): the broker's end offset minus the next offset the Redis fence awaits.
    Partitions no longer assigned disappear; when the broker does not answer in time (starting,
    rebalancing) the gauge is left empty rather than wrong."""
    metrics.consumer_lag.clear()
    try:
        tps = [tp for tp in consumer.assignment() if tp.topic == topic]
        if not tps:
            return
        ends = await asyncio.wait_for(consumer.highwaters(*tps), END_OFFSETS_TIMEOUT_S)
    except Exception as exc:  # any consumer state (not started, rebalancing, stopping)
        log.debug("no consumer lag this scrape: %r", exc)
        return
    try:
        fences = await store.fences()
    except (RedisError, OSError) as exc:
        log.warning("no consumer lag this scrape, Redis unavailable: %s", exc)
        return
    for tp in tps:
        end = ends.get(tp)
        if end is not None:
            lag = max(0, int(end) - fences.get(tp.partition, -1) - 1)
            metrics.consumer_lag.set(lag, partition=str(tp.partition))
