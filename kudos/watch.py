"""``kudos watch``: follow live channels over the websocket protocol (docs/protocol.md) and print one
line per update, the way a chat bot would post it, or every frame as JSON.

:class:`kudos.watcher.Watcher` (pure, no sockets) holds each channel's state and turns frames
into lines; this module owns the connection: hello, auth, subscribe, resume after a reconnect
(with backoff), ``--count`` and ``--for``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import random
import sys
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import quote

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from kudos.watcher import Channel, Line, Watcher
from leaderboard.errors import WatchError
from web.protocol import CLOSE_POLICY, PROTOCOL

#: Reconnect delays (seconds): the first, doubled per failed attempt up to the cap, ±20 % each.
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
#: The server lets a client burst 40 messages; beyond that the subscribes are paced.
BURST = 30
#: Error codes that mean a channel can never be followed (the others are worth a retry).
FATAL_CODES = frozenset({"bad_request", "bad_channel", "unknown_board", "too_many_subscriptions"})
# -- the connection ------------------------------------------------------------------------


@dataclass
class Options:
    url: str
    channels: list[str]
    limit: int = 10
    token: str = ""
    json: bool = False
    scores: bool = False
    #: exit 0 after this many updates (lines, or with ``json`` delta and event frames)
    count: int | None = None
    #: exit after this many seconds (0 if ``count`` is unset or reached, else 1)
    seconds: float | None = None


#: Members one name lookup asks about, how long it may take, and lookups under way at once
#: (members beyond that are asked about with a later frame that names them).
MAX_NAME_LOOKUP = 50
NAME_TIMEOUT_S = 2.0
MAX_LOOKUPS = 4


def _members_of(frame: Mapping[str, Any]) -> Iterable[Any]:
    """Every member id a frame names (entries, changes, events)."""
    for part in ("entries", "entered", "moved", "score", "left"):
        for e in frame.get(part) or ():
            if isinstance(e, dict):
                yield e.get("member")
    events = list(frame.get("events") or ())
    if frame.get("type") == "event":
        events.append(frame)
    for ev in events:
        if isinstance(ev, dict):
            yield from (ev.get(k) for k in ("member", "overtaker", "overtaken"))


class _Done(Exception):
    """``--count`` reached, or nobody reads the output any more."""


@dataclass
class _Session:
    opts: Options
    watcher: Watcher
    out: TextIO
    err: TextIO
    #: updates printed so far (``--count``)
    printed: int = 0
    connected_once: bool = False
    #: request id → channel, to tell which subscribe an error answers
    requests: dict[int, str] = field(default_factory=dict)
    next_id: int = 1
    retries: set[asyncio.Task[None]] = field(default_factory=set)
    #: members whose display names were asked for (once each), and the lookups under way
    asked: set[str] = field(default_factory=set)
    lookups: set[asyncio.Task[None]] = field(default_factory=set)

    def notice(self, text: str) -> None:
        print(f"kudos watch: {text}", file=self.err, flush=True)

    def emit(self, raw: str | bytes, lines: Iterable[Line], update: bool) -> None:
        """Print a frame's lines (or, with ``json``, the frame itself) and count the updates."""
        try:
            self._emit(raw, lines, update)
        except BrokenPipeError:  # `kudos watch ... | head`: the reader has gone
            if self.out is sys.stdout:  # and the interpreter's last flush must not fail either
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise _Done from None

    def _emit(self, raw: str | bytes, lines: Iterable[Line], update: bool) -> None:
        if self.opts.json:
            self.out.write(raw if isinstance(raw, str) else raw.decode())
            self.out.write("\n")
            self.out.flush()
        for line in lines:
            if line.kind == "notice":
                self.notice(line.text)
            elif not self.opts.json:
                print(line.text, file=self.out, flush=True)
                if line.kind == "update":
                    self._count()
        if self.opts.json and update:
            self._count()

    def _count(self) -> None:
        self.printed += 1
        if self.opts.count is not None and self.printed >= self.opts.count:
            raise _Done

    async def send(self, ws: ClientConnection, msg: dict[str, Any]) -> None:
        await ws.send(orjson.dumps(msg).decode())

    async def subscribe(self, ws: ClientConnection, ch: Channel) -> None:
        rid = self.next_id
        self.next_id += 1
        self.requests[rid] = ch.name
        ch.gap, ch.resyncing = False, True
        await self.send(ws, ch.subscribe(rid))

    async def connection(self, ws: ClientConnection) -> None:
        """One connection: hello, auth, (re)subscribe every channel, then frames until it closes."""
        raw = await asyncio.wait_for(ws.recv(), 10)
        hello = orjson.loads(raw)
        self.emit(raw, [], update=False)
        if not isinstance(hello, dict) or hello.get("type") != "hello":
            raise WatchError(f"{self.opts.url} sent no hello frame: is it a Kudos web process?")
        if hello.get("protocol") != PROTOCOL:
            self.notice(
                f"the server speaks protocol {hello.get('protocol')}, this client {PROTOCOL}"
            )
        if (hello.get("limits") or {}).get("auth") and not self.opts.token:
            raise WatchError("the server requires a token: set KUDOS_WEB_TOKEN or pass --token")
        if self.opts.token:
            await self.send(ws, {"op": "auth", "token": self.opts.token})
        for i, ch in enumerate(list(self.watcher.channels.values())):
            if i >= BURST:  # stay under the server's message rate
                await asyncio.sleep(0.1)
            await self.subscribe(ws, ch)
        self.connected_once = True
        async for raw in ws:
            try:
                frame = orjson.loads(raw)
            except orjson.JSONDecodeError:
                frame = None
            if not isinstance(frame, dict):
                self.notice(f"ignored a frame that is not a JSON object: {raw[:80]!r}")
                continue
            if not self.opts.json:
                self.learn_names(frame)
            self.emit(
                raw, self.watcher.handle(frame), update=frame.get("type") in ("delta", "event")
            )
            if frame.get("type") == "error":
                self._error(ws, frame)
            for ch in list(self.watcher.channels.values()):
                if ch.gap:  # resume from the last frame applied: the server replays the rest
                    await self.subscribe(ws, ch)

    def learn_names(self, frame: Mapping[str, Any]) -> None:
        """Ask ``GET /api/profiles`` (same port) in the background for the display names of
        the members a frame names that were not asked about yet: the frames never wait for it,
        and a line printed before the answer shows the id alone (best effort)."""
        ids = {str(c) for c in _members_of(frame) if c}
        channel = str(frame.get("channel", ""))
        if frame.get("type") == "subscribed" and channel.startswith("member:"):
            ids.add(channel[len("member:") :])
        fresh = sorted(ids - self.asked)
        while fresh and len(self.lookups) < MAX_LOOKUPS:
            batch, fresh = fresh[:MAX_NAME_LOOKUP], fresh[MAX_NAME_LOOKUP:]
            self.asked.update(batch)
            task = asyncio.get_running_loop().create_task(self._lookup(batch))
            self.lookups.add(task)
            task.add_done_callback(self.lookups.discard)

    async def _lookup(self, ids: list[str]) -> None:
        base = self.opts.url.replace("wss://", "https://", 1).replace("ws://", "http://", 1)
        query = ",".join(quote(m, safe="") for m in ids)
        url = base.rsplit("/ws", 1)[0] + f"/api/profiles?members={query}"

        def get() -> Any:
            with urllib.request.urlopen(url, timeout=NAME_TIMEOUT_S) as r:
                return orjson.loads(r.read())

        with contextlib.suppress(OSError, ValueError, AttributeError):
            body = await asyncio.to_thread(get)
            for m, p in (body.get("profiles") or {}).items():
                if isinstance(p, dict) and isinstance(p.get("name"), str):
                    self.watcher.names[m] = p["name"]

    def _error(self, ws: ClientConnection, frame: Mapping[str, Any]) -> None:
        rid = frame.get("id")
        name = self.requests.get(rid) if isinstance(rid, int) else None
        if name is None or name not in self.watcher.channels:
            return
        if frame.get("code") in FATAL_CODES:
            del self.watcher.channels[name]
            if not self.watcher.channels:
                raise WatchError(f"cannot follow {name}: {frame.get('message')}")
            self.notice(f"not following {name}")
            return
        ch = self.watcher.channels[name]

        async def later() -> None:  # e.g. "unavailable": Redis is down for a moment
            await asyncio.sleep(1.0)
            with contextlib.suppress(ConnectionClosed):
                await self.subscribe(ws, ch)

        task = asyncio.get_running_loop().create_task(later())
        self.retries.add(task)
        task.add_done_callback(self.retries.discard)

    async def loop(self) -> None:
        """Connect, and reconnect with backoff for as long as it takes once connected."""
        attempt = 0
        while True:
            try:
                async with connect(
                    self.opts.url, open_timeout=10, max_size=16 << 20, close_timeout=2
                ) as ws:
                    if attempt:
                        self.notice(f"reconnected to {self.opts.url}; resuming")
                    attempt = 0
                    try:
                        await self.connection(ws)
                    except (WatchError, _Done, asyncio.CancelledError):
                        await ws.close()  # a normal close (1000), not an internal error
                        raise
                code, why = ws.close_code, ws.close_reason
                reason = f"the server closed the connection ({code}{': ' + why if why else ''})"
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else None
                why = exc.rcvd.reason if exc.rcvd else ""
                if code == CLOSE_POLICY:
                    raise WatchError(
                        f"the server refused this client: {why or 'policy violation'}"
                        " (check KUDOS_WEB_TOKEN / --token)"
                    ) from None
                reason = f"connection lost ({code or 'no close frame'}{': ' + why if why else ''})"
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
                what = str(exc) or type(exc).__name__
                if not self.connected_once:
                    raise WatchError(
                        f"cannot reach the Kudos web process at {self.opts.url} ({what}); start "
                        "the stack with `kudos up --background` (or run `kudos web`), or check "
                        "KUDOS_WEB_PORT / --url"
                    ) from None
                reason = f"cannot reconnect ({what})"
            for task in list(self.retries):
                task.cancel()
            delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2**attempt) * random.uniform(0.8, 1.2)
            attempt += 1
            self.notice(f"{reason}; reconnecting in {delay:.1f} s")
            await asyncio.sleep(delay)


async def watch(opts: Options, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Follow ``opts.channels`` until ``count`` updates or ``seconds``; the exit status."""
    session = _Session(
        opts, Watcher(opts.channels, opts.limit, opts.scores), out or sys.stdout, err or sys.stderr
    )
    try:
        async with asyncio.timeout(opts.seconds):
            await session.loop()
    except _Done:
        return 0
    except TimeoutError:
        if opts.count is not None:
            session.notice(f"only {session.printed} of {opts.count} updates in {opts.seconds:g} s")
            return 1
    return 0


def default_url(host: str, port: int) -> str:
    """The websocket of the web process the settings describe."""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"ws://{host}:{port}/ws"


def run(opts: Options) -> int:
    """The command: Ctrl-C ends it cleanly with status 0."""
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="replace")  # emoji on a terminal that cannot show them
    try:
        return asyncio.run(watch(opts))
    except KeyboardInterrupt:
        return 0
