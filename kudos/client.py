"""A Python client of the live push protocol (docs/protocol.md, docs/clients.md)::

    async with Client("ws://127.0.0.1:8000/ws") as client:
        async for update in client.subscribe("board:week", limit=10):
            print(update.kind, [(e["rank"], e["member"]) for e in update.entries])

It connects, greets, authenticates, subscribes, hands over every channel's updates in order and
at most once (a snapshot, then deltas already applied to ``update.entries``), and when the
connection drops reconnects with backoff and resumes every channel from its last frame.
:mod:`kudos.subscriptions` is its sans-I/O core; ``kudos watch`` and ``examples/chat_bot.py``
are built on it.

One task of the client's own owns the socket: it reads every frame, applies it, and puts the
updates in each reader's queue; another sends, in order and paced under the server's rate
limit. Readers only wait on their queue, so a reader may be cancelled (a timeout around
``anext``) without losing anything, and several readers may run in tasks of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping
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
#: Outgoing messages per second and burst: under the server's 20/s with a burst of 40
#: (KUDOS_WEB_MAX_MESSAGES_PER_S), auth included.
SEND_RATE = 15.0
SEND_BURST = 30
#: Updates one reader may fall behind by before its backlog is replaced by a fresh snapshot of
#: each channel (the server conflates a slow client the same way).
MAX_PENDING = 1000
#: Wait before asking again after ``unavailable`` (Redis down for a moment) or a malformed frame.
RETRY_S = 1.0
HELLO_TIMEOUT_S = 10.0
#: The largest frame accepted: a top-100 snapshot or a cohort of 100 is tens of KB.
MAX_FRAME_BYTES = 1 << 20
#: Error updates one reader keeps waiting beyond its backlog (fatal ones always): replies to
#: its own requests, but a server could send any number.
MAX_PENDING_ERRORS = 100


class _Sink:
    """One reader's queue: a channel's updates, or every channel's (``channel`` None)."""

    def __init__(self, channel: str | None, frames: bool = False) -> None:
        self.channel = channel
        self.frames = frames
        self.items: deque[Update] = deque()
        self.wake = asyncio.Event()
        #: it fell behind by MAX_PENDING: its backlog was dropped, snapshots come next
        self.behind = False
        self.done: BaseException | None = None
        self.ended = False
        self.errors = 0  # error updates in items
        #: per channel, the rows and standings of the last update handed out (the ``previous``
        #: of a catch-up snapshot)
        self.last: dict[str, tuple[tuple[Mapping[str, Any], ...], Mapping[str, Any]]] = {}

    def wants(self, u: Update) -> bool:
        if u.kind == "frame" and not self.frames:
            return False
        return self.channel is None or self.channel == u.channel


