"""One webhook attempt over real HTTP (deliver/webhook_http.py): receivers and listeners on loopback only.

Refused destinations are tested with the event loop's ``sock_connect`` and ``getaddrinfo`` replaced by
recorders that never touch the network, so even a broken guard could not send anything off-host.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import standardwebhooks
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from deliver.webhook_http import MAX_RESPONSE_BYTES, Attempt, deliver, guarded_session, hide_url
from leaderboard import webhooks as wh
from leaderboard.errors import DestinationRefused

KEY = bytes(range(32))
SECRET = wh.format_secret(KEY)
BODY = b'{"type":"perk.unlocked","data":{"member":"m1","rule":"top10"}}'
LOOPBACK = wh.parse_allow_list("127.0.0.1")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def signed(msg_id: str = "unl_1") -> dict[str, str]:
    return wh.headers(msg_id, int(time.time()), BODY, [KEY])


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool


@dataclass
class Receiver:
    """An aiohttp server that verifies signatures with standardwebhooks and records requests."""

    host: str
    port: int
    handler: Handler
    requests: list[Received] = field(default_factory=list)

    def url(self, path: str = "/hook") -> str:
        return f"http://{host_port(self.host, self.port)}{path}"


@dataclass
class Listener:
    """A bare TCP listener that counts connections and never answers."""

    host: str
    port: int
    connections: int = 0


async def answer(status: int, **headers: str) -> web.Response:
    return web.Response(status=status, headers=headers, text=f"answer {status}")


def answering(status: int, **headers: str) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        return await answer(status, **headers)

    return handle


def bound(host: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.bind((host, 0))
    except OSError as exc:
        sock.close()
        pytest.skip(f"cannot listen on {host}: {exc}")
    return sock


@pytest_asyncio.fixture
async def servers() -> AsyncIterator[Servers]:
    started = Servers()
    try:
        yield started
    finally:
        await started.close()


class Servers:
    def __init__(self) -> None:
        self._runners: list[web.AppRunner] = []
        self._servers: list[asyncio.Server] = []
        self._held: list[asyncio.StreamWriter] = []

    async def receiver(self, handler: Handler | None = None, host: str = "127.0.0.1") -> Receiver:
        sock = bound(host)
        receiver = Receiver(host, sock.getsockname()[1], handler or answering(204))

        async def record(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            headers = dict(request.headers)
            try:
                standardwebhooks.Webhook(SECRET).verify(body, headers)
                verified = True
            except standardwebhooks.webhooks.WebhookVerificationError:
                verified = False
            receiver.requests.append(Received(request.path, headers, body, verified))
            return await receiver.handler(request)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", record)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self._runners.append(runner)
        await web.SockSite(runner, sock).start()
        return receiver

    async def listener(self, host: str = "127.0.0.1") -> Listener:
        sock = bound(host)
        listener = Listener(host, sock.getsockname()[1])

        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            listener.connections += 1
            self._held.append(writer)

        self._servers.append(await asyncio.start_server(hold, sock=sock))
        return listener

    async def close(self) -> None:
        for writer in self._held:
            writer.close()
        for server in self._servers:
            server.close()
            await server.wait_closed()
        for runner in self._runners:
            await runner.cleanup()


@dataclass
class NetworkSpy:
    connects: list[Any] = field(default_factory=list)
    lookups: list[Any] = field(default_factory=list)


@pytest_asyncio.fixture
async def no_network(monkeypatch: pytest.MonkeyPatch) -> NetworkSpy:
    """Record, and fail, every connect and DNS lookup the event loop is asked for."""
    spy = NetworkSpy()
    loop = asyncio.get_running_loop()

    async def sock_connect(sock: socket.socket, address: Any) -> None:
        spy.connects.append(address)
        raise OSError("the test forbids connecting")

    async def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        spy.lookups.append(host)
        raise OSError("the test forbids DNS")

    monkeypatch.setattr(loop, "sock_connect", sock_connect)
    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    return spy


class FakeResolver(AbstractResolver):
    """Names resolve to the addresses a test chooses, without any lookup."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.table[host]
        ]

    async def close(self) -> None:
        pass


