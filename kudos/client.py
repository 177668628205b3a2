"""A Python client of the live push protocol (docs/protocol.md, docs/clients.md)::

    async with Client("ws://127.0.0.1:8000/ws") as client:
        async for update in client.subscribe("board:week", limit=10):
            print(update.kind, [(e["rank"], e["member"]) for e in update.entries])

It connects, greets, authenticates, subscribes, hands over every channel's updates in order and
at most once (a snapshot, then deltas already applied to ``update.entries``), and when the
connection drops reconnects with backoff and resumes every channel from its last frame.
:mod:`kudos.subscriptions` is its sans-I/O core; ``kudos watch`` and ``examples/chat_bot.py``
are built on it.

Several channels: subscribe to each, then read them all, in arrival order, from
:meth:`Client.updates`; or read each :class:`Subscription` in a task of its own (whichever task
is reading drives the connection for the others).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from kudos.subscriptions import Subscriptions, Update
from leaderboard.errors import LiveError
from web.protocol import CLOSE_POLICY, PROTOCOL

#: Reconnect delays (seconds): the first, doubled per failed attempt up to the cap, ±20 % each.
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
#: The server lets a client burst 40 messages; beyond that the subscribes are paced.
BURST = 30
#: Updates one reader may fall behind by before its backlog is replaced by a fresh snapshot of
#: each channel (the server conflates a slow client the same way).
MAX_PENDING = 1000
#: Wait after an ``unavailable`` error before asking again.
RETRY_S = 1.0
HELLO_TIMEOUT_S = 10.0


class _Sink:
    """One reader's queue: a channel's updates, or every channel's (``channel`` None)."""

    def __init__(self, channel: str | None) -> None:
        self.channel = channel
        self.items: deque[Update] = deque()
        self.wake = asyncio.Event()
        #: it fell behind by MAX_PENDING: its backlog was dropped, snapshots come next
        self.behind = False
        self.done: BaseException | None = None

    def wants(self, u: Update) -> bool:
        return self.channel is None or self.channel == u.channel


