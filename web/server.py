"""The web server: one ``websockets`` server that also answers plain HTTP (read API, page, and
``POST /api/events``, whose body ``web.http_body`` reads: websockets itself reads no bodies)."""

from __future__ import annotations

import asyncio
import hmac
import logging
import signal
from importlib import resources
from urllib.parse import urlsplit

import orjson
from redis.exceptions import RedisError
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from broker.producer import SharedProducer
from kudos.http import response
from leaderboard.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from leaderboard.metrics import METRICS_PATH
from leaderboard.scoring import ScoringRules
from leaderboard.settings import Settings, WebSettings, admin_tokens
from leaderboard.store import Store
from leaderboard.store.shards import Shards, check_shards, connect_shards
from web import api, openapi
from web.hosts import AllowedHosts
from web.http_body import BodyConnection, connection_class
from web.hub import Hub
from web.ingest import PATH as INGEST_PATH
from web.ingest import Ingest
from web.metrics import count_responses, scrape
from web.moderation import Moderation, is_moderation_path

#: The websocket endpoint (docs/protocol.md); every other path is plain HTTP.
WS_PATH = "/ws"
log = logging.getLogger("kudos.web")
#: How long a stopping web process waits for its connections to close.
SHUTDOWN_GRACE_S = 2.0


#: The page's own files: a fixed list, so no part of a request path ever reaches the file system.
_ASSETS = {
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/app.css": ("app.css", "text/css; charset=utf-8"),
    # the live client as an ES module, for the page and for anyone's (docs/clients.md)
    "/static/kudos-client.js": ("kudos-client.js", "text/javascript; charset=utf-8"),
}


def _static(name: str) -> bytes:
    return resources.files("web").joinpath("static", name).read_bytes()


def bearer_ok(header: str | None, token: str) -> bool:
    """``Authorization: Bearer <token>`` with the configured (non-empty) token, compared in
    constant time."""
    if not token or not header:
        return False
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


def origin_allowed(origin: str | None, host: str | None, allowed: str) -> bool:
    """Browsers send Origin; the page's own host is always allowed, others only when listed.
    Clients without an Origin (bots, services) are not browsers and are allowed."""
    if origin is None:
        return True
    listed = {o.strip().rstrip("/") for o in allowed.split(",") if o.strip()}
    if "*" in listed or origin.rstrip("/") in listed:
        return True
    return host is not None and urlsplit(origin).netloc == host


def _error(status: int, message: str) -> Response:
    return response(status, orjson.dumps({"error": message}), api.JSON)


