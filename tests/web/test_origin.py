"""Browsers and DNS rebinding: who may post events and which Host names the web process answers.

A page on any site can make a visitor's browser POST to any address it can reach, the loopback
stack included, without asking first when the body's type is ``text/plain``, a form, or none (a
CORS "simple request"). Ingest therefore refuses a POST whose ``Origin`` is another site (403) and
reads only JSON and NDJSON bodies (415): a browser must ask (preflight) before sending those, and
the web process never says yes. A page that rebinds its own name to 127.0.0.1 is same-origin with
itself, so a loopback web process also refuses Host names other than its own (421).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import orjson
import pytest
from websockets.datastructures import Headers

from kudos import servers
from leaderboard.errors import ConfigError
from leaderboard.scoring import ScoringRules
from leaderboard.settings import WebSettings
from tests.conftest import Namespace, configure
from tests.web.live import start_web
from tests.web.test_ingest import FakeBroker, board, ev, ndjson, settle
from web.hosts import AllowedHosts
from web.ingest import Ingest

KINDS = ScoringRules.load().kinds


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, str, Any]:
    """One request with exactly these headers (``http.client`` adds only Host, unless given, and
    Content-Length; urllib would add a form Content-Type to every POST)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request(method, path, body, headers or {})
        r = conn.getresponse()
        data = r.read()
        parsed = orjson.loads(data) if r.getheader("Content-Type") == "application/json" else data
        return r.status, r.reason, parsed
    finally:
        conn.close()


