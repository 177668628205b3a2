"""``kudos watch``: follow live channels over the websocket protocol (docs/protocol.md) and print one
line per update, the way a chat bot would post it, or every frame as JSON.

:class:`kudos.client.Client` owns the connection (hello, auth, subscribe, resume after a
reconnect with backoff) and hands over each channel's updates in order;
:class:`kudos.watcher.Watcher` (pure) words them. This module prints them, looks up display
names, and stops at ``--count`` or ``--for``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import sys
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.client import HTTPException
from typing import Any, TextIO
from urllib.parse import quote

import orjson

from kudos.client import Client
from kudos.subscriptions import Update
from kudos.watcher import Line, Watcher, parse_channel
from leaderboard.errors import LiveError, WatchError

# -- the connection ------------------------------------------------------------------------


@dataclass
class Options:
    url: str
    channels: list[str]
    limit: int = 10
    token: str = ""
    json: bool = False
    scores: bool = False
    #: exit 0 after this many updates (lines; with ``json``, delta and event frames applied:
    #: a duplicate or a frame before its snapshot is printed but not counted)
    count: int | None = None
    #: exit after this many seconds (0 if ``count`` is unset or reached, else 1)
    seconds: float | None = None


#: Members one name lookup asks about, how long it may take, and lookups under way at once
#: (members beyond that are asked about with a later frame that names them).
MAX_NAME_LOOKUP = 50
NAME_TIMEOUT_S = 2.0
MAX_LOOKUPS = 4


def _list(x: Any) -> list[Any]:
    return x if isinstance(x, list) else []


def _members_of(frame: Mapping[str, Any]) -> Iterable[Any]:
    """Every member id a frame names (entries, changes, events)."""
    for part in ("entries", "entered", "moved", "score", "left"):
        for e in _list(frame.get(part)):
            if isinstance(e, dict):
                yield e.get("member")
    events = list(_list(frame.get("events")))
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
    #: members whose display names were asked for (once each), and the lookups under way
    asked: set[str] = field(default_factory=set)
    lookups: set[asyncio.Task[None]] = field(default_factory=set)

    def notice(self, text: str) -> None:
        print(f"kudos watch: {text}", file=self.err, flush=True)

    def frame(self, raw: str) -> None:
        """``--json``: every frame as it arrived, unmodified."""
        self._guard(lambda: self._write(raw))

    def _write(self, raw: str) -> None:
        self.out.write(raw)
        self.out.write("\n")
        self.out.flush()

    def emit(self, update: Update) -> None:
        """Print an update's lines (with ``json``, only its notices) and count the updates."""
        self._guard(lambda: self._emit(update))

    def _guard(self, write: Callable[[], None]) -> None:
        try:
            write()
        except BrokenPipeError:  # `kudos watch ... | head`: the reader has gone
            if self.out is sys.stdout:  # and the interpreter's last flush must not fail either
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise _Done from None

    def _emit(self, update: Update) -> None:
        try:
            lines = self.watcher.handle(update)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # an odd field: go on
            lines = [Line(f"{update.channel}: could not word a {update.kind} ({exc!r})", "notice")]
        for line in lines:
            if line.kind == "notice":
                self.notice(line.text)
            elif not self.opts.json:
                print(line.text, file=self.out, flush=True)
                if line.kind == "update":
                    self._count()
        if self.opts.json and update.kind in ("delta", "event"):
            self._count()

    def _count(self) -> None:
        self.printed += 1
        if self.opts.count is not None and self.printed >= self.opts.count:
            raise _Done

    async def follow(self, client: Client) -> None:
        for name in map(parse_channel, self.opts.channels):
            client.subscribe(name, limit=self.opts.limit if name.startswith("board:") else None)
        async for update in client.updates(frames=self.opts.json):
            if update.kind == "frame":
                self.frame(update.raw)
                continue
            if not self.opts.json:
                self.learn_names(update)
            self.emit(update)
            if update.fatal:  # the server refused the channel for good
                if not client.subs.channels:
                    raise WatchError(
                        update.frame.get("code", "refused"),
                        f"cannot follow {update.channel}: {update.frame.get('message')}",
                    )
                self.notice(f"not following {update.channel}")

    def learn_names(self, update: Update) -> None:
        """Ask ``GET /api/profiles`` (same port) in the background for the display names of
        the members an update names that were not asked about yet: the updates never wait for
        it, and a line printed before the answer shows the id alone (best effort)."""
        ids = {str(c) for c in _members_of(update.frame) if c}
        if update.channel.startswith("member:"):
            ids.add(update.channel[len("member:") :])
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

        with contextlib.suppress(OSError, ValueError, AttributeError, HTTPException):
            body = await asyncio.to_thread(get)
            for m, p in (body.get("profiles") or {}).items():
                if isinstance(p, dict) and isinstance(p.get("name"), str):
                    self.watcher.names[m] = p["name"]


#: What to do next, by the client's error code.
HINTS = {
    "unreachable": "; start the stack with `kudos up --background` (or run `kudos web`), or "
    "check KUDOS_WEB_PORT / --url",
    "auth": ": set KUDOS_WEB_TOKEN or pass --token",
    "refused": " (check KUDOS_WEB_TOKEN / --token)",
}


async def watch(opts: Options, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Follow ``opts.channels`` until ``count`` updates or ``seconds``; the exit status."""
    session = _Session(opts, Watcher(opts.limit, opts.scores), out or sys.stdout, err or sys.stderr)
    client = Client(opts.url, token=opts.token, on_notice=session.notice)
    try:
        async with client, asyncio.timeout(opts.seconds):
            await session.follow(client)
    except _Done:
        return 0
    except WatchError:
        raise
    except LiveError as exc:
        raise WatchError(exc.code, f"{exc}{HINTS.get(exc.code, '')}") from None
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