def make_process_request(  # type: ignore[no-untyped-def]
    store: Store | Shards,
    hub: Hub | None = None,
    ingest: Ingest | None = None,
    web: WebSettings | None = None,
):
    if web is None:
        web = hub.settings if hub is not None else WebSettings()
    hosts = AllowedHosts.of(web)  # ConfigError at start for a malformed list
    allowed_origins = web.allowed_origins
    moderation = Moderation(store, admin_tokens(web.admin_tokens))

    async def process_request(connection: ServerConnection, request: Request) -> Response | None:
        # one Host, one of ours (every path, the websocket upgrade included): DNS rebinding
        names = request.headers.get_all("Host")
        host = names[0] if len(names) == 1 else None
        if not hosts.allows(host):
            return _error(
                421,
                f"this server does not answer for Host {(host or '')[:100]!r}; if that is its "
                "name, add it to KUDOS_WEB_ALLOWED_HOSTS (a loopback web process answers only "
                "its own names, against DNS rebinding)",
            )
        posting = request.path.partition("?")[0] == INGEST_PATH and ingest is not None
        moderating = is_moderation_path(request.path)
        if posting or moderating:
            # a browser always sends Origin on a POST: a page on another site may not post
            origins = request.headers.get_all("Origin")
            if len(origins) > 1 or not origin_allowed(
                origins[0] if origins else None, host, allowed_origins
            ):
                return _error(
                    403,
                    "a page on another site may not post events or moderate: its Origin is "
                    "neither this server's host nor in KUDOS_WEB_ALLOWED_ORIGINS. Producers post "
                    "from a server, without an Origin header",
                )
            body, refused = (
                (connection.request_body, connection.body_refused)
                if isinstance(connection, BodyConnection)
                else (None, None)
            )
            if moderating:
                answer = await moderation.handle(
                    request.method, request.path, request.headers, body, refused
                )
            else:
                assert ingest is not None
                answer = await ingest.handle(request.method, request.headers, body, refused)
            return response(answer.status, answer.body, api.JSON, answer.headers)
        if request.path.partition("?")[0] == WS_PATH and hub is not None:
            web = hub.settings
            if not origin_allowed(
                request.headers.get("Origin"), request.headers.get("Host"), web.allowed_origins
            ):
                return response(
                    403,
                    orjson.dumps(
                        {
                            "error": "this Origin may not open the websocket; see KUDOS_WEB_ALLOWED_ORIGINS"
                        }
                    ),
                    api.JSON,
                )
            if len(hub.clients) >= web.max_connections:
                return response(
                    503,
                    orjson.dumps({"error": "too many connections; retry with backoff"}),
                    api.JSON,
                )
            address = hub.address(connection.remote_address, request.headers)
            if hub.connections_from(address) >= web.max_connections_per_address:
                return response(
                    429,
                    orjson.dumps(
                        {"error": "too many connections from this address; close some first"}
                    ),
                    api.JSON,
                )
            return None  # go on with the websocket handshake
        if request.path.partition("?")[0] == METRICS_PATH and hub is not None:
            return response(200, await scrape(hub, store), METRICS_CONTENT_TYPE)
        if request.path.partition("?")[0] == openapi.PATH:
            return response(200, openapi.body(), api.JSON)
        if request.path.partition("?")[0] in ("/", "/index.html"):
            return response(200, _static("index.html"), "text/html; charset=utf-8")
        if (asset := _ASSETS.get(request.path.partition("?")[0])) is not None:
            return response(200, _static(asset[0]), asset[1])
        token = hub.settings.token if hub is not None else ""
        authorized = bearer_ok(request.headers.get("Authorization"), token)
        status, body = await api.handle(store, request.method, request.path, authorized=authorized)
        return response(status, body, api.JSON)

    return process_request


async def run(settings: Settings, ready: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM/SIGINT."""
    rules = settings.periods.apply(ScoringRules.load(settings.scoring.path or None))
    base = Store.connect(
        settings.redis.url, settings.redis.prefix, rules, cluster=settings.redis.cluster
    )
    try:
        await check_shards(base, settings.redis.shards, claim=False)
    except (RedisError, OSError) as exc:
        # (reads wait for Redis; the count is checked by the workers, which claim it)
        log.warning("could not check the namespace's shard count: %s", exc)
    except BaseException:
        await base.close()
        raise
    store: Store | Shards = base
    if settings.redis.shards > 1:
        store = connect_shards(settings.redis, settings.broker.partitions, rules, base=base)
    hub = Hub(store, settings.web)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    ticker = asyncio.create_task(hub.run())
    # one producer for all ingest requests, started by the first (the web process starts and
    # serves reads without a broker)
    producer = SharedProducer(settings, timeout_s=settings.web.ingest_timeout_s)
    ingest = Ingest(
        producer.send,
        kinds=rules.kinds,
        partitions=settings.broker.partitions,
        token=settings.web.ingest_token,
        max_future_s=settings.worker.max_future_s,  # the worker's bound, refused up front
    )
    server = await serve(
        hub.serve,
        settings.web.host,
        settings.web.port,
        process_request=make_process_request(store, hub, ingest, settings.web),
        create_connection=connection_class(settings.web.ingest_max_bytes),
        process_response=count_responses(hub.metrics),
        compression=None,
        max_size=settings.web.max_message_bytes,
        max_queue=4,
    )
    try:
        if ready is not None:
            ready.set()
        await stop
        # Close every websocket with 1001 and wait for handlers, but not for connections on
        # which nothing was said yet: browsers open those ahead of need, and waiting out their
        # handshake timeout made every stop take 10 s.
        server.close()
        try:
            await asyncio.wait_for(server.wait_closed(), SHUTDOWN_GRACE_S)
        except TimeoutError:
            log.info("stopped with idle connections still open")
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
        await producer.close()
        await store.close()