def upgrade(port: int, host: str) -> bytes:
    """The status line of a websocket handshake to /ws sent with ``Host: host``."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(
            f"GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        data = b""
        while b"\r\n" not in data and (chunk := s.recv(4096)):
            data += chunk
    return data.partition(b"\r\n")[0]


@contextlib.contextmanager
def web(ns: Namespace, **env: str) -> Iterator[int]:
    port = ns.settings.web.port
    proc: subprocess.Popen[bytes] = start_web(ns, port, **env)
    try:
        yield port
    finally:
        servers.stop(proc)


# -- the content-type decision (pure) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("application/json", 202),
        ("application/x-ndjson", 202),
        ("application/x-ndjson; charset=utf-8", 202),
        ('Application/JSON; Charset="UTF-8"', 202),
        ("text/plain", 415),
        ("text/plain;charset=UTF-8", 415),  # what fetch() sends with a string body
        ("application/x-www-form-urlencoded", 415),  # curl --data-binary without -H
        ("multipart/form-data; boundary=x", 415),
        (None, 415),  # fetch() with a Blob or ArrayBuffer body: no type, still no preflight
        ("application/json; charset=iso-8859-1", 415),  # JSON is UTF-8 (RFC 8259)
        ("application/jsonx", 415),
    ],
)
async def test_only_json_and_ndjson_bodies_are_read(content_type: str | None, status: int) -> None:
    broker = FakeBroker()
    headers = Headers({"Content-Type": content_type} if content_type else {})
    body = ndjson(ev("c1", "like", "a", "b"))
    answer = await Ingest(broker.send, kinds=KINDS, partitions=4).handle("POST", headers, body)
    assert answer.status == status
    if status == 415:
        assert broker.sent == []
        error = orjson.loads(answer.body)["error"]
        assert "application/json" in error and "application/x-ndjson" in error


async def test_an_anonymous_client_gets_401_before_415() -> None:
    ingest = Ingest(FakeBroker().send, kinds=KINDS, partitions=4, token="s3cret")
    answer = await ingest.handle("POST", Headers({"Content-Type": "text/plain"}), b"{}")
    assert answer.status == 401


# -- the Host allow-list (pure) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listen", "allowed", "host", "answered"),
    [
        # loopback, nothing configured: the loopback names and the listen address only
        ("127.0.0.1", "", "127.0.0.1:8000", True),
        ("127.0.0.1", "", "127.0.0.1", True),
        ("127.0.0.1", "", "localhost:8000", True),
        ("127.0.0.1", "", "LOCALHOST", True),
        ("127.0.0.1", "", "[::1]:8000", True),
        ("127.0.0.1", "", "evil.example", False),
        ("127.0.0.1", "", "evil.example:8000", False),
        ("127.0.0.1", "", "localhost.evil.example:8000", False),
        ("127.0.0.1", "", "127.0.0.1.nip.io:8000", False),
        ("127.0.0.1", "", None, False),
        ("127.0.0.1", "", "", False),
        ("127.0.0.2", "", "127.0.0.2:8000", True),  # its own listen address
        ("127.0.0.2", "", "evil.example", False),
        ("::1", "", "[::1]:8000", True),
        ("::1", "", "evil.example", False),
        ("localhost", "", "evil.example", False),
        # loopback, listed: those too, with the port when the entry has one
        ("127.0.0.1", "kudos.test", "kudos.test:8000", True),
        ("127.0.0.1", "kudos.test:9000", "kudos.test:8000", False),
        ("127.0.0.1", "kudos.test:9000", "kudos.test:9000", True),
        ("127.0.0.1", " Kudos.Test , other.test ", "other.test", True),
        ("127.0.0.1", "kudos.test", "localhost:8000", True),  # health checks keep working
        ("127.0.0.1", "kudos.test", "evil.example", False),
        ("127.0.0.1", "*", "evil.example", True),
        # any other address, nothing configured: any Host (a proxy or DNS name in front)
        ("0.0.0.0", "", "evil.example", True),
        ("0.0.0.0", "", None, True),
        ("::", "", "evil.example", True),
        ("", "", "evil.example", True),
        ("10.1.2.3", "", "evil.example", True),
        # ... unless listed
        ("0.0.0.0", "kudos.example.com", "kudos.example.com", True),
        ("0.0.0.0", "kudos.example.com", "evil.example", False),
        ("0.0.0.0", "kudos.example.com", "127.0.0.1:8000", True),
    ],
)
def test_the_host_allow_list(listen: str, allowed: str, host: str | None, answered: bool) -> None:
    hosts = AllowedHosts.of(WebSettings(host=listen, port=8000, allowed_hosts=allowed))
    assert hosts.allows(host) is answered


@pytest.mark.parametrize("entry", ["https://kudos.test", "kudos.test:http", "[::1", "kudos.test/"])
def test_a_malformed_host_entry_is_a_config_error(entry: str) -> None:
    with pytest.raises(ConfigError, match="KUDOS_WEB_ALLOWED_HOSTS"):
        AllowedHosts.of(WebSettings(allowed_hosts=f"localhost,{entry}"))


# -- a real web process, broker and worker -------------------------------------------------------


@pytest.mark.integration
async def test_a_page_on_another_site_cannot_post_events(namespace: Namespace) -> None:
    configure(
        namespace,
        web=replace(namespace.settings.web, allowed_origins="https://friend.example"),
    )
    namespace.start_worker()
    json_type = {"Content-Type": "application/json"}
    with web(namespace) as port:

        def one(target: str) -> bytes:
            return orjson.dumps(ev(f"id-{target}", "share", "fan", target))

        refused = {
            "evil": ({**json_type, "Origin": "https://evil.example"}, 403),
            "sandboxed": ({**json_type, "Origin": "null"}, 403),
            "same-port": ({**json_type, "Origin": f"http://evil.example:{port}"}, 403),
            "plain": ({"Content-Type": "text/plain;charset=UTF-8"}, 415),
            "form": ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
            "untyped": ({}, 415),
        }
        for target, (headers, status) in refused.items():
            got, reason, out = request(port, "POST", "/api/events", one(target), headers)
            assert (got, target) == (status, target), out
            assert "accepted" not in out
            if status == 403:
                assert reason == "Forbidden" and "KUDOS_WEB_ALLOWED_ORIGINS" in out["error"]
            else:
                assert reason == "Unsupported Media Type"
                assert "Content-Type: application/json" in out["error"]

        accepted = {
            "own-page": {**json_type, "Origin": f"http://127.0.0.1:{port}"},
            "friend": {**json_type, "Origin": "https://friend.example"},
            "ndjson": {"Content-Type": "application/x-ndjson; charset=utf-8"},
            "curl": json_type,
        }
        for target, headers in accepted.items():
            got, _, out = request(port, "POST", "/api/events", one(target), headers)
            assert (got, target, out["accepted"]) == (202, target, 1)
        await settle(namespace)

    # nothing of a refused request reached the topic: the worker saw only the accepted ones
    assert sorted(m for m, _ in await board(namespace, "all")) == sorted(accepted)
    stats = await namespace.store.stats()
    assert (stats["applied"], stats["dead_lettered"]) == (len(accepted), 0)


@pytest.mark.integration
async def test_a_loopback_web_process_answers_only_its_own_names(namespace: Namespace) -> None:
    event = orjson.dumps(ev("h1", "like", "a", "b"))
    json_type = {"Content-Type": "application/json"}
    with web(namespace) as port:
        for host in ("evil.example", f"evil.example:{port}"):
            for method, path, body in (
                ("GET", "/api/boards", None),
                ("GET", "/healthz", None),
                ("POST", "/api/events", event),
            ):
                # DNS rebinding: the page's origin is its own name, so the Origin check passes
                headers = {"Host": host, "Origin": f"http://{host}", **json_type}
                status, reason, out = request(port, method, path, body, headers)
                assert (status, reason) == (421, "Misdirected Request"), (method, path, out)
                assert "KUDOS_WEB_ALLOWED_HOSTS" in out["error"]
            assert upgrade(port, host) == b"HTTP/1.1 421 Misdirected Request"

        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}"):
            status, _, out = request(port, "GET", "/api/boards", headers={"Host": host})
            assert status == 200 and "boards" in out, host
            assert upgrade(port, host) == b"HTTP/1.1 101 Switching Protocols", host
        status, _, out = request(
            port, "POST", "/api/events", b"{}", {"Host": f"localhost:{port}", **json_type}
        )
        assert (status, out["rejected"]) == (202, 1)

    # a name of its own, added to the list (as behind a proxy that keeps the Host header)
    with web(namespace, KUDOS_WEB_ALLOWED_HOSTS="kudos.test") as port:
        status, _, _ = request(port, "GET", "/api/boards", headers={"Host": f"kudos.test:{port}"})
        assert status == 200
        assert upgrade(port, "kudos.test") == b"HTTP/1.1 101 Switching Protocols"
        assert request(port, "GET", "/api/boards", headers={"Host": "evil.example"})[0] == 421