class Client:
    """One websocket connection (re-opened as needed) carrying every channel subscribed.

    ``on_frame(raw, frame)`` sees every frame as it arrives (``hello`` and replies included);
    ``on_notice(text)`` hears what a person would want to know (reconnecting, resumed, a
    protocol mismatch). Errors the client cannot get past raise :class:`LiveError` from the
    reader: no server at the first attempt, a refused token, a server that is not Kudos.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str = "",
        on_frame: Callable[[str, dict[str, Any]], None] | None = None,
        on_notice: Callable[[str], None] | None = None,
        backoff_first: float = BACKOFF_FIRST_S,
        backoff_max: float = BACKOFF_MAX_S,
        open_timeout: float = 10.0,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.url = url
        self.token = token
        self._on_frame = on_frame
        self._on_notice = on_notice
        self._backoff = (backoff_first, backoff_max)
        self._open_timeout = open_timeout
        self._max_pending = max_pending
        self.subs = Subscriptions()
        self._ws: ClientConnection | None = None
        self._attempt = 0
        self._connected_once = False
        self._lost = ""  # why the last connection ended (said when reconnecting)
        self._sinks: list[_Sink] = []
        self._driving = False
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the application's side ---------------------------------------------------------------

    def subscribe(
        self, channel: str, *, limit: int | None = None, members: Iterable[str] = ()
    ) -> Subscription:
        """Follow ``channel`` (``board:<board>``, ``member:<id>``, ``cohort:<board>`` with
        ``members``, ``alerts``); subscribing again replaces the limit or the cohort. Refuses
        with :class:`LiveError` what the server would refuse."""
        self._send_soon(self.subs.add(channel, limit, tuple(members)))
        return Subscription(self, channel)

    async def unsubscribe(self, channel: str) -> None:
        for msg in self.subs.remove(channel):
            await self._send(msg)

    def updates(self) -> AsyncIterator[Update]:
        """Every channel's updates in the order they arrive, errors included (``kind`` error;
        ``fatal`` when the channel was dropped)."""
        return self._read(_Sink(None))

    def position(self, channel: str) -> tuple[str, int] | None:
        """``(epoch, seq)`` of the last frame applied on ``channel``."""
        return self.subs.position(channel)

    async def close(self) -> None:
        """Close the connection (1000) and end every reader."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        self._wake_all()

    # -- readers ----------------------------------------------------------------------------------

    async def _read(self, sink: _Sink) -> AsyncIterator[Update]:
        self._sinks.append(sink)
        try:
            while True:
                u = await self._next(sink)
                if u is None:
                    return
                yield u
        finally:
            self._sinks.remove(sink)

    async def _next(self, sink: _Sink) -> Update | None:
        """The sink's next update, driving the connection while nobody else does."""
        while True:
            if sink.behind:
                sink.behind = False
                snaps = [self.subs.snapshot(n) for n in list(self.subs.channels)]
                sink.items.extend(u for u in snaps if u is not None and sink.wants(u))
            if sink.items:
                return sink.items.popleft()
            if sink.done is not None:
                raise sink.done
            if self._closed:
                return None
            if self._driving:
                sink.wake.clear()
                await sink.wake.wait()
                continue
            self._driving = True
            try:
                await self._step()
            finally:
                self._driving = False
                self._wake_all()

    def _deliver(self, updates: Iterable[Update]) -> None:
        for u in updates:
            for sink in self._sinks:
                if not sink.wants(u):
                    continue
                if sink.channel is not None and u.kind == "error":
                    if u.fatal:
                        code, msg = str(u.frame.get("code")), str(u.frame.get("message"))
                        sink.done = LiveError(code, f"cannot follow {u.channel}: {msg}")
                    continue  # a retried error: the subscription goes on
                if sink.behind:
                    continue  # the snapshot it gets next holds this update too
                if len(sink.items) >= self._max_pending:
                    sink.items.clear()
                    sink.behind = True
                    continue
                sink.items.append(u)

    def _wake_all(self) -> None:
        for sink in self._sinks:
            sink.wake.set()

    def _notice(self, text: str) -> None:
        if self._on_notice is not None:
            self._on_notice(text)

    # -- the connection ------------------------------------------------------------------------

    async def _step(self) -> None:
        """Connect if there is no connection; else read and apply one frame."""
        try:
            if self._ws is None:
                await self._open()
                return
            raw = await self._ws.recv()
            self._receive(raw)
        except ConnectionClosed as exc:
            rcvd = exc.rcvd
            code, why = (rcvd.code, rcvd.reason) if rcvd else (None, "")
            if code == CLOSE_POLICY:
                self._fail(
                    LiveError(
                        "refused", f"the server refused this client: {why or 'policy violation'}"
                    )
                )
                return
            self._down(f"connection lost ({code or 'no close frame'}{': ' + why if why else ''})")
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            what = str(exc) or type(exc).__name__
            if not self._connected_once:
                self._fail(
                    LiveError(
                        "unreachable", f"cannot reach the Kudos web process at {self.url} ({what})"
                    )
                )
                return
            self._down(f"cannot reconnect ({what})")
        except LiveError as exc:
            self._fail(exc)

    async def _open(self) -> None:
        if self._attempt:
            first, cap = self._backoff
            delay = min(cap, first * 2 ** (self._attempt - 1)) * random.uniform(0.8, 1.2)
            self._notice(f"{self._lost}; reconnecting in {delay:.1f} s")
            await asyncio.sleep(delay)
        self._attempt += 1
        ws = await connect(
            self.url, open_timeout=self._open_timeout, max_size=16 << 20, close_timeout=2
        )
        try:
            raw = await asyncio.wait_for(ws.recv(), HELLO_TIMEOUT_S)
            hello = self._decode(raw)
            if not isinstance(hello, dict) or hello.get("type") != "hello":
                raise LiveError(
                    "protocol", f"{self.url} sent no hello frame: is it a Kudos web process?"
                )
            if hello.get("protocol") != PROTOCOL:
                self._notice(
                    f"the server speaks protocol {hello.get('protocol')}, this client {PROTOCOL}"
                )
            if (hello.get("limits") or {}).get("auth") and not self.token:
                raise LiveError("auth", "the server requires a token")
            if self.token:
                await ws.send(orjson.dumps({"op": "auth", "token": self.token}).decode())
            if self._connected_once:
                self._notice(f"reconnected to {self.url}; resuming")
            self._ws = ws
            self._connected_once = True
            for i, msg in enumerate(self.subs.on_connect()):
                if i and i % BURST == 0:  # stay under the server's message rate
                    await asyncio.sleep(0.1)
                await ws.send(orjson.dumps(msg).decode())
        except BaseException:
            if self._ws is not ws:
                with contextlib.suppress(Exception):
                    await ws.close()
            raise

    def _decode(self, raw: str | bytes) -> Any:
        try:
            frame = orjson.loads(raw)
        except orjson.JSONDecodeError:
            frame = None
        if self._on_frame is not None and isinstance(frame, dict):
            self._on_frame(raw if isinstance(raw, str) else raw.decode(errors="replace"), frame)
        return frame

    def _receive(self, raw: str | bytes) -> None:
        frame = self._decode(raw)
        if not isinstance(frame, dict):
            self._notice(f"ignored a frame that is not a JSON object: {raw[:80]!r}")
            return
        # the connection works (a server that greets and then drops every client keeps the
        # backoff growing: it is reset by the first frame after the hello, not by the hello)
        self._attempt = 0
        actions = self.subs.receive(frame)
        for text in actions.notices:
            self._notice(text)
        self._send_soon(actions.send)
        for name in actions.retry:
            self._later(name)
        self._deliver(actions.updates)

    def _down(self, reason: str) -> None:
        self._ws = None
        self._lost = reason
        self._attempt = max(self._attempt, 1)
        self.subs.on_disconnect()

    def _fail(self, exc: LiveError) -> None:
        """An error nothing can get past: every reader raises it."""
        self._down(str(exc))
        self._closed = True
        for sink in self._sinks:
            sink.done = exc

    def _send_soon(self, msgs: list[dict[str, Any]]) -> None:
        for msg in msgs:
            task = asyncio.get_running_loop().create_task(self._send(msg))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, msg: dict[str, Any]) -> None:
        ws = self._ws
        if ws is None:
            return  # the next connection subscribes to everything again
        with contextlib.suppress(ConnectionClosed):
            await ws.send(orjson.dumps(msg).decode())

    def _later(self, name: str) -> None:
        async def again() -> None:  # e.g. "unavailable": Redis is down for a moment
            await asyncio.sleep(RETRY_S)
            for msg in self.subs.resubscribe(name):
                await self._send(msg)

        task = asyncio.get_running_loop().create_task(again())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class Subscription:
    """One channel's updates (``async for update in subscription``): snapshots, deltas,
    events and resumes; a refusal of the channel raises :class:`LiveError`."""

    def __init__(self, client: Client, channel: str) -> None:
        self.client = client
        self.channel = channel

    def __aiter__(self) -> AsyncIterator[Update]:
        return self.client._read(_Sink(self.channel))

    async def close(self) -> None:
        """Stop following the channel."""
        await self.client.unsubscribe(self.channel)