class Client:
    """One websocket connection (re-opened as needed) carrying every channel subscribed.

    ``on_notice(text)`` hears what a person would want to know (reconnecting, resumed, a
    protocol mismatch). Errors the client cannot get past raise :class:`LiveError` from every
    reader: no server at the first attempt, a refused token, a server that is not Kudos.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str = "",
        on_notice: Callable[[str], None] | None = None,
        backoff_first: float = BACKOFF_FIRST_S,
        backoff_max: float = BACKOFF_MAX_S,
        open_timeout: float = 10.0,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.url = url
        self.token = token
        self._on_notice = on_notice
        self._backoff = (backoff_first, backoff_max)
        self._open_timeout = open_timeout
        self._max_pending = max_pending
        self.subs = Subscriptions()
        self._ws: ClientConnection | None = None
        self._connected_once = False
        self._sinks: weakref.WeakSet[_Sink] = weakref.WeakSet()
        self._closed = False
        self._failure: LiveError | None = None
        self._runner: asyncio.Task[None] | None = None
        self._outbox: deque[dict[str, Any]] = deque()
        self._out_wake = asyncio.Event()
        self._retries: dict[str, asyncio.TimerHandle] = {}
        self._served = False

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
        asyncio.get_running_loop()  # (refused before any state changes: the client needs one)
        self._cancel_retry(channel)
        self._queue(self.subs.add(channel, limit, tuple(members)))
        sub = Subscription(self, channel)
        self._register(sub._sink)
        return sub

    def unsubscribe(self, channel: str) -> None:
        """Stop following ``channel``; its readers end."""
        self._cancel_retry(channel)
        self._queue(self.subs.remove(channel))
        for sink in list(self._sinks):
            sink.last.pop(channel, None)
            if sink.channel == channel:
                sink.ended = True
                sink.wake.set()

    def updates(self, *, frames: bool = False) -> Reader:
        """Every channel's updates in the order they arrive, errors included (``kind`` error;
        ``fatal`` when the channel was dropped). With ``frames``, also every frame as it
        arrived (``kind`` frame: hello, replies and duplicates too), just before its updates."""
        asyncio.get_running_loop()
        reader = Reader(self, _Sink(None, frames))
        self._register(reader._sink)
        return reader

    def position(self, channel: str) -> tuple[str, int] | None:
        """``(epoch, seq)`` of the last frame applied on ``channel``."""
        return self.subs.position(channel)

    async def close(self) -> None:
        """Close the connection (1000) and end every reader."""
        self._closed = True
        for name in list(self._retries):
            self._cancel_retry(name)
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await runner
        self._wake_all()

    # -- readers ----------------------------------------------------------------------------------

    def _register(self, sink: _Sink) -> None:
        self._sinks.add(sink)
        if self._failure is not None:
            sink.done = self._failure
        elif self._runner is None and not self._closed:
            self._runner = asyncio.get_running_loop().create_task(self._run())

    async def _next(self, sink: _Sink) -> Update | None:
        while True:
            if sink.behind:
                sink.behind = False
                for name in list(self.subs.channels):
                    if sink.channel in (None, name):
                        seen = sink.last.get(name)
                        u = self.subs.snapshot(name, *(seen or ((), None)))
                        if u is not None:
                            sink.items.append(u)
            if sink.items:
                u = sink.items.popleft()
                if u.kind == "error":
                    sink.errors -= 1
                elif u.kind in ("snapshot", "delta", "event") and u.channel in self.subs.channels:
                    sink.last[u.channel] = (u.entries, u.boards)  # (a catch-up's previous)
                return u
            if sink.done is not None:
                raise sink.done
            if self._closed or sink.ended:
                return None
            sink.wake.clear()
            await sink.wake.wait()

    def _deliver(self, updates: Iterable[Update]) -> None:
        for u in updates:
            for sink in list(self._sinks):
                if not sink.wants(u):
                    continue
                if u.fatal:
                    sink.last.pop(u.channel, None)
                if sink.channel is not None and u.kind == "error":
                    if u.fatal:
                        code, msg = str(u.frame.get("code")), str(u.frame.get("message"))
                        sink.done = LiveError(code, f"cannot follow {u.channel}: {msg}")
                        sink.wake.set()
                    continue  # a retried error: the subscription goes on
                if u.kind == "error":  # kept through a catch-up; a fatal one always
                    if sink.errors >= MAX_PENDING_ERRORS and not u.fatal:
                        continue
                    sink.errors += 1
                else:
                    if sink.behind:
                        continue  # the snapshot it gets next holds this update too
                    if len(sink.items) - sink.errors >= self._max_pending:
                        sink.items = deque(x for x in sink.items if x.kind == "error")
                        sink.behind = True
                        sink.wake.set()
                        continue
                sink.items.append(u)
                sink.wake.set()

    def _wake_all(self) -> None:
        for sink in list(self._sinks):
            sink.wake.set()

    def _notice(self, text: str) -> None:
        if self._on_notice is not None:
            self._on_notice(text)

    # -- the connection ------------------------------------------------------------------------

    async def _run(self) -> None:
        """Connect, read, reconnect with backoff, until closed or failed."""
        attempt = 0
        lost = ""
        try:
            while not self._closed:
                if attempt:
                    first, cap = self._backoff
                    delay = min(cap, first * 2 ** (attempt - 1)) * random.uniform(0.8, 1.2)
                    self._notice(f"{lost}; reconnecting in {delay:.1f} s")
                    await asyncio.sleep(delay)
                attempt += 1
                self._served = False
                try:
                    await self._connection()
                except ConnectionClosed as exc:
                    rcvd = exc.rcvd
                    code, why = (rcvd.code, rcvd.reason) if rcvd else (None, "")
                    if code == CLOSE_POLICY:
                        why = why or "policy violation"
                        raise LiveError(
                            "refused", f"the server refused this client: {why}"
                        ) from None
                    lost = (
                        f"connection lost ({code or 'no close frame'}{': ' + why if why else ''})"
                    )
                except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
                    what = str(exc) or type(exc).__name__
                    if not self._connected_once:
                        raise LiveError(
                            "unreachable",
                            f"cannot reach the Kudos web process at {self.url} ({what})",
                        ) from None
                    lost = f"cannot reconnect ({what})"
                finally:
                    self._down()
                if self._served:  # it worked (a subscribe was answered): back off from the start
                    attempt = 1
        except LiveError as exc:
            self._fail(exc)
        except Exception as exc:  # a bug: say it to every reader rather than leave them waiting
            self._fail(LiveError("internal", f"the live client stopped: {exc!r}"))
            raise
        finally:
            self._closed = True  # however it ended (closed, failed, cancelled): readers end
            self._wake_all()

    def _fail(self, exc: LiveError) -> None:
        self._failure = exc
        for sink in list(self._sinks):
            sink.done = exc

    async def _connection(self) -> None:
        """One connection, until it closes (``ConnectionClosed``)."""
        ws = await connect(
            self.url, open_timeout=self._open_timeout, max_size=MAX_FRAME_BYTES, close_timeout=2
        )
        sender: asyncio.Task[None] | None = None
        try:
            raw = await asyncio.wait_for(ws.recv(), HELLO_TIMEOUT_S)
            hello = self._frame(raw)
            if not isinstance(hello, dict) or hello.get("type") != "hello":
                raise LiveError(
                    "protocol", f"{self.url} sent no hello frame: is it a Kudos web process?"
                )
            if hello.get("protocol") != PROTOCOL:
                self._notice(
                    f"the server speaks protocol {hello.get('protocol')}, this client {PROTOCOL}"
                )
            limits = hello.get("limits")
            if isinstance(limits, dict) and limits.get("auth") is True and not self.token:
                raise LiveError("auth", "the server requires a token")
            if self._connected_once:
                self._notice(f"reconnected to {self.url}; resuming")
            self._connected_once = True
            self._ws = ws
            self._outbox.clear()  # what was queued for the last connection: on_connect redoes it
            if self.token:
                self._outbox.append({"op": "auth", "token": self.token})
            self._outbox.extend(self.subs.on_connect())
            sender = asyncio.get_running_loop().create_task(self._send_loop(ws))
            while True:
                self._receive(await ws.recv())
        finally:
            if sender is not None:
                sender.cancel()
            with contextlib.suppress(Exception):
                await ws.close()

    async def _send_loop(self, ws: ClientConnection) -> None:
        """Send the outbox in order, at most SEND_RATE a second after a burst of SEND_BURST."""
        loop = asyncio.get_running_loop()
        tokens, at = float(SEND_BURST), loop.time()
        with contextlib.suppress(ConnectionClosed):
            while True:
                if not self._outbox:
                    self._out_wake.clear()
                    await self._out_wake.wait()
                    continue
                now = loop.time()
                tokens, at = min(float(SEND_BURST), tokens + (now - at) * SEND_RATE), now
                if tokens < 1:
                    await asyncio.sleep((1 - tokens) / SEND_RATE)
                    continue
                tokens -= 1
                await ws.send(orjson.dumps(self._outbox.popleft()).decode())

    def _frame(self, raw: str | bytes) -> Any:
        try:
            frame = orjson.loads(raw)
        except orjson.JSONDecodeError:
            frame = None
        if isinstance(frame, dict):
            text = raw if isinstance(raw, str) else raw.decode(errors="replace")
            self._deliver([Update(str(frame.get("channel") or ""), "frame", frame, raw=text)])
        return frame

    def _receive(self, raw: str | bytes) -> None:
        """Apply one frame."""
        frame = self._frame(raw)
        if not isinstance(frame, dict):
            self._notice(f"ignored a frame that is not a JSON object: {raw[:80]!r}")
            return
        # the server serves us (not merely greets): the backoff starts again after this one
        self._served = self._served or frame.get("type") in ("subscribed", "snapshot")
        actions = self.subs.receive(frame)
        for text in actions.notices:
            self._notice(text)
        self._queue(actions.send)
        for name in actions.retry:
            self._retry_later(name)
        self._deliver(actions.updates)

    def _down(self) -> None:
        self._ws = None
        self._outbox.clear()
        self.subs.on_disconnect()
        for name in list(self._retries):  # the next connection subscribes to everything
            self._cancel_retry(name)

    def _queue(self, msgs: list[dict[str, Any]]) -> None:
        if msgs and self._ws is not None:
            self._outbox.extend(msgs)
            self._out_wake.set()

    def _retry_later(self, name: str) -> None:
        """Subscribe to ``name`` again in RETRY_S (once, however many reasons come meanwhile)."""
        if name in self._retries:
            return

        def again() -> None:
            self._retries.pop(name, None)
            self._queue(self.subs.resubscribe(name))

        self._retries[name] = asyncio.get_running_loop().call_later(RETRY_S, again)

    def _cancel_retry(self, name: str) -> None:
        handle = self._retries.pop(name, None)
        if handle is not None:
            handle.cancel()


class Reader:
    """An async iterator of updates (``async for``); cancelling one ``anext`` loses nothing."""

    def __init__(self, client: Client, sink: _Sink) -> None:
        self.client = client
        self._sink = sink

    def __aiter__(self) -> Reader:
        return self

    async def __anext__(self) -> Update:
        u = await self.client._next(self._sink)
        if u is None:
            raise StopAsyncIteration
        return u

    async def aclose(self) -> None:
        """Stop reading (the channels stay followed)."""
        self._sink.ended = True
        self.client._sinks.discard(self._sink)


class Subscription(Reader):
    """One channel's updates (``async for update in subscription``): snapshots, deltas,
    events and resumes; a refusal of the channel raises :class:`LiveError`."""

    def __init__(self, client: Client, channel: str) -> None:
        super().__init__(client, _Sink(channel))
        self.channel = channel

    async def close(self) -> None:
        """Stop following the channel."""
        self.client.unsubscribe(self.channel)

    def __repr__(self) -> str:
        return f"Subscription({self.channel!r})"


__all__ = ["Client", "LiveError", "Reader", "Subscription", "Update"]