def assert_refused(attempt: Attempt, address: str) -> None:
    assert attempt.outcome == "retry"
    assert attempt.status is None
    assert f"destination {address}" in attempt.error
    assert "is not a public address" in attempt.error
    assert f"add it to {wh.ALLOW_SETTING} if you trust it" in attempt.error


# --- deliveries ---------------------------------------------------------------------------------


async def test_delivery_carries_headers_that_standardwebhooks_verifies(servers: Servers) -> None:
    receiver = await servers.receiver(answering(200))
    attempt = await deliver(receiver.url(), signed("unl_42"), BODY, allow=LOOPBACK)
    assert attempt.outcome == "delivered"
    assert attempt.status == 200
    assert attempt.error == ""
    assert attempt.response == "answer 200"
    assert 0 < attempt.latency_ms < 5000
    [got] = receiver.requests
    assert got.verified
    assert got.body == BODY
    assert got.path == "/hook"
    assert got.headers["webhook-id"] == "unl_42"
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["User-Agent"].startswith("Kudos-Webhooks/")


def _in_a_minute() -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))


@pytest.mark.parametrize(
    ("status", "headers", "outcome", "retry_after"),
    [
        (500, {}, "retry", None),
        (500, {"Retry-After": "30"}, "retry", None),  # only 429 and 503 are honoured
        (404, {}, "retry", None),
        (410, {}, "disable", None),
        (429, {"Retry-After": "120"}, "retry", 120.0),
        (503, {"Retry-After": "in-a-minute"}, "retry", 60.0),
        (503, {"Retry-After": "whenever"}, "retry", None),
    ],
)
async def test_receiver_answers_become_outcomes(
    servers: Servers,
    status: int,
    headers: dict[str, str],
    outcome: str,
    retry_after: float | None,
) -> None:
    if headers.get("Retry-After") == "in-a-minute":
        headers = {"Retry-After": _in_a_minute()}
    receiver = await servers.receiver(answering(status, **headers))
    attempt = await deliver(receiver.url(), signed(), BODY, allow=LOOPBACK)
    assert (attempt.outcome, attempt.status) == (outcome, status)
    assert f"the receiver answered {status}" in attempt.error
    if retry_after is None:
        assert attempt.retry_after_s is None
    else:
        assert attempt.retry_after_s == pytest.approx(retry_after, abs=2)
        assert "retry after" in attempt.error
    if status == 410:
        assert "disabled" in attempt.error
    assert len(receiver.requests) == 1 and receiver.requests[0].verified


async def test_a_redirect_is_a_failure_and_its_target_gets_nothing(servers: Servers) -> None:
    target = await servers.listener("127.0.0.2")
    location = f"http://127.0.0.2:{target.port}/stolen"
    receiver = await servers.receiver(answering(302, Location=location))
    # the whole of 127/8 is allowed: only the no-redirect rule keeps the target untouched
    attempt = await deliver(
        receiver.url(), signed(), BODY, allow=wh.parse_allow_list("127.0.0.0/8")
    )
    assert (attempt.outcome, attempt.status) == ("retry", 302)
    assert f"redirect to {location}" in attempt.error
    assert "redirects are never followed" in attempt.error
    assert len(receiver.requests) == 1
    await asyncio.sleep(0.1)  # not a wait: the window in which a followed redirect would connect
    assert target.connections == 0


async def test_a_silent_receiver_times_out(servers: Servers) -> None:
    listener = await servers.listener()
    url = f"http://127.0.0.1:{listener.port}/hook"
    attempt = await deliver(url, signed(), BODY, allow=LOOPBACK, timeout_s=0.3)
    assert (attempt.outcome, attempt.status) == ("retry", None)
    assert "no response within 0.3 s" in attempt.error
    assert 250 <= attempt.latency_ms < 5000
    assert listener.connections == 1


