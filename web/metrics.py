"""``GET /metrics`` of the web process: the hub's counters, HTTP requests, and the pipeline's shared
counters from Redis (two cheap reads: the stats hash and the watermark). Metric definitions live in
``leaderboard.metrics``; the names are listed in docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Callable

from redis.exceptions import RedisError
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from leaderboard.metrics import METRICS_PATH, WebMetrics
from leaderboard.store import COMMUNITY_STAT_FIELDS, STAT_FIELDS, Store
from leaderboard.store.shards import Shards
from web.hub import Hub

#: First path segments after /api/ → (number of segments, class) of the read API's routes.
_API = {
    ("boards", 2): "api_boards",
    ("boards", 3): "api_board",
    ("boards", 5): "api_board_member",
    ("members", 4): "api_member",
    ("events", 2): "api_events",
}


def path_class(target: str) -> str:
    """A request target reduced to one of a few route names, so that label values stay few
    whatever clients ask for (board and member ids never become labels)."""
    path = target.partition("?")[0]
    if path == "/ws":
        return "ws"
    if path in ("/", "/index.html"):
        return "page"
    if path.startswith("/static/"):
        return "static"
    if path in ("/healthz", METRICS_PATH):
        return path[1:]
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        name = _API.get((parts[1], len(parts)))
        if name == "api_member":
            return {"explain": "api_explain", "perks": "api_perks"}.get(parts[3], "other")
        if name is not None:
            return name
    return "other"


async def scrape(hub: Hub, store: Store | Shards) -> bytes:
    """The exposition of this process's metrics, refreshed from the hub and Redis. Redis being
    down is reported as ``kudos_redis_up 0`` (the pipeline counters keep their last values)."""
    m = hub.metrics
    m.ws_connections.set(len(hub.clients))
    m.ws_subscriptions.set(sum(len(ch.subscribers) for ch in hub.boards.values()), kind="board")
    m.ws_subscriptions.set(sum(len(ch.subscribers) for ch in hub.members.values()), kind="member")
    m.ws_subscriptions.set(sum(len(ch.subscribers) for ch in hub.cohorts.values()), kind="cohort")
    m.ws_frames_sent.set_total(hub.frames_sent)
    m.ws_slow_conflated.set_total(hub.slow_dropped)
    try:
        stats = await store.stats()
        wm, _ = await store.clock()
    except (RedisError, OSError):
        m.redis_up.set(0)
    else:
        m.redis_up.set(1)
        for outcome in STAT_FIELDS:
            m.pipeline_events.set_total(stats[outcome], outcome=outcome)
        for field in COMMUNITY_STAT_FIELDS:
            reason = field.removeprefix("community_")
            m.pipeline_community_dropped.set_total(stats[field], reason=reason)
        if wm is not None:
            m.pipeline_watermark.set(wm)
    return m.exposition().encode()


def count_responses(metrics: WebMetrics) -> Callable[[ServerConnection, Request, Response], None]:
    """A ``process_response`` hook that counts every HTTP answer, handshakes included."""

    def process_response(
        connection: ServerConnection, request: Request, response: Response
    ) -> None:
        metrics.http_requests.inc(path=path_class(request.path), status=str(response.status_code))

    return process_response
