"""Reading request bodies in front of websockets (web/http_body.py): the head plan (pure), then
a real websockets server on a socket, fed byte by byte."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest
import pytest_asyncio
import websockets
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from web.http_body import MAX_HEAD, BodyConnection, HeadBuffer, connection_class, plan_head

MAX = 1000


def head(*lines: str) -> bytes:
    return "\r\n".join(lines).encode()


@pytest.mark.parametrize(
    ("raw", "length", "refused"),
    [
        (head("GET /ws HTTP/1.1", "Host: x", "Upgrade: websocket"), 0, None),
        (head("POST /api/events HTTP/1.1", "Host: x"), 0, None),
        (head("POST /api/events HTTP/1.1", "Content-Length: 0"), 0, None),
        (head("POST /api/events HTTP/1.1", "Content-Length: 12"), 12, None),
        (head("POST /api/events HTTP/1.1", "content-length:  1000 "), 1000, None),
        (head("POST /api/events HTTP/1.1", "Content-Length: 1001"), 0, 413),
        (head("POST /api/events HTTP/1.1", "Content-Length: 99999999999999999999"), 0, 400),
        (head("POST /api/events HTTP/1.1", "Content-Length: -1"), 0, 400),
        (head("POST /api/events HTTP/1.1", "Content-Length: 5", "Content-Length: 6"), 0, 400),
        (head("POST /api/events HTTP/1.1", "Transfer-Encoding: chunked"), 0, 411),
    ],
)
def test_plan_head(raw: bytes, length: int, refused: int | None) -> None:
    plan = plan_head(raw, MAX)
    assert plan.length == length
    assert (plan.refused or (None,))[0] == refused
    if plan.has_body:  # websockets gets a head without a body of its own
        assert b"content-length" not in plan.head.lower()
        assert b"transfer-encoding" not in plan.head.lower()
        assert plan.head.startswith(b"POST /api/events HTTP/1.1")
    else:
        assert plan.head == raw


def test_a_get_keeps_websockets_rules() -> None:
    """websockets refuses a GET with a body (a handshake has none); that stays its decision."""
    raw = head("GET /api/boards HTTP/1.1", "Content-Length: 5")
    assert plan_head(raw, MAX).head == raw and not plan_head(raw, MAX).has_body


def test_expect_100_continue_is_noticed() -> None:
    raw = head("POST / HTTP/1.1", "Content-Length: 3", "Expect: 100-Continue")
    assert plan_head(raw, MAX).expect_continue
    assert not plan_head(head("POST / HTTP/1.1", "Content-Length: 3"), MAX).expect_continue


@pytest.mark.parametrize("step", [1, 2, 3, 5, 4096])
def test_the_end_of_a_trickled_head_is_found_looking_at_each_byte_a_few_times(step: int) -> None:
    raw = b"POST /x HTTP/1.1\r\n" + b"X-Pad: " + b"p" * (MAX_HEAD - 40) + b"\r\n\r\nbody"
    buffer, end, i = HeadBuffer(), -1, 0
    while end < 0:
        end = buffer.feed(raw[i : i + step])
        i += step
    assert end == raw.index(b"\r\n\r\n") and bytes(buffer.data) == raw[:i]
    # searching the whole buffer again on every byte looked at each byte ~8,000 times
    assert buffer.scanned <= 4 * len(raw)


async def echo(connection: ServerConnection, request: Request) -> Response | None:
    if request.path == "/ws":
        return None
    assert isinstance(connection, BodyConnection)
    body = orjson.dumps(
        {
            "method": request.method,
            "body": None if connection.request_body is None else connection.request_body.decode(),
            "refused": connection.body_refused,
            "content_length": request.headers.get("Content-Length"),
        }
    )
    return Response(200, "OK", Headers([("Content-Length", str(len(body)))]), body)


async def talk(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


@pytest_asyncio.fixture
async def port() -> AsyncIterator[int]:
    async with serve(
        talk,
        "127.0.0.1",
        0,
        process_request=echo,
        create_connection=connection_class(MAX),
        close_timeout=1,  # how long a half-closed client's connection lingers after its answer
    ) as server:
        yield server.sockets[0].getsockname()[1]


async def exchange(port: int, raw: bytes, step: int = 1) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for i in range(0, len(raw), step):  # in small pieces: heads and bodies split anywhere
        writer.write(raw[i : i + step])
        await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return data


def answer(data: bytes) -> dict[str, object]:
    status, _, body = data.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 200"), data
    out: dict[str, object] = orjson.loads(body)
    return out


async def test_a_body_is_read_and_handed_over(port: int) -> None:
    raw = b"POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello\nworld"
    for step in (1, 7, len(raw)):
        assert answer(await exchange(port, raw, step)) == {
            "method": "POST",
            "body": "hello\nworld",
            "refused": None,
            "content_length": None,
        }


async def test_bytes_after_the_body_are_dropped(port: int) -> None:
    raw = b"PUT /x HTTP/1.1\r\nContent-Length: 2\r\n\r\nokGET / HTTP/1.1\r\n\r\n"
    out = answer(await exchange(port, raw, 5))
    assert (out["method"], out["body"]) == ("PUT", "ok")


async def test_a_refused_body_is_not_read(port: int) -> None:
    raw = b"POST /api/events HTTP/1.1\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000
    out = answer(await exchange(port, raw, 1000))
    assert out["body"] is None and out["refused"][0] == 413  # type: ignore[index]


async def test_requests_without_a_body_and_websockets_are_untouched(port: int) -> None:
    out = answer(await exchange(port, b"GET /api/boards HTTP/1.1\r\nHost: x\r\n\r\n", 3))
    assert out == {"method": "GET", "body": None, "refused": None, "content_length": None}
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
        await ws.send("ping" * 100)
        assert await ws.recv() == "ping" * 100


async def test_a_client_that_half_closes_after_its_body_gets_an_answer(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /api/events HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi")
    writer.write_eof()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert answer(data)["body"] == "hi"


def padded(start: bytes, size: int) -> bytes:
    """A head beginning with ``start`` and ``size`` bytes long through its blank line, padded
    with header lines short enough for websockets (8 KiB a line)."""
    head, n = start, 0
    while len(head) + 4 < size:
        line = b"\r\nX-Pad-%d: " % n
        head += line + b"p" * min(4000, size - 4 - len(head) - len(line))
        n += 1
    assert len(head) + 4 == size
    return head + b"\r\n\r\n"


async def test_a_head_over_the_limit_is_refused(port: int) -> None:
    # never ended: refused once it passes the limit (the client sends no more)
    endless = padded(b"GET /ws HTTP/1.1", MAX_HEAD + 8)[:-4]
    assert (await exchange(port, endless, 4096)).startswith(b"HTTP/1.1 431 ")
    # ended, but too long, in one piece
    big = padded(b"POST /api/events HTTP/1.1\r\nContent-Length: 2", MAX_HEAD + 1) + b"ok"
    assert (await exchange(port, big, len(big))).startswith(b"HTTP/1.1 431 ")
    # just within it, trickled: read as usual
    fits = padded(b"POST /api/events HTTP/1.1\r\nContent-Length: 2", MAX_HEAD) + b"ok"
    assert answer(await exchange(port, fits, 1))["body"] == "ok"


async def test_a_cut_off_request_is_dropped(port: int) -> None:
    for raw in (
        b"POST /api/events HTTP/1.1\r\nContent-Le",
        b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc",
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw)
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