async def test_an_endless_answer_is_read_only_up_to_the_cap(servers: Servers) -> None:
    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        await response.prepare(request)
        while True:  # until the client hangs up
            await response.write(b"x" * 65536)

    receiver = await servers.receiver(endless)
    started = time.monotonic()
    attempt = await deliver(receiver.url(), signed(), BODY, allow=LOOPBACK, timeout_s=10)
    assert time.monotonic() - started < 5
    assert (attempt.outcome, attempt.status) == ("delivered", 200)
    assert attempt.response == "x" * MAX_RESPONSE_BYTES


async def test_nobody_listening_is_reported_not_raised(servers: Servers) -> None:
    listener = await servers.listener()
    await servers.close()  # the port is free again
    url = f"http://127.0.0.1:{listener.port}/hook"
    attempt = await deliver(url, signed(), BODY, allow=LOOPBACK)
    assert (attempt.outcome, attempt.status) == ("retry", None)
    assert f"cannot connect to 127.0.0.1:{listener.port}" in attempt.error
    assert "is the receiver running" in attempt.error


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://127.0.0.1/hook", "only http:// and https://"),
        ("http://[::1/hook", "not a valid URL"),
        ("http://127.0.0.1:99999/", "not a valid URL"),
        ("https:///hook", "has no host"),
    ],
)
async def test_bad_urls_are_reported_not_raised(
    no_network: NetworkSpy, url: str, message: str
) -> None:
    attempt = await deliver(url, signed(), BODY, allow=LOOPBACK)
    assert (attempt.outcome, attempt.status) == ("retry", None)
    assert message in attempt.error
    assert no_network.connects == [] and no_network.lookups == []


async def test_a_shared_session_serves_many_deliveries(servers: Servers) -> None:
    receiver = await servers.receiver(answering(202))
    async with guarded_session(LOOPBACK) as session:
        for n in range(3):
            attempt = await deliver(receiver.url(), signed(f"unl_{n}"), BODY, session=session)
            assert attempt.outcome == "delivered"
        with pytest.raises(TypeError, match="guarded_session"):
            await deliver(receiver.url(), signed(), BODY, allow=LOOPBACK, session=session)
    async with aiohttp.ClientSession() as plain:
        with pytest.raises(TypeError, match="guarded_session"):
            await deliver(receiver.url(), signed(), BODY, session=plain)
    assert [r.headers["webhook-id"] for r in receiver.requests] == ["unl_0", "unl_1", "unl_2"]


# --- refused destinations ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listen_on", "url_host", "address"),
    [
        ("127.0.0.2", "127.0.0.2", "127.0.0.2"),
        ("127.0.0.1", "127.0.0.1", "127.0.0.1"),
        ("127.0.0.1", "2130706433", "127.0.0.1"),  # decimal
        ("127.0.0.1", "0x7f000001", "127.0.0.1"),  # hex
        ("127.0.0.1", "0x7f.1", "127.0.0.1"),
        ("127.0.0.1", "0177.0.0.1", "127.0.0.1"),  # octal
        ("127.0.0.1", "127.1", "127.0.0.1"),
        ("127.0.0.1", "[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("127.0.0.1", "①②⑦.0.0.1", "127.0.0.1"),  # full-width digits, normalized by the URL parser
        ("::1", "[::1]", "::1"),
        ("127.0.0.1", "localhost", "127.0.0.1"),  # a name: refused on what it resolves to
    ],
)
async def test_loopback_is_refused_in_every_spelling_without_an_allow_list(
    servers: Servers, listen_on: str, url_host: str, address: str
) -> None:
    listener = await servers.listener(listen_on)
    attempt = await deliver(f"http://{url_host}:{listener.port}/hook", signed(), BODY)
    assert_refused(attempt, address)
    await asyncio.sleep(0.05)  # not a wait: the window in which a connection would show up
    assert listener.connections == 0


