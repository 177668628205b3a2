"""Request bodies on the websocket port, for ``POST /api/events``.

``websockets`` parses only what an opening handshake needs: its ``Request`` has no body, and
``Request.parse`` refuses any request with a non-zero ``Content-Length`` or a
``Transfer-Encoding`` by closing the connection without an answer. Nothing in its API reads a
body. Rather than a second HTTP server on a second port (one more port for proxies, compose files
and health checks to know, and the contract puts HTTP on the websocket's port), the web process
puts a small filter in front of the websocket protocol: :class:`BodyConnection` (passed to
``serve(create_connection=...)``) looks at the request head as it arrives and

- passes a GET, or any request without a body, on untouched: websockets parses it, and
  everything after (handshake, frames) is websockets' own code, byte for byte;
- for another method with ``Content-Length: n`` (at most ``max_body``), reads the n bytes itself,
  keeps them on the connection (``request_body``), and hands websockets the head without its
  ``Content-Length`` line, so websockets sees a body-less request and calls ``process_request``;
- refuses a bigger body (413), an unreadable length (400) or a chunked one (411) without reading
  it: websockets again gets the bare head, and ``process_request`` answers with
  ``body_refused``;
- answers a head (request line and headers, through the blank line) of more than
  :data:`MAX_HEAD` bytes itself with 431 and closes the connection, whatever the method.

Such a request can never become a websocket (websockets upgrades GETs only), so whatever the
client sends after the body is dropped; the answer ends the connection, as every plain HTTP
answer of websockets does. ``Expect: 100-continue`` is honoured (curl sends it for bodies over
1 KiB). The whole upload counts against websockets' ``open_timeout`` (10 s), so a slow client
cannot hold a connection open.

Only the asyncio ``Protocol`` interface (``data_received``) and ``create_connection``, both
public, are used; websockets' internals are not touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from websockets.asyncio.server import ServerConnection

#: The largest request head read, through its blank line (Node.js's default). websockets itself
#: allows 8 KiB a line and 128 headers (about 1 MiB); browsers' heads are a few KiB.
MAX_HEAD = 16 * 1024
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_HEAD_TOO_LARGE = (
    b"the request head is more than %d bytes; send fewer or shorter headers\n" % MAX_HEAD
)
HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8"
    b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(_HEAD_TOO_LARGE)
) + _HEAD_TOO_LARGE


class HeadBuffer:
    """The bytes of a request as they arrive, until the blank line that ends its head.

    Each piece is searched with the 3 bytes before it (a ``\\r\\n\\r\\n`` may straddle two
    pieces), never the whole buffer again: a head trickled one byte at a time costs linear time.
    """

    def __init__(self) -> None:
        self.data = bytearray()
        #: bytes looked at by the searches so far (what the linear bound is about)
        self.scanned = 0

    def feed(self, piece: bytes) -> int:
        """Append ``piece``; the offset of the blank line's ``\\r\\n\\r\\n`` in :attr:`data`, or
        -1 while it has not arrived."""
        start = max(0, len(self.data) - 3)
        self.data += piece
        self.scanned += len(self.data) - start
        return self.data.find(b"\r\n\r\n", start)


@dataclass(frozen=True, slots=True)
class HeadPlan:
    """What to do with a request whose head has arrived (see :func:`plan_head`).

    ``head`` is what websockets gets; ``length`` the body bytes to read first; ``refused`` the
    status and message to answer instead of reading a body.
    """

    head: bytes
    length: int = 0
    refused: tuple[int, str] | None = None
    expect_continue: bool = False

    @property
    def has_body(self) -> bool:
        return self.length > 0 or self.refused is not None


def plan_head(head: bytes, max_body: int) -> HeadPlan:
    """Decide how to read the request whose head (request line and headers, through the blank
    line) is ``head``. Pure: bytes in, a plan out."""
    lines = head.split(b"\r\n")
    method = lines[0].partition(b" ")[0]
    lengths: list[bytes] = []
    chunked = expect = False
    kept: list[bytes] = [lines[0]]
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            lengths.append(value.strip())
            continue
        if name == b"transfer-encoding":
            chunked = True
            continue
        if name == b"expect" and value.strip().lower() == b"100-continue":
            expect = True
        kept.append(line)
    if method == b"GET" or (not chunked and set(lengths) <= {b"0"}):
        return HeadPlan(head)  # websockets' own rules apply, unchanged
    bare = b"\r\n".join(kept)
    if chunked:
        return HeadPlan(
            bare, refused=(411, "chunked bodies are not supported; send Content-Length")
        )
    if len(set(lengths)) != 1 or not (lengths[0].isdigit() and len(lengths[0]) <= 18):
        return HeadPlan(bare, refused=(400, "Content-Length must be one decimal number"))
    length = int(lengths[0])
    if length > max_body:
        return HeadPlan(
            bare,
            refused=(
                413,
                f"the body is {length} bytes, more than the {max_body} this server takes "
                "(KUDOS_WEB_INGEST_MAX_BYTES); split it into smaller requests",
            ),
        )
    return HeadPlan(bare, length=length, expect_continue=expect)


class BodyConnection(ServerConnection):
    """A websockets server connection that also reads plain HTTP request bodies (module doc).

    After the request is parsed, ``request_body`` holds the body (None: the request had none)
    and ``body_refused`` why it was not read, as (HTTP status, message).
    """

    #: set by :func:`connection_class`
    max_body: int = 1 << 20

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request_body: bytes | None = None
        self.body_refused: tuple[int, str] | None = None
        self._head = HeadBuffer()
        # the bytes not yet handed on: while the head arrives, the head buffer's own
        self._pending = self._head.data
        self._plan: HeadPlan | None = None
        # "head": collecting the head; "body": reading a body; "pass": websockets reads
        # everything; "drop": the request (with its body) was handed over, ignore the rest
        self._mode = "head"

    def data_received(self, data: bytes) -> None:
        if self._mode == "pass":  # every websocket frame takes this branch first
            super().data_received(data)
        elif self._mode == "drop":
            pass
        elif self._mode == "head":
            end = self._head.feed(data)
            if end < 0 and len(self._pending) <= MAX_HEAD:
                return  # more to come
            if end < 0 or end + 4 > MAX_HEAD:
                self._refuse_head()
                return
            plan = plan_head(bytes(self._pending[:end]), self.max_body)
            if not plan.has_body:
                self._pass_on()
                return
            self._plan = plan
            del self._pending[: end + 4]
            if plan.refused is not None:
                self.body_refused = plan.refused
                self._hand_over()
                return
            self._mode = "body"
            if plan.expect_continue and len(self._pending) < plan.length:
                self.transport.write(CONTINUE)
            self._body_data()
        else:
            self._pending += data
            self._body_data()

    def eof_received(self) -> bool | None:  # type: ignore[override]  # asyncio allows True
        if self._mode == "drop" and not self.protocol.close_expected():
            # The client sent its whole request and closed its sending side before the answer
            # was sent. websockets would take that EOF for an aborted handshake and never
            # answer: keep it back, and keep the transport open (True) to write the answer;
            # websockets then drops the connection after its close_timeout.
            return True
        if self._mode == "head" and self._pending:
            self._pass_on()  # websockets reports the cut-off request as it always did
        super().eof_received()
        return None

    def _body_data(self) -> None:
        assert self._plan is not None
        if len(self._pending) >= self._plan.length:
            self.request_body = bytes(self._pending[: self._plan.length])
            self._hand_over()

    def _hand_over(self) -> None:
        assert self._plan is not None
        self._mode = "drop"
        self._pending = bytearray()
        super().data_received(self._plan.head + b"\r\n\r\n")

    def _refuse_head(self) -> None:
        # websockets has seen nothing: once the transport is closed its handshake ends quietly
        self._mode = "drop"
        self._pending = bytearray()
        self.transport.write(HEAD_TOO_LARGE)
        self.transport.close()

    def _pass_on(self) -> None:
        self._mode = "pass"
        data, self._pending = bytes(self._pending), bytearray()
        super().data_received(data)


def connection_class(max_body: int) -> type[BodyConnection]:
    """A :class:`BodyConnection` class reading bodies of up to ``max_body`` bytes, for
    ``serve(create_connection=...)``."""
    return type("BodyConnection", (BodyConnection,), {"max_body": max_body})


__all__ = ["MAX_HEAD", "BodyConnection", "HeadBuffer", "HeadPlan", "connection_class", "plan_head"]