async def test_the_allow_list_admits_only_what_it_names(servers: Servers) -> None:
    allowed = await servers.receiver()
    other = await servers.listener("127.0.0.2")
    assert (await deliver(allowed.url(), signed(), BODY, allow=LOOPBACK)).outcome == "delivered"
    attempt = await deliver(f"http://127.0.0.2:{other.port}/hook", signed(), BODY, allow=LOOPBACK)
    assert_refused(attempt, "127.0.0.2")
    await asyncio.sleep(0.05)  # not a wait: the window in which a connection would show up
    assert other.connections == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://0xa9.0xfe.0xa9.0xfe/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://100.64.0.1/",
        "http://[fd00::1]/",
    ],
)
async def test_private_and_metadata_addresses_are_refused_before_any_connect(
    no_network: NetworkSpy, url: str
) -> None:
    attempt = await deliver(url, signed(), BODY)
    assert attempt.outcome == "retry" and attempt.status is None
    assert "is not a public address" in attempt.error
    assert no_network.connects == [] and no_network.lookups == []


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://10.0.0.1/hook", "10.0.0.1"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("http://[::1]:9/", "::1"),
        ("http://[::ffff:127.0.0.1]:9/", "::ffff:7f00:1"),
        ("http://①②⑦.0.0.1:9/", "127.0.0.1"),
    ],
)
async def test_the_session_itself_refuses_at_connect_time(
    no_network: NetworkSpy, url: str, address: str
) -> None:
    # No URL pre-check here: the guarded connector alone must stop literal addresses.
    async with guarded_session() as session:
        with pytest.raises(aiohttp.ClientConnectorError) as err:
            await session.post(url, data=BODY)
    assert isinstance(err.value.os_error, DestinationRefused)
    assert err.value.os_error.address == address
    assert no_network.connects == [] and no_network.lookups == []


@pytest.mark.parametrize(
    ("name", "addresses", "refused"),
    [
        ("metadata.test", ["169.254.169.254"], "169.254.169.254"),
        ("intranet.test", ["10.0.0.1"], "10.0.0.1"),
        ("v6.test", ["2606:4700::1111", "fe80::1"], "fe80::1"),
        # one private answer among public ones refuses the name as a whole (DNS rebinding)
        ("rebind.test", ["93.184.216.34", "10.0.0.1"], "10.0.0.1"),
    ],
)
async def test_names_are_refused_on_what_they_resolve_to(
    no_network: NetworkSpy, name: str, addresses: list[str], refused: str
) -> None:
    resolver = FakeResolver({name: addresses})
    async with guarded_session(resolver=resolver) as session:
        attempt = await deliver(f"http://{name}/hook", signed(), BODY, session=session)
    assert_refused(attempt, refused)
    assert f"(from {name})" in attempt.error
    assert no_network.connects == [] and no_network.lookups == []


async def test_a_name_resolving_to_an_allowed_address_is_delivered(servers: Servers) -> None:
    receiver = await servers.receiver(answering(200))
    resolver = FakeResolver({"receiver.test": ["127.0.0.1"]})
    async with guarded_session(LOOPBACK, resolver=resolver) as session:
        url = f"http://receiver.test:{receiver.port}/hook"
        attempt = await deliver(url, signed(), BODY, session=session)
    assert attempt.outcome == "delivered"
    [got] = receiver.requests
    assert got.headers["Host"] == f"receiver.test:{receiver.port}"
    assert got.verified


def test_an_attempt_error_never_shows_the_url_token() -> None:
    """Library messages may quote the URL; the attempts log (kudos webhooks log) must not."""
    url = "https://hooks.example/T0/B1/s3cr3t?sig=abc"
    attempt = Attempt("retry", None, 1.0, error=f"the webhook URL is not valid ({url}); fix it")
    hidden = hide_url(attempt, url)
    assert "s3cr3t" not in hidden.error and "abc" not in hidden.error
    assert "https://hooks.example/T0/***" in hidden.error
    assert hide_url(Attempt("delivered", 200, 1.0), url).error == ""
